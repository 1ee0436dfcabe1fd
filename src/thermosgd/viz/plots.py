"""Figures (PNG). Drawing only: every number comes from what the functions are given.

* `isotropic_figures`: an isotropic study (its results table and potential maps);
* `nn_figures`, `optimizer_figures`, `non_si_figure`: a network grid's analysis
  (`thermosgd.analysis.analyze`) and the arrays computed for its figures
  (`thermosgd.analysis.figure_data.figure_arrays`);
* `schedule_figures`, `prediction_figure`: a tracked schedule and predicted stationary states
  (`thermosgd.schedules`).

matplotlib (Agg backend) is imported with this module; of the package only `thermosgd.viz._names`.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from thermosgd.viz._names import optimizer_slug

__all__ = [
    "COLLAPSE_LABEL",
    "LABEL",
    "NN_FIGURES",
    "isotropic_figures",
    "nn_figures",
    "non_si_figure",
    "optimizer_figures",
    "optimizer_slug",
    "prediction_figure",
    "schedule_figures",
]

LABEL = {"lr": r"learning rate $\eta$", "elr": r"effective LR $\tilde\eta$",
         "wd": r"weight decay $\lambda$", "radius": r"radius $r$"}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _grid(table: dict, key: str, shape: tuple[int, int]) -> np.ndarray:
    return np.asarray(table[key], dtype=float).reshape(shape)


def _colors(n: int):
    return plt.cm.viridis(np.linspace(0.0, 1.0, n))


def isotropic_figures(table: dict, config, out_dir: str | os.PathLike,
                      potentials: list[dict]) -> list[Path]:
    """The paper's isotropic-model figures for one protocol: equation of state, U and S_dir vs
    T, entropy vs the second axis, and potential maps. ``table`` is the study's results table
    (`thermosgd.sim.isotropic.stationary_table`), ``config`` its `IsotropicConfig` (uses
    ``grid_shape``, ``axes``, ``protocol``, ``dim``), ``potentials`` one {"target": (i, j),
    "map": (n1, n2) array} per target: G - min G (F - min F per radius) over the grid at the
    target's (T, p), as `thermosgd.analysis.isotropic` computes it. Returns the PNG paths."""
    out = Path(out_dir)
    shape = config.grid_shape
    a, b = config.axes
    xb = _grid(table, "radius_set" if b == "radius" else b, shape)
    stat = _grid(table, "stationary", shape).astype(bool)
    colors = _colors(shape[0])
    rate = _grid(table, a, shape)[:, 0]
    paths = []

    # 1. equation of state: radius vs lambda per rate (lr, elr) or pressure vs r (sphere)
    fig, ax = plt.subplots(figsize=(5.2, 4))
    key = "pressure" if config.protocol == "sphere" else "radius"
    meas, sde, disc = (_grid(table, k, shape) for k in (key, f"{key}_theory", f"{key}_discrete"))
    for i in range(shape[0]):
        ax.plot(xb[i], sde[i], "-", color=colors[i], lw=1)
        ax.plot(xb[i], disc[i], ":", color=colors[i], lw=1)
        ax.plot(xb[i][stat[i]], meas[i][stat[i]], "o", color=colors[i], ms=3.5)
        ax.plot(xb[i][~stat[i]], meas[i][~stat[i]], "x", color=colors[i], ms=4)
    ax.set(xscale="log", yscale="log", xlabel=LABEL[b],
           ylabel="effective weight decay (pressure)" if key == "pressure" else "radius $r$",
           title=f"{config.protocol}: equation of state (d={config.dim})")
    _rate_colorbar(fig, ax, rate, a)
    ax.plot([], [], "k-", lw=1, label="SDE prediction")
    ax.plot([], [], "k:", lw=1, label="discretization-corrected")
    ax.plot([], [], "ko", ms=3.5, label="measured")
    ax.plot([], [], "kx", ms=4, label="not stationary")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / f"{config.protocol}-equation-of-state.png"))

    # 2. U and S_dir vs T against exact vMF and equipartition
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    T = np.asarray(table["temperature"], float)
    order = np.argsort(T)
    ok = np.asarray(table["stationary"], bool)
    for ax, k, name in ((axes[0], "energy", "energy $U$"),
                        (axes[1], "entropy_dir", r"entropy of directions $S_{dir}$")):
        ax.plot(T[order], np.asarray(table[f"{k}_theory"], float)[order], "k-", lw=1,
                label="exact vMF")
        ax.plot(T[order], np.asarray(table[f"{k}_equipartition"], float)[order], "k--", lw=1,
                label="equipartition")
        ax.errorbar(T[ok], np.asarray(table[k], float)[ok],
                    yerr=np.asarray(table[f"{k}_se"], float)[ok], fmt="o", ms=3,
                    color="C0", label="measured")
        ax.set(xscale="log", xlabel="temperature $T$", ylabel=name)
        if k == "energy":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(f"{config.protocol}: energy and entropy vs temperature (d={config.dim})")
    paths.append(_save(fig, out / f"{config.protocol}-energy-entropy.png"))

    # 3. full entropy along the second axis, per rate
    fig, ax = plt.subplots(figsize=(5.2, 4))
    S, St = _grid(table, "entropy", shape), _grid(table, "entropy_theory", shape)
    for i in range(shape[0]):
        ax.plot(xb[i], St[i], "-", color=colors[i], lw=1)
        ax.plot(xb[i][stat[i]], S[i][stat[i]], "o", color=colors[i], ms=3.5)
    ax.set(xscale="log", xlabel=LABEL[b], ylabel="entropy $S$ (nats)",
           title=f"{config.protocol}: entropy (lines: exact vMF + (d-1) log r*)")
    _rate_colorbar(fig, ax, rate, a)
    paths.append(_save(fig, out / f"{config.protocol}-entropy.png"))

    # 4. potential maps
    targets = [tuple(t["target"]) for t in potentials]
    rows = sorted({t[0] for t in targets})
    cols = sorted({t[1] for t in targets})
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.1 * len(cols), 2.8 * len(rows)),
                             squeeze=False)
    for (i, j), t in zip(targets, potentials, strict=True):
        ax = axes[rows.index(i)][cols.index(j)]
        m = np.asarray(t["map"], dtype=float)
        pos = m[m > 0]
        vmin = max(float(np.nanmin(pos)) if pos.size else 1e-8, 1e-12)
        im = ax.imshow(np.where(m > 0, m, np.nan).T, origin="lower", aspect="auto",
                       norm=LogNorm(vmin=vmin, vmax=max(float(np.nanmax(m)), vmin * 10)),
                       cmap="viridis")
        zero = np.argwhere(m == 0)
        ax.plot(zero[:, 0], zero[:, 1], "s", color="white", ms=5, mec="k", label="argmin")
        ax.plot([i], [j], "o", color="red", ms=4, label="target")
        ax.set_title(f"target ({i}, {j})", fontsize=8)
        ax.set_xlabel(f"{a} index", fontsize=7)
        ax.set_ylabel(f"{b} index", fontsize=7)
        fig.colorbar(im, ax=ax)
    axes[0][0].legend(fontsize=6)
    pot = "F - min F (per radius)" if config.protocol == "sphere" else "G - min G"
    fig.suptitle(f"{config.protocol}: {pot} at the target's (T, p)")
    paths.append(_save(fig, out / f"{config.protocol}-potential.png"))
    return paths


