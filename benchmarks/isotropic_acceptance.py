"""Acceptance study of the isotropic-noise model: the paper's preset and other dimensions.

Runs `thermosgd isotropic --preset paper` (3 protocols x 17x17 grids x 2e6 steps, d=3, sigma=1)
and ELR/LR/sphere grids at d = 10 and d = 50, checks the paper's numbers and writes
docs/isotropic.md with what was measured.

    python benchmarks/isotropic_acceptance.py [--out runs/acceptance] [--scale 1.0]

--scale < 1 shortens every run (for a smoke test); the acceptance thresholds assume 1.0.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from thermosgd import theory
from thermosgd.io import read_csv
from thermosgd.sim.isotropic import IsotropicConfig
from thermosgd.sweep import parse_list
from thermosgd.theory import vmf
from thermosgd.workflows.isotropic import run_study
from thermosgd.workflows.presets import ISOTROPIC_PRESETS


def paper_configs(scale: float) -> list[IsotropicConfig]:
    p = ISOTROPIC_PRESETS["paper"]
    return [IsotropicConfig(protocol=proto, **{k: parse_list(v) for k, v in p[proto].items()},
                            steps=int(p["steps"] * scale), dim=3, sigma=1.0,
                            queue_size=p["queue_size"])
            for proto in ("elr", "lr", "sphere")]


def dim_configs(dim: int, scale: float) -> list[IsotropicConfig]:
    # sigma^2 (d-1) = 2 keeps the radii of the d=3 study; T = eta-tilde sigma^2 / 2
    s = float(np.sqrt(2.0 / (dim - 1)))
    rates = tuple(np.geomspace(1e-2, 1e-1, 5))
    wds = tuple(np.geomspace(1e-2, 1e-1, 5))
    common = {"dim": dim, "sigma": s, "steps": int(600_000 * scale), "queue_size": 1000}
    return [IsotropicConfig("elr", elr=rates, wd=wds, **common),
            IsotropicConfig("lr", lr=rates, wd=wds, **common),
            IsotropicConfig("sphere", elr=rates, radius=tuple(np.geomspace(0.1, 10, 5)),
                            **common)]


def fmt(v, pct=False, digits=4):
    if v is None:
        return "n/a"
    return f"{100 * v:.2f}%" if pct else f"{v:+.{digits}f}"


def init_radius_section(a, elr_row) -> list[str]:
    """The paper ELR grid again, every chain started at its predicted radius."""
    _, c, s, _, _, m = elr_row
    warm = dataclasses.replace(c, init_radius="predicted", burn_in=None)
    t0 = time.perf_counter()
    sw = run_study(warm, a.out / "paper-d3" / "elr-predicted-start", figures=False,
                   progress=False)
    el = time.perf_counter() - t0
    tau = float(theory.relaxation_time("elr", elr=min(c.elr), trace_total=(c.dim - 1) * c.sigma**2))
    mw = sw["maxwell"]["dS/dlog(wd)"]
    return ["## Starting at the predicted radius (paper ELR grid)", "",
            "`thermosgd isotropic --preset paper --init-radius predicted` (or "
            "`IsotropicConfig(init_radius=\"predicted\")`) starts every chain at its "
            "discretization-corrected radius, so points whose radius relaxes over millions of "
            f"steps from r = 1 (elr = {min(c.elr):g}: tau = 1/(elr^2 Q) = {tau:.2g} steps) are "
            "usable:", "",
            "| start | stationary points | radius error (discrete, worst) | "
            "dS/dlog(wd) normalized | time |", "|---|---|---|---|---|",
            f"| r = 1 | {s['stationary_points']}/{s['grid_points']} | "
            f"{fmt(s['radius_max_rel_error_discrete'], True)} | "
            f"{m['dS/dlog(wd)']['normalized']:+.4f} +- "
            f"{m['dS/dlog(wd)']['normalized_std']:.4f} | (above) |",
            f"| predicted | {sw['stationary_points']}/{sw['grid_points']} | "
            f"{fmt(sw['radius_max_rel_error_discrete'], True)} | {mw['normalized']:+.4f} +- "
            f"{mw['normalized_std']:.4f} | {el:.0f} s |", "",
            "Radius error bars model the radius autocorrelation exp(-t/tau) with the "
            "linearized relaxation time "
            "(`thermosgd.estimators.stationarity.ou_mean_variance`): plain batch means over "
            "20 blocks are several times too small where tau exceeds the block length."]


def step_ratios(out: Path) -> str:
    """(U/U_vMF - 1)/eta-tilde on the sphere runs (every radius pooled) at the three largest
    step sizes, d = 3 and d = 10."""
    parts = []
    for label, d in (("paper-d3", 3), ("d10", 10)):
        t = read_csv(out / label / "sphere" / "results.csv")
        ok = t["stationary"] == "true"
        cells = []
        for e in np.unique(t["elr"])[-3:]:
            m = ok & (t["elr"] == e)
            ratio = np.mean(t["energy"][m] / t["energy_theory"][m] - 1) / e
            cells.append(f"{ratio:.2f} at eta-tilde = {e:.3g}")
        parts.append(f"d = {d}: " + ", ".join(cells))
    return "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/acceptance"))
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--doc", type=Path, default=Path("docs/isotropic.md"))
    a = ap.parse_args()
    rows, checks = [], []
    t_paper = 0.0
    for label, configs in (("paper d=3", paper_configs(a.scale)),
                           ("d=10", dim_configs(10, a.scale)),
                           ("d=50", dim_configs(50, a.scale))):
        for c in configs:
            t0 = time.perf_counter()
            s = run_study(c, a.out / label.replace(" ", "-").replace("=", "") / c.protocol,
                          progress=False)
            el = time.perf_counter() - t0
            if label.startswith("paper"):
                t_paper += el
            key = "pressure" if c.protocol == "sphere" else "radius"
            m = s["maxwell"]
            rows.append((label, c, s, el, key, m))
            print(f"{label:10s} {c.protocol:6s} {el:6.1f}s stationary "
                  f"{s['stationary_points']}/{s['grid_points']}  {key} disc "
                  f"{fmt(s[f'{key}_max_rel_error_discrete'], True)} sde "
                  f"{fmt(s[f'{key}_max_rel_error_sde'], True)}", flush=True)
    # acceptance (paper preset)
    paper = {r[1].protocol: r for r in rows if r[0] == "paper d=3"}
    for proto, (_, _c, s, _, key, _m) in paper.items():
        worst = s[f"{key}_max_rel_error_discrete"]
        checks.append((f"{proto}: {key} within 2% of the discretization-corrected prediction "
                       "at every relaxed grid point", worst is not None and worst <= 0.02,
                       fmt(worst, True)))
        checks.append((f"{proto}: Gibbs/Helmholtz argmin on or next to the target",
                       s["potential_argmin"]["max_distance_cells"] <= 1,
                       f"max distance {s['potential_argmin']['max_distance_cells']} cell(s)"))
    e = paper["elr"][5]["dS/dlog(wd)"]
    checks.append(("elr: dS/dlog(wd) normalized = -1 +- 0.02", abs(e["normalized"] + 1) <= 0.02,
                   f"{e['normalized']:+.4f} +- {e['normalized_std']:.4f}"))
    lr_m = paper["lr"][5]["dS/dlog(lr) - dS/dlog(wd)"]
    checks.append(("lr: dS/dlog(lr) - dS/dlog(wd) normalized = 1 +- 0.02",
                   abs(lr_m["normalized"] - 1) <= 0.02,
                   f"{lr_m['normalized']:+.4f} +- {lr_m['stderr']:.4f}"))
    checks.append(("paper preset under 3 minutes on 2 cores", t_paper < 180, f"{t_paper:.0f} s"))

    lines = ["# Isotropic-noise model: acceptance study", "",
             "Generated by `python benchmarks/isotropic_acceptance.py"
             + (f" --scale {a.scale}" if a.scale != 1 else "") + "` "
             f"on {time.strftime('%Y-%m-%d')} (2 cores). Numbers are measured, not copied.", "",
             "## Acceptance (paper preset: 3 x 17x17 grids, 2e6 steps, d=3, sigma=1)", "",
             "| check | pass | measured |", "|---|---|---|"]
    lines += [f"| {n} | {'yes' if ok else '**no**'} | {v} |" for n, ok, v in checks]
    lines += ["", "## Every study", "",
              "| study | protocol | time | stationary | EOS error (discrete) | EOS error (SDE) "
              "| U vs exact vMF (max rel.) | U vs exact x (1 + eta/2) | max abs S_dir error "
              "(exact / +shift) | Maxwell slopes (normalized by (d-1)/2) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for label, c, s, el, key, m in rows:
        slopes = "; ".join(
            f"{k}: {v['normalized']:+.3f}" + (f" +- {v['normalized_std']:.3f}"
                                              if "normalized_std" in v else "")
            for k, v in m.items() if v.get("measured") is not None)
        lines.append(
            f"| {label} | {c.protocol} | {el:.0f} s | {s['stationary_points']}/"
            f"{s['grid_points']} | {fmt(s[f'{key}_max_rel_error_discrete'], True)} | "
            f"{fmt(s[f'{key}_max_rel_error_sde'], True)} | "
            f"{fmt(s['energy_max_rel_error_exact'], True)} | "
            f"{fmt(s['energy_max_rel_error_discrete'], True)} | "
            f"{fmt(s['entropy_dir_max_abs_error_exact'], digits=3)} / "
            f"{fmt(s['entropy_dir_max_abs_error_discrete'], digits=3)} | {slopes} |")
    lines += ["", "## U and S_dir against exact vMF, within their statistical errors", "",
              "z = (measured - exact x finite-step correction) / standard error, over the "
              "stationary grid points of the paper preset, by temperature band. Unbiased "
              "agreement: mean z near 0 and max |z| near 3 over ~100 points. The largest "
              "temperatures show the negative second-order finite-step term (see below).", "",
              "| protocol | T band | points | U: mean z | U: max abs z | S_dir: mean z "
              "| S_dir: max abs z | mean S_dir error (nats) |", "|---|---|---|---|---|---|---|---|"]
    for label, c, *_ in rows:
        if label != "paper d=3":
            continue
        t = read_csv(a.out / "paper-d3" / c.protocol / "results.csv")
        ok = t["stationary"] == "true"
        zu = (t["energy"] - t["energy_discrete"]) / t["energy_se"]
        ds = t["entropy_dir"] - t["entropy_dir_discrete"]
        zs = ds / t["entropy_dir_se"]
        for lo, hi in ((0.0, 0.003), (0.003, 0.02), (0.02, 1.0)):
            m = ok & (t["temperature"] >= lo) & (t["temperature"] < hi)
            if m.any():
                lines.append(f"| {c.protocol} | [{lo}, {hi}) | {m.sum()} | {zu[m].mean():+.2f} | "
                             f"{np.abs(zu[m]).max():.2f} | {zs[m].mean():+.2f} | "
                             f"{np.abs(zs[m]).max():.2f} | {ds[m].mean():+.3f} |")
    lines += ["", "The fixed-LR rows use the step the chain takes on the unit sphere, "
              "eta / r^2 at the discretization-corrected radius, with the vMF law at that "
              "step's temperature. An earlier version used the SDE radius' step; its high-"
              "temperature mismatch, previously put down to the second-order finite-step term, "
              "came from that step size: the same z computed with it, on the same runs:", "",
              "| T band | points | U: mean z (SDE step) | U: max abs z (SDE step) | "
              "U: mean z (eta / r_disc^2) |", "|---|---|---|---|---|"]
    t = read_csv(a.out / "paper-d3" / "lr" / "results.csv")
    ok = t["stationary"] == "true"
    h_sde = theory.stationary_elr_lr(t["lr"], t["wd"], 1.0, 3)
    u_old = theory.discrete_energy(vmf.mean_energy(3, 2.0 / h_sde), h_sde)
    z_old = (t["energy"] - u_old) / t["energy_se"]
    z_new = (t["energy"] - t["energy_discrete"]) / t["energy_se"]
    for lo, hi in ((0.0, 0.003), (0.003, 0.02), (0.02, 1.0)):
        m = ok & (t["temperature"] >= lo) & (t["temperature"] < hi)
        if m.any():
            lines.append(f"| [{lo}, {hi}) | {m.sum()} | {z_old[m].mean():+.2f} | "
                         f"{np.abs(z_old[m]).max():.2f} | {z_new[m].mean():+.2f} |")
    lines += ["", *init_radius_section(a, paper["elr"])]
    nonstat = [(r[0], r[1].protocol, p) for r in rows for p in r[2]["non_stationary"]]
    lines += ["", "## Grid points flagged as not stationary (excluded from the errors and fits)",
              ""]
    lines += [f"- {lab} {proto}: {p}" for lab, proto, p in nonstat] or ["- none"]
    lines += ["", DISCUSSION.format(ratios=step_ratios(a.out))]
    a.doc.parent.mkdir(parents=True, exist_ok=True)
    a.doc.write_text("\n".join(lines) + "\n")
    for n, ok, v in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {n}: {v}")
    print(f"wrote {a.doc}")


DISCUSSION = """## Energy bias at large steps: explanation and leading-order correction

