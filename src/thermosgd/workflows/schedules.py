"""Schedule workflows: write a tracked run or a prediction check into a run directory.

`write_track` writes a `thermosgd.schedules.track` / `follow` result (records.csv,
probes.csv, PNG figures, schedule.json); `write_validation` writes
`thermosgd.schedules.validate_predictions` results (prediction.json, prediction.png). The
report (`thermosgd.workflows.analyze.find_sections`) finds these directories by their JSON document.
The file names and JSON keys are those the report and earlier runs use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thermosgd.io import write_csv, write_json

__all__ = ["write_track", "write_validation"]

#: the top-level keys of a track result that go into schedule.json
_TRACK_KEYS = ("config", "protocol", "dim", "exact", "angular_rate", "noise", "summary")
#: the keys of a validation that go into prediction.json (besides its per-run rows)
_VALIDATION_KEYS = ("label", "protocol", "n", "n_extrapolated", "n_unreachable", "radius",
                    "temperature", "radius_inside", "temperature_inside", "noise")


def write_track(result: dict[str, Any], out_dir: str | os.PathLike, *,
                figures: bool = True) -> dict[str, Any]:
    """Write a `thermosgd.schedules.track` result into ``out_dir``: records.csv (one row per
    logged step), probes.csv (one row per noise probe), PNG figures
    (`thermosgd.viz.plots.schedule_figures`) and schedule.json (config, noise curve, summary,
    file names; the report finds the directory by it). Returns the JSON document."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "records.csv", result["records"])
    write_csv(out / "probes.csv", result["probes"])
    names: list[str] = []
    if figures:
        from thermosgd.viz.plots import schedule_figures  # matplotlib

        names = [p.name for p in schedule_figures(result, out)]
    doc = {k: result.get(k) for k in _TRACK_KEYS}
    doc["files"] = ["records.csv", "probes.csv"]
    doc["figures"] = names
    write_json(out / "schedule.json", doc)
    return doc


def write_validation(validations: Sequence[dict[str, Any]], out_dir: str | os.PathLike, *,
                     figures: bool = True) -> dict[str, Any]:
    """Write `thermosgd.schedules.validate_predictions` results (each with a ``label`` and
    its ``noise`` curve dict) into ``out_dir``: prediction.json (summaries and per-run rows;
    the report finds the directory by it) and prediction.png
    (`thermosgd.viz.plots.prediction_figure`). Returns the JSON document."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"validations": [{**{k: v.get(k) for k in _VALIDATION_KEYS},
                            "rows": {k: np.asarray(a).tolist() for k, a in v["rows"].items()}}
                           for v in validations], "figures": []}
    if figures:
        from thermosgd.viz.plots import prediction_figure  # matplotlib

        doc["figures"] = [prediction_figure(list(validations), out / "prediction.png").name]
    write_json(out / "prediction.json", doc)
    return doc