def _rate_colorbar(fig, ax, rate: np.ndarray, name: str) -> None:
    lo, hi = float(rate.min()), float(rate.max())
    if lo == hi:  # one value (a small sweep): a colour bar around it
        lo, hi = lo / 2, hi * 2
    sm = plt.cm.ScalarMappable(cmap="viridis", norm=LogNorm(vmin=lo, vmax=hi))
    fig.colorbar(sm, ax=ax, label=LABEL[name])


# ============================================================================================
# Neural-network grids: the figures of the paper's NN section. Every number comes from the
# analysis result (`thermosgd.analysis.analyze`) and the arrays computed for the figures
# (`thermosgd.analysis.figure_data.figure_arrays`); see `nn_figures`.

COLLAPSE_LABEL = {"sigma2": r"noise $\sigma^2$", "energy": "energy $U$ (train loss)",
                  "temperature": "temperature $T$", "entropy_dir": r"entropy $S_{dir}$"}

#: the four figures of one protocol (or optimizer group): <prefix>-nn-<name>.png
NN_FIGURES = ("equation-of-state", "collapse", "entropy", "potential")


def nn_figures(result: dict, arrays: dict, out_dir: str | os.PathLike) -> list[Path]:
    """For every analyzed protocol of ``result`` (`thermosgd.analysis.analyze`) and every
    optimizer group: equation of state, collapse of T, U, sigma2, entropy with its quadratic
    fit and the Maxwell derivative, and potential maps; the generalization and non-SI figures
    when the result has them. ``arrays`` is `thermosgd.analysis.figure_data.figure_arrays` of
    the table and ``result``. PNGs named ``<protocol>-nn-*.png``; returns their paths."""
    out = Path(out_dir)
    paths = []
    if result.get("optimizers"):  # per optimizer group; the paper's figures: plain SGD only
        paths += optimizer_figures(result["optimizers"], arrays["optimizers"], out)
    for proto, res in result["protocols"].items():
        if proto in arrays["protocols"]:
            paths += _protocol_figures(res, arrays["protocols"][proto], out, proto)
    if result.get("generalization"):
        paths.append(_nn_generalization(result["generalization"], arrays["generalization"],
                                        out))
    if result.get("non_si"):
        paths.append(non_si_figure(result["non_si"], out))
    return paths