The simulated chain is an Euler scheme, not the Langevin diffusion: its stationary law is not
exactly Gibbs. Write x for the tangent coordinates at the minimum (q = |x|^2 = sin^2 of the angle)
and h = eta-tilde (the step on the unit sphere). One step of the sphere/ELR protocol is
x~ = x (1 - h z + h sigma s) - h sigma xi_x followed by the normalization 1/sqrt(1 + h^2 |g|^2),
with z = sqrt(1 - q), s = <xi, wbar>. Averaging over the noise and keeping every term up to third
order in h (q is O(h sigma^2)):

    0 = E[q' - q] = -2h E[zq] + h^2 E[q] - h^2 sigma^2 E[q] + h^2 sigma^2 (d-1)
                    - h^2 sigma^2 (d-1) E[q] + O(h^4),

so E[q] = (d-1) T [1 + T/sigma^2 - (d-1) T/2] with T = h sigma^2 / 2, while the exact vMF value
is (d-1) T A_d(1/T) = (d-1) T [1 - (d-1) T/2 + ...]. The ratio is 1 + T/sigma^2 = 1 + h/2,
independent of d and sigma, and U = q/2 + q^2/8 + ... inherits it:

    U_h = U_vMF (1 + eta-tilde / 2) + O(eta-tilde T^2)      (theory.discrete_energy)

(the flat-space check: x <- (1 - h) x + noise has stationary variance T / (1 - h/2)). The entropy
of directions shifts by (d-1)/2 log(1 + h/2) (theory.discrete_entropy_shift). The next order is
negative: the measured ratio (U/U_vMF - 1)/eta-tilde on the sphere runs above is {ratios}; it
falls as the step grows, consistent with the O(h T) and O(h (d-1) T) terms that this
first-order formula does not include. tests/sim/test_sim_isotropic.py checks the correction
where it is valid (eta-tilde <= 0.02, d = 3: corrected within 4 standard errors, uncorrected
off by > 2.5).
"""


if __name__ == "__main__":
    main()
