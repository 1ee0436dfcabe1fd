"""``thermosgd sweep``: a grid of runs (network trainings or isotropic studies), resumable
(`thermosgd.workflows.sweep.run_sweep`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from thermosgd.cli._common import UsageError, add_optimizer_options, parse_variants
from thermosgd.sweep import EXECUTORS

__all__ = ["EPILOG", "add_parser", "run"]

#: the sweep file format, shown under ``thermosgd sweep --help`` (README: "Sweep files")
EPILOG = """\
sweep file (YAML or JSON; keys with dashes or underscores, one spelling: sweep.json is
written with underscores):
  kind:     train | isotropic
  name:     a label (optional)
  base:     settings shared by every run
  grid:     settings -> lists of values; every combination is one run (or a list of
            such mappings, whose runs are united, e.g. one grid per protocol)
  and optionally the options of this command: executor, workers, ray-address,
  cpus-per-task, gpus-per-task, batch (false: one run at a time), max-batch.
settings of a train run: the options of `thermosgd train` (protocol, lr, elr, wd,
  radius, optimizer, momentum, beta2, steps, model, hidden, width, memory-format,
  variant, data, data-dir, label-noise, test-fraction, batch-size, seed, init-radius,
  log-every, noise-every, noise-batches, queue-size, window, checkpoint-every,
  test-evals, device, threads, keep-checkpoints) and data-seed, init-seed; a grid lists single
  values (elr: [0.01, 0.03], not LIST strings). Settings of an isotropic run (one
  study; its lr, elr, wd, radius are lists of values): protocol, lr, elr, wd, radius,
  dim, sigma, steps, seed, replicas, burn-in, queue-size, init-radius, n-blocks,
  trace-points. Any other key is refused with the list of valid ones.
example:
  kind: train
  base: {protocol: elr, data: digits, label-noise: 0.3, hidden: [32, 32],
         steps: 20000, device: cpu, threads: 1}
  grid: {elr: [0.01, 0.03], wd: [0.003, 0.01, 0.03]}
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Option defaults shown, the description wrapped, the epilog (the file format) as
    written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text is EPILOG:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


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
        epilog=EPILOG,
        formatter_class=_Formatter,
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
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="train sweeps: keep each finished run's checkpoint.pt (removed by "
                        "default: it is only needed to resume an interrupted run); the same as "
                        "'keep_checkpoints: true' in the config's base")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar over runs (default: only when stderr is a terminal)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Execute the sweep and collect its table; 1 when a run failed."""
    # the workflow is imported here, not at module level: the parser must stay light (no
    # torch / numba / scipy for --help); heavy modules load only when a command runs
    from thermosgd.workflows.sweep import override_train_spec, run_sweep, sweep_spec

    spec = sweep_spec(args.config, executor=args.executor, workers=args.workers,
                      ray_address=args.ray_address, cpus_per_task=args.cpus_per_task,
                      gpus_per_task=args.gpus_per_task)
    if args.variant and spec.kind != "train":
        raise UsageError("--variant is for train sweeps (kind: train)")
    if (args.optimizer or args.momentum or args.beta2 is not None
            or args.keep_checkpoints) and spec.kind != "train":
        raise UsageError("--optimizer, --momentum, --beta2 and --keep-checkpoints are for "
                         "train sweeps")
    if spec.kind == "train":
        spec = override_train_spec(spec, variant=args.variant, optimizer=args.optimizer,
                                   momentum=args.momentum, beta2=args.beta2,
                                   keep_checkpoints=args.keep_checkpoints or None)
    counts = run_sweep(spec, args.out, retry_failed=args.retry_failed, progress=args.progress)
    label = "sweep" if spec.name in ("", "sweep") else f"sweep {spec.name}"
    print(f"{label}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    print(f"wrote {args.out}/results.csv")
    return 0 if not counts.get("failed") else 1
