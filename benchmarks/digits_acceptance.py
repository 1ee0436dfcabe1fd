"""Acceptance run of the training pipeline on digits (issue 4), writes docs/results.md.

Setting (reference-implementation 8.2): scikit-learn digits with 30% random labels (fixed seed),
BN-MLP 64-32-32-10 with a frozen head (d = 3072), batch 128 i.i.d. with replacement, every run
from the same init and the same minibatch sequence, each grid trained as one batched model:

* ELR (N1): elr in {2e-3, 5e-3, 1e-2, 2e-2} x wd in {3e-3, 1e-2, 3e-2, 1e-1}, 5e4 steps;
* sphere (N3): elr in {2e-3, 5e-3, 1e-2, 2e-2} x r in {0.5, 1, 2}, 4e4 steps;
* OP control (N4): ELR without label noise, elr in {2e-3, 5e-3, 2e-2}, wd 1e-2, 5e4 steps.

Each run: stationary window = the last half, 1000 snapshots over it, a 64-gradient noise probe
about every window/16 steps (<= 10% extra compute). Checks (the issue's acceptance):

1. ELR: for every run the monitor calls stationary, |r / r_discrete - 1| <= 5%
   (r_discrete^2 = elr Q / (2 wd), Q = tr Sigma + |grad L|^2 measured on the unit sphere);
2. sphere: for every stationary run, |p / p_discrete - 1| <= 5% (p = (mean r' - r)/(elr r^3),
   p_discrete = elr Q / (2 r^2));
3. OP control: every 0%-noise run is flagged as not stationary.

    .venv/bin/python benchmarks/digits_acceptance.py [--out DIR] [--doc docs/results.md]
        [--steps 50000] [--sphere-steps 40000] [--quick]

Exit status 1 if a check fails. Runs resume from their checkpoints in --out (delete it to rerun
from scratch).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from thermosgd.io import atomic_write_text
from thermosgd.train.config import TrainConfig, run_name
from thermosgd.train.run import train_grid

ELRS = (2e-3, 5e-3, 1e-2, 2e-2)
WDS = (3e-3, 1e-2, 3e-2, 1e-1)
RADII = (0.5, 1.0, 2.0)
OP_ELRS = (2e-3, 5e-3, 2e-2)
TOL = 0.05


def _rel(a, b) -> float:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.nan
    return a / b - 1


def _short(reasons: list[str]) -> str:
    return "; ".join(r.split(":")[0] for r in reasons) or "-"


def _grid(name, configs, root, device_note, progress):
    """Train (or resume / read back) one grid; returns the documents and the training time
    recorded in the runs (the sum of their shares of the batched wall time)."""
    outs = [root / name / run_name(c) for c in configs]
    docs = train_grid(configs, outs, progress=progress, overwrite=True)
    dt = sum(d.get("seconds") or 0.0 for d in docs)
    steps = sum(c.steps for c in configs)
    print(f"[{name}] {len(configs)} configs x {configs[0].steps} steps: {dt:.0f} s of training "
          f"({steps / max(dt, 1e-9):.0f} config-steps/s{device_note})", flush=True)
    return docs, dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/thermosgd-digits-acceptance"))
    ap.add_argument("--doc", type=Path, default=Path(__file__).parent.parent / "docs" /
                    "results.md")
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--sphere-steps", type=int, default=40_000)
    ap.add_argument("--quick", action="store_true",
                    help="a 2-minute smoke version (fewer configs and steps; no doc written)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    args = ap.parse_args(argv)
    elrs, wds, radii, op_elrs = ELRS, WDS, RADII, OP_ELRS
    steps, sphere_steps = args.steps, args.sphere_steps
    if args.quick:
        elrs, wds, radii, op_elrs = (5e-3, 2e-2), (1e-2, 1e-1), (1.0,), (5e-3,)
        steps, sphere_steps = 20_000, 10_000
    common = dict(hidden=(32, 32), batch_size=128, seed=1, device=args.device, noise_batches=64)
    t_start = time.perf_counter()

    elr_cfgs = [TrainConfig(protocol="elr", elr=e, wd=w, steps=steps, label_noise=0.3, **common)
                for e in elrs for w in wds]
    sph_cfgs = [TrainConfig(protocol="sphere", elr=e, radius=r, steps=sphere_steps,
                            label_noise=0.3, **common) for e in elrs for r in radii]
    op_cfgs = [TrainConfig(protocol="elr", elr=e, wd=1e-2, steps=steps, label_noise=0.0,
                           **common) for e in op_elrs]
    note = f", {args.device}"
    elr_docs, t_elr = _grid("elr", elr_cfgs, args.out, note, args.progress)
    sph_docs, t_sph = _grid("sphere", sph_cfgs, args.out, note, args.progress)
    op_docs, t_op = _grid("op-control", op_cfgs, args.out, note, args.progress)
    total = time.perf_counter() - t_start
    s0 = elr_cfgs[0].schedule

    lines: list[str] = []

    def emit(text: str = "") -> None:
        print(text)
        lines.append(text)

    emit("### Fixed ELR, 30% random labels (radius vs prediction)")
    emit()
    emit("| elr | wd | r measured | r discrete | rel. err | rel. err (Q of steps) | r SDE | "
         "rel. err SDE | T | sigma2 | U | stationary |")
    emit("|---|---|---|---|---|---|---|---|---|---|---|---|")
    elr_err = []
    for c, d in zip(elr_cfgs, elr_docs, strict=True):
        e = _rel(d.get("radius"), d.get("radius_discrete"))
        eq = _rel(d.get("radius"), d.get("radius_discrete_steps"))
        es = _rel(d.get("radius"), d.get("radius_sde"))
        if d.get("stationary"):
            elr_err.append(abs(e))
        emit(f"| {c.elr:g} | {c.wd:g} | {d.get('radius') or math.nan:.4g} | "
             f"{d.get('radius_discrete') or math.nan:.4g} | {100 * e:+.2f}% | {100 * eq:+.2f}% | "
             f"{d.get('radius_sde') or math.nan:.4g} | {100 * es:+.1f}% | "
             f"{d.get('temperature') or math.nan:.3g} | {d.get('sigma2') or math.nan:.4f} | "
             f"{d.get('energy') or math.nan:.3f} | "
             f"{'yes' if d.get('stationary') else 'no: ' + _short(d.get('reasons', []))} |")
    emit()
    emit("### Sphere, 30% random labels (pressure vs prediction)")
    emit()
    emit("| elr | r | p measured | p discrete | rel. err | rel. err (Q of steps) | p SDE | "
         "rel. err SDE | T | sigma2 | U | stationary |")
    emit("|---|---|---|---|---|---|---|---|---|---|---|---|")
    sph_err = []
    for c, d in zip(sph_cfgs, sph_docs, strict=True):
        e = _rel(d.get("pressure"), d.get("pressure_discrete"))
        eq = _rel(d.get("pressure"), d.get("pressure_discrete_steps"))
        es = _rel(d.get("pressure"), d.get("pressure_sde"))
        if d.get("stationary"):
            sph_err.append(abs(e))
        emit(f"| {c.elr:g} | {c.radius:g} | {d.get('pressure') or math.nan:.4g} | "
             f"{d.get('pressure_discrete') or math.nan:.4g} | {100 * e:+.2f}% | {100 * eq:+.2f}% | "
             f"{d.get('pressure_sde') or math.nan:.4g} | {100 * es:+.1f}% | "
             f"{d.get('temperature') or math.nan:.3g} | {d.get('sigma2') or math.nan:.4f} | "
             f"{d.get('energy') or math.nan:.3f} | "
             f"{'yes' if d.get('stationary') else 'no: ' + _short(d.get('reasons', []))} |")
    emit()
    emit("### Over-parameterized control: fixed ELR, wd 1e-2, no label noise")
    emit()
    emit("| elr | U (train loss) | tr Sigma | r | stationary | reasons |")
    emit("|---|---|---|---|---|---|")
    for c, d in zip(op_cfgs, op_docs, strict=True):
        emit(f"| {c.elr:g} | {d.get('energy') or math.nan:.3g} | "
             f"{d.get('trace_sigma') or math.nan:.3g} | {d.get('radius') or math.nan:.4g} | "
             f"{'yes' if d.get('stationary') else 'no'} | {'; '.join(d.get('reasons', []))} |")
    emit()

    def spread(docs, key, pred):
        v = [100 * _rel(d.get(key), d.get(pred)) for d in docs]
        v = [x for x in v if math.isfinite(x)]
        return (f"{min(v):+.2f}% to {max(v):+.2f}% (mean {sum(v) / len(v):+.2f}%)"
                if v else "n/a")

    emit("### Notes")
    emit()
    emit(f"- Probe-based discretization-corrected prediction, all runs: radius "
         f"{spread(elr_docs, 'radius', 'radius_discrete')}, pressure "
         f"{spread(sph_docs, 'pressure', 'pressure_discrete')}. The same prediction with Q "
         f"from the training steps' own gradients (every step, no extra cost): radius "
         f"{spread(elr_docs, 'radius', 'radius_discrete_steps')}, pressure "
         f"{spread(sph_docs, 'pressure', 'pressure_discrete_steps')}.")
    emit(f"- SDE prediction (tr Sigma only, no |grad L|^2): radius "
         f"{spread(elr_docs, 'radius', 'radius_sde')}, pressure "
         f"{spread(sph_docs, 'pressure', 'pressure_sde')}.")
    emit()
    n_elr_stat = len(elr_err)
    ok1 = n_elr_stat > 0 and max(elr_err) <= TOL
    ok2 = len(sph_err) > 0 and max(sph_err) <= TOL
    ok3 = all(not d.get("stationary") for d in op_docs)
    worst1 = 100 * max(elr_err) if elr_err else math.nan
    worst2 = 100 * max(sph_err) if sph_err else math.nan
    verdict = [
        f"- {'PASS' if ok1 else 'FAIL'} ELR: {n_elr_stat}/{len(elr_docs)} runs stationary; "
        f"worst |r / r_discrete - 1| among them {worst1:.2f}% (tolerance {100 * TOL:g}%)",
        f"- {'PASS' if ok2 else 'FAIL'} sphere: {len(sph_err)}/{len(sph_docs)} runs stationary; "
        f"worst |p / p_discrete - 1| among them {worst2:.2f}% (tolerance {100 * TOL:g}%)",
        f"- {'PASS' if ok3 else 'FAIL'} 0%-noise control: "
        f"{sum(not d.get('stationary') for d in op_docs)}/{len(op_docs)} runs flagged "
        "not stationary",
    ]
    emit("### Verdict")
    emit()
    for v in verdict:
        emit(v)
    cpu = platform.processor() or platform.machine()
    timing = (f"Training time recorded in the runs: ELR grid {t_elr:.0f} s, sphere grid "
              f"{t_sph:.0f} s, control {t_op:.0f} s, {t_elr + t_sph + t_op:.0f} s in all on "
              f"{os.cpu_count()} CPU cores ({cpu}, torch {torch.__version__}, 1 thread, shared "
              f"with other jobs: load average {os.getloadavg()[0]:.1f} at the end); this "
              f"invocation took {total:.0f} s.")
    emit()
    emit(timing)

    if not args.quick:
        head = [
            "# Results: training pipeline acceptance on digits",
            "",
            "Produced by `.venv/bin/python benchmarks/digits_acceptance.py` (issue 4 acceptance; "
            "settings of reference-implementation 8.2). Digits (1797 samples) with 30% of the "
            "training labels replaced by uniformly random labels (seed 1), BN-MLP 64-32-32-10 "
            "with a frozen head (d = 3072), batch 128 drawn i.i.d. with replacement, every run "
            "from the same init (seed 1) and the same minibatch sequence (seed 1), float32 "
            "training, float64 statistics. Each grid trains as one batched model "
            "(`thermosgd.train.train_grid`).",
            "",
            f"Schedule ({steps} steps for ELR and the control, {sphere_steps} for the sphere): "
            f"stationary window = the last half; a metrics record every {s0.log_every} steps "
            "(block means of the minibatch loss, the radius and, on the sphere, the pre-"
            f"projection norm); a noise probe of {s0.noise_batches} minibatch gradients every "
            f"{s0.noise_every} steps ({100 * s0.noise_fraction():.1f}% extra gradients) gives the "
            "unbiased unit-sphere tr Sigma and |grad L|^2 (means over the window's probes); "
            f"{s0.queue_size} snapshots over the window for the entropy. Predictions from the "
            "measured noise: r_discrete^2 = elr Q / (2 wd), p_discrete = elr Q / (2 r^2) with "
            "Q = tr Sigma + |grad L|^2; SDE: the same with tr Sigma only. 'stationary' is the "
            "monitor's verdict (window >= 3 relaxation times after the start and >= 1 long, "
            "no radius / pressure drift, no loss trend, no temperature collapse).",
            "",
            "Reading the numbers (they are reproduced below by the script; the remarks are "
            "about this setting):",
            "",
            "- The probe-based prediction sits about 2% below the measured radius (4% in Q) in "
            "almost every run. With Q taken from every training step's own minibatch gradient "
            "(`trace_total_steps`, free) the ELR radius matches to 0.25%. So the probes' window "
            "mean of Q is the limit, not the theory: Q wanders by ~10% from probe to probe "
            "(a 64-gradient probe alone is ~3% precise) with a long autocorrelation, and every "
            "config sees the same minibatch and probe sequences, so the probe errors are "
            "correlated across the grid. More, smaller probes help more than larger ones; the "
            "default spacing spends the 10% budget on as many 64-gradient probes as it allows.",
            "- The sphere's remaining deviations from the step-based Q are understood: "
            "-0.7% at elr = 0.02 is the next order of r' = r sqrt(1 + elr^2 |g|^2) "
            "(relative -elr^2 Q / 4), and +3% at r = 0.5, elr = 2e-3 is BatchNorm's eps: "
            "the network is scale-invariant only up to eps / var(pre-activation), so at small "
            "radii the minibatch gradient has a radial part, -dL/dr > 0, which adds "
            "-E[dL/dr] / r to the pressure. Checked separately on the final weights (512 "
            "minibatches): -E[dL/dr] / r = 3.6% of p at (elr 2e-3, r 0.5) against +3.4% in the "
            "table, 0.8% at (5e-3, 0.5) against +0.6%, 0.75% at (2e-3, 1) against +0.9%.",
            "- The SDE predictions (tr Sigma only) are 13-17% low for the radius and 27-34% "
            "for the pressure: |grad L|^2 is about a quarter of Q at these ELRs, the regime "
            "where the paper also needs the discretization correction.",
            "- Runs the monitor calls non-stationary are mostly elr = 2e-3: the loss still "
            "falls by 2-4% over the window (5e4 steps are not enough at the smallest ELR).",
            "- The 0%-noise control interpolates (training loss ~0.006, tr Sigma 0.06-0.15 "
            "against 40-170 with label noise): the radius shrinks, the loss keeps falling and "
            "the relaxation time 1 / (elr^2 Q) grows without bound as Q -> 0, so every run is "
            "flagged (at elr = 0.02 only by the window being shorter than 3 relaxation times).",
            "",
        ]
        atomic_write_text(args.doc, "\n".join(head + lines) + "\n")
        print(f"wrote {args.doc}")
    return 0 if (ok1 and ok2 and ok3) else 1


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