def _protocol_figures(res: dict, d: dict, out: Path, prefix: str) -> list[Path]:
    """The figures of the parts the analysis has (a small sweep's may lack some); the
    equation of state whenever a run has a measured value (stationary or excluded)."""
    paths = []
    e = d["eos"]
    if np.isfinite(e["measured"]).any() or np.isfinite(e["excluded_measured"]).any():
        paths.append(_nn_equation_of_state(res, d, out / f"{prefix}-nn-equation-of-state.png"))
    if "collapse" in d:
        paths.append(_nn_collapse(res, d, out / f"{prefix}-nn-collapse.png"))
    if "entropy" in d:
        paths.append(_nn_entropy(res, d, out / f"{prefix}-nn-entropy.png"))
    if "potential" in d:
        paths.append(_nn_potential(res, d, out / f"{prefix}-nn-potential.png"))
    return paths


def _name(proto: str, res: dict) -> str:
    """Figure-title name: the protocol, with the optimizer group's label when there is one."""
    return f"{proto}, {res['label']}" if res.get("label") else proto


def optimizer_figures(groups: list[dict], arrays: list, out_dir: str | os.PathLike
                      ) -> list[Path]:
    """The fixed-LR figures (equation of state, collapse, entropy + Maxwell derivative,
    potential) of every analyzed optimizer group of `thermosgd.analysis.analyze_optimizers`
    (``groups``; ``arrays``: `thermosgd.analysis.figure_data.optimizer_figure_arrays`, one
    per group), named ``lr-<optimizer>-nn-*.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for g, d in zip(groups, arrays, strict=True):
        if "error" not in g:
            paths += _protocol_figures(g, d, out, f"lr-{optimizer_slug(g)}")
    return paths


_GEN_LABEL = {"temperature": "temperature $T$", "entropy": "entropy $S$ (nats)",
              "gap_loss": "generalization gap (test - train loss)",
              "eval_test_acc": "test accuracy"}


def _nn_generalization(groups: list[dict], arrays: list[dict], out: Path) -> Path:
    """Generalization gap and test accuracy against T and S, one colour per protocol group,
    Spearman rho [bootstrap interval] of each group in the legend."""
    rho = {(g["protocol"], g["optimizer"], c["x"], c["y"]): c
           for g in groups for c in g["correlations"]}
    fig, axes = plt.subplots(2, 2, figsize=(10, 8), squeeze=False)
    colors = _colors(max(len(arrays), 1))
    for i, yn in enumerate(("gap_loss", "eval_test_acc")):
        for j, xn in enumerate(("temperature", "entropy")):
            ax = axes[i, j]
            for g, col in zip(arrays, colors, strict=True):
                x, y = g["columns"].get(xn), g["columns"].get(yn)
                if x is None or y is None or x.size == 0:
                    continue
                c = rho.get((g["protocol"], g["optimizer"], xn, yn))
                name = g["protocol"] + (f" {g['optimizer']}" if g["optimizer"] else "")
                label = (name if c is None else
                         f"{name}: rho {c['rho']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}]")
                ax.errorbar(x, y, yerr=g["columns"].get(f"{yn}_se"), fmt="o", ms=4, color=col,
                            label=label, capsize=2)
            if xn == "temperature":
                ax.set_xscale("log")
            ax.set_xlabel(_GEN_LABEL[xn])
            ax.set_ylabel(_GEN_LABEL[yn])
            ax.legend(fontsize=7)
    fig.suptitle("stationary state vs generalization (stationary runs; Spearman rho with "
                 "95% bootstrap interval)", fontsize=10)
    fig.tight_layout()
    return _save(fig, out / "generalization.png")


def _levels(values: np.ndarray) -> np.ndarray:
    """The grid line of each point (log value rounded to 1e-6): colours one curve each."""
    return np.round(np.log(values), 6)


def _group_colors(values: np.ndarray):
    levels = np.unique(_levels(values))
    colors = _colors(max(levels.size, 1))
    return levels, {lv: colors[i] for i, lv in enumerate(levels)}


def _nn_equation_of_state(res: dict, d: dict, path: Path) -> Path:
    rate, second, xv, yv = d["rate"], d["second"], d["x"], d["y"]
    e = d["eos"]
    key = e["quantity"]
    meas, sde, disc = e["measured"], e["sde"], e["discrete"]
    levels, color = _group_colors(yv)
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for lv in levels:
        m = np.flatnonzero(_levels(yv) == lv)
        m = m[np.argsort(xv[m])]
        tick = "_" if m.size == 1 else ""  # a lone point: its predictions as ticks
        ax.plot(xv[m], sde[m], "-", color=color[lv], lw=1, marker=tick, ms=9)
        ax.plot(xv[m], disc[m], "--", color=color[lv], lw=1, marker=tick, ms=9)
        ax.plot(xv[m], meas[m], "o", color=color[lv], ms=3.5)
    ex, em = e["excluded_x"], e["excluded_measured"]
    if ex.size:
        ok = np.isfinite(em) & (em > 0) & np.isfinite(ex)
        ax.plot(ex[ok], em[ok], "x", color="0.4", ms=4)
    ax.plot([], [], "k-", lw=1, label="SDE prediction")
    ax.plot([], [], "k--", lw=1, label="discretization-corrected")
    ax.plot([], [], "ko", ms=3.5, label="measured (stationary)")
    if ex.size:
        ax.plot([], [], "x", color="0.4", ms=4, label="excluded (not stationary)")
    r = res.get("equation_of_state")
    title = (f"{_name(d['protocol'], res)}: equation of state, worst error "
             f"{100 * (r['max_rel_error_discrete'] or 0):.1f}% (discr.), "
             f"{100 * (r['max_rel_error_sde'] or 0):.1f}% (SDE)" if r is not None else
             f"{_name(d['protocol'], res)}: measured, no stationary run to compare")
    ax.set(xscale="log", yscale="log", xlabel=LABEL[rate],
           ylabel="effective weight decay (pressure)" if key == "pressure" else "radius $r$",
           title=title)
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)
    if yv.size:
        _rate_colorbar(fig, ax, yv, second)
    return _save(fig, path)


def _nn_collapse(res: dict, d: dict, path: Path) -> Path:
    second, yv = d["second"], d["y"]
    c = d["collapse"]
    cname, cval = c["variable"], c["values"]
    levels, color = _group_colors(yv)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
    fig.subplots_adjust(wspace=0.4)
    for ax, (q, v) in zip(axes, c["quantities"].items(), strict=True):
        for lv in levels:
            m = np.flatnonzero(_levels(yv) == lv)
            m = m[np.argsort(cval[m])]
            ax.plot(cval[m], v[m], "o-", color=color[lv], ms=3, lw=0.8)
        r = res["collapse"]["quantities"].get(q, {}).get("ratio")
        wide = bool(np.all(v > 0) and v.max() > 10 * v.min())  # log scale over > 1 decade
        ax.set(xscale="log", yscale="log" if wide else "linear",
               xlabel=r"$\eta\lambda$" if cname == "lr*wd" else LABEL["elr"],
               ylabel=COLLAPSE_LABEL[q],
               title=f"collapse ratio {r:.3f}" if r is not None else "collapse ratio n/a")
        ax.title.set_fontsize(8)
    _rate_colorbar(fig, axes[-1], yv, second)
    fig.suptitle(f"{_name(d['protocol'], res)}: T, U, sigma^2 against {cname} (curves: one per "
                 f"{second})")
    return _save(fig, path)


_MAXWELL_LABEL = {"elr": r"$\partial_{\log\lambda}S/\frac{d-1}{2}$",
                  "sphere": r"$\partial_{\log r}S/(d-1)$"}


def _nn_entropy(res: dict, d: dict, path: Path) -> Path:
    proto, rate, second, xv, yv = d["protocol"], d["rate"], d["second"], d["x"], d["y"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    fig.subplots_adjust(wspace=0.45)
    # S vs rate, one curve per second-axis value; and S vs second axis, one per rate
    for ax, (along, gv, gname, xname) in zip(
            axes[:2], (("rate", yv, second, rate), ("second", xv, rate, second)), strict=True):
        curves = d["entropy"][along]
        colors = _colors(max(len(curves), 1))
        for c, col in zip(curves, colors, strict=False):
            ax.plot(c["x"], c["entropy"], "o", color=col, ms=3.5)
            ax.plot(c["fit_x"], c["fit"], "--", color=col, lw=1)
        ax.set(xscale="log", xlabel=LABEL[xname], ylabel="entropy $S$ (nats)")
        _rate_colorbar(fig, ax, gv, gname)
    axes[0].set_title(f"quadratic fit (dashed), $R^2$ = {res['entropy_fit']['r2']:.4f}",
                      fontsize=8)
    # the Maxwell derivative on the grid, normalized
    m = res["maxwell"]
    ax = axes[2]
    curves = d["maxwell"]["curves"]
    for c, col in zip(curves, _colors(max(len(curves), 1)), strict=False):
        ax.plot(c["x"], c["value"], "o-", color=col, ms=3, lw=0.8)
    ax.axhline(d["maxwell"]["target"], color="k", lw=1, ls=":", label="Maxwell relation")
    lr_label = (r"$(\partial_{\log\eta}S-\partial_{\log\lambda}S)/\frac{d-1}{2}$"
                if res.get("optimizer") != "adamw"
                else r"$(\partial_{\log\eta}S-\partial_{\log\lambda}S)/(d-1)$")
    ax.set(xscale="log", xlabel=LABEL[rate],
           ylabel=lr_label if proto == "lr" else _MAXWELL_LABEL[proto],
           title=f"max rel. error {100 * m['max_rel_error']:.1f}%")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)
    _rate_colorbar(fig, ax, yv, second)
    fig.suptitle(f"{_name(proto, res)}: entropy and the Maxwell relation {m['relation']} "
                 f"(d={res['dim']})")
    return _save(fig, path)


def _cell_ticks(ax, axis: str, values: np.ndarray) -> None:
    """Label grid-cell coordinates with (at most ~6 of) their hyperparameter values."""
    levels = np.unique(_levels(values))
    step = max(1, -(-levels.size // (4 if axis == "x" else 6)))
    idx = np.arange(0, levels.size, step)
    labels = [f"{np.exp(levels[k]):.2g}" for k in idx]
    if axis == "x":
        ax.set_xticks(idx, labels, fontsize=7)
    else:
        ax.set_yticks(idx, labels, fontsize=7)


def _nn_potential(res: dict, d: dict, path: Path) -> Path:
    """One panel per target: the map of `thermosgd.analysis.thermo.potential_map` (scaled by
    its maximum for the colours), the argmin the analysis reports and the target."""
    proto, rate, second = d["protocol"], d["rate"], d["second"]
    cells = d["potential"]["cells"]
    maps = d["potential"]["maps"]
    n = len(maps)
    ncol = min(n, 3)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol + 0.8, 2.9 * nrow), squeeze=False,
                             sharex=True, sharey=True)
    norm = LogNorm(vmin=1e-4, vmax=1.0)
    sc = None
    for ax, t in zip(axes.ravel(), maps, strict=False):
        pot = t["map"]
        top = float(np.nanmax(pot))
        rel = np.clip(pot / top if top > 0 else pot, 1e-4, 1.0)
        sc = ax.scatter(cells[:, 0], cells[:, 1], c=rel, s=24, marker="s", cmap="viridis",
                        norm=norm)
        ax.plot(*cells[t["argmin"]], "s", color="white", mec="k", ms=8, label="argmin")
        ax.plot(*cells[t["target"]], "o", color="red", ms=4, label="target")
        ax.set_title(f"target cell {t['target_cell']}, distance {t['distance']}", fontsize=7)
    _cell_ticks(axes[0][0], "x", d["x"])
    _cell_ticks(axes[0][0], "y", d["y"])
    for ax in axes.ravel():
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(LABEL[rate], fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(LABEL[second], fontsize=8)
    axes[0][0].legend(fontsize=6)
    name = "F - min F (per radius)" if proto == "sphere" else "G - min G"
    fig.colorbar(sc, ax=axes.ravel().tolist(), label=f"({name}) / its maximum")
    fig.suptitle(f"{_name(proto, res)}: {name} over the measured states at the target's "
                 "(T, p)")
    return _save(fig, path)


# ============================================================================================
# Scheduled runs and predictions (thermosgd.schedules). Every number comes from the result.


def schedule_figures(result: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Figures of a tracked scheduled run (`thermosgd.schedules.track`): volume and
    temperature against the step (measured, equilibrium curve, lagged path), and the (T, V)
    trajectory. PNGs ``schedule-volume.png``, ``schedule-temperature.png``,
    ``schedule-tv.png``; returns their paths."""
    rec, prb = result["records"], result["probes"]
    out = Path(out_dir)
    step = np.asarray(rec["step"])

    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1.3]})
    ax.plot(step, rec["volume"], ".", ms=2, color="0.35", label="measured V = r$^2$/2")
    ax.plot(step, rec["volume_eq"], "-", color="C0", lw=1.5, label="equilibrium V$_{eq}$",
            drawstyle="steps-post")
    ax.plot(step, rec["volume_lag"], "--", color="C3", lw=1.5,
            label="lagged path (radial map, Q(u) of the noise curve)")
    if "volume_lag_q" in rec:
        ax.plot(step, rec["volume_lag_q"], ":", color="C2", lw=1.5,
                label="radial map driven by the measured Q")
    if "volume_lag_angular" in rec:
        ax.plot(step, rec["volume_lag_angular"], "-.", color="C4", lw=1.5,
                label=f"lagged path with relaxing noise (h = {result['angular_rate']:.3g})")
    ax.set_ylabel("volume V")
    ax.legend(fontsize=7)
    proto = result["protocol"]
    rate = rec["lr"] if proto == "lr" else rec["elr"]
    ax2.plot(step, rate, "-", color="k", lw=1, drawstyle="steps-post")
    ax2.set_ylabel(LABEL["lr" if proto == "lr" else "elr"], fontsize=8)
    ax3 = ax2.twinx()
    ax3.plot(step, rec["tau"], "-", color="C1", lw=1, drawstyle="steps-post")
    ax3.set_ylabel(r"radial $\tau$ (steps)", color="C1", fontsize=8)
    ax2.set_xlabel("step of the schedule")
    kind = (result.get("config") or {}).get("schedule", "scheduled")
    fig.suptitle(f"{kind} run, protocol {proto}: volume", fontsize=10)
    fig.tight_layout()
    paths = [_save(fig, out / "schedule-volume.png")]

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.errorbar(prb["step"], prb["temperature"], yerr=prb["temperature_se"], fmt="o", ms=3,
                color="0.35", capsize=2, label=r"measured $\tilde\eta\,\sigma^2/2$ (probes)")
    ax.plot(prb["step"], prb["temperature_eq"], "-", color="C0", label="equilibrium T$_{eq}$")
    ax.plot(prb["step"], prb["temperature_lag"], "--", color="C3", label="lagged path")
    if "temperature_lag_angular" in prb:
        ax.plot(prb["step"], prb["temperature_lag_angular"], "-.", color="C4",
                label="lagged path with relaxing noise")
    ax.set_xlabel("step of the schedule")
    ax.set_ylabel("temperature T")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(_save(fig, out / "schedule-temperature.png"))

    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    ax.plot(rec["temperature_eq"], rec["volume_eq"], "-", color="C0", lw=1.5,
            label="equilibrium curve")
    ax.plot(rec["temperature_lag"], rec["volume_lag"], "--", color="C3", lw=1.2,
            label="lagged path")
    if "temperature_lag_angular" in rec:
        ax.plot(rec["temperature_lag_angular"], rec["volume_lag_angular"], "-.", color="C4",
                lw=1.2, label="lagged path with relaxing noise")
    sc = ax.scatter(prb["temperature"], np.asarray(prb["radius"]) ** 2 / 2, c=prb["step"],
                    cmap="viridis", s=14, zorder=3, label="measured (probes)")
    fig.colorbar(sc, ax=ax, label="step")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.set_xlabel("temperature T")
    ax.set_ylabel("volume V")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(_save(fig, out / "schedule-tv.png"))
    return paths


