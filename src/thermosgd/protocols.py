# transition shim (issue 14): removed in the final import pass
"""Moved: the protocol optimizers to `thermosgd.nn.optim`, the batched steps to
`thermosgd.nn.batched`, the registry constants to `thermosgd.spec`."""

from thermosgd.nn.optim import (  # noqa: F401
    BUFFERS,
    DEFAULT_BETA2,
    DEFAULT_EPS,
    DEFAULT_MOMENTUM,
    OPTIMIZERS,
    PROTOCOLS,
    AdamWLR,
    BatchedProtocol,
    FixedELR,
    FixedLR,
    FixedSphere,
    MomentumLR,
    StepStats,
    _batched_radius_sq,
    _check_optimizer,
    _radius_sq,
    adamw_step_,
    batched_step_,
    fixed_elr_step_,
    fixed_lr_step_,
    make_optimizer,
    momentum_step_,
    sphere_pressure,
    sphere_step_,
)
