"""``thermosgd isotropic``: the isotropic-noise model on a hyperparameter grid.

SGD: one protocol's study (`thermosgd.workflows.isotropic.run_study`) or, with ``--preset``,
the three of an isotropic preset (`thermosgd.workflows.reproduce.run_isotropic_preset`);
heavy-ball momentum and AdamW: `thermosgd.workflows.isotropic.run_momentum_study`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from thermosgd.cli._common import UsageError, add_grid_options
from thermosgd.spec import OPTIMIZERS
from thermosgd.workflows.preset_table import ISOTROPIC_PRESETS

__all__ = ["add_parser", "format_summary", "run"]

_GRID = ("lr", "elr", "wd", "radius")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``isotropic`` command to ``subparsers``."""
    p = subparsers.add_parser(
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
    add_grid_options(p, protocol_required=False)
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default="sgd",
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
    p.set_defaults(func=run)
    return p


def _init_radius(text: str) -> float | str:
    """A number, or 'predicted'."""
    if text == "predicted":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a number nor 'predicted'") from None


def run(args: argparse.Namespace) -> int:
    """Run the study (or the preset's three) and print its summary."""
    # the workflow is imported here, not at module level: the parser must stay light (no
    # torch / numba / scipy for --help); heavy modules load only when a command runs
    from thermosgd.sim.isotropic import IsotropicConfig
    from thermosgd.workflows.isotropic import run_study
    from thermosgd.workflows.reproduce import run_isotropic_preset

    if args.optimizer != "sgd":
        return _run_optimizer(args)
    if args.preset:
        if args.protocol or any(getattr(args, k) for k in _GRID):
            raise UsageError("--preset runs its own grids: drop --protocol and the grid lists")
        run_isotropic_preset(args.preset, args.out, figures=not args.no_figures,
                             progress=args.progress, entropy_method=args.entropy_method,
                             log=_print_summary, seed=args.seed, replicas=args.replicas,
                             burn_in=args.burn_in, init_radius=args.init_radius)
        return 0
    if not args.protocol:
        raise UsageError("give --protocol (lr, elr or sphere) or --preset")
    config = IsotropicConfig(
        protocol=args.protocol, **{k: getattr(args, k) or () for k in _GRID}, dim=args.dim,
        sigma=args.sigma, steps=args.steps, seed=args.seed, replicas=args.replicas,
        burn_in=args.burn_in, queue_size=args.queue_size, init_radius=args.init_radius)
    summary = run_study(config, args.out, figures=not args.no_figures, progress=args.progress,
                        entropy_method=args.entropy_method)
    _print_summary(summary, args.out)
    return 0


def _print_summary(summary: dict, out: Path) -> None:
    print(format_summary(summary))
    print(f"wrote {out}/results.csv, {out}/summary.json")


def _run_optimizer(args: argparse.Namespace) -> int:
    """Heavy-ball momentum or AdamW on an (lr x wd) grid of the fixed-LR protocol."""
    # the workflow (as in `run`) is imported here: the parser must stay light
    from thermosgd.workflows.analyze import format_analysis
    from thermosgd.workflows.isotropic import run_momentum_study

    if args.preset or args.protocol != "lr" or args.elr or args.radius:
        raise UsageError(f"--optimizer {args.optimizer} runs the fixed-LR protocol: give "
                         "--protocol lr with --lr and --wd (no --preset)")
    if not args.lr or not args.wd:
        raise UsageError("give --lr and --wd lists")
    if args.replicas < 1:
        raise UsageError(f"--replicas must be >= 1, got {args.replicas}")
    result = run_momentum_study(
        args.optimizer, args.out, dim=args.dim, lr=args.lr, wd=args.wd, beta1=args.momentum,
        beta2=args.beta2, sigma=args.sigma, steps=args.steps, replicas=args.replicas,
        seed=args.seed, queue_size=args.queue_size, burn_in=args.burn_in,
        mu="diagonal" if args.mu == "diagonal" else None, figures=not args.no_figures,
        entropy_method=args.entropy_method)
    print(format_analysis(result))
    print(f"wrote {args.out}/results.csv, {args.out}/analysis.json")
    return 0


def format_summary(s: dict) -> str:
    """A few human-readable lines from an isotropic study summary
    (`thermosgd.analysis.isotropic.summarize`)."""
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
