"""Momentum and AdamW on a network (issue 6): runs `thermosgd reproduce --preset cpu-optimizers`
(resumable: finished runs are reused) and writes the section "Momentum and AdamW on the cpu
network preset" of docs/results.md from the analysis and the collected table the project
generated: radius prediction errors per optimizer (SDE and discrete forms, worst and median
over the stationary runs), gas law and Maxwell relation per optimizer, what fails.

    python benchmarks/optimizers_acceptance.py [--out runs/cpu-optimizers] [--no-run]

Run mode also writes OUT/timing.json (wall time and CPU seconds of this process and its
children), which --no-run reads back.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from docsection import write_section
from thermosgd.analysis import load_table, optimizer_column, split_rows
from thermosgd.workflows.presets import PRESETS
from thermosgd.workflows.reproduce import reproduce

START, END = "<!-- optimizers:start -->", "<!-- optimizers:end -->"
PRESET = "cpu-optimizers"


def _pct(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def _ratio(g: dict) -> str:
    r = g["collapse"]["quantities"].get("sigma2", {}).get("ratio")
    return "n/a" if r is None else f"{r:.3f}"


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def radius_errors(cols: dict) -> list[dict]:
    """Per optimizer: the stationary runs' radius against the SDE and discrete predictions
    (relative errors measured / predicted - 1), the radial fluctuation and AdamW's gas law
    p V vs (d-1) T / 2 with the measured pressure lambda sqrt(s)."""
    opts = optimizer_column(cols)
    used, _ = split_rows(cols, "lr")
    out = []
    for o in ("sgd", "momentum", "adamw"):
        rows = used[opts[used] == o]
        n_all = int(((opts == o) & (cols["protocol"] == "lr")).sum())
        if n_all == 0:
            continue
        e = {"optimizer": o, "runs": n_all, "stationary": int(rows.size)}
        for k in ("sde", "discrete"):
            rel = cols["radius"][rows] / cols[f"radius_{k}"][rows] - 1
            rel = rel[np.isfinite(rel)]
            e[f"worst_{k}"] = float(np.max(np.abs(rel))) if rel.size else None
            e[f"median_{k}"] = float(np.median(np.abs(rel))) if rel.size else None
            e[f"mean_{k}"] = float(np.mean(rel)) if rel.size else None
        d = cols["dim"][rows]
        gas = cols["pressure"][rows] * cols["volume"][rows] / ((d - 1) * cols["temperature"][rows]
                                                               / 2) - 1
        gas = gas[np.isfinite(gas)]
        e["gas_worst"] = float(np.max(np.abs(gas))) if gas.size else None
        e["gas_median"] = float(np.median(np.abs(gas))) if gas.size else None
        g2 = cols["grad_norm2"][rows] / cols["trace_sigma"][rows]
        e["grad_ratio_max"] = float(np.nanmax(g2)) if rows.size else None
        out.append(e)
    return out


def adamw_balance(lr: float, wd: float, steps: int = 20_000, burn_in: int = 10_000,
                  seed: int = 1) -> dict:
    """Which AdamW assumption fails on the network: train the preset's BN-MLP with `AdamWLR`
    (float32, one config) and measure per step the normalized update u = ((1 - lr wd) w_t -
    w_{t+1}) / lr over the last steps - burn_in steps. The exact balance of ||w||^2 reads
    (2 lr wd - lr^2 wd^2) E r^2 = lr^2 E||u||^2 (1 + C), C = -2 (1 - lr wd) E<w, u> / (lr
    E||u||^2). Theory (equal second moments, white noise): E||u||^2 / d = (1-b1)/(1+b1) and
    C = 2 b1 / (1-b1), so r*^2 = lr d / (2 wd)."""
    import torch
    import torch.nn.functional as F

    from thermosgd.nn.models import bn_mlp
    from thermosgd.nn.optim import make_optimizer
    from thermosgd.nn.scale_invariance import set_group_radius
    from thermosgd.train.config import TrainConfig
    from thermosgd.train.nets import load_data

    torch.set_num_threads(1)
    base = {k: v for k, v in PRESETS[PRESET].base.items() if k != "steps"}
    c = TrainConfig(**base, optimizer="adamw", lr=lr, wd=wd, steps=steps)
    ds = load_data(c)
    model = bn_mlp(64, tuple(c.hidden), ds.num_classes, init_seed=1)
    params = model.si_parameters()
    d = sum(p.numel() for p in params)
    set_group_radius(params, 1.0)  # as the preset's runs
    opt = make_optimizer("lr", params, lr=lr, wd=wd, optimizer="adamw")
    gen = torch.Generator().manual_seed(seed)
    acc = np.zeros(3)  # sums of ||u||^2, <w, u>, r^2
    n = 0
    for t in range(steps):
        idx = torch.randint(0, ds.n_train, (c.batch_size,), generator=gen)
        w0 = torch.cat([p.detach().reshape(-1) for p in params]).double()
        opt.zero_grad()
        F.cross_entropy(model(ds.x_train[idx]), ds.y_train[idx]).backward()
        opt.step()
        if t >= burn_in:
            w1 = torch.cat([p.detach().reshape(-1) for p in params]).double()
            u = ((1 - lr * wd) * w0 - w1) / lr
            acc += [float(u @ u), float(w0 @ u), float(w0 @ w0)]
            n += 1
    uu, wu, r2 = acc / n
    b1 = 0.9
    C = -2 * (1 - lr * wd) * wu / (lr * uu)
    a = 1 - lr * wd
    return {"lr": lr, "wd": wd, "dim": d, "steps": steps, "window": n,
            "u2_over_d": uu / d, "u2_theory": (1 - b1) / (1 + b1),
            "C": C, "C_theory": 2 * b1 / (1 - b1), "C_exact": 2 * a * b1 / (1 - a * b1),
            "r2": r2, "r2_balance": lr**2 * uu * (1 + C) / (2 * lr * wd - (lr * wd) ** 2),
            "r2_theory": lr * d / (2 * wd)}


BALANCE_POINTS = ((0.003, 0.949), (0.03, 3.0))


def refresh(out: Path) -> None:
    """Rebuild every run's stationary document from its final checkpoint with the current
    monitor (new predictions, no retraining), then collect, analyze and report again."""
    from thermosgd.io import write_json
    from thermosgd.sweep import collect
    from thermosgd.train.config import TrainConfig
    from thermosgd.train.run import train
    from thermosgd.workflows.analyze import run_analysis, write_report

    nn = out / "nn"
    for d in sorted((nn / "runs").iterdir()):
        if not (d / "checkpoint.pt").is_file():
            continue
        c = TrainConfig.from_dict(json.loads((d / "config.json").read_text()))
        (d / "stationary.json").unlink(missing_ok=True)
        write_json(d / "record.json", train(c, d, progress=False))
    collect(nn)
    (out / "refreshed").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    run_analysis(nn, strict=False)
    write_report(out, out / "report.html", title=f"thermosgd reproduce --preset {PRESET}")


def matched_pairs(cols: dict, beta: float = 0.9) -> list[dict]:
    """Heavy ball (lr, wd) against plain SGD at (lr / (1-beta), wd), the same long-time step:
    the theory says both reach the same stationary state (radius, T, energy, entropy). Ratios
    momentum / SGD over the pairs where both runs are stationary."""
    opts = optimizer_column(cols)
    used, _ = split_rows(cols, "lr")
    sgd = {(round(float(cols["lr"][k]), 4), round(float(cols["wd"][k]), 6)): k
           for k in used if opts[k] == "sgd"}
    out = []
    for k in used:
        if opts[k] != "momentum" or not np.isclose(cols["momentum"][k], beta):
            continue
        j = sgd.get((round(float(cols["lr"][k]) / (1 - beta), 4), round(float(cols["wd"][k]), 6)))
        if j is None:
            continue
        out.append({"lr": float(cols["lr"][k]), "wd": float(cols["wd"][k]),
                    **{q: float(cols[q][k] / cols[q][j]) for q in
                       ("radius", "temperature", "sigma2", "energy")},
                    "entropy_diff": float(cols["entropy"][k] - cols["entropy"][j]),
                    "entropy_dir_diff": float(cols["entropy_dir"][k] - cols["entropy_dir"][j])})
    return out


def summary(cols: dict, a: dict, pairs: list[dict], bal: list[dict] | None) -> list[str]:
    """Bullet points from the measured numbers (thresholds: 5% radius, 15% Maxwell)."""
    errs = {e["optimizer"]: e for e in radius_errors(cols)}
    groups = {g["optimizer"]: g for g in a.get("optimizers", []) if "error" not in g}

    def mx(o):
        g = groups.get(o)
        return None if g is None else g["maxwell"]["max_rel_error"]

    def verdict(v, lim):
        return "n/a" if v is None else ("PASS" if v <= lim else "FAIL")

    def eos(o):  # the analysis check: radius within 5% of the discrete form for >= 90% of runs
        f = groups.get(o, {}).get("equation_of_state", {}).get("fraction_within_discrete")
        return "n/a" if f is None else (f"{'PASS' if f >= 0.9 else 'FAIL'} radius "
                                         f"({_pct(f)} of the runs within 5%)")

    out = []
    if "momentum" in errs:
        e = errs["momentum"]
        out.append(
            f"* Heavy ball (beta = 0.9), {eos('momentum')}, "
            f"{verdict(mx('momentum'), 0.15)} Maxwell: the radius is within "
            f"{_pct(e['worst_sde'])} of the SDE form and {_pct(e['worst_discrete'])} of the "
            f"discrete one over the {e['stationary']} stationary runs (the two forms nearly "
            "coincide: |grad L|^2 enters with weight (1-beta)/(1+beta) = 0.053); Maxwell "
            f"relation (d-1)/2 within {_pct(mx('momentum'))}.")
    if pairs:
        rr = np.array([q["radius"] for q in pairs])
        tt = np.array([q["temperature"] for q in pairs])
        uu = np.array([q["energy"] for q in pairs])
        sd = np.array([q["entropy_dir_diff"] for q in pairs])
        out.append(
            f"* Heavy ball at lr against SGD at lr / (1-beta) ({len(pairs)} pairs of stationary "
            f"runs): the radius agrees (ratio {rr.min():.3f} to {rr.max():.3f}), the rest does "
            f"not: the heavy-ball state has lower energy (ratio {uu.min():.3f} to "
            f"{uu.max():.3f}) and a lower direction entropy ({sd.max():+.0f} to "
            f"{sd.min():+.0f} nats in d = {int(cols['dim'][0])}), i.e. it is colder, while "
            f"its sigma^2 and hence the formula temperature are higher (T ratio {tt.min():.3f} "
            f"to {tt.max():.3f}). The SDE equivalence eta -> eta / (1-beta) holds for the "
            "radius balance (exact in the step identity) but not for the direction law at "
            "these step sizes: for the same long-time step SGD's per-step noise variance is "
            "(1+beta)/(1-beta) = 19 times larger, so its finite-step heating is larger. FAIL "
            "as a statement about the whole stationary state.")
    if "sgd" in errs:
        e = errs["sgd"]
        out.append(
            f"* Plain SGD (the control), {eos('sgd')}, "
            f"{verdict(mx('sgd'), 0.15)} Maxwell: SDE radius off by up to "
            f"{_pct(e['worst_sde'])} (|grad L|^2 / tr Sigma up to {e['grad_ratio_max']:.2f} "
            f"enters with weight 1), discrete form within {_pct(e['worst_discrete'])}; Maxwell "
            f"max rel. error {_pct(mx('sgd'))}.")
    if "adamw" in errs:
        e = errs["adamw"]
        rel = cols["radius"] / cols["radius_sde"] - 1
        used, _ = split_rows(cols, "lr")
        ad = used[optimizer_column(cols)[used] == "adamw"]
        side = ("always below it" if np.all(rel[ad] < 0) else
                "on both sides" if np.any(rel[ad] < 0) else "always above it")
        out.append(
            f"* AdamW, FAIL for the eta lambda -> 0 radius sqrt(eta d / (2 lambda)): off by up "
            f"to {_pct(e['worst_sde'])} (median {_pct(e['median_sde'])}, {side}), growing with "
            "eta lambda. The momentum correlation that sets the radius is weakened by the "
            "decoupled decay (b1 -> (1 - eta lambda) b1, an O(eta lambda) effect amplified by "
            "1/(1-b1) = 10) and the mean gradient counts in the second moment. "
            f"{eos('adamw')} with the all-orders discrete form "
            f"(docs/theory.md): within {_pct(e['worst_discrete'])} (median "
            f"{_pct(e['median_discrete'])}).")
        if bal:
            parts = [f"lr wd = {b['lr'] * b['wd']:.3g}: E|u|^2 / d = {b['u2_over_d']:.4f}, C = "
                     f"{b['C']:.2f} against 2 a b1 / (1 - a b1) = {b['C_exact']:.2f}"
                     for b in bal]
            out.append("* The AdamW balance measured term by term (table above): "
                       + "; ".join(parts) + ". The correlation term C follows the finite-step "
                       "formula; E|u|^2 / d is below (1-b1)/(1+b1) = 0.0526 by the mean-gradient "
                       "factor. Unequal second moments (certain on a network) do not show up "
                       "at this precision.")
        if "adamw" in groups:
            g = groups["adamw"]
            out.append(
                f"* AdamW Maxwell relation, {verdict(mx('adamw'), 0.15)}: dS/dlog(eta) - "
                "dS/dlog(lambda) = d-1 (twice SGD's: r*^2, not r*^4, scales as eta / lambda) "
                f"holds with max rel. error {_pct(mx('adamw'))} (R^2 "
                f"{g['entropy_fit']['r2']:.4f}, {g['stationary_runs']} runs for 6 coefficients: "
                f"{g['entropy_fit']['dof']} degrees of freedom, a small grid); SGD's (d-1)/2 "
                "would be off by 50%. The gas law with the coupled-equivalent pressure "
                "lambda sqrt(s) and the all-orders temperature (T = lambda sigma r_F / "
                "sqrt(d (d-1)), r_F^2 = eta d F / (2 lambda), docs/theory.md) compares the "
                "measured radius with r_F, the all-orders radius without the mean-gradient "
                "factor (p V / ((d-1) T / 2) = r / r_F): worst "
                f"{_pct(e['gas_worst'])}, median {_pct(e['gas_median'])}; the rest is the mean "
                "gradient's share of the second moment, which the discrete radius above "
                "includes.")
    excl = [(g["label"], x) for g in a.get("optimizers", []) for x in g.get("excluded", [])]
    if excl:
        where = ", ".join(f"{lab} lr {x.get('lr'):.3g} wd {x.get('wd'):.3g}" for lab, x in excl)
        out.append(f"* Not stationary and excluded ({len(excl)} of "
                   f"{sum(e['runs'] for e in errs.values())} runs): {where}; reasons: "
                   + "; ".join(sorted({x["reasons"].split(":")[0] for _, x in excl})) + ".")
    return out


def section(out: Path, timing: dict | None) -> str:
    nn = out / "nn"
    a = json.loads((nn / "analysis.json").read_text())
    cols = load_table(nn)
    p = PRESETS[PRESET]
    when = time.strftime("%Y-%m-%d")
    tline = ""
    if timing:
        tline = (f" Wall time {timing['wall_seconds'] / 60:.1f} min, CPU time "
                 f"{timing['cpu_seconds'] / 60:.1f} min (one training thread; the machine's 2 "
                 f"cores shared with other jobs).")
    if (out / "refreshed").is_file():
        tline += (" The runs' stationary documents were then rebuilt from their final "
                  "checkpoints with the current predictions (`--no-run --refresh`, no "
                  "retraining).")
    lines = [START, "## Momentum and AdamW on the cpu network preset", "",
             f"Generated by `python benchmarks/optimizers_acceptance.py` on {when} from "
             f"`{nn}/analysis.json` and `results.csv` (`thermosgd reproduce --preset {PRESET}`: "
             f"{p.description}).{tline}", "",
             "Predictions (docs/theory.md, `thermosgd.theory`): heavy ball r*^4 = eta (d-1) "
             "sigma^2 / (2 lambda (1-beta)) (SDE) and eta (tr Sigma + |grad L|^2 (1-beta)/(1+beta))"
             " / (2 lambda (1-beta)) (discrete); AdamW r*^2 = eta d / (2 lambda) (SDE, "
             "independent of the noise) and, discrete, r*^2 = eta^2 E|u|^2 (1 + a b1) / ((1 - "
             "a^2)(1 - a b1)) with a = 1 - eta lambda and E|u|^2 = d (1-b1)/(1+b1) (tr Sigma + "
             "|grad L|^2 (1-b1)/(1+b1)) / (tr Sigma + |grad L|^2) (all orders in eta lambda); "
             "SGD as in the paper. "
             "Temperatures: SGD sqrt(eta lambda sigma^2 / (2 (d-1))), heavy ball the same with "
             "eta / (1-beta), AdamW the SGD expression times sqrt(F), F the all-orders radius "
             "factor (equal second moments assumed; docs/theory.md). Maxwell "
             "relation dS/dlog(eta) - dS/dlog(lambda): (d-1)/2 for SGD and heavy ball, d-1 for "
             "AdamW (r*^2, not r*^4, is proportional to eta / lambda).", "",
             "### Radius (equation of state)", "",
             "| optimizer | stationary runs | SDE: worst / median abs. error (mean signed) | "
             "discrete: worst / median abs. error (mean signed) | within 5% (discrete) |",
             "|---|---|---|---|---|"]
    groups = {g.get("optimizer"): g for g in a.get("optimizers", [])}
    for e in radius_errors(cols):
        g = groups.get(e["optimizer"], {})
        frac = g.get("equation_of_state", {}).get("fraction_within_discrete")
        lines.append(f"| {e['optimizer']} | {e['stationary']}/{e['runs']} | "
                     f"{_pct(e['worst_sde'])} / {_pct(e['median_sde'])} ({_pct(e['mean_sde'])}) | "
                     f"{_pct(e['worst_discrete'])} / {_pct(e['median_discrete'])} "
                     f"({_pct(e['mean_discrete'])}) | {_pct(frac)} |")
    lines += ["", "### Gas law and Maxwell relations", "",
              "| optimizer | gas law p V = (d-1) T / 2 (T from sigma^2): worst / median error "
              "| entropy fit R^2 (dof = runs - 6) | "
              "Maxwell relation | max rel. error | normalized coefficients | sigma^2 collapse "
              "onto lr*wd (ratio) | Gibbs potential argmin: max distance (cells) | checks |",
              "|---|---|---|---|---|---|---|---|---|"]
    errs = {e["optimizer"]: e for e in radius_errors(cols)}
    for g in a.get("optimizers", []):
        e = errs.get(g["optimizer"], {})
        if "error" in g:
            lines.append(f"| {g['label']} | {_pct(e.get('gas_worst'))} / "
                         f"{_pct(e.get('gas_median'))} | | not analyzed: {g['error']} | | | | | "
                         "FAIL |")
            continue
        m = g["maxwell"]
        coef = ", ".join(f"{k} {v:+.3f}" for k, v in m["coefficients"].items())
        checks = "; ".join(f"{'PASS' if c['passed'] else 'FAIL'} {c['check']}"
                           for c in g["checks"])
        lines.append(f"| {g['label']} | {_pct(e.get('gas_worst'))} / {_pct(e.get('gas_median'))}"
                     f" | {g['entropy_fit']['r2']:.4f} ({g['entropy_fit']['dof']}) | "
                     f"{m['relation']} | "
                     f"{_pct(m['max_rel_error'])} | {coef} | {_ratio(g)} | "
                     f"{g['potential']['max_distance_cells']} | {checks} |")
    lines += ["", "The max rel. error is the fitted derivative against the relation at the "
              "stationary grid points. The normalized coefficients are the paper's: the fit's "
              "terms at log lr = log wd = 0, i.e. lr = wd = 1, which lies outside every grid "
              "here (an extrapolation, not the derivative on the grid). Gibbs potential: "
              "G = U - T* S + p* V "
              "minimized over the measured states at a target's (T*, p*) (AdamW: p = lambda "
              "sqrt(s)); the distance is in grid cells from the target."]
    bal_path = out / "adamw_balance.json"
    if bal_path.is_file():
        bal = json.loads(bal_path.read_text())
        lines += ["", "### The AdamW radius balance, term by term", "",
                  "One AdamW config (float32, `AdamWLR`, started at radius 1 as the preset, "
                  f"{bal[0]['steps']} steps, the last {bal[0]['window']} measured) per row: "
                  "the normalized update u = ((1 - lr wd) w_t - w_{t+1}) / lr. The exact "
                  "balance is (2 lr wd - lr^2 wd^2) E r^2 = lr^2 E|u|^2 (1 + C), C = -2 "
                  "(1 - lr wd) E<w, u> / (lr E|u|^2) (the momentum correlation). Theory "
                  "(equal second moments, white noise): E|u|^2 / d = (1-b1)/(1+b1) = "
                  f"{bal[0]['u2_theory']:.4f} (times the grad_norm2 factor of the discrete "
                  f"form) and C = 2 a b1 / (1 - a b1), a = 1 - lr wd (= 2 b1 / (1-b1) = "
                  f"{bal[0]['C_theory']:.0f} as lr wd -> 0; docs/theory.md).",
                  "The grad_norm2 factor (tr Sigma + |grad L|^2 (1-b1)/(1+b1)) / (tr Sigma + "
                  "|grad L|^2) is taken from the preset's run at the same (lr, wd).",
                  "", "| lr | wd | lr wd | E(u.u) / d | predicted (with the grad_norm2 factor) "
                  "| C measured | C = 2 a b1 / (1 - a b1) | E r^2 / (lr d / (2 wd)) | balance "
                  "from the measured terms / E r^2 |", "|---|---|---|---|---|---|---|---|---|"]
        opts = optimizer_column(cols)
        for b in bal:
            k = np.flatnonzero((opts == "adamw") & np.isclose(cols["lr"], b["lr"], rtol=1e-3)
                               & np.isclose(cols["wd"], b["wd"], rtol=1e-3))
            pred = "n/a"
            if k.size:
                ts, gn = cols["trace_sigma"][k[0]], max(cols["grad_norm2"][k[0]], 0.0)
                pred = f"{b['u2_theory'] * (ts + gn * b['u2_theory']) / (ts + gn):.4f}"
            lines.append(f"| {b['lr']:g} | {b['wd']:g} | {b['lr'] * b['wd']:.3g} | "
                         f"{b['u2_over_d']:.4f} | {pred} | {b['C']:.2f} | {b['C_exact']:.2f} | "
                         f"{b['r2'] / b['r2_theory']:.3f} | {b['r2_balance'] / b['r2']:.4f} |")
    pairs = matched_pairs(cols)
    if pairs:
        lines += ["", "### Heavy ball = SGD with eta / (1-beta)?", "",
                  "Heavy ball at (lr, wd) against plain SGD at (lr / (1-beta), wd), the same "
                  "long-time step: the theory predicts the same stationary state. Ratios "
                  "momentum / SGD (entropy: difference in nats, d = "
                  f"{int(cols['dim'][0])}) over the pairs where both runs are stationary.", "",
                  "| lr (momentum) | wd | radius | T | sigma^2 | energy U | S difference | "
                  "S_dir difference |", "|---|---|---|---|---|---|---|---|"]
        for q in pairs:
            lines.append(f"| {q['lr']:.3g} | {q['wd']:.3g} | {q['radius']:.4f} | "
                         f"{q['temperature']:.4f} | {q['sigma2']:.4f} | {q['energy']:.4f} | "
                         f"{q['entropy_diff']:+.1f} | {q['entropy_dir_diff']:+.1f} |")
    bal = (json.loads((out / "adamw_balance.json").read_text())
           if (out / "adamw_balance.json").is_file() else None)
    lines += ["", "### Summary: what holds, what fails, why", "", *summary(cols, a, pairs, bal)]
    lines += ["", f"Figures: `{nn}/lr-*-nn-*.png` per optimizer group; the full report is "
              f"`{out}/report.html`.", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/cpu-optimizers"))
    ap.add_argument("--doc", type=Path, default=Path("docs/results.md"))
    ap.add_argument("--no-run", action="store_true", help="only rewrite the doc section")
    ap.add_argument("--refresh", action="store_true",
                    help="with --no-run: rebuild the runs' stationary documents from their "
                         "checkpoints with the current predictions, then analyze and report")
    ap.add_argument("--balance", action="store_true",
                    help="with --no-run: (re)measure the AdamW balance terms (one config each)")
    a = ap.parse_args()
    timing = None
    if not a.no_run:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        reproduce(PRESET, a.out, keep_checkpoints=True)  # --refresh rebuilds from them
        timing = {"wall_seconds": time.perf_counter() - t0, "cpu_seconds": _cpu_seconds() - c0}
        (a.out / "timing.json").write_text(json.dumps(timing))
    elif (a.out / "timing.json").is_file():
        timing = json.loads((a.out / "timing.json").read_text())
    if a.no_run and a.refresh:
        refresh(a.out)
    if not a.no_run or a.balance:
        bal = [adamw_balance(lr, wd) for lr, wd in BALANCE_POINTS]
        (a.out / "adamw_balance.json").write_text(json.dumps(bal, indent=1))
    new = section(a.out, timing)
    write_section(a.doc, START, END, new)
    print(new)


if __name__ == "__main__":
    main()
