"""``thermosgd reproduce``: a preset of the paper end to end, resumable
(`thermosgd.workflows.reproduce.reproduce`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from thermosgd.sweep import EXECUTORS
from thermosgd.workflows.preset_table import PRESETS

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``reproduce`` command to ``subparsers`` (its presets: those of `PRESETS` when
    the parser is built)."""
    presets = "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items())
    p = subparsers.add_parser(
        "reproduce",
        help="reproduce the paper end to end (isotropic model, network sweeps, analysis, report)",
        description=(
            "Run a named study end to end: the isotropic-model study, the network sweep of the "
            "three protocols, the analysis (equation of state, Maxwell relations, collapse, "
            "Gibbs potential) and OUT/report.html. Resumable: finished parts are not redone. "
            f"Presets: {presets}."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", choices=list(PRESETS), default="quick", help="the study to run")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default: runs/<preset>)")
    p.add_argument("--data-dir", default=None,
                   help="dataset directory (CIFAR python-pickle archives for the paper-* presets)")
    p.add_argument("--executor", choices=list(EXECUTORS), default="local",
                   help="how the network runs execute: local processes or a Ray cluster")
    p.add_argument("--workers", type=int, default=1, help="local executor: worker processes")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (auto or HOST:PORT)")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each finished network run's checkpoint.pt (removed by default: "
                        "it is only needed to resume an interrupted run)")
    p.add_argument("--steps", type=int, default=None,
                   help="train every network run this many steps instead of the preset's (a "
                        "smoke run of a paper preset; the analysis then says what it cannot "
                        "assess at that size)")
    p.add_argument("--grid-values", type=int, default=None,
                   help="keep at most this many values per grid axis (both ends included)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: only when stderr is a terminal)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the preset into OUT (default runs/<preset>)."""
    # the workflow is imported here, not at module level: the parser must stay light (no
    # torch / numba / scipy for --help); heavy modules load only when a command runs
    from thermosgd.workflows.reproduce import reproduce

    out = args.out or Path("runs") / args.preset
    reproduce(args.preset, out, data_dir=args.data_dir, executor=args.executor,
              workers=args.workers, ray_address=args.ray_address, progress=args.progress,
              keep_checkpoints=args.keep_checkpoints, steps=args.steps,
              grid_values=args.grid_values)
    return 0
