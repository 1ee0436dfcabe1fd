"""The ``thermosgd`` command line. It parses options and calls the library; nothing else."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from thermosgd.reproduce import ISOTROPIC_PRESETS, PRESETS, isotropic_configs
from thermosgd.reproduce import parse_list as _parse_list


class UsageError(argparse.ArgumentTypeError, ValueError):
    """Bad command-line input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line ("thermosgd: error: ...") with exit status 2."""

    def error(self, message: str):
        print(f"thermosgd: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def parse_list(text: str) -> tuple[float, ...]:
    """'0.1,0.2,0.5' or 'log:START:STOP:NUM' (see `thermosgd.reproduce.parse_list`)."""
    try:
        return _parse_list(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _add_isotropic(sub) -> None:
    p = sub.add_parser(
        "isotropic",
        help="simulate the isotropic-noise model on a hyperparameter grid",
        description=(
            "Simulate SGD with weight decay on the isotropic-noise model L = 1 + <mu, w/|w|> "
            "(tangent Gaussian noise of scale sigma/|w|) over a grid of hyperparameters, measure "
            "the stationary radius, pressure, energy U and entropy S, and compare them with the "
            "ideal-gas theory. Writes OUT/results.csv (one row per grid point), OUT/summary.json "
            "(Maxwell slopes, worst errors, potential argmin) and PNG figures. With --preset, "
            "runs all three protocols into OUT/<protocol>/. With --optimizer momentum or adamw "
            "(protocol lr), simulates heavy-ball SGD or AdamW instead and writes OUT/results.csv "
            "and OUT/analysis.json (equation of state and Maxwell relation of that optimizer) "
            "with figures, as for a network sweep."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", choices=sorted(ISOTROPIC_PRESETS),
                   help="run a named study of all three protocols: 'paper' is the paper's exact "
                        "study (17x17 grids, 2e6 steps, d=3); 'quick' a reduced one")
    p.add_argument("--protocol", choices=["lr", "elr", "sphere"],
                   help="lr: fixed learning rate + weight decay; elr: fixed effective LR "
                        "(step eta-tilde*|w|^2) + weight decay; sphere: fixed radius, ELR step, "
                        "projection back to the sphere")
    lists = "LIST: comma-separated values or log:START:STOP:NUM"
    p.add_argument("--lr", type=parse_list, help=f"learning rates eta (protocol lr). {lists}")
    p.add_argument("--elr", type=parse_list,
                   help=f"effective learning rates eta-tilde (protocols elr, sphere). {lists}")
    p.add_argument("--wd", type=parse_list, help=f"weight decays lambda (lr, elr). {lists}")
    p.add_argument("--radius", type=parse_list, help=f"sphere radii r (sphere). {lists}")
    p.add_argument("--optimizer", choices=["sgd", "momentum", "adamw"], default="sgd",
                   help="sgd: the paper's protocols; momentum: heavy ball with coupled weight "
                        "decay (torch SGD momentum); adamw: AdamW with decoupled weight decay "
                        "(both with --protocol lr)")
    p.add_argument("--momentum", type=float, default=0.9,
                   help="heavy-ball beta (momentum) or beta1 (adamw)")
    p.add_argument("--beta2", type=float, default=0.999, help="AdamW's second-moment beta2")
    p.add_argument("--mu", choices=["random", "diagonal"], default="random",
                   help="loss direction: seeded random unit vector, or (1,...,1)/sqrt(d), whose "
                        "minimum gives AdamW equal second moments in every coordinate")
    p.add_argument("--dim", type=int, default=3, help="number of parameters d (sphere S^{d-1})")
    p.add_argument("--sigma", type=float, default=1.0,
                   help="noise scale: per-direction noise std on the unit sphere")
    p.add_argument("--steps", type=int, default=200_000, help="SGD steps per chain")
    p.add_argument("--seed", type=int, default=0, help="seed of the loss direction, init, noise")
    p.add_argument("--replicas", type=int, default=1,
                   help="independent chains per grid point (pooled for the statistics)")
    p.add_argument("--burn-in", type=int, default=None,
                   help="steps discarded before the stationary window (default: from the radius "
                        "relaxation and angular mixing times, within [steps/10, steps/2])")
    p.add_argument("--queue-size", type=int, default=1000,
                   help="direction snapshots per chain for the entropy, spread over the window")
    p.add_argument("--init-radius", type=_init_radius, default=1.0,
                   help="initial |w| (lr, elr): a number, or 'predicted' to start every chain at "
                        "its discretization-corrected stationary radius (slowly relaxing points, "
                        "e.g. elr = 1e-3, then need no multi-million-step burn-in)")
    p.add_argument("--entropy-method", choices=["chord", "angles", "scale"], default="chord",
                   help="k-NN entropy on chord distances (default), on hyperspherical angles "
                        "('angles'), or on angles standardized per coordinate ('scale', the "
                        "authors' notebook; biased when the mode sits on the last angle's cut, "
                        "docs/entropy.md)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only when stderr is a terminal)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.set_defaults(func=cmd_isotropic)


def _init_radius(text: str) -> float | str:
    if text == "predicted":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a number nor 'predicted'") from None


def cmd_isotropic(args) -> int:
    from thermosgd.isotropic import IsotropicConfig, run_study

    if args.optimizer != "sgd":
        return _isotropic_optimizer(args)

    common = {"dim": args.dim, "sigma": args.sigma, "steps": args.steps, "seed": args.seed,
              "replicas": args.replicas, "burn_in": args.burn_in, "queue_size": args.queue_size,
              "init_radius": args.init_radius}
    if args.preset:
        if args.protocol or any(getattr(args, k) for k in ("lr", "elr", "wd", "radius")):
            raise UsageError("--preset runs its own grids: drop --protocol and the grid lists")
        configs = isotropic_configs(args.preset, seed=args.seed, replicas=args.replicas,
                                    burn_in=args.burn_in, init_radius=args.init_radius)
        outs = [args.out / c.protocol for c in configs]
    else:
        if not args.protocol:
            raise UsageError("give --protocol (lr, elr or sphere) or --preset")
        grid = {k: getattr(args, k) or () for k in ("lr", "elr", "wd", "radius")}
        configs = [IsotropicConfig(protocol=args.protocol, **grid, **common)]
        outs = [args.out]
    for c, out in zip(configs, outs, strict=True):
        summary = run_study(c, out, figures=not args.no_figures, progress=args.progress,
                            entropy_method=args.entropy_method)
        print(format_summary(summary))
        print(f"wrote {out}/results.csv, {out}/summary.json")
    return 0


def _isotropic_optimizer(args) -> int:
    from thermosgd import isotropic_momentum
    from thermosgd.analysis import format_analysis

    if args.preset or args.protocol != "lr" or args.elr or args.radius:
        raise UsageError(f"--optimizer {args.optimizer} runs the fixed-LR protocol: give "
                         "--protocol lr with --lr and --wd (no --preset)")
    if not args.lr or not args.wd:
        raise UsageError("give --lr and --wd lists")
    if args.replicas < 1:
        raise UsageError(f"--replicas must be >= 1, got {args.replicas}")
    result = isotropic_momentum.run_study(
        args.optimizer, args.out, dim=args.dim, lr=args.lr, wd=args.wd, beta1=args.momentum,
        beta2=args.beta2, sigma=args.sigma, steps=args.steps, replicas=args.replicas,
        seed=args.seed, queue_size=args.queue_size, burn_in=args.burn_in,
        mu="diagonal" if args.mu == "diagonal" else None, figures=not args.no_figures,
        entropy_method=args.entropy_method)
    print(format_analysis(result))
    print(f"wrote {args.out}/results.csv, {args.out}/analysis.json")
    return 0


def format_summary(s: dict) -> str:
    """A few human-readable lines from a study summary."""
    c = s["config"]
    lines = [f"== isotropic {c['protocol']}: {s['grid_points']} grid points, d={c['dim']}, "
             f"{c['steps']} steps; stationary {s['stationary_points']}/{s['grid_points']}"]
    key = "pressure" if c["protocol"] == "sphere" else "radius"

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f}%"

    lines.append(f"   {key}: worst rel. error {pct(s[f'{key}_max_rel_error_discrete'])} "
                 f"(discretization-corrected), {pct(s[f'{key}_max_rel_error_sde'])} (SDE)")
    lines.append(f"   energy: worst rel. error vs exact vMF {pct(s['energy_max_rel_error_exact'])}")
    for name, m in s["maxwell"].items():
        if m.get("measured") is None:
            continue
        spread = m.get("std_over_rows", m.get("stderr"))
        lines.append(f"   {name} = {m['measured']:+.4f} +- {spread:.4f} "
                     f"(theory {m['theory']:+.4f})")
    lines.append(f"   potential argmin: max distance to target "
                 f"{s['potential_argmin']['max_distance_cells']} cell(s)")
    return "\n".join(lines)


def _parse_hidden(text: str) -> tuple[int, ...]:
    """'32,32' -> (32, 32): the hidden widths of the BN-MLP."""
    try:
        widths = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"cannot parse --hidden {text!r}: use comma-separated ints") from None
    if not widths or min(widths) < 1:
        raise UsageError(f"--hidden needs positive widths, got {text!r}")
    return widths


def _parse_variants(text: str) -> tuple[str, ...]:
    """'si,bias' -> ("si", "bias"): mlp variants (`thermosgd.models.MLP_VARIANTS`)."""
    from thermosgd.models import MLP_VARIANTS

    names = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in names if v not in MLP_VARIANTS]
    if not names or bad:
        raise UsageError(f"--variant: unknown {bad or [text]}; choose from "
                         f"{', '.join(MLP_VARIANTS)}")
    if len(set(names)) != len(names):
        raise UsageError(f"--variant lists a variant twice: {text!r}")
    return names


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train scale-invariant networks on a hyperparameter grid and measure their state",
        description=(
            "Train scale-invariant networks (frozen heads, BatchNorm without affine) with one of "
            "the three protocols and measure, over the stationary window, the radius, the "
            "gradient noise (tr Sigma, |grad L|^2, sigma^2), the temperature T, pressure p, "
            "volume V, energy U and entropy S, with the SDE and discretization-corrected "
            "predictions and a stationarity verdict. Every combination of the given LISTs is one "
            "run in OUT/<name>/ (config.json, metrics.csv, stationary.json, checkpoint.pt); BN-MLP "
            "grids train as one batched model. Interrupted runs resume from their checkpoints "
            "when the same command is run again. OUT/results.csv gets one row per run in OUT."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    lists = "LIST: comma-separated values or log:START:STOP:NUM"
    p.add_argument("--model", choices=["mlp", "convnet", "resnet18"], default="mlp",
                   help="mlp: BN-MLP (--hidden); convnet: the paper's ConvNet (--width, default "
                        "8); resnet18: pre-activation ResNet-18 (--width, default 4)")
    p.add_argument("--hidden", type=_parse_hidden, default=(32, 32),
                   help="hidden widths of the BN-MLP, e.g. 32,32 (d = in*h1 + h1*h2 + ...)")
    p.add_argument("--width", type=int, default=None,
                   help="channel width of the convnet (default 8) or resnet18 (default 4)")
    p.add_argument("--variant", type=_parse_variants, default="si",
                   help="model variants, comma-separated (a grid axis): si (the paper's "
                        "networks), layernorm (mlp; also scale-invariant), or non-scale-"
                        "invariant ones trained as one group with their extra parameters: "
                        "bn-affine (BatchNorm gamma, beta), bias (biases after BatchNorm and in "
                        "the head), head (trainable head) (mlp, convnet), layernorm-affine (mlp); "
                        "stationary.json then reports the distance from scale invariance "
                        "(si_radial_gradient, si_loss_change)")
    p.add_argument("--data", choices=["digits", "fashion-mnist", "cifar10", "cifar100",
                                      "synthetic"], default="digits",
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
    p.add_argument("--protocol", choices=["lr", "elr", "sphere"], required=True,
                   help="lr: fixed learning rate + weight decay; elr: fixed effective LR "
                        "(step eta-tilde*|w|^2) + weight decay; sphere: fixed radius, ELR step, "
                        "projection back to the sphere")
    p.add_argument("--lr", type=parse_list, help=f"learning rates eta (protocol lr). {lists}")
    p.add_argument("--elr", type=parse_list,
                   help=f"effective learning rates eta-tilde (protocols elr, sphere). {lists}")
    p.add_argument("--wd", type=parse_list, help=f"weight decays lambda (lr, elr). {lists}")
    p.add_argument("--radius", type=parse_list, help=f"sphere radii r (sphere). {lists}")
    _add_optimizer_options(p, lists)
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
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: CUDA when available")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 suits small models on a shared machine)")
    p.add_argument("--no-batch", action="store_true",
                   help="train the grid one run at a time instead of as one batched BN-MLP")
    p.add_argument("--no-resume", action="store_true",
                   help="start every run from step 0 even if OUT/<name> holds a checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace runs in OUT/<name> that were made with a different config")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only when stderr is a terminal)")
    p.add_argument("--out", type=Path, required=True, help="output directory (one subdirectory "
                                                           "per run)")
    p.set_defaults(func=cmd_train)


def _add_optimizer_options(p, lists: str) -> None:
    p.add_argument("--optimizer", choices=["sgd", "momentum", "adamw"], default=None,
                   help="sgd: plain SGD (the paper; the default); with --protocol lr only: "
                        "momentum: heavy ball with coupled weight decay (torch SGD, momentum "
                        "--momentum, dampening 0, no Nesterov); adamw: AdamW with decoupled "
                        "weight decay (torch AdamW, betas --momentum/--beta2, eps 1e-8). The "
                        "monitor then predicts radius, temperature and pressure from that "
                        "optimizer's closed forms (docs/theory.md)")
    p.add_argument("--momentum", type=parse_list, default=None,
                   help=f"heavy-ball beta (momentum) or AdamW's beta1 (adamw), in [0, 1); a "
                        f"grid axis (default 0.9). {lists}")
    p.add_argument("--beta2", type=float, default=None,
                   help="AdamW's beta2 (second-moment average), in [0, 1) (default 0.999)")


def _optimizer_fields(args) -> dict:
    """TrainConfig fields from --optimizer/--beta2 (--momentum is a grid axis)."""
    opt = args.optimizer or "sgd"
    if opt == "sgd" and (args.momentum or args.beta2 is not None):
        raise UsageError("--momentum and --beta2 need --optimizer momentum or adamw")
    return {"optimizer": opt, "beta2": args.beta2}


def cmd_train(args) -> int:
    import itertools
    import json

    from thermosgd.io import write_csv
    from thermosgd.training import TrainConfig, grid_table, run_name, train_grid

    common = {"model": args.model, "hidden": args.hidden, "width": args.width,
              "data": args.data, "data_dir": args.data_dir, "label_noise": args.label_noise,
              "test_fraction": args.test_fraction, "test_evals": args.test_evals,
              "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
              "init_radius": args.init_radius, "log_every": args.log_every,
              "noise_every": args.noise_every, "noise_batches": args.noise_batches,
              "window": args.window, "queue_size": args.queue_size,
              "checkpoint_every": args.checkpoint_every, "device": args.device}
    names = ("lr", "elr", "wd", "radius", "momentum")
    grid = [getattr(args, k) or (None,) for k in names]
    common.update(_optimizer_fields(args))
    configs = [TrainConfig(protocol=args.protocol, **dict(zip(names, point, strict=True)),
                           variant=variant, **common)
               for variant in args.variant for point in itertools.product(*grid)]
    run_names = [run_name(c) for c in configs]
    if len(set(run_names)) != len(run_names):
        raise UsageError("the grid lists a hyperparameter value twice")
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    outs = [args.out / n for n in run_names]
    try:
        results = train_grid(configs, outs, batched=not args.no_batch, progress=args.progress,
                             resume=not args.no_resume, overwrite=args.overwrite,
                             threads=args.threads)
    except KeyboardInterrupt:
        print("thermosgd: interrupted; run the same command again to resume from the last "
              "checkpoints", file=sys.stderr)
        return 130
    for name, doc in zip(run_names, results, strict=True):
        print(f"== {name}: {doc['status']}")
        print(doc.get("summary", ""))
    docs = []
    for d in sorted(args.out.iterdir()):
        f = d / "stationary.json"
        if d.is_dir() and f.is_file():
            try:
                docs.append(json.loads(f.read_text()))
            except ValueError:
                continue
    if docs:
        write_csv(args.out / "results.csv", grid_table(docs))
    print(f"wrote {len(results)} run(s) under {args.out}/ and {args.out}/results.csv")
    return 0


def _add_sweep(sub) -> None:
    p = sub.add_parser(
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
    p.add_argument("--executor", choices=["local", "ray"], default=None,
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
    p.add_argument("--variant", type=_parse_variants, default=None,
                   help="train sweeps: add the mlp variants (comma-separated, e.g. "
                        "si,bn-affine,head) as a grid axis of every grid, replacing any "
                        "'variant' of the config (which may also list it in 'grid')")
    _add_optimizer_options(p, "LIST: comma-separated values or log:START:STOP:NUM")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar over runs (default: only when stderr is a terminal)")
    p.set_defaults(func=cmd_sweep)

    c = sub.add_parser(
        "collect",
        help="gather every run of a sweep directory into one table",
        description="Write DIR/results.csv and DIR/results.parquet: one row per run (run id, "
                    "state, error, configuration and measured stationary state).",
    )
    c.add_argument("dir", type=Path, help="sweep directory")
    c.set_defaults(func=cmd_collect)


def cmd_sweep(args) -> int:
    from thermosgd.sweep import collect, execute, load_spec

    spec = load_spec(args.config, executor=args.executor, workers=args.workers,
                     ray_address=args.ray_address, cpus_per_task=args.cpus_per_task,
                     gpus_per_task=args.gpus_per_task)
    if args.variant:
        import dataclasses

        if spec.kind != "train":
            raise UsageError("--variant is for train sweeps (kind: train)")
        grids = spec.grid if isinstance(spec.grid, list | tuple) else [spec.grid]
        spec = dataclasses.replace(
            spec, base={k: v for k, v in spec.base.items() if k != "variant"},
            grid=[{**g, "variant": list(args.variant)} for g in grids])
    if args.optimizer or args.momentum or args.beta2 is not None:
        import dataclasses

        if spec.kind != "train":
            raise UsageError("--optimizer, --momentum and --beta2 are for train sweeps")
        # the options replace the config's values, in its base or its grids
        given = {"optimizer": args.optimizer, "beta2": args.beta2,
                 "momentum": list(args.momentum) if args.momentum else None}
        given = {k: v for k, v in given.items() if v is not None}
        base = {k: v for k, v in spec.base.items() if k not in given}
        grids = spec.grid if isinstance(spec.grid, list | tuple) else [spec.grid]
        grids = [{k: v for k, v in g.items() if k not in given} for g in grids]
        base.update({k: v for k, v in given.items() if k != "momentum"})
        if "momentum" in given:  # a grid axis
            grids = [{**g, "momentum": given["momentum"]} for g in grids]
        spec = dataclasses.replace(spec, base=base, grid=grids)
    counts = execute(spec, args.out, retry_failed=args.retry_failed, progress=args.progress)
    collect(args.out)
    print(f"sweep {spec.name}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    print(f"wrote {args.out}/results.csv")
    return 0 if not counts.get("failed") else 1


def cmd_collect(args) -> int:
    from thermosgd.sweep import collect

    cols = collect(args.dir)
    print(f"wrote {args.dir}/results.csv ({len(cols.get('run', []))} runs)")
    return 0


def _add_analyze(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help="analyze a grid of stationary states (equation of state, Maxwell relations, ...)",
        description=(
            "Read DIR/results.csv (or results.parquet, from `thermosgd collect` or `thermosgd "
            "train`) and, per protocol, compare the measured radius (sphere: pressure) with the "
            "SDE and discretization-corrected predictions, fit S over (log rate, log wd) with "
            "a quadratic and report the Maxwell-relation errors as the paper does, quantify the "
            "collapse of sigma^2, U, T onto elr (lr: lr*wd), and minimize the Gibbs potential. "
            "Non-stationary runs are excluded and listed. Writes OUT/analysis.json and figures."
        ),
    )
    p.add_argument("dir", type=Path, help="directory holding results.csv or results.parquet")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: DIR)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--lenient", action="store_true",
                   help="record a protocol that cannot be analyzed (e.g. too few stationary "
                        "runs) in analysis.json instead of stopping")
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args) -> int:
    from thermosgd.analysis import format_analysis, run_analysis

    result = run_analysis(args.dir, args.out, figures=not args.no_figures,
                          strict=not args.lenient)
    print(format_analysis(result))
    print(f"wrote {args.out or args.dir}/analysis.json")
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser(
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
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from thermosgd.report import write_report

    out = write_report(args.dir, args.out or args.dir / "report.html", title=args.title)
    print(f"wrote {out}")
    return 0


def _add_reproduce(sub) -> None:
    presets = "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items())
    p = sub.add_parser(
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
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="how the network runs execute: local processes or a Ray cluster")
    p.add_argument("--workers", type=int, default=1, help="local executor: worker processes")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (auto or HOST:PORT)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: only when stderr is a terminal)")
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args) -> int:
    from thermosgd.reproduce import reproduce

    out = args.out or Path("runs") / args.preset
    reproduce(args.preset, out, data_dir=args.data_dir, executor=args.executor,
              workers=args.workers, ray_address=args.ray_address, progress=args.progress)
    return 0


def _add_schedule(sub) -> None:
    p = sub.add_parser(
        "schedule",
        help="schedules as thermodynamic processes: predict, recommend, track scheduled runs",
        description=(
            "Learning-rate / weight-decay schedules as thermodynamic processes (see "
            "docs/schedules.md). 'predict': fit the model's noise curve sigma^2(elr), Q(elr) "
            "from a sweep table and predict the stationary radius and temperature for any "
            "(lr, wd) or (elr, wd), or recommend pairs reaching a target temperature / radius. "
            "'validate': fit on one protocol's runs, predict the other's. 'track': train a "
            "BN-MLP on digits under a schedule and compare its (T, V) trajectory with the "
            "equilibrium curve and the predicted lagged path."
        ),
    )
    ssub = p.add_subparsers(dest="schedule_command", required=True, metavar="SUBCOMMAND")
    lists = "LIST: comma-separated values or log:START:STOP:NUM"

    def curve_options(q, required: bool) -> None:
        q.add_argument("--table", type=Path, required=required,
                       help="results table of a sweep (results.csv / results.parquet, or a "
                            "directory holding one) with elr_effective, trace_sigma, "
                            "trace_total, dim, stationary columns")
        q.add_argument("--fit-protocols", default="elr,lr",
                       help="comma-separated protocols whose stationary runs the noise curve "
                            "is fitted to")
        q.add_argument("--degree", type=int, default=2,
                       help="degree of the log-log polynomial fits of sigma^2 and Q")
        q.add_argument("--q-column", default="trace_total",
                       help="column of Q = tr Sigma + |grad L|^2 (trace_total_steps: from the "
                            "training steps' own gradients, where the table has it)")
        q.add_argument("--no-exact", action="store_true",
                       help="drop the eta^2 lambda^2 term of the one-step balance (the "
                            "paper's discr. curves) instead of keeping it")

    q = ssub.add_parser(
        "predict", help="predict stationary states or recommend (lr|elr, wd) for targets",
        description="With the rate (--lr for protocol lr, --elr for elr) and --wd: the "
                    "predicted stationary state of every combination (radius and temperature "
                    "with standard errors from the fit, relaxation time, whether the "
                    "stationary elr is outside the fitted range). With a target "
                    "(--target-temperature, --target-radius): exactly two of target "
                    "temperature, target radius, rate and wd; prints the recommended pairs "
                    "(NaN: unreachable within the noise curve's domain).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    curve_options(q, True)
    q.add_argument("--protocol", choices=["lr", "elr"], required=True,
                   help="lr: fixed learning rate + weight decay; elr: fixed effective LR")
    q.add_argument("--lr", type=parse_list, help=f"learning rates (protocol lr). {lists}")
    q.add_argument("--elr", type=parse_list,
                   help=f"effective learning rates (protocol elr). {lists}")
    q.add_argument("--wd", type=parse_list, help=f"weight decays. {lists}")
    q.add_argument("--target-temperature", type=parse_list,
                   help=f"temperatures to reach (recommendation). {lists}")
    q.add_argument("--target-radius", type=parse_list,
                   help=f"radii |w| of the SI weights to reach (recommendation). {lists}")
    q.add_argument("--out", type=Path, default=None, help="also write the table to this CSV")
    q.set_defaults(func=cmd_schedule_predict)

    pr = ssub.add_parser(
        "process", help="the (lr|elr, wd) path of an isothermal, isobaric or adiabatic process",
        description="Print the hyperparameter path of a thermodynamic process and its "
                    "equilibrium states (T, p, V, S, relaxation time): isothermal and "
                    "adiabatic follow --wd from the starting rate (--lr or --elr); isobaric "
                    "holds --wd (one value) and follows --temperature. Without --table the "
                    "noise is constant (--sigma2, --dim).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    pr.add_argument("--kind", choices=["isothermal", "isobaric", "adiabatic"], required=True,
                    help="what the process holds fixed: T, p (= wd) or S")
    pr.add_argument("--protocol", choices=["lr", "elr"], required=True,
                    help="lr: fixed learning rate + weight decay; elr: fixed effective LR")
    pr.add_argument("--lr", type=float, default=None, help="starting learning rate (lr)")
    pr.add_argument("--elr", type=float, default=None,
                    help="starting effective learning rate (elr)")
    pr.add_argument("--wd", type=parse_list, required=True,
                    help=f"weight-decay path (isobaric: one value). {lists}")
    pr.add_argument("--temperature", type=parse_list, default=None,
                    help=f"temperature path (isobaric). {lists}")
    pr.add_argument("--sigma2", type=float, default=None,
                    help="constant per-direction noise variance (without --table)")
    pr.add_argument("--dim", type=int, default=None, help="d (without --table)")
    curve_options(pr, False)
    pr.set_defaults(func=cmd_schedule_process)

    v = ssub.add_parser(
        "validate", help="fit the noise curve on one protocol's runs, predict the other's",
        description="Fit on the stationary elr runs and predict the lr runs' radius and "
                    "temperature from their (lr, wd), and vice versa; prints the relative "
                    "errors (median and max, all runs and those inside the fitted range).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    v.add_argument("--table", type=Path, required=True, help="results table of a sweep")
    v.add_argument("--degree", type=int, default=2, help="degree of the log-log fits")
    v.add_argument("--q-column", default="trace_total", help="column of Q")
    v.add_argument("--no-exact", action="store_true",
                   help="drop the eta^2 lambda^2 term of the one-step balance")
    v.add_argument("--out", type=Path, default=None,
                   help="also write OUT/prediction.json and OUT/prediction.png (a report "
                        "section)")
    v.set_defaults(func=cmd_schedule_validate)

    t = ssub.add_parser(
        "track", help="train a BN-MLP on digits under a schedule and track its (T, V) path",
        description="Train a BN-MLP (frozen head) on digits with label noise under a "
                    "learning-rate schedule, after a burn-in at the initial hyperparameters; "
                    "record the radius and loss every --log-every steps and a gradient-noise "
                    "probe every --noise-every steps; compare with the equilibrium curve and "
                    "the lagged path predicted by the radial map. Writes OUT/records.csv, "
                    "OUT/probes.csv, OUT/schedule.json and PNG figures.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--protocol", choices=["lr", "elr"], default="lr",
                   help="lr: the schedule drives the learning rate; elr: the effective LR")
    t.add_argument("--schedule", choices=["constant", "step", "cosine"], default="cosine",
                   help="shape of the rate schedule")
    t.add_argument("--lr", type=float, default=None,
                   help="initial learning rate (protocol lr; default 3.0)")
    t.add_argument("--elr", type=float, default=None,
                   help="initial effective learning rate (protocol elr; default 0.04)")
    t.add_argument("--wd", type=float, default=0.01, help="weight decay (initial value)")
    t.add_argument("--wd-schedule", choices=["constant", "step", "cosine"],
                   default="constant", help="shape of the weight-decay schedule")
    t.add_argument("--steps", type=int, default=4000, help="steps of the schedule")
    t.add_argument("--burn-in", type=int, default=3000,
                   help="steps at the initial hyperparameters before the schedule starts")
    t.add_argument("--milestones", default="",
                   help="step schedule: comma-separated steps where the rate is multiplied "
                        "by --gamma")
    t.add_argument("--gamma", type=float, default=0.1, help="step schedule: decay factor")
    t.add_argument("--final", type=float, default=0.1,
                   help="cosine schedule: final rate as a fraction of the initial one")
    t.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    t.add_argument("--hidden", type=_parse_hidden, default=(32, 32),
                   help="hidden widths of the BN-MLP")
    t.add_argument("--label-noise", type=float, default=0.3,
                   help="fraction of random training labels (keeps T > 0)")
    t.add_argument("--batch-size", type=int, default=128, help="minibatch size")
    t.add_argument("--seed", type=int, default=1, help="minibatch and probe seed")
    t.add_argument("--log-every", type=int, default=10, help="steps per record")
    t.add_argument("--noise-every", type=int, default=100,
                   help="steps between noise probes (a multiple of --log-every)")
    t.add_argument("--noise-batches", type=int, default=64,
                   help="minibatch gradients per noise probe")
    curve_options(t, False)
    t.add_argument("--angular-rate", type=float, default=None,
                   help="h: also predict the path with Q and sigma^2 relaxing at rate h*elr "
                        "per step (calibrate h with a step schedule: its summary prints it)")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    t.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    t.add_argument("--out", type=Path, required=True, help="output directory")
    t.set_defaults(func=cmd_schedule_track)


def _noise_curve(args):
    from thermosgd.analysis import load_table
    from thermosgd.schedules import fit_noise_curve

    protocols = tuple(s.strip() for s in args.fit_protocols.split(",") if s.strip())
    return fit_noise_curve(load_table(args.table), protocols, degree=args.degree,
                           q_column=args.q_column)


def cmd_schedule_predict(args) -> int:
    import numpy as np

    from thermosgd import schedules
    from thermosgd.io import write_csv

    curve = _noise_curve(args)
    rate_name = args.protocol
    other = "elr" if args.protocol == "lr" else "lr"
    if getattr(args, other) is not None:
        raise UsageError(f"protocol {args.protocol} takes --{rate_name}, not --{other}")
    given = {"target_temperature": args.target_temperature,
             "target_radius": args.target_radius, rate_name: getattr(args, rate_name),
             "wd": args.wd}
    given = {k: v for k, v in given.items() if v is not None}
    grids = np.meshgrid(*given.values(), indexing="ij")
    kw = {k: g.ravel() for k, g in zip(given, grids, strict=True)}
    print(f"noise curve: {curve.source}, d = {curve.dim}, elr fitted over "
          f"[{curve.u_min:.3g}, {curve.u_max:.3g}] (RMS residual sigma^2 "
          f"{100 * curve.sigma2_rms:.1f}%, Q {100 * curve.total_rms:.1f}%)")
    if "target_temperature" in kw or "target_radius" in kw:
        res = schedules.recommend(curve, args.protocol, exact=not args.no_exact, **kw)
    elif set(kw) == {rate_name, "wd"}:
        res = schedules.predict(curve, args.protocol, exact=not args.no_exact, **kw)
    else:
        raise UsageError(f"give --{rate_name} and --wd, or a target (--target-temperature, "
                         f"--target-radius) with one more of them")
    cols = schedules.prediction_columns(res, args.protocol)
    print(schedules.format_columns(cols))
    if "target_temperature" in kw:
        tr = schedules.temperature_range(curve)
        print(f"reachable temperatures: {tr['t_min']:.3g}..{tr['t_max']:.3g} (maximum at elr "
              f"{tr['elr_at_t_max']:.3g}; lowest-elr solution shown)")
    if args.out:
        write_csv(args.out, cols)
        print(f"wrote {args.out}")
    return 0


def cmd_schedule_process(args) -> int:
    import numpy as np

    from thermosgd import schedules

    if args.table:
        curve = _noise_curve(args)
    elif args.sigma2 is None or args.dim is None:
        raise UsageError("give --table, or a constant noise with --sigma2 and --dim")
    else:
        curve = schedules.NoiseCurve.constant(args.sigma2, args.dim)
    other = "elr" if args.protocol == "lr" else "lr"
    if getattr(args, other) is not None:
        raise UsageError(f"protocol {args.protocol} takes --{args.protocol}, not --{other}")
    rate0 = getattr(args, args.protocol)
    wd = np.asarray(args.wd)
    exact = not args.no_exact
    if args.kind == "isobaric":
        if args.temperature is None or wd.size != 1:
            raise UsageError("isobaric needs --temperature and one --wd value")
        proc = schedules.isobaric(args.protocol, args.temperature, float(wd[0]), curve,
                                  exact=exact)
    else:
        if rate0 is None:
            raise UsageError(f"{args.kind} needs the starting --{args.protocol}")
        if args.kind == "isothermal":
            proc = schedules.isothermal(args.protocol, wd, rate0=rate0)
        else:
            proc = schedules.adiabatic(args.protocol, wd, rate0=rate0, noise=curve,
                                       exact=exact)
    eq = schedules.equilibrium(proc, curve, exact=exact)
    cols = {args.protocol: proc.rate, "wd": proc.wd, "temperature": eq["temperature"],
            "volume": eq["volume"], "entropy": eq["entropy"], "elr_stationary": eq["elr"],
            "tau": eq["tau"]}
    print(schedules.format_columns(cols, digits=6))
    return 0


def cmd_schedule_validate(args) -> int:
    from thermosgd.analysis import load_table
    from thermosgd.schedules import fit_noise_curve, validate_predictions

    table = load_table(args.table)
    done = []
    for fit_on, test in (("elr", "lr"), ("lr", "elr")):
        curve = fit_noise_curve(table, (fit_on,), degree=args.degree, q_column=args.q_column)
        v = validate_predictions(curve, table, test, exact=not args.no_exact)
        done.append({**v, "label": f"fit {fit_on} -> predict {test}",
                     "noise": curve.to_dict()})
        print(f"== fit on {curve.points} stationary {fit_on} runs (elr {curve.u_min:.3g}.."
              f"{curve.u_max:.3g}) -> predict {v['n']} {test} runs ({v['n_extrapolated']} "
              f"outside the fitted range, {v['n_unreachable']} without a prediction)")
        for key in ("radius", "temperature"):
            a, b = v[key], v[f"{key}_inside"]
            print(f"   {key}: |rel. error| median {100 * a['median']:.2f}%, max "
                  f"{100 * a['max']:.2f}%; inside the range median {100 * b['median']:.2f}%, "
                  f"max {100 * b['max']:.2f}%")
    if args.out:
        from thermosgd.schedules import write_validation

        write_validation(done, args.out)
        print(f"wrote {args.out}/prediction.json, prediction.png")
    return 0


def cmd_schedule_track(args) -> int:
    import torch

    from thermosgd.schedules import TrackConfig, format_track, track, write_track

    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    try:
        milestones = tuple(int(m) for m in args.milestones.split(",") if m.strip())
    except ValueError:
        raise UsageError(f"cannot parse --milestones {args.milestones!r}") from None
    rates = {"lr": args.lr, "elr": args.elr}
    other = "elr" if args.protocol == "lr" else "lr"
    if rates[other] is not None:
        raise UsageError(f"protocol {args.protocol} takes --{args.protocol}, not --{other}")
    rate = rates[args.protocol] or {"lr": 3.0, "elr": 0.04}[args.protocol]
    config = TrackConfig(
        protocol=args.protocol, schedule=args.schedule, lr=rate if args.protocol == "lr"
        else None, elr=rate if args.protocol == "elr" else None, wd=args.wd,
        wd_schedule=args.wd_schedule, steps=args.steps, burn_in=args.burn_in,
        milestones=milestones, gamma=args.gamma, final=args.final, warmup=args.warmup,
        hidden=args.hidden, label_noise=args.label_noise, batch_size=args.batch_size,
        seed=args.seed, log_every=args.log_every, noise_every=args.noise_every,
        noise_batches=args.noise_batches)
    curve = _noise_curve(args) if args.table else None
    result = track(config, curve, exact=not args.no_exact, angular_rate=args.angular_rate)
    write_track(result, args.out, figures=not args.no_figures)
    print(f"noise curve: {result['noise']['source']}")
    print(format_track(result["summary"]))
    print(f"wrote {args.out}/records.csv, probes.csv, schedule.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="thermosgd",
        description="Thermodynamics of SGD on scale-invariant networks: measure and predict "
                    "temperature, pressure, volume, energy and entropy.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_isotropic(sub)
    _add_train(sub)
    _add_sweep(sub)
    _add_reproduce(sub)
    _add_analyze(sub)
    _add_report(sub)
    _add_schedule(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return args.func(args)
    except ValueError as e:  # UsageError and invalid configurations
        print(f"thermosgd: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