def prediction_figure(validations: list[dict], path: str | os.PathLike) -> Path:
    """Predicted against measured stationary radius and temperature
    (`thermosgd.schedules.validate_predictions` results, one colour each; hollow markers:
    extrapolated beyond the fitted range of the effective learning rate)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.3))
    for (ax, key), label in zip(zip(axes, ("radius", "temperature"), strict=True),
                                ("radius r", "temperature T"), strict=True):
        lo, hi = np.inf, -np.inf
        for i, v in enumerate(validations):
            rows = v["rows"]
            ext = np.asarray(rows["extrapolated"], dtype=bool)
            x, y = np.asarray(rows[key]), np.asarray(rows[f"{key}_pred"])
            ye = np.asarray(rows[f"{key}_pred_se"])
            name = v.get("label", v["protocol"])
            for m, fill in ((~ext, f"C{i}"), (ext, "none")):
                if m.any():
                    ax.errorbar(x[m], y[m], yerr=ye[m], fmt="o", ms=5, mfc=fill,
                                color=f"C{i}", capsize=2,
                                label=name + (" (extrapolated)" if fill == "none" else ""))
            ok = np.isfinite(y)
            if ok.any():
                lo = min(lo, x[ok].min(), y[ok].min())
                hi = max(hi, x[ok].max(), y[ok].max())
        if np.isfinite(lo):
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        if key == "temperature":
            ax.ticklabel_format(style="sci", scilimits=(0, 0))
        ax.set_xlabel(f"measured {label}")
        ax.set_ylabel(f"predicted {label}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, Path(path))


def non_si_figure(res: dict, out_dir: str | os.PathLike) -> Path:
    """Gas-law and Maxwell errors against the distance from scale invariance, log-log
    (`thermosgd.analysis.analyze_non_si`): left, every stationary run's |EOS error|
    (discretization-corrected: filled; SDE: open) against its distance, one colour per
    variant; right, each variant's Maxwell max relative error (filled) and slope deviation
    (open) against its median distance. Points with a zero distance or error are left out
    (they have no place on a log axis). Writes ``non-si-errors.png``."""
    dist = res["distance"]
    names = list(dict.fromkeys(e["variant"] for e in res["variants"]))
    colors = dict(zip(names, plt.cm.tab10(np.arange(len(names)) % 10), strict=True))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    for v in names:
        pts = [q for q in res["points"] if q["variant"] == v]
        for key, face in (("rel_error_discrete", colors[v]), ("rel_error_sde", "none")):
            xy = np.array([(q["distance"], abs(q[key])) for q in pts
                           if q["distance"] and q[key]], dtype=float).reshape(-1, 2)
            xy = xy[(xy > 0).all(axis=1)]
            a1.scatter(xy[:, 0], xy[:, 1], s=18, facecolors=face, edgecolors=colors[v],
                       label=v if key == "rel_error_discrete" else None)
        for e in (e for e in res["variants"] if e["variant"] == v):
            x = e.get(f"{dist}_median")
            for key, face in (("maxwell_max_rel_error", colors[v]),
                              ("maxwell_slope_deviation", "none")):
                y = e.get(key)
                if x and y and x > 0 and y > 0:
                    a2.scatter([x], [y], s=40, facecolors=face, edgecolors=colors[v],
                               label=v if key == "maxwell_max_rel_error" else None)
    a1.set(xscale="log", yscale="log", xlabel=f"distance from SI ({dist})",
           ylabel="|measured / predicted radius - 1|",
           title="equation of state per run (filled: discretized, open: SDE)")
    a2.set(xscale="log", yscale="log", xlabel=f"median {dist} of the variant",
           ylabel="relative error",
           title="Maxwell relation per variant (filled: max error, open: mean-slope deviation)")
    for ax in (a1, a2):
        ax.title.set_fontsize(8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _save(fig, Path(out_dir) / "non-si-errors.png")

