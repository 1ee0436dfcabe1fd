# transition shim (issue 14): removed in the final import pass
"""Moved: the protocol optimizers to `thermosgd.nn.optim`, the batched steps to
`thermosgd.nn.batched`, the registry constants to `thermosgd.spec`."""

from thermosgd.nn.batched import (
    BUFFERS,
    BatchedProtocol,
    StepStats,
    adamw_step_,
    batched_step_,
    fixed_elr_step_,
    fixed_lr_step_,
    momentum_step_,
    sphere_step_,
)
from thermosgd.nn.optim import (
    AdamWLR,
    FixedELR,
    FixedLR,
    FixedSphere,
    MomentumLR,
    make_optimizer,
    sphere_pressure,
)
from thermosgd.nn.optim import check_optimizer_args as _check_optimizer
from thermosgd.nn.scale_invariance import _batched_radius_sq, _radius_sq
from thermosgd.spec import DEFAULT_BETA2, DEFAULT_EPS, DEFAULT_MOMENTUM, OPTIMIZERS, PROTOCOLS

__all__ = [
    "BUFFERS",
    "DEFAULT_BETA2",
    "DEFAULT_EPS",
    "DEFAULT_MOMENTUM",
    "OPTIMIZERS",
    "PROTOCOLS",
    "AdamWLR",
    "BatchedProtocol",
    "FixedELR",
    "FixedLR",
    "FixedSphere",
    "MomentumLR",
    "StepStats",
    "_batched_radius_sq",
    "_check_optimizer",
    "_radius_sq",
    "adamw_step_",
    "batched_step_",
    "fixed_elr_step_",
    "fixed_lr_step_",
    "make_optimizer",
    "momentum_step_",
    "sphere_pressure",
    "sphere_step_",
]
