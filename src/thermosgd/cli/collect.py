"""``thermosgd collect``: every run of a sweep directory in one table
(`thermosgd.sweep.collect`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from thermosgd.sweep import collect

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``collect`` command to ``subparsers``."""
    c = subparsers.add_parser(
        "collect",
        help="gather every run of a sweep directory into one table",
        description="Write DIR/results.csv and DIR/results.parquet: one row per run (run id, "
                    "state, error, configuration and measured stationary state).",
    )
    c.add_argument("dir", type=Path, help="sweep directory")
    c.set_defaults(func=run)
    return c


def run(args: argparse.Namespace) -> int:
    """Collect the table and say how many runs it holds."""
    cols = collect(args.dir)
    print(f"wrote {args.dir}/results.csv ({len(cols.get('run', []))} runs)")
    return 0
