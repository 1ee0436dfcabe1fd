"""A grid of training runs in one directory, and its results table.

* `grid_configs`: the `thermosgd.train.TrainConfig` of every point of an outer product of
  hyperparameter lists (and mlp variants);
* `run_grid`: train them into ``OUT/<run name>/`` (`thermosgd.train.train_grid`: BN-MLP grids
  batched, interrupted runs resumed), then rewrite ``OUT/results.csv`` (`write_grid_table`:
  one row per finished run in OUT, this grid's and earlier ones').
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from thermosgd.io import write_csv
from thermosgd.train import TrainConfig, grid_table, run_name, train_grid

__all__ = ["GRID_AXES", "grid_configs", "run_grid", "write_grid_table"]

#: the hyperparameters a grid may list (outer product in this order, inside the variants)
GRID_AXES = ("lr", "elr", "wd", "radius", "momentum")


def grid_configs(protocol: str, axes: Mapping[str, Sequence[float] | None],
                 variants: Sequence[str] = ("si",), **common: Any) -> list[TrainConfig]:
    """One `TrainConfig` per point of variants x lr x elr x wd x radius x momentum (an axis
    missing, None or empty stays unset), each with ``protocol`` and the ``common`` fields."""
    grid = [axes.get(k) or (None,) for k in GRID_AXES]
    return [TrainConfig(protocol=protocol, **dict(zip(GRID_AXES, point, strict=True)),
                        variant=variant, **common)
            for variant in variants for point in itertools.product(*grid)]


def write_grid_table(out_dir: str | os.PathLike) -> Path | None:
    """Write ``out_dir/results.csv``: one row per run directory of ``out_dir`` holding a
    readable stationary.json (`thermosgd.train.grid_table`), in name order. Returns the
    path, or None (nothing written) when there is no such run."""
    out = Path(out_dir)
    docs = []
    for d in sorted(out.iterdir()):
        f = d / "stationary.json"
        if d.is_dir() and f.is_file():
            try:
                docs.append(json.loads(f.read_text()))
            except ValueError:
                continue
    if not docs:
        return None
    write_csv(out / "results.csv", grid_table(docs))
    return out / "results.csv"


def run_grid(configs: Sequence[TrainConfig], out_dir: str | os.PathLike, *,
             batched: bool = True, progress: bool | None = None, resume: bool = True,
             overwrite: bool = False, threads: int | None = 1,
             keep_checkpoints: bool = False) -> list[tuple[str, dict]]:
    """Train every config into ``out_dir/<run name>/`` (`thermosgd.train.run_name`;
    `thermosgd.train.train_grid` with these options: a finished run's checkpoint.pt is
    removed unless ``keep_checkpoints``), then `write_grid_table`. Returns
    (run name, stationary document) per config. Two configs with one run name raise
    ValueError before anything is written."""
    names = [run_name(c) for c in configs]
    if len(set(names)) != len(names):
        raise ValueError("the grid lists a hyperparameter value twice")
    out = Path(out_dir)
    results = train_grid(configs, [out / n for n in names], batched=batched,
                         progress=progress, resume=resume, overwrite=overwrite,
                         threads=threads, keep_checkpoints=keep_checkpoints)
    write_grid_table(out)
    return list(zip(names, results, strict=True))
