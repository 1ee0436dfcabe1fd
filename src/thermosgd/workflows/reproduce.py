"""Reproduce the paper: a preset (`thermosgd.workflows.presets`) end to end in one call.

`reproduce` runs the preset's isotropic-model studies, its network sweep, the analysis and the
HTML report (`thermosgd reproduce --preset NAME`); `run_isotropic_preset` runs only the
isotropic studies of an isotropic preset (`thermosgd isotropic --preset NAME`).

Layout of the output directory of `reproduce`::

    OUT/isotropic/<protocol>/   isotropic-model studies (results.csv, summary.json, figures)
    OUT/nn/                     the network sweep (runs/, results.csv/.parquet, analysis.json,
                                figures)
    OUT/report.html             everything above in one self-contained page

Every step resumes: finished isotropic studies and finished runs are not redone.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from thermosgd.nn.data import Dataset
from thermosgd.sim.isotropic import IsotropicConfig
from thermosgd.sweep import SweepSpec, expand
from thermosgd.train import TrainConfig
from thermosgd.train.nets import load_data
from thermosgd.train.run import check_fit
from thermosgd.workflows.analyze import format_analysis, run_analysis, write_report
from thermosgd.workflows.isotropic import run_study
from thermosgd.workflows.presets import PRESETS, isotropic_configs, nn_spec
from thermosgd.workflows.runners import RUNNERS, TRAIN_OPTIONS
from thermosgd.workflows.sweep import run_sweep

__all__ = ["reproduce", "run_isotropic_preset"]


def run_isotropic_preset(name: str, out_dir: str | os.PathLike, *, figures: bool = True,
                         progress: bool | None = None, entropy_method: str = "chord",
                         log: Callable[[dict, Path], object] | None = None,
                         **overrides) -> list[dict]:
    """Run the three studies of the isotropic preset ``name`` (`isotropic_configs`, with the
    ``overrides`` that are not None) into ``out_dir/<protocol>/`` (`run_study`), in the order
    elr, lr, sphere, calling ``log(summary, directory)`` after each; returns the summaries."""
    summaries = []
    for c in isotropic_configs(name, **overrides):
        out = Path(out_dir) / c.protocol
        summary = run_study(c, out, figures=figures, progress=progress,
                            entropy_method=entropy_method)
        if log is not None:
            log(summary, out)
        summaries.append(summary)
    return summaries


def reproduce(name: str, out_dir: str | os.PathLike, *, data_dir: str | None = None,
              executor: str = "local", workers: int = 1, ray_address: str | None = None,
              progress: bool | None = None, log: Callable[[str], object] = print,
              keep_checkpoints: bool = False, steps: int | None = None,
              grid_values: int | None = None, settings: Mapping[str, Any] | None = None
              ) -> Path:
    """Run a preset end to end (isotropic study, network sweep, analysis, report); resumable.
    A finished network run's checkpoint.pt is removed unless ``keep_checkpoints``. Returns
    the path of the report.

    ``steps``, ``grid_values`` and ``settings`` run the network sweep at another size (see
    `thermosgd.workflows.presets.nn_spec`; the preset itself is unchanged). With the local
    executor the data of every run are loaded and every architecture's forward pass is
    checked (`thermosgd.train.run.check_fit`) before anything runs, so a missing or wrong
    ``data_dir`` or a model that does not fit its data is one ValueError line."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    out = Path(out_dir)
    p = PRESETS[name]
    spec = nn_spec(name, data_dir=data_dir, executor=executor, workers=workers,
                   ray_address=ray_address, steps=steps, grid_values=grid_values,
                   settings=settings)
    if executor == "local":  # a Ray cluster's workers may see other files than this machine
        _preflight(name, spec)
    if keep_checkpoints:  # a run option: rerunning without it does not redo anything
        spec = dataclasses.replace(spec, base={**spec.base, "keep_checkpoints": True})
    if p.isotropic:
        for c in isotropic_configs(p.isotropic):
            d = out / "isotropic" / c.protocol
            if _study_done(d, c):
                log(f"isotropic {c.protocol}: already done ({d})")
                continue
            s = run_study(c, d, progress=progress)
            log(f"isotropic {c.protocol}: stationary {s['stationary_points']}/"
                f"{s['grid_points']}, {s['simulation_seconds']:.0f} s")
    nn = out / "nn"
    counts = run_sweep(spec, nn, progress=progress)
    log("network runs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    result = run_analysis(nn, strict=False)
    log(format_analysis(result))
    report = write_report(out, out / "report.html", title=f"thermosgd reproduce --preset {name}")
    log(f"report: {report}")
    return report


def _preflight(name: str, spec: SweepSpec) -> None:
    """Load the data of every distinct data set of ``spec`` and check each architecture's
    forward pass on it (`check_fit`); a problem is one ValueError line naming the preset."""
    data: dict[tuple, Dataset] = {}
    seen = set()
    for _, config in expand(spec, RUNNERS):
        c = TrainConfig(**{k: v for k, v in config.items() if k not in TRAIN_OPTIONS})
        dkey = (c.data, c.data_dir, c.label_noise, c.test_fraction, c.data_seed, c.model)
        akey = (*dkey, c.model_width, c.hidden, c.variant)
        if akey in seen:
            continue
        seen.add(akey)
        try:
            if dkey not in data:
                data[dkey] = load_data(c)
            check_fit(c, data[dkey])
        except ValueError as e:
            raise ValueError(f"preset {name!r}: {e}") from None


def _study_done(d: Path, c: IsotropicConfig) -> bool:
    """Whether ``d`` holds a finished study of exactly the config ``c``."""
    try:
        return json.loads((d / "config.json").read_text()) == json.loads(
            json.dumps(dataclasses.asdict(c))) and (d / "summary.json").is_file()
    except (OSError, ValueError):
        return False
