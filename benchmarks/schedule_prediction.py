"""Schedules as thermodynamic processes, measured (issue 6): prediction of stationary states
from a fitted noise curve, verified on runs not used in the fit, and tracking of scheduled
runs against the equilibrium curve and the predicted lagged path. Writes the generated
section of docs/schedules.md.

    python benchmarks/schedule_prediction.py [--sweep runs/cpu] [--out runs/schedules]

--sweep: a sweep directory holding results.csv (or nn/results.csv, as `thermosgd reproduce`
writes it); without it, `thermosgd reproduce --preset quick` runs into a temporary directory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from thermosgd import schedules as S
from thermosgd.analysis import load_table
from thermosgd.workflows.schedules import write_track, write_validation

START, END = "<!-- schedules:start -->", "<!-- schedules:end -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "schedules.md"


def _pct(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def _table_path(sweep: Path) -> Path:
    for p in (sweep / "results.csv", sweep / "nn" / "results.csv"):
        if p.is_file():
            return p
    raise SystemExit(f"{sweep}: no results.csv or nn/results.csv")


def prediction_section(table: dict, source: str, out: Path, facts: dict) -> list[str]:
    lines = ["### Predicting stationary states from the noise curve", "",
             f"Sweep table: `{source}`. Fit the stationary runs of one protocol "
             "(log sigma^2 and log Q as polynomials of log elr, weighted by the probes' standard "
             "errors), then predict every stationary run of the *other* protocol from its "
             "hyperparameters alone (fixed LR: solve u^2 Q(u) = eta lambda (2 - eta lambda) for "
             "the stationary elr u; fixed ELR: u = elr) and compare with its measured radius and "
             "temperature u sigma^2 / 2 (u measured: lr / r^2). 'inside': runs whose predicted "
             "stationary elr lies in the fitted range. 'unreachable': no stationary elr in "
             "the fit range widened 2x.", "",
             "| fit on -> predict | degree | Q column | exact | runs (outside / unreachable) | "
             "radius median / max | radius inside: median / max | T median / max | "
             "T inside: median / max |", "|---|---|---|---|---|---|---|---|---|"]
    qcols = ["trace_total"] + (["trace_total_steps"] if "trace_total_steps" in table else [])
    variants = [(d, "trace_total", True) for d in (1, 2, 3)]
    variants += [(2, q, True) for q in qcols[1:]] + [(2, "trace_total", False)]
    main = {}
    for fit_on, test in (("elr", "lr"), ("lr", "elr")):
        for deg, q, exact in variants:
            try:
                curve = S.fit_noise_curve(table, (fit_on,), degree=deg, q_column=q)
                v = S.validate_predictions(curve, table, test, exact=exact)
            except ValueError as err:  # e.g. too few stationary runs for this degree
                lines.append(f"| {fit_on} -> {test} | {deg} | {q} | {'yes' if exact else 'no'}"
                             f" | not fitted: {err} | | | | |")
                continue
            if (deg, q, exact) == (2, "trace_total", True):
                main[(fit_on, test)] = (curve, v)
                facts[f"{fit_on}->{test}"] = v
            r, ri, t, ti = (v[k] for k in ("radius", "radius_inside", "temperature",
                                           "temperature_inside"))
            lines.append(
                f"| {fit_on} -> {test} | {deg} | {q} | {'yes' if exact else 'no'} | {v['n']} "
                f"({v['n_extrapolated']} / {v['n_unreachable']}) | {_pct(r['median'])} / "
                f"{_pct(r['max'])} | {_pct(ri['median'])} / {_pct(ri['max'])} | "
                f"{_pct(t['median'])} / {_pct(t['max'])} | {_pct(ti['median'])} / "
                f"{_pct(ti['max'])} |")
    vals = [{**v, "label": f"fit {fit_on} -> predict {test}", "noise": c.to_dict()}
            for (fit_on, test), (c, v) in main.items()]
    write_validation(vals, out)
    lines += ["", f"Figure (degree 2, probes' Q): `{out / 'prediction.png'}` (predicted against "
              f"measured; hollow: outside the fitted range); `{out / 'prediction.json'}` holds "
              "the per-run values (a section of `thermosgd report`).", ""]

    # per-run table of the main direction
    curve, v = main[("elr", "lr")]
    rows = v["rows"]
    lines += ["Per run, fit on ELR (degree 2) -> fixed-LR runs:", "",
              "| lr | wd | elr measured | elr predicted | r measured | r predicted (+- se) | "
              "rel. err | T measured | T predicted | rel. err | outside fit range |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in np.argsort(rows["rate"] * 1e3 + rows["wd"]):
        lines.append(
            f"| {rows['rate'][k]:.4g} | {rows['wd'][k]:.4g} | {rows['elr_measured'][k]:.4g} | "
            f"{rows['elr_pred'][k]:.4g} | {rows['radius'][k]:.4g} | {rows['radius_pred'][k]:.4g}"
            f" +- {rows['radius_pred_se'][k]:.2g} | {_pct(rows['radius_err'][k])} | "
            f"{rows['temperature'][k]:.3g} | {rows['temperature_pred'][k]:.3g} | "
            f"{_pct(rows['temperature_err'][k])} | "
            f"{'yes' if rows['extrapolated'][k] else 'no'} |")
    tr = S.temperature_range(curve)
    lines += ["", f"Temperature range of the ELR fit over its domain: T(u) = u sigma^2(u) / 2 "
              f"runs from {tr['t_min']:.3g} to a maximum {tr['t_max']:.3g} at elr "
              f"{tr['elr_at_t_max']:.3g}: sigma^2 falls almost as 1/elr, so T is flat and "
              "peaks inside the range.", ""]

    # recommendation: recover each held-out lr run's (lr, wd) from its measured (T, r) and
    # from (r, wd)
    pts = S.noise_points(table, ("lr",))
    rec_tr = S.recommend(curve, "lr", target_temperature=pts["temperature"],
                         target_radius=pts["radius"])
    rec_rw = S.recommend(curve, "lr", target_radius=pts["radius"], wd=pts["wd"])

    def med(a):
        a = np.abs(a[np.isfinite(a)])
        return (float(np.median(a)), float(a.max()), int(a.size)) if a.size else (None,) * 3

    m1 = med(rec_tr["lr"] / pts["lr"] - 1)
    m2 = med(rec_tr["wd"] / pts["wd"] - 1)
    m3 = med(rec_rw["lr"] / pts["lr"] - 1)
    lines += ["Recommendation, inverted on the same held-out fixed-LR runs (ELR fit): from a "
              "run's measured (T, r), recommend (lr, wd) and compare with the run's own; from "
              "(r, wd), recommend lr.", "",
              "| targets | recovered runs | |lr_rec / lr - 1| median / max | "
              "|wd_rec / wd - 1| median / max |", "|---|---|---|---|",
              f"| T and r | {m1[2]}/{len(pts['lr'])} | {_pct(m1[0])} / {_pct(m1[1])} | "
              f"{_pct(m2[0])} / {_pct(m2[1])} |",
              f"| r and wd | {m3[2]}/{len(pts['lr'])} | {_pct(m3[0])} / {_pct(m3[1])} | "
              "(given) |", ""]
    # conditioning: at fixed wd, u^2 Q(u) ~ lr wd gives d log u / d log lr = 1 / (2 + s) and
    # r^2 = lr / u gives d log r / d log lr = (1 + s) / (2 (2 + s)); d log T / d log u = 1 + s2
    u = np.median(pts["elr_measured"])
    sq, ss = float(curve.slope_total(u)), float(curve.slope_sigma2(u))
    dr = (1 + sq) / (2 * (2 + sq))
    dt = (1 + ss) / (2 + sq)
    lines += [f"Why the inversion is loose: at the median stationary elr {u:.3g} the fit has "
              f"d log Q / d log elr = {sq:.2f} and d log sigma^2 / d log elr = {ss:.2f}, so at "
              f"fixed wd d log r / d log lr = (1 + s) / (2 (2 + s)) = {dr:.3f} and "
              f"d log T / d log lr = {dt:.3f}: a 1% error in r or T moves the recommended lr "
              f"by {1 / abs(dr):.0f}% or {1 / abs(dt):.0f}%. The radius and temperature of this "
              "network hardly depend on the learning rate at fixed wd, so the forward "
              "prediction is accurate and the inverse is ill-conditioned.", ""]
    return lines


TRACKS = {
    "lr-step": dict(protocol="lr", schedule="step", lr=3.0, wd=0.01, milestones=(1500,),
                    gamma=0.1),
    "lr-cosine": dict(protocol="lr", schedule="cosine", lr=3.0, wd=0.01, final=0.1),
    "elr-step": dict(protocol="elr", schedule="step", lr=None, elr=0.04, wd=0.01,
                     milestones=(1500,), gamma=0.1),
}


def tracking_section(table: dict, out: Path, steps: int, burn_in: int, facts: dict
                     ) -> list[str]:
    curve = S.fit_noise_curve(table, ("elr", "lr"))
    u = np.geomspace(curve.u_min, curve.u_max, 3)
    facts["slope_range"] = (float(curve.slope_total(u[0])), float(curve.slope_total(u[-1])))
    facts["u_range"] = (float(u[0]), float(u[-1]))
    lines = ["### Tracking scheduled runs", "",
             f"BN-MLP 64-32-32 (d = {curve.dim}) on digits with 30% random labels, batch 128; "
             f"{burn_in} burn-in steps at the initial hyperparameters, then {steps} scheduled "
             "steps; radius every 10 steps, a noise probe of 64 minibatch gradients every 50. "
             f"Noise curve: {curve.source} (degree 2, elr {curve.u_min:.3g}..{curve.u_max:.3g})."
             " Columns: 'lagged' = the mean one-step radial map with Q at its stationary value "
             "Q(u_t) (instant angular equilibrium); 'eq.' = the equilibrium curve; 'map + "
             "measured Q' = the radial map driven by the probes' Q (the radial dynamics alone); "
             "'relaxing noise' = Q and sigma^2 relaxing at rate h u_t per step, with h "
             "calibrated once on the lr-step run (from the fitted relaxation time of its Q "
             "after the drop) and then *predicting* the other runs.", "",
             "| run | wall (s) | max abs(V/V_eq - 1) measured / lagged | RMS rel. error of V: "
             "lagged / eq. / map + measured Q / relaxing noise | RMS rel. error of T: lagged / "
             "eq. / relaxing noise | radial tau (steps) | max tau abs(dlogV_eq/dt) | tau_Q "
             "after the drop (fit) | h implied |", "|---|---|---|---|---|---|---|---|---|"]
    h = None
    for name, kw in TRACKS.items():
        cfg = S.TrackConfig(steps=steps, burn_in=burn_in, log_every=10, noise_every=50,
                            noise_batches=64, **kw)
        t0 = time.time()
        res = S.track(cfg, curve, angular_rate=h)
        wall = time.time() - t0
        role = "prediction"
        if h is None:  # calibrate on the first (step) run, then re-analyze it with h
            h = res["summary"]["angular_rate_fit"]
            if h is None:
                raise SystemExit(f"{name}: no exponential fit of Q after the drop")
            res = S.analyze_track(cfg, cfg.process(), res["records"], res["probes"],
                                  res["dim"], curve, angular_rate=h)
            role = "calibration"
        write_track(res, out / f"track-{name}")
        s = res["summary"]
        facts[name] = s
        fit = s.get("q_relaxation")
        qfit = ("-" if "milestone" not in s else "no fit" if fit is None
                else f"{fit['tau']:.0f} +- {fit['tau_se']:.0f}")
        hfit = "-" if s.get("angular_rate_fit") is None else f"{s['angular_rate_fit']:.3g}"
        lines.append(
            f"| {name} ({role}, h = {h:.3g}) | {wall:.0f} | "
            f"{_pct(s['max_abs_gap_measured'])} / {_pct(s['max_abs_gap_predicted'])} | "
            f"{_pct(s['volume_rms_rel_error_lagged'])} / "
            f"{_pct(s['volume_rms_rel_error_equilibrium'])} / "
            f"{_pct(s['volume_rms_rel_error_lagged_measured_q'])} / "
            f"{_pct(s['volume_rms_rel_error_angular'])} | "
            f"{_pct(s['temperature_rms_rel_error_lagged'])} / "
            f"{_pct(s['temperature_rms_rel_error_equilibrium'])} / "
            f"{_pct(s['temperature_rms_rel_error_angular'])} | {s['tau_min']:.3g}.."
            f"{s['tau_max']:.3g} | {s['max_quasi_static']:.3g} | {qfit} | {hfit} |")
        print(name, S.format_track(s), sep="\n", flush=True)
        if name == "lr-cosine":
            r = res["records"]
            late = r["step"] >= steps // 2
            lines_extra = (
                f"lr-cosine, second half: measured V/V_eq - 1 = "
                f"{np.mean(r['gap'][late]):+.3f} on average, lagged path "
                f"{np.mean(r['gap_lag'][late]):+.3f}, relaxing noise "
                f"{np.mean(r['volume_lag_angular'][late] / r['volume_eq'][late] - 1):+.3f}.")
    lines += ["", lines_extra, "",
              f"Output directories (CSV, PNG, schedule.json; `thermosgd report {out}` "
              f"renders them): {', '.join(f'`{out}/track-{n}`' for n in TRACKS)}.", ""]
    return lines


def findings(f: dict) -> list[str]:
    """The summary bullets, every number taken from this run."""
    out = ["### Findings", ""]
    for key in ("elr->lr", "lr->elr"):
        v = f.get(key)
        if v:
            out.append(
                f"- Prediction, fit on {key.replace('->', ' runs, predicting the ')} runs "
                f"(degree 2): radius median {_pct(v['radius']['median'])} (max "
                f"{_pct(v['radius_inside']['max'])} inside the fitted range, "
                f"{_pct(v['radius']['max'])} overall), temperature median "
                f"{_pct(v['temperature']['median'])} (max "
                f"{_pct(v['temperature_inside']['max'])} inside, "
                f"{_pct(v['temperature']['max'])} overall); {v['n_unreachable']} of {v['n']} "
                "runs have no stationary elr in the widened range.")
    lo, hi = f["slope_range"]
    out.append(f"- The fitted d log Q / d log elr runs from {lo:.2f} (elr {f['u_range'][0]:.3g})"
               f" to {hi:.2f} (elr {f['u_range'][1]:.3g}): at fixed LR the radius relaxes "
               f"{1 / (1 + lo / 2):.2f}x to {1 / (1 + hi / 2):.2f}x more slowly than "
               "1 / (4 eta lambda).")
    for name in ("lr-step", "elr-step"):
        s = f.get(name)
        if s and s.get("q_relaxation"):
            q = s["q_relaxation"]
            out.append(
                f"- {name}: after the drop Q relaxes with tau_Q = {q['tau']:.0f} +- "
                f"{q['tau_se']:.0f} steps, {q['tau'] / s['tau_after_milestone']:.1f}x the "
                f"radial tau ({s['tau_after_milestone']:.0f}); V: RMS error of the lagged path "
                f"(instant Q) {_pct(s['volume_rms_rel_error_lagged'])}, of the radial map "
                f"driven by the measured Q {_pct(s['volume_rms_rel_error_lagged_measured_q'])}, "
                f"of the relaxing-noise path {_pct(s['volume_rms_rel_error_angular'])} "
                f"({'calibrated on this run' if name == 'lr-step' else 'predicted'}).")
    s = f.get("lr-cosine")
    if s:
        out.append(
            f"- lr-cosine: the radial quasi-static ratio stays below "
            f"{s['max_quasi_static']:.3g}, yet the measured V deviates by up to "
            f"{_pct(s['max_abs_gap_measured'])} from V_eq (lagged path: "
            f"{_pct(s['max_abs_gap_predicted'])}): the radial clock is not the clock that "
            f"matters. The relaxing-noise path calibrated on lr-step predicts V to "
            f"{_pct(s['volume_rms_rel_error_angular'])} RMS and T to "
            f"{_pct(s['temperature_rms_rel_error_angular'])} (instant-Q path: "
            f"{_pct(s['volume_rms_rel_error_lagged'])}, "
            f"{_pct(s['temperature_rms_rel_error_lagged'])}).")
    return [*out, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", type=Path, default=None,
                    help="sweep directory with results.csv or nn/results.csv (default: run "
                         "`thermosgd reproduce --preset quick` into a temporary directory)")
    ap.add_argument("--out", type=Path, default=Path("runs/schedules"),
                    help="directory for the figures and tracked runs")
    ap.add_argument("--steps", type=int, default=4000, help="scheduled steps per tracked run")
    ap.add_argument("--burn-in", type=int, default=3000, help="burn-in steps")
    ap.add_argument("--no-doc", action="store_true", help="print instead of writing the doc")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    tmp = None
    if args.sweep is None:
        tmp = tempfile.TemporaryDirectory(prefix="thermosgd-quick-")
        sweep = Path(tmp.name)
        subprocess.run([sys.executable, "-m", "thermosgd.cli", "reproduce", "--preset", "quick",
                        "--out", str(sweep)], check=True)
    else:
        sweep = args.sweep
    path = _table_path(sweep)
    table = load_table(path)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [START, "## Measured (generated)", "",
             f"Generated by `python benchmarks/schedule_prediction.py"
             f"{'' if args.sweep is None else f' --sweep {args.sweep}'}` on "
             f"{time.strftime('%Y-%m-%d')}.", ""]
    facts: dict = {}
    body = prediction_section(table, str(path), args.out, facts)
    body += tracking_section(table, args.out, args.steps, args.burn_in, facts)
    lines += findings(facts) + body
    lines += [f"Total wall time {time.time() - t0:.0f} s (one thread).", END]
    text = "\n".join(lines) + "\n"
    if tmp is not None:
        tmp.cleanup()
    if args.no_doc:
        print(text)
        return
    doc = DOC.read_text() if DOC.is_file() else ""
    if START in doc and END in doc:
        doc = doc[: doc.index(START)] + text.rstrip("\n") + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOC.write_text(doc)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
