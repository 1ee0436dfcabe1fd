"""Sweeps of the package's run kinds: load a spec, adjust it, execute it, collect its table.

`thermosgd.sweep` is generic (it knows no run kind); this module passes it the package's
runners (`thermosgd.workflows.runners.RUNNERS`: ``train`` and ``isotropic``):

* `sweep_spec`: read a sweep config (JSON / YAML), with executor settings replaced;
* `override_train_spec`: a train sweep with the mlp variants as a grid axis, the optimizer,
  its momentum as a grid axis or beta2 replaced;
* `run_sweep`: execute every unfinished run (`thermosgd.sweep.execute`), then write
  ``results.csv`` / ``results.parquet`` (`thermosgd.sweep.collect`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from thermosgd.sweep import SweepSpec, collect, execute, load_spec
from thermosgd.workflows.runners import RUNNERS

__all__ = ["override_train_spec", "run_sweep", "sweep_spec"]


def _grids(spec: SweepSpec) -> list[dict]:
    return list(spec.grid) if isinstance(spec.grid, list | tuple) else [spec.grid]


def override_train_spec(spec: SweepSpec, *, variant: Sequence[str] | None = None,
                        optimizer: str | None = None, momentum: Sequence[float] | None = None,
                        beta2: float | None = None,
                        keep_checkpoints: bool | None = None) -> SweepSpec:
    """A train sweep with the given settings replacing the config's, wherever the config has
    them (its base or its grids): ``variant`` and ``momentum`` become grid axes of every grid,
    ``optimizer``, ``beta2`` and ``keep_checkpoints`` shared settings; None (or empty) leaves
    a setting as it is."""
    if spec.kind != "train":
        raise ValueError(f"kind == {spec.kind!r}, must be 'train' to set the variant, "
                         "optimizer, momentum, beta2 or keep_checkpoints")
    if keep_checkpoints is not None:
        spec = dataclasses.replace(
            spec, base={**spec.base, "keep_checkpoints": bool(keep_checkpoints)},
            grid=[{k: v for k, v in g.items() if k != "keep_checkpoints"}
                  for g in _grids(spec)])
    if variant:
        spec = dataclasses.replace(
            spec, base={k: v for k, v in spec.base.items() if k != "variant"},
            grid=[{**g, "variant": list(variant)} for g in _grids(spec)])
    if optimizer or momentum or beta2 is not None:
        given = {"optimizer": optimizer, "beta2": beta2,
                 "momentum": list(momentum) if momentum else None}
        given = {k: v for k, v in given.items() if v is not None}
        base = {k: v for k, v in spec.base.items() if k not in given}
        grids = [{k: v for k, v in g.items() if k not in given} for g in _grids(spec)]
        base.update({k: v for k, v in given.items() if k != "momentum"})
        if "momentum" in given:  # a grid axis
            grids = [{**g, "momentum": given["momentum"]} for g in grids]
        spec = dataclasses.replace(spec, base=base, grid=grids)
    return spec


def sweep_spec(path: str | os.PathLike, *, executor: str | None = None,
               workers: int | None = None, ray_address: str | None = None,
               cpus_per_task: float | None = None,
               gpus_per_task: float | None = None) -> SweepSpec:
    """The sweep config at ``path`` (JSON or YAML; its kind one of `RUNNERS`), the executor
    settings that are not None replacing its own (`thermosgd.sweep.load_spec`)."""
    return load_spec(path, runners=RUNNERS, executor=executor, workers=workers,
                     ray_address=ray_address, cpus_per_task=cpus_per_task,
                     gpus_per_task=gpus_per_task)


def run_sweep(spec: SweepSpec, sweep_dir: str | os.PathLike, *, retry_failed: bool = False,
              progress: bool | None = None) -> dict[str, int]:
    """Execute every unfinished run of ``spec`` into ``sweep_dir`` with the package's runners
    (finished runs are kept, interrupted ones resume, failed ones rerun only with
    ``retry_failed``), then collect ``results.csv`` (and ``results.parquet``). Returns the
    count of runs per final state."""
    counts = execute(spec, sweep_dir, retry_failed=retry_failed, progress=progress,
                     runners=RUNNERS)
    collect(sweep_dir)
    return counts
