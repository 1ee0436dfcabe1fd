"""Isotropic-model studies on disk: simulate, tabulate, summarize, write, draw.

* `run_study` (SGD, one protocol's grid, `thermosgd.sim.isotropic`): writes ``config.json``,
  ``results.csv`` (`stationary_table`), ``summary.json`` (`thermosgd.analysis.isotropic.summarize`)
  and the figures of `thermosgd.viz.plots.isotropic_figures` (potential maps from
  `thermosgd.analysis.isotropic.potential_maps`);
* `run_momentum_study` (heavy-ball momentum or AdamW on an (lr x wd) grid,
  `thermosgd.sim.momentum`): writes ``config.json`` and ``results.csv``, then analyzes the
  directory like a network sweep (``analysis.json`` and figures).

``thermosgd report`` shows either directory.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from thermosgd.analysis.isotropic import potential_maps, summarize
from thermosgd.io import write_csv, write_json
from thermosgd.sim import isotropic as sim_isotropic
from thermosgd.sim import momentum as sim_momentum
from thermosgd.sim.isotropic import IsotropicConfig
from thermosgd.spec import DEFAULT_BETA2
from thermosgd.workflows.analyze import run_analysis

__all__ = ["run_momentum_study", "run_study"]


def run_study(c: IsotropicConfig, out_dir: str | os.PathLike, figures: bool = True,
              progress: bool | None = None, entropy_method: str = "chord") -> dict:
    """Simulate, measure, summarize; write results.csv, summary.json, config.json, figures.
    Returns the summary (with the figure names under ``figures``)."""
    out = Path(out_dir)
    sim = sim_isotropic.simulate(c, progress=progress)
    table = sim_isotropic.stationary_table(sim, entropy_method=entropy_method)
    summary = summarize(table, c, seconds=sim.seconds)
    write_json(out / "config.json", dataclasses.asdict(c))
    write_csv(out / "results.csv", table)
    write_json(out / "summary.json", summary)
    if figures:
        from thermosgd.viz.plots import isotropic_figures  # matplotlib

        paths = isotropic_figures(table, c, out, potential_maps(table, c))
        summary["figures"] = [p.name for p in paths]
        write_json(out / "summary.json", summary)
    return summary


def run_momentum_study(optimizer: str, out_dir: str | os.PathLike, *, dim: int, lr, wd,
                       beta1: float, beta2: float = DEFAULT_BETA2, sigma: float = 1.0,
                       steps: int, replicas: int = 2, seed: int = 0, queue_size: int = 1000,
                       mu=None, burn_in: int | None = None, figures: bool = True,
                       entropy_method: str = "chord") -> dict:
    """Simulate the (lr x wd) grid, write ``config.json`` and ``results.csv``
    (`thermosgd.sim.momentum.stationary_table`, one ``run`` name per point), then analyze it
    like a network sweep (`thermosgd.workflows.analyze.run_analysis`: equation of state,
    Maxwell relation of this optimizer, collapse, potential) into ``analysis.json`` and
    figures. Returns the analysis result."""
    lrs = np.atleast_1d(np.asarray(lr, dtype=float))
    wds = np.atleast_1d(np.asarray(wd, dtype=float))
    L, W = np.meshgrid(lrs, wds, indexing="ij")
    run = sim_momentum.simulate(
        optimizer, dim=dim, lr=L.ravel(), wd=W.ravel(), beta1=beta1, beta2=beta2, sigma=sigma,
        steps=steps, replicas=replicas, seed=seed, burn_in=burn_in, queue_size=queue_size,
        mu=mu)
    table = sim_momentum.stationary_table(run, entropy_method=entropy_method)
    table["run"] = np.array([f"lr{a:.2e}_wd{b:.2e}" for a, b in zip(run.lr, run.wd,
                                                                      strict=True)], dtype=object)
    out = Path(out_dir)
    write_json(out / "config.json", {
        "model": "isotropic", "optimizer": optimizer, "dim": int(dim), "lr": lrs.tolist(),
        "wd": wds.tolist(), "momentum": float(beta1), "beta2": float(beta2),
        "sigma": float(sigma), "steps": int(steps), "burn_in": run.burn_in,
        "replicas": int(replicas), "seed": int(seed), "queue_size": int(queue_size),
        "mu": "diagonal" if isinstance(mu, str) else ("random" if mu is None else "given"),
        "seconds": run.seconds})
    write_csv(out / "results.csv", table)
    return run_analysis(out, figures=figures, strict=False)
