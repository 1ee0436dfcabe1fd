"""Schedules against a sweep's measurements: the chains behind ``thermosgd schedule``.

* `NoiseSource`: where the model's noise curve sigma^2(elr), Q(elr) comes from: a fit to a
  sweep's results table (`thermosgd.analysis.load_table` ->
  `thermosgd.schedules.fit_noise_curve`) or a constant noise;
* `predict_states`: predicted stationary states on a grid of (rate, wd), or recommended
  (rate, wd) for target temperatures / radii (`thermosgd.schedules.predict` / `recommend`),
  as printable columns, optionally written to a CSV;
* `process_states`: the equilibrium path of an isothermal, isobaric or adiabatic process
  (`thermosgd.schedules.equilibrium`);
* `validate_table`: fit on one protocol's stationary runs, predict the other's, both ways
  (`thermosgd.schedules.validate_predictions`), optionally written as prediction.json / .png
  (`thermosgd.workflows.schedules.write_validation`);
* `track_schedule`: a BN-MLP trained under a schedule and compared with its predicted paths
  (`thermosgd.schedules.track`), written as records.csv, probes.csv, schedule.json and
  figures (`thermosgd.workflows.schedules.write_track`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thermosgd import schedules
from thermosgd.analysis import load_table
from thermosgd.io import write_csv
from thermosgd.schedules import NoiseCurve, TrackConfig
from thermosgd.workflows.schedules import write_track, write_validation

__all__ = ["NoiseSource", "predict_states", "process_states", "track_schedule",
           "validate_table"]

#: printed name of a process's equilibrium effective learning rate, as `schedule predict`
#: prints and writes it (``elr`` would collide with the rate column of the elr protocol)
_ELR_COLUMN = "elr_predicted"


@dataclass(frozen=True)
class NoiseSource:
    """The noise curve of a sweep: fitted (log-log polynomials of ``degree``) to the
    stationary runs of ``fit_protocols`` in the results table ``table`` (a file or a
    directory holding one), Q from ``q_column``; without a table, the constant noise
    ``sigma2`` in dimension ``dim`` (`thermosgd.schedules.NoiseCurve.constant`)."""

    table: str | os.PathLike | None = None
    fit_protocols: tuple[str, ...] = ("elr", "lr")
    degree: int = 2
    q_column: str = "trace_total"
    sigma2: float | None = None
    dim: int | None = None

    def curve(self) -> NoiseCurve:
        """The fitted (or constant) `thermosgd.schedules.NoiseCurve`."""
        if self.table is None:
            if self.sigma2 is None or self.dim is None:
                raise ValueError("a constant noise curve needs sigma2 and dim")
            return NoiseCurve.constant(self.sigma2, self.dim)
        return schedules.fit_noise_curve(load_table(self.table), tuple(self.fit_protocols),
                                         degree=self.degree, q_column=self.q_column)


def predict_states(noise: NoiseSource, protocol: str, *, exact: bool = True,
                   out: str | os.PathLike | None = None,
                   **given: Sequence[float]) -> dict[str, Any]:
    """Every combination of the ``given`` lists (keys: the protocol's rate, ``wd``,
    ``target_temperature``, ``target_radius``) under the noise curve of ``noise``: with a
    target, the recommended (rate, wd) (`thermosgd.schedules.recommend`), else the predicted
    stationary state (`thermosgd.schedules.predict`). Returns ``curve`` (the noise curve),
    ``columns`` (`thermosgd.schedules.prediction_columns`; also written to the CSV ``out``
    if given) and, with a target temperature, ``temperature_range`` (the reachable ones,
    `thermosgd.schedules.temperature_range`; else None)."""
    curve = noise.curve()
    grids = np.meshgrid(*given.values(), indexing="ij")
    kw = {k: g.ravel() for k, g in zip(given, grids, strict=True)}
    if "target_temperature" in kw or "target_radius" in kw:
        res = schedules.recommend(curve, protocol, exact=exact, **kw)
    else:
        res = schedules.predict(curve, protocol, exact=exact, **kw)
    cols = schedules.prediction_columns(res, protocol)
    if out:
        write_csv(out, cols)
    reach = schedules.temperature_range(curve) if "target_temperature" in kw else None
    return {"curve": curve, "columns": cols, "temperature_range": reach}


def process_states(kind: str, protocol: str, noise: NoiseSource, *, wd: Sequence[float],
                   rate0: float | None = None, temperature: Sequence[float] | None = None,
                   exact: bool = True) -> dict[str, np.ndarray]:
    """The (rate, wd) path of a ``kind`` process and its equilibrium states under the noise
    curve of ``noise``: "isothermal" and "adiabatic" follow ``wd`` from the starting rate
    ``rate0``; "isobaric" holds ``wd`` (one value) and follows ``temperature``. Columns: the
    rate, wd, temperature, volume, entropy, the equilibrium effective learning rate and the
    relaxation time tau."""
    curve = noise.curve()
    wd = np.asarray(wd)
    if kind == "isobaric":
        if temperature is None or wd.size != 1:
            raise ValueError("isobaric needs temperatures and one wd value")
        proc = schedules.isobaric(protocol, temperature, float(wd[0]), curve, exact=exact)
    elif kind == "isothermal":
        proc = schedules.isothermal(protocol, wd, rate0=rate0)
    else:
        proc = schedules.adiabatic(protocol, wd, rate0=rate0, noise=curve, exact=exact)
    eq = schedules.equilibrium(proc, curve, exact=exact)
    return {protocol: proc.rate, "wd": proc.wd, "temperature": eq["temperature"],
            "volume": eq["volume"], "entropy": eq["entropy"], _ELR_COLUMN: eq["elr"],
            "tau": eq["tau"]}


def validate_table(table: str | os.PathLike, *, degree: int = 2,
                   q_column: str = "trace_total", exact: bool = True,
                   out: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Fit the noise curve on the stationary elr runs of ``table`` and predict the lr runs'
    radius and temperature from their (lr, wd), then the other way round; returns the two
    `thermosgd.schedules.validate_predictions` results, each with its ``label``, the
    ``fit_protocol`` and its ``noise`` curve (a dict), written to ``out``
    (prediction.json, prediction.png) if given."""
    cols = load_table(table)
    done = []
    for fit_on, test in (("elr", "lr"), ("lr", "elr")):
        curve = schedules.fit_noise_curve(cols, (fit_on,), degree=degree, q_column=q_column)
        v = schedules.validate_predictions(curve, cols, test, exact=exact)
        done.append({**v, "label": f"fit {fit_on} -> predict {test}", "fit_protocol": fit_on,
                     "noise": curve.to_dict()})
    if out:
        write_validation(done, out)
    return done


def track_schedule(config: TrackConfig, out_dir: str | os.PathLike, *,
                   noise: NoiseSource | None = None, exact: bool = True,
                   angular_rate: float | None = None, figures: bool = True,
                   threads: int = 1) -> dict[str, Any]:
    """Train and track ``config`` (`thermosgd.schedules.track`, with ``threads`` torch CPU
    threads; ``noise`` None: the noise curve of the run's own probes) and write the result
    into ``out_dir`` (`thermosgd.workflows.schedules.write_track`); returns the result."""
    import torch  # the tracked run trains a network; the rest of this module is numpy

    torch.set_num_threads(threads)
    curve = noise.curve() if noise is not None else None
    result = schedules.track(config, curve, exact=exact, angular_rate=angular_rate)
    write_track(result, out_dir, figures=figures)
    return result
