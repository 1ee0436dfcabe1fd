"""The run kinds of a sweep: what one ``train`` or ``isotropic`` run does.

`thermosgd.sweep` knows no run kind; it takes ``runners`` (kind -> `thermosgd.sweep.Runner`).
`RUNNERS` holds the package's two kinds:

* ``train``: one network run, `thermosgd.train.train` of ``TrainConfig(**config)`` into the run
  directory (its record is the stationary document); several configs that agree except in
  their hyperparameters and betas (`BATCHABLE`) train together as one batched grid
  (`thermosgd.train.train_grid`). A config's settings are the options of ``thermosgd train``
  (`TRAIN_KEYS`, underscores; the sweep turns dashes into underscores): the `TrainConfig`
  fields and the run options ``threads`` and ``keep_checkpoints`` (`TRAIN_OPTIONS`, passed to
  `thermosgd.train.train_grid`; they do not change a run's result);
* ``isotropic``: one isotropic-model study (``run_study`` of ``IsotropicConfig(**config)``,
  without figures; its record is the study summary); its settings are the `IsotropicConfig`
  fields (`ISOTROPIC_KEYS`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from thermosgd._validate import check_int
from thermosgd.sim.isotropic import IsotropicConfig
from thermosgd.sweep import Runner
from thermosgd.train import TrainConfig, train, train_grid
from thermosgd.workflows.isotropic import run_study

__all__ = ["BATCHABLE", "ISOTROPIC_KEYS", "RUNNERS", "TRAIN_KEYS", "TRAIN_OPTIONS"]

#: config keys that may differ inside one batched (vectorized) group of train runs
BATCHABLE = ("lr", "elr", "wd", "radius", "momentum", "beta2")

#: the run options of a train config (``thermosgd train --threads``, ``--keep-checkpoints``)
#: and their defaults: how a run executes, not what it computes
TRAIN_OPTIONS = {"threads": 1, "keep_checkpoints": False}

#: the settings of a train config: the TrainConfig fields and the run options
TRAIN_KEYS = (*(f.name for f in dataclasses.fields(TrainConfig)), *TRAIN_OPTIONS)

#: the settings of an isotropic config: the IsotropicConfig fields
ISOTROPIC_KEYS = tuple(f.name for f in dataclasses.fields(IsotropicConfig))


def _train_args(config: dict) -> tuple[TrainConfig, dict]:
    """The TrainConfig of a train config and its run options (`TRAIN_OPTIONS`)."""
    options = {k: config.get(k, v) for k, v in TRAIN_OPTIONS.items()}
    return TrainConfig(**{k: v for k, v in config.items() if k not in TRAIN_OPTIONS}), options


def _run_train(config: dict, run_dir: Path) -> dict:
    c, options = _train_args(config)
    return train(c, run_dir, progress=False, **options)


def _run_train_batch(configs: list[dict], run_dirs: list[Path]) -> list[dict]:
    args = [_train_args(c) for c in configs]
    return train_grid([c for c, _ in args], run_dirs, progress=False, **args[0][1])


def _check_train(config: dict) -> None:
    _, options = _train_args(config)
    check_int("threads", options["threads"], min_val=1)
    if not isinstance(options["keep_checkpoints"], bool):
        raise ValueError(f"keep_checkpoints == {options['keep_checkpoints']!r}, must be true or "
                         "false")


def _run_isotropic(config: dict, run_dir: Path) -> dict:
    return run_study(IsotropicConfig(**config), run_dir, figures=False, progress=False)


def _check_isotropic(config: dict) -> None:
    IsotropicConfig(**config)


#: the package's run kinds (pass to `thermosgd.sweep.execute` as ``runners``)
RUNNERS: dict[str, Runner] = {
    "train": Runner(_run_train, batch=_run_train_batch, batchable=BATCHABLE, check=_check_train,
                    keys=TRAIN_KEYS, options=tuple(TRAIN_OPTIONS)),
    "isotropic": Runner(_run_isotropic, check=_check_isotropic, keys=ISOTROPIC_KEYS),
}
