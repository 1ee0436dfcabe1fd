"""``thermosgd report``: one self-contained HTML page of a directory's studies
(`thermosgd.workflows.analyze.write_report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``report`` command to ``subparsers``."""
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of analyses and isotropic studies",
        description=(
            "Render one HTML page (figures embedded, no network needed) from DIR: network "
            "analyses (analysis.json, or results.csv analyzed on the fly) and isotropic studies "
            "(summary.json + results.csv), found in DIR and its sub-directories."
        ),
    )
    p.add_argument("dir", type=Path, help="a sweep, analysis, isotropic or reproduce directory")
    p.add_argument("--out", type=Path, default=None, help="HTML file (default: DIR/report.html)")
    p.add_argument("--title", default=None, help="page title")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Write the page."""
    # the workflow is imported here, not at module level: the parser must stay light (no
    # torch / numba / scipy for --help); heavy modules load only when a command runs
    from thermosgd.workflows.analyze import write_report

    out = write_report(args.dir, args.out or args.dir / "report.html", title=args.title)
    print(f"wrote {out}")
    return 0
