"""``thermosgd schedule predict | process | validate | track``: schedules as thermodynamic
processes (`thermosgd.workflows.schedule_studies`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from thermosgd._validate import positive_array
from thermosgd.cli._common import LISTS, UsageError, parse_hidden, parse_list
from thermosgd.spec import SCHEDULES, WD_PROTOCOLS

if TYPE_CHECKING:
    from thermosgd.workflows.schedule_studies import NoiseSource

__all__ = ["add_parser", "run_predict", "run_process", "run_track", "run_validate"]

# Each run_* imports its workflow (thermosgd.workflows.schedule_studies, thermosgd.schedules:
# scipy, torch) inside the function, not at module level: the parser must stay light; heavy
# modules load only when a command runs.

_RATE_HELP = "lr: fixed learning rate + weight decay; elr: fixed effective LR"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``schedule`` command and its four subcommands to ``subparsers``."""
    p = subparsers.add_parser(
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
    _add_predict(ssub)
    _add_process(ssub)
    _add_validate(ssub)
    _add_track(ssub)
    return p


def _curve_options(q: argparse.ArgumentParser, required: bool) -> None:
    """--table and the options of the noise-curve fit."""
    q.add_argument("--table", type=Path, required=required,
                   help="results table of a sweep (results.csv / results.parquet, or a "
                        "directory holding one) with elr_measured, trace_sigma, "
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


def _add_predict(ssub: argparse._SubParsersAction) -> None:
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
    _curve_options(q, True)
    q.add_argument("--protocol", choices=list(WD_PROTOCOLS), required=True, help=_RATE_HELP)
    q.add_argument("--lr", type=parse_list, help=f"learning rates (protocol lr). {LISTS}")
    q.add_argument("--elr", type=parse_list,
                   help=f"effective learning rates (protocol elr). {LISTS}")
    q.add_argument("--wd", type=parse_list, help=f"weight decays. {LISTS}")
    q.add_argument("--target-temperature", type=parse_list,
                   help=f"temperatures to reach (recommendation). {LISTS}")
    q.add_argument("--target-radius", type=parse_list,
                   help=f"radii |w| of the SI weights to reach (recommendation). {LISTS}")
    q.add_argument("--out", type=Path, default=None, help="also write the table to this CSV")
    q.set_defaults(func=run_predict)


def _add_process(ssub: argparse._SubParsersAction) -> None:
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
    pr.add_argument("--protocol", choices=list(WD_PROTOCOLS), required=True, help=_RATE_HELP)
    pr.add_argument("--lr", type=float, default=None, help="starting learning rate (lr)")
    pr.add_argument("--elr", type=float, default=None,
                    help="starting effective learning rate (elr)")
    pr.add_argument("--wd", type=parse_list, required=True,
                    help=f"weight-decay path (isobaric: one value). {LISTS}")
    pr.add_argument("--temperature", type=parse_list, default=None,
                    help=f"temperature path (isobaric). {LISTS}")
    pr.add_argument("--sigma2", type=float, default=None,
                    help="constant per-direction noise variance (without --table)")
    pr.add_argument("--dim", type=int, default=None, help="d (without --table)")
    _curve_options(pr, False)
    pr.set_defaults(func=run_process)


def _add_validate(ssub: argparse._SubParsersAction) -> None:
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
    v.set_defaults(func=run_validate)


def _add_track(ssub: argparse._SubParsersAction) -> None:
    t = ssub.add_parser(
        "track", help="train a BN-MLP on digits under a schedule and track its (T, V) path",
        description="Train a BN-MLP (frozen head) on digits with label noise under a "
                    "learning-rate schedule, after a burn-in at the initial hyperparameters; "
                    "record the radius and loss every --log-every steps and a gradient-noise "
                    "probe every --noise-every steps; compare with the equilibrium curve and "
                    "the lagged path predicted by the radial map. Writes OUT/records.csv, "
                    "OUT/probes.csv, OUT/schedule.json and PNG figures.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--protocol", choices=list(WD_PROTOCOLS), default="lr",
                   help="lr: the schedule drives the learning rate; elr: the effective LR")
    t.add_argument("--schedule", choices=list(SCHEDULES), default="cosine",
                   help="shape of the rate schedule")
    t.add_argument("--lr", type=float, default=None,
                   help="initial learning rate (protocol lr; default 3.0)")
    t.add_argument("--elr", type=float, default=None,
                   help="initial effective learning rate (protocol elr; default 0.04)")
    t.add_argument("--wd", type=float, default=0.01, help="weight decay (initial value)")
    t.add_argument("--wd-schedule", choices=list(SCHEDULES),
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
    t.add_argument("--hidden", type=parse_hidden, default=(32, 32),
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
    _curve_options(t, False)
    t.add_argument("--angular-rate", type=float, default=None,
                   help="h: also predict the path with Q and sigma^2 relaxing at rate h*elr "
                        "per step (calibrate h with a step schedule: its summary prints it)")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    t.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    t.add_argument("--out", type=Path, required=True, help="output directory")
    t.set_defaults(func=run_track)


def _noise(args: argparse.Namespace) -> NoiseSource:
    """The noise curve the options name: fitted to --table, else (process) the constant
    --sigma2 in dimension --dim."""
    # the workflow is imported here: the parser must stay light (see the note above)
    from thermosgd.workflows.schedule_studies import NoiseSource

    protocols = tuple(s.strip() for s in args.fit_protocols.split(",") if s.strip())
    return NoiseSource(table=args.table, fit_protocols=protocols, degree=args.degree,
                       q_column=args.q_column, sigma2=getattr(args, "sigma2", None),
                       dim=getattr(args, "dim", None))


def _check_rate(args: argparse.Namespace) -> None:
    """Only the protocol's own rate option may be given."""
    other = "elr" if args.protocol == "lr" else "lr"
    if getattr(args, other) is not None:
        raise UsageError(f"protocol {args.protocol} takes --{args.protocol}, not --{other}")


def run_predict(args: argparse.Namespace) -> int:
    """Print (and with --out write) the predicted states or recommended pairs."""
    # the workflow is imported here: the parser must stay light (see the note above)
    from thermosgd.schedules import format_columns
    from thermosgd.workflows.schedule_studies import predict_states

    _check_rate(args)
    rate = args.protocol
    given = {"target_temperature": args.target_temperature,
             "target_radius": args.target_radius, rate: getattr(args, rate), "wd": args.wd}
    given = {k: v for k, v in given.items() if v is not None}
    if ("target_temperature" not in given and "target_radius" not in given
            and set(given) != {rate, "wd"}):
        raise UsageError(f"give --{rate} and --wd, or a target (--target-temperature, "
                         f"--target-radius) with one more of them")
    for name, values in given.items():  # before the noise curve is fitted to the table
        positive_array(name, values)
    res = predict_states(_noise(args), args.protocol, exact=not args.no_exact, out=args.out,
                         **given)
    curve = res["curve"]
    print(f"noise curve: {curve.source}, d = {curve.dim}, elr fitted over "
          f"[{curve.u_min:.3g}, {curve.u_max:.3g}] (RMS residual sigma^2 "
          f"{100 * curve.sigma2_rms:.1f}%, Q {100 * curve.total_rms:.1f}%)")
    print(format_columns(res["columns"]))
    tr = res["temperature_range"]
    if tr is not None:
        print(f"reachable temperatures: {tr['t_min']:.3g}..{tr['t_max']:.3g} (maximum at elr "
              f"{tr['elr_at_t_max']:.3g}; lowest-elr solution shown)")
    if args.out:
        print(f"wrote {args.out}")
    return 0


def run_process(args: argparse.Namespace) -> int:
    """Print a process's path and its equilibrium states."""
    # the workflow is imported here: the parser must stay light (see the note above)
    from thermosgd.schedules import format_columns
    from thermosgd.workflows.schedule_studies import process_states

    if not args.table and (args.sigma2 is None or args.dim is None):
        raise UsageError("give --table, or a constant noise with --sigma2 and --dim")
    _check_rate(args)
    rate0 = getattr(args, args.protocol)
    if args.kind == "isobaric":
        if args.temperature is None or len(args.wd) != 1:
            raise UsageError("isobaric needs --temperature and one --wd value")
    elif rate0 is None:
        raise UsageError(f"{args.kind} needs the starting --{args.protocol}")
    cols = process_states(args.kind, args.protocol, _noise(args), wd=args.wd, rate0=rate0,
                          temperature=args.temperature, exact=not args.no_exact)
    print(format_columns(cols, digits=6))
    return 0


def run_validate(args: argparse.Namespace) -> int:
    """Print the cross-protocol prediction errors (and with --out write them)."""
    # the workflow is imported here: the parser must stay light (see the note above)
    from thermosgd.workflows.schedule_studies import validate_table

    done = validate_table(args.table, degree=args.degree, q_column=args.q_column,
                          exact=not args.no_exact, out=args.out)
    for v in done:
        c = v["noise"]
        print(f"== fit on {c['points']} stationary {v['fit_protocol']} runs (elr "
              f"{c['u_min']:.3g}..{c['u_max']:.3g}) -> predict {v['n']} {v['protocol']} runs "
              f"({v['n_extrapolated']} "
              f"outside the fitted range, {v['n_unreachable']} without a prediction)")
        for key in ("radius", "temperature"):
            a, b = v[key], v[f"{key}_inside"]
            print(f"   {key}: |rel. error| median {100 * a['median']:.2f}%, max "
                  f"{100 * a['max']:.2f}%; inside the range median {100 * b['median']:.2f}%, "
                  f"max {100 * b['max']:.2f}%")
    if args.out:
        print(f"wrote {args.out}/prediction.json, prediction.png")
    return 0


def run_track(args: argparse.Namespace) -> int:
    """Train and track the scheduled run, print its summary."""
    # the workflow is imported here: the parser must stay light (see the note above)
    from thermosgd.schedules import TrackConfig, format_track
    from thermosgd.workflows.schedule_studies import track_schedule

    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    try:
        milestones = tuple(int(m) for m in args.milestones.split(",") if m.strip())
    except ValueError:
        raise UsageError(f"cannot parse --milestones {args.milestones!r}") from None
    _check_rate(args)
    rate = getattr(args, args.protocol) or {"lr": 3.0, "elr": 0.04}[args.protocol]
    config = TrackConfig(
        protocol=args.protocol, schedule=args.schedule, lr=rate if args.protocol == "lr"
        else None, elr=rate if args.protocol == "elr" else None, wd=args.wd,
        wd_schedule=args.wd_schedule, steps=args.steps, burn_in=args.burn_in,
        milestones=milestones, gamma=args.gamma, final=args.final, warmup=args.warmup,
        hidden=args.hidden, label_noise=args.label_noise, batch_size=args.batch_size,
        seed=args.seed, log_every=args.log_every, noise_every=args.noise_every,
        noise_batches=args.noise_batches)
    result = track_schedule(config, args.out, noise=_noise(args) if args.table else None,
                            exact=not args.no_exact, angular_rate=args.angular_rate,
                            figures=not args.no_figures, threads=args.threads)
    print(f"noise curve: {result['noise']['source']}")
    print(format_track(result["summary"]))
    print(f"wrote {args.out}/records.csv, probes.csv, schedule.json")
    return 0
