"""``thermosgd train``: a grid of scale-invariant networks trained and measured
(`thermosgd.workflows.train.run_grid`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from thermosgd.cli._common import (
    UsageError,
    add_grid_options,
    add_optimizer_options,
    parse_hidden,
    parse_variants,
)
from thermosgd.spec import DATASETS, DEVICES, MEMORY_FORMATS, MODELS

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` command to ``subparsers``."""
    p = subparsers.add_parser(
        "train",
        help="train scale-invariant networks on a hyperparameter grid and measure their state",
        description=(
            "Train scale-invariant networks (frozen heads, BatchNorm without affine) with one of "
            "the three protocols and measure, over the stationary window, the radius, the "
            "gradient noise (tr Sigma, |grad L|^2, sigma^2), the temperature T, pressure p, "
            "volume V, energy U and entropy S, with the SDE and discretization-corrected "
            "predictions and a stationarity verdict. Every combination of the given LISTs is one "
            "run in OUT/<name>/ (config.json, metrics.csv, stationary.json; checkpoint.pt while "
            "it runs, kept with --keep-checkpoints); BN-MLP grids train as one batched model. "
            "Interrupted runs resume from their checkpoints "
            "when the same command is run again. OUT/results.csv gets one row per run in OUT."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", choices=list(MODELS), default="mlp",
                   help="mlp: BN-MLP (--hidden); convnet: the paper's ConvNet (--width, default "
                        "8); resnet18: pre-activation ResNet-18 (--width, default 4)")
    p.add_argument("--hidden", type=parse_hidden, default=(32, 32),
                   help="hidden widths of the BN-MLP, e.g. 32,32 (d = in*h1 + h1*h2 + ...)")
    p.add_argument("--width", type=int, default=None,
                   help="channel width of the convnet (default 8) or resnet18 (default 4)")
    p.add_argument("--memory-format", choices=list(MEMORY_FORMATS), default="contiguous",
                   help="layout of the convnet / resnet18 activations and weights: contiguous "
                        "(NCHW) or channels_last (faster CPU steps, equal to float32 round-off; "
                        "such runs are not batched)")
    p.add_argument("--variant", type=parse_variants, default="si",
                   help="model variants, comma-separated (a grid axis): si (the paper's "
                        "networks), layernorm (mlp; also scale-invariant), or non-scale-"
                        "invariant ones trained as one group with their extra parameters: "
                        "bn-affine (BatchNorm gamma, beta), bias (biases after BatchNorm and in "
                        "the head), head (trainable head) (mlp, convnet), layernorm-affine (mlp); "
                        "stationary.json then reports the distance from scale invariance "
                        "(si_radial_gradient, si_loss_change)")
    p.add_argument("--data", choices=list(DATASETS), default="digits",
                   help="digits: scikit-learn's 8x8 digits; fashion-mnist: IDX files; cifar10, "
                        "cifar100: python archives in --data-dir (never downloaded); synthetic: "
                        "a teacher-student set (mlp only)")
    p.add_argument("--data-dir", default=None,
                   help="directory of the data files (fashion-mnist default: "
                        "/usr/share/datasets/fashion-mnist; required for cifar)")
    p.add_argument("--label-noise", type=float, default=0.0,
                   help="fraction of training labels replaced by random labels (fixed seed); "
                        "0.3 keeps a small net from interpolating (T > 0)")
    p.add_argument("--test-fraction", type=float, default=0.0,
                   help="digits only: fraction held out as the test set (default 0: train on "
                        "all 1797 samples, as the paper's pilot does)")
    p.add_argument("--test-evals", type=int, default=8,
                   help="evaluations of train/test loss and accuracy (whole sets, BN in eval "
                        "mode) spread over the stationary window; their means give the "
                        "generalization gap (0: none)")
    add_grid_options(p, protocol_required=True)
    add_optimizer_options(p)
    _add_run_options(p)
    p.set_defaults(func=run)
    return p


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of one run's length, schedule, device and directory handling."""
    p.add_argument("--steps", type=int, default=50_000, help="SGD steps per run")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size (i.i.d. draws)")
    p.add_argument("--seed", type=int, default=1, help="training seed (minibatch sequence)")
    p.add_argument("--init-radius", type=float, default=None,
                   help="|w| of the SI weights at the start (lr, elr; default 1)")
    p.add_argument("--log-every", type=int, default=None,
                   help="steps per metrics row (default steps/1000)")
    p.add_argument("--noise-every", type=int, default=None,
                   help="steps between gradient-noise probes, a multiple of --log-every "
                        "(default: 10%% extra compute, at most ~64 probes in the window)")
    p.add_argument("--noise-batches", type=int, default=64,
                   help="minibatch gradients per noise probe")
    p.add_argument("--window", type=int, default=None,
                   help="stationary window: the last WINDOW steps (default steps/2)")
    p.add_argument("--queue-size", type=int, default=None,
                   help="weight snapshots for the entropy, spread over the window "
                        "(default min(1000, window))")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="steps between checkpoints (default steps/10)")
    p.add_argument("--device", choices=list(DEVICES), default="auto",
                   help="auto: CUDA when available")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 suits small models on a shared machine)")
    p.add_argument("--no-batch", action="store_true",
                   help="train the grid one run at a time instead of as one batched BN-MLP")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each finished run's checkpoint.pt (by default it is removed when "
                        "the run ends: it is only needed to resume an interrupted run; "
                        "stationary.json marks a run finished, so it is not retrained)")
    p.add_argument("--no-resume", action="store_true",
                   help="start every run from step 0 even if OUT/<name> holds a checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace runs in OUT/<name> that were made with a different config")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only when stderr is a terminal)")
    p.add_argument("--out", type=Path, required=True, help="output directory (one subdirectory "
                                                           "per run)")


_COMMON = ("model", "hidden", "width", "memory_format", "data", "data_dir", "label_noise",
           "test_fraction", "test_evals", "steps", "batch_size", "seed", "init_radius", "log_every",
           "noise_every", "noise_batches", "window", "queue_size", "checkpoint_every", "device",
           "beta2")


def run(args: argparse.Namespace) -> int:
    """Train the grid into OUT, print each run's summary; 130 when interrupted."""
    # the workflow is imported here, not at module level: the parser must stay light (no
    # torch / numba / scipy for --help); heavy modules load only when a command runs
    from thermosgd.workflows.train import GRID_AXES, grid_configs, run_grid

    optimizer = args.optimizer or "sgd"
    if optimizer == "sgd" and (args.momentum or args.beta2 is not None):
        raise UsageError("--momentum and --beta2 need --optimizer momentum or adamw")
    configs = grid_configs(args.protocol, {k: getattr(args, k) for k in GRID_AXES},
                           args.variant, optimizer=optimizer,
                           **{k: getattr(args, k) for k in _COMMON})
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    try:
        results = run_grid(configs, args.out, batched=not args.no_batch,
                           progress=args.progress, resume=not args.no_resume,
                           overwrite=args.overwrite, threads=args.threads,
                           keep_checkpoints=args.keep_checkpoints)
    except KeyboardInterrupt:
        print("thermosgd: interrupted; run the same command again to resume from the last "
              "checkpoints", file=sys.stderr)
        return 130
    for name, doc in results:
        print(f"== {name}: {doc['status']}")
        print(doc.get("summary", ""))
    print(f"wrote {len(results)} run(s) under {args.out}/ and {args.out}/results.csv")
    return 0
