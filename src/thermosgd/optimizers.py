# transition shim (issue 14): removed in the final import pass
"""Transition shim: the closed forms of heavy ball and AdamW live in `thermosgd.theory.momentum`
and `thermosgd.theory.adamw`; one prediction for any optimizer is `thermosgd.theory.predict`
(and `thermosgd.theory.maxwell_relation`).

The fixed-LR ``lr_*`` functions below are kept, vectorized as before, for the callers that
still import them: each looks its optimizer up in a table of closed forms (no optimizer
branches). SGD's entries are the plain-SGD closed forms of `thermosgd.theory.sgd` (the same
numbers as heavy ball at beta = 0).
"""

from __future__ import annotations

from thermosgd._validate import positive_array
from thermosgd.spec import OPTIMIZERS, check_optimizer
from thermosgd.theory import adamw as _aw
from thermosgd.theory import momentum as _hb
from thermosgd.theory import sgd as _sgd
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
from thermosgd.theory.sgd import _dim, _out

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


def _needs_momentum(optimizer: str, momentum) -> float:
    if momentum is None:
        raise ValueError(f"momentum == None, must be given: optimizer {optimizer!r} needs "
                         "momentum (heavy-ball beta / beta1)")
    return momentum


def _sgd_radius_sde(lr, wd, sigma2, dim, momentum):
    return _sgd.radius_sde("lr", sigma2=sigma2, dim=dim, lr=lr, wd=wd)


def _adamw_radius_sde(lr, wd, sigma2, dim, momentum):
    positive_array("sigma2", sigma2)
    return _aw.adamw_radius(lr, wd, dim)


_RADIUS_SDE = {
    "sgd": _sgd_radius_sde,
    "momentum": lambda lr, wd, sigma2, dim, m: _hb.momentum_radius(
        lr, wd, _needs_momentum("momentum", m), sigma2, dim),
    "adamw": _adamw_radius_sde,
}
_RADIUS_DISCRETE = {
    "sgd": lambda lr, wd, dim, ts, g2, m: (_dim(dim), _sgd.radius_discrete(
        "lr", trace_sigma=ts, grad_norm2=g2, lr=lr, wd=wd))[1],
    "momentum": lambda lr, wd, dim, ts, g2, m: (_dim(dim), _hb.momentum_radius_discrete(
        lr, wd, _needs_momentum("momentum", m), ts, g2))[1],
    "adamw": lambda lr, wd, dim, ts, g2, m: _aw.adamw_radius_discrete(
        lr, wd, _needs_momentum("adamw", m), dim, ts, g2, exact=True),
}
_RADIUS_POWER = {"sgd": 4, "momentum": _hb.RADIUS_POWER, "adamw": _aw.RADIUS_POWER}
_TEMPERATURE = {
    "sgd": lambda lr, wd, sigma2, dim, m: _sgd.temperature_lr(lr, wd, sigma2, dim),
    "momentum": lambda lr, wd, sigma2, dim, m: _hb.momentum_temperature(
        lr, wd, _needs_momentum("momentum", m), sigma2, dim),
    "adamw": lambda lr, wd, sigma2, dim, m: _aw.adamw_temperature(lr, wd, sigma2, dim),
}
_ELR = {
    "sgd": lambda lr, radius, sigma2, dim, m: _sgd.elr_at_radius(lr, radius),
    "momentum": lambda lr, radius, sigma2, dim, m: _hb.momentum_elr_at_radius(
        lr, radius, _needs_momentum("momentum", m)),
    "adamw": lambda lr, radius, sigma2, dim, m: _aw.adamw_elr_at_radius(lr, radius, sigma2, dim),
}
_PRESSURE = {
    "sgd": lambda wd, radius, sigma2, dim: _out(positive_array("wd", wd)),
    "momentum": lambda wd, radius, sigma2, dim: _out(positive_array("wd", wd)),
    "adamw": _aw.adamw_pressure,
}
_RELAXATION = {
    "sgd": lambda lr, wd, m: _sgd.relaxation_time("lr", lr=lr, wd=wd),
    "momentum": lambda lr, wd, m: _hb.momentum_relaxation_time(
        lr, wd, _needs_momentum("momentum", m)),
    "adamw": lambda lr, wd, m: _aw.adamw_relaxation_time(lr, wd),
}
_MAXWELL = {
    "sgd": lambda dim: _sgd.maxwell_slope("lr", dim),
    "momentum": _hb.momentum_maxwell_slope,
    "adamw": _aw.adamw_maxwell_slope,
}


def lr_radius_sde(optimizer: str, *, lr, wd, sigma2, dim, momentum=None):
    """SDE stationary radius of the fixed-LR protocol under ``optimizer``."""
    return _RADIUS_SDE[check_optimizer(optimizer)](lr, wd, sigma2, dim, momentum)


def lr_radius_discrete(optimizer: str, *, lr, wd, dim, trace_sigma, grad_norm2, momentum=None):
    """Radius with the mean-gradient term (AdamW: all orders in eta lambda)."""
    return _RADIUS_DISCRETE[check_optimizer(optimizer)](lr, wd, dim, trace_sigma, grad_norm2,
                                                        momentum)


def lr_radius_power(optimizer: str) -> int:
    """k with r*^k linear in the noise: 4 (SGD, heavy ball), 2 (AdamW)."""
    return _RADIUS_POWER[check_optimizer(optimizer)]


def lr_temperature(optimizer: str, *, lr, wd, sigma2, dim, momentum=None):
    """Temperature of the fixed-LR protocol under ``optimizer``."""
    return _TEMPERATURE[check_optimizer(optimizer)](lr, wd, sigma2, dim, momentum)


def lr_effective_step(optimizer: str, *, lr, radius, sigma2, dim, momentum=None):
    """Langevin step eta-tilde of the direction on the unit sphere at radius r."""
    return _ELR[check_optimizer(optimizer)](lr, radius, sigma2, dim, momentum)


def lr_pressure(optimizer: str, *, wd, radius, sigma2, dim):
    """Pressure of the gas law p r^2 = (d-1) T: lambda (coupled WD); AdamW lambda sqrt(s)."""
    return _PRESSURE[check_optimizer(optimizer)](wd, radius, sigma2, dim)


def lr_relaxation_time(optimizer: str, *, lr, wd, momentum=None):
    """Radius relaxation time in steps under ``optimizer``."""
    return _RELAXATION[check_optimizer(optimizer)](lr, wd, momentum)


def lr_maxwell_slope(optimizer: str, dim):
    """dS/dlog(eta) - dS/dlog(lambda) of the fixed-LR protocol: (d-1)/2; AdamW d-1."""
    return _MAXWELL[check_optimizer(optimizer)](dim)
