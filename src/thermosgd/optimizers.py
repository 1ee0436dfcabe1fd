# transition shim (issue 14): removed in the final import pass
"""Transition shim: the closed forms of heavy ball and AdamW live in `thermosgd.theory.momentum`
and `thermosgd.theory.adamw`; one prediction for any optimizer is `thermosgd.theory.predict`
(and `thermosgd.theory.maxwell_relation`).

The fixed-LR ``lr_*`` functions below are kept, vectorized as before, for the callers that
still import them: each reads its optimizer's entry of `thermosgd.theory.fixed_lr_forms` (no
optimizer branches; SGD's entries are the plain-SGD closed forms of `thermosgd.theory.sgd`,
the same numbers as heavy ball at beta = 0).
"""

from __future__ import annotations

from thermosgd.spec import OPTIMIZERS
from thermosgd.theory.adamw import (
    adamw_angular_update,
    adamw_pressure,
    adamw_radius,
    adamw_radius_discrete,
    adamw_radius_ratio_isotropic,
    adamw_relaxation_time,
    adamw_temperature,
    adamw_update_norm2,
)
from thermosgd.theory.momentum import (
    momentum_angular_update,
    momentum_effective_lr,
    momentum_noise_factor,
    momentum_radius,
    momentum_radius_discrete,
    momentum_relaxation_time,
    momentum_temperature,
)
from thermosgd.theory.predict import fixed_lr_forms

__all__ = [
    "OPTIMIZERS",
    "adamw_angular_update",
    "adamw_pressure",
    "adamw_radius",
    "adamw_radius_discrete",
    "adamw_radius_ratio_isotropic",
    "adamw_relaxation_time",
    "adamw_temperature",
    "adamw_update_norm2",
    "lr_effective_step",
    "lr_maxwell_slope",
    "lr_pressure",
    "lr_radius_discrete",
    "lr_radius_power",
    "lr_radius_sde",
    "lr_relaxation_time",
    "lr_temperature",
    "momentum_angular_update",
    "momentum_effective_lr",
    "momentum_noise_factor",
    "momentum_radius",
    "momentum_radius_discrete",
    "momentum_relaxation_time",
    "momentum_temperature",
]


def lr_radius_sde(optimizer: str, *, lr, wd, sigma2, dim, momentum=None):
    """SDE stationary radius of the fixed-LR protocol under ``optimizer``."""
    return fixed_lr_forms(optimizer).radius_sde(lr, wd, sigma2, dim, momentum)


def lr_radius_discrete(optimizer: str, *, lr, wd, dim, trace_sigma, grad_norm2, momentum=None):
    """Radius with the mean-gradient term (AdamW: all orders in eta lambda)."""
    return fixed_lr_forms(optimizer).radius_discrete(lr, wd, dim, trace_sigma, grad_norm2,
                                                     momentum)


def lr_radius_power(optimizer: str) -> int:
    """k with r*^k linear in the noise: 4 (SGD, heavy ball), 2 (AdamW)."""
    return fixed_lr_forms(optimizer).radius_power


def lr_temperature(optimizer: str, *, lr, wd, sigma2, dim, momentum=None):
    """Temperature of the fixed-LR protocol under ``optimizer``."""
    return fixed_lr_forms(optimizer).temperature(lr, wd, sigma2, dim, momentum)


def lr_effective_step(optimizer: str, *, lr, radius, sigma2, dim, momentum=None):
    """Langevin step eta-tilde of the direction on the unit sphere at radius r."""
    return fixed_lr_forms(optimizer).elr_at_radius(lr, radius, sigma2, dim, momentum)


def lr_pressure(optimizer: str, *, wd, radius, sigma2, dim):
    """Pressure of the gas law p r^2 = (d-1) T: lambda (coupled WD); AdamW lambda sqrt(s)."""
    return fixed_lr_forms(optimizer).pressure(wd, radius, sigma2, dim)


def lr_relaxation_time(optimizer: str, *, lr, wd, momentum=None):
    """Radius relaxation time in steps under ``optimizer``."""
    return fixed_lr_forms(optimizer).relaxation_time(lr, wd, momentum)


def lr_maxwell_slope(optimizer: str, dim):
    """dS/dlog(eta) - dS/dlog(lambda) of the fixed-LR protocol: (d-1)/2; AdamW d-1."""
    return fixed_lr_forms(optimizer).maxwell_slope(dim)
