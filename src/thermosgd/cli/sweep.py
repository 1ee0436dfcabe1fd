"""``thermosgd sweep``: a grid of runs (network trainings or isotropic studies), resumable
(`thermosgd.workflows.sweep.run_sweep`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from thermosgd.cli._common import UsageError, add_optimizer_options, parse_variants
from thermosgd.sweep import EXECUTORS
from thermosgd.workflows.sweep import override_train_spec, run_sweep, sweep_spec

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sweep`` command to ``subparsers``."""
    p = subparsers.add_parser(
        "sweep",
        help="run a grid of runs (network trainings or isotropic studies), resumable",
        description=(
            "Expand the grid of a sweep config (JSON or YAML: kind = train | isotropic, base = "
            "shared settings, grid = lists whose outer product gives the runs) and execute every "
            "unfinished run. Results go to OUT/runs/<run>/ (written atomically); rerunning skips "
            "finished runs and resumes interrupted ones; failed runs are recorded and the sweep "
            "goes on. Ends with `collect` (OUT/results.csv and results.parquet)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("config", type=Path, help="sweep config file (.json, .yaml or .yml)")
    p.add_argument("--out", type=Path, required=True, help="sweep directory (the result store)")
    p.add_argument("--executor", choices=list(EXECUTORS), default=None,
                   help="local: a process pool on this machine; ray: one Ray task per run or "
                        "batch on an existing cluster (default: the config's, else local)")
    p.add_argument("--workers", type=int, default=None,
                   help="local executor: parallel worker processes (default: the config's, else 1)")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster address: auto (a cluster started with `ray start --head` on "
                        "this machine) or HOST:PORT; the sweep directory must be on a file system "
                        "every node sees")
    p.add_argument("--cpus-per-task", type=float, default=None, help="Ray: CPUs per task")
    p.add_argument("--gpus-per-task", type=float, default=None, help="Ray: GPUs per task")
    p.add_argument("--variant", type=parse_variants, default=None,
                   help="train sweeps: add the mlp variants (comma-separated, e.g. "
                        "si,bn-affine,head) as a grid axis of every grid, replacing any "
                        "'variant' of the config (which may also list it in 'grid')")
    add_optimizer_options(p)
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar over runs (default: only when stderr is a terminal)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Execute the sweep and collect its table; 1 when a run failed."""
    spec = sweep_spec(args.config, executor=args.executor, workers=args.workers,
                      ray_address=args.ray_address, cpus_per_task=args.cpus_per_task,
                      gpus_per_task=args.gpus_per_task)
    if args.variant and spec.kind != "train":
        raise UsageError("--variant is for train sweeps (kind: train)")
    if (args.optimizer or args.momentum or args.beta2 is not None) and spec.kind != "train":
        raise UsageError("--optimizer, --momentum and --beta2 are for train sweeps")
    if spec.kind == "train":
        spec = override_train_spec(spec, variant=args.variant, optimizer=args.optimizer,
                                   momentum=args.momentum, beta2=args.beta2)
    counts = run_sweep(spec, args.out, retry_failed=args.retry_failed, progress=args.progress)
    label = "sweep" if spec.name in ("", "sweep") else f"sweep {spec.name}"
    print(f"{label}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    print(f"wrote {args.out}/results.csv")
    return 0 if not counts.get("failed") else 1
