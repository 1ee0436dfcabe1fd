"""Figures (PNG) from result tables. Plotting only: every number comes from the table."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

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


def isotropic_figures(table: dict, config, out_dir: str | os.PathLike) -> list[Path]:
    """The paper's isotropic-model figures for one protocol: equation of state, U and S_dir vs
    T, entropy vs the second axis, and potential maps. Returns the written PNG paths."""
    from thermosgd.isotropic import potential_argmin, potential_map

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
    targets = [t["target"] for t in potential_argmin(table, config)]
    rows = sorted({t[0] for t in targets})
    cols = sorted({t[1] for t in targets})
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.1 * len(cols), 2.8 * len(rows)),
                             squeeze=False)
    for (i, j) in targets:
        ax = axes[rows.index(i)][cols.index(j)]
        m = potential_map(table, config, (i, j))
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
    sm = plt.cm.ScalarMappable(cmap="viridis",
                               norm=LogNorm(vmin=rate.min(), vmax=rate.max()))
    fig.colorbar(sm, ax=ax, label=LABEL[name])
