"""``thermosgd analyze``: the thermodynamics of a grid of stationary states
(`thermosgd.workflows.analyze.run_analysis`)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``analyze`` command to ``subparsers``."""
    p = subparsers.add_parser(
        "analyze",
        help="analyze a grid of stationary states (equation of state, Maxwell relations, ...)",
        description=(
            "Read DIR/results.csv (or results.parquet, from `thermosgd collect` or `thermosgd "
            "train`) and, per protocol, compare the measured radius (sphere: pressure) with the "
            "SDE and discretization-corrected predictions, fit S over (log rate, log wd) with "
            "a quadratic and report the Maxwell-relation errors as the paper does, quantify the "
            "collapse of sigma^2, U, T onto elr (lr: lr*wd), and minimize the Gibbs potential. "
            "Non-stationary runs are excluded and listed. A small sweep gets what it can "
            "(the equation of state from one stationary run, every run's measured state, the "
            "figures that can be drawn); what needs more runs (the fit: 6 stationary runs on "
            "a 2-D grid; collapse and potential: 4) is listed with the reason. Writes "
            "OUT/analysis.json and figures."
        ),
    )
    p.add_argument("dir", type=Path, help="directory holding results.csv or results.parquet")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: DIR)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--lenient", action="store_true",
                   help="record a protocol that cannot be analyzed at all (e.g. runs of "
                        "several d) in analysis.json instead of stopping")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Analyze the directory and print the summary."""
    # the workflow is imported here, not at module level: the parser must stay light (no
    # torch / numba / scipy for --help); heavy modules load only when a command runs
    from thermosgd.workflows.analyze import format_analysis, run_analysis

    result = run_analysis(args.dir, args.out, figures=not args.no_figures,
                          strict=not args.lenient)
    print(format_analysis(result))
    print(f"wrote {args.out or args.dir}/analysis.json")
    return 0
