"""The run kinds of a sweep: what one ``train`` or ``isotropic`` run does.

`thermosgd.sweep` knows no run kind; it takes ``runners`` (kind -> `thermosgd.sweep.Runner`).
`RUNNERS` holds the package's two kinds:

* ``train``: one network run, `thermosgd.train.train` of ``TrainConfig(**config)`` into the run
  directory (its record is the stationary document); several configs that agree except in
  their hyperparameters and betas (`BATCHABLE`) train together as one batched grid
  (`thermosgd.train.train_grid`);
* ``isotropic``: one isotropic-model study (``run_study`` of ``IsotropicConfig(**config)``,
  without figures; its record is the study summary).
"""

from __future__ import annotations

from pathlib import Path

from thermosgd.sim.isotropic import IsotropicConfig
from thermosgd.sweep import Runner
from thermosgd.train import TrainConfig, train, train_grid
from thermosgd.workflows.isotropic import run_study

__all__ = ["BATCHABLE", "RUNNERS"]

#: config keys that may differ inside one batched (vectorized) group of train runs
BATCHABLE = ("lr", "elr", "wd", "radius", "momentum", "beta2")


def _run_train(config: dict, run_dir: Path) -> dict:
    return train(TrainConfig(**config), run_dir, progress=False)


def _run_train_batch(configs: list[dict], run_dirs: list[Path]) -> list[dict]:
    return train_grid([TrainConfig(**c) for c in configs], run_dirs, progress=False)


def _check_train(config: dict) -> None:
    TrainConfig(**config)


def _run_isotropic(config: dict, run_dir: Path) -> dict:
    return run_study(IsotropicConfig(**config), run_dir, figures=False, progress=False)


def _check_isotropic(config: dict) -> None:
    IsotropicConfig(**config)


#: the package's run kinds (pass to `thermosgd.sweep.execute` as ``runners``)
RUNNERS: dict[str, Runner] = {
    "train": Runner(_run_train, batch=_run_train_batch, batchable=BATCHABLE, check=_check_train),
    "isotropic": Runner(_run_isotropic, check=_check_isotropic),
}
