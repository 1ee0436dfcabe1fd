# transition shim (issue 14): removed in the final import pass
"""Moved to the `thermosgd.train` package: `thermosgd.train.config` (TrainConfig, Schedule,
validation, run names), `thermosgd.train.nets` (data, models, network adapters),
`thermosgd.train.engine` (the training loop, checkpoints, per-step hook),
`thermosgd.train.run` (train, train_grid, grid_table)."""

from thermosgd.train.checkpoint import config_diff as _config_diff  # noqa: F401
from thermosgd.train.config import (  # noqa: F401
    DATASETS,
    DEVICES,
    MODELS,
    Schedule,
    TrainConfig,
    run_name,
    validate_config,
)
from thermosgd.train.engine import _training_step  # noqa: F401
from thermosgd.train.nets import build_model, load_data, resolve_device
from thermosgd.train.run import grid_table, train, train_grid

__all__ = [
    "DATASETS",
    "DEVICES",
    "MODELS",
    "Schedule",
    "TrainConfig",
    "build_model",
    "grid_table",
    "load_data",
    "resolve_device",
    "run_name",
    "train",
    "train_grid",
]
