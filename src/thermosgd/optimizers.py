# transition shim (issue 14): removed in the final import pass
"""Transition shim: the closed forms of heavy ball and AdamW live in `thermosgd.theory.momentum`
and `thermosgd.theory.adamw`; one prediction for any optimizer is `thermosgd.theory.predict`.

The fixed-LR dispatchers ``lr_*`` below are kept for the callers that still import them.
"""

from __future__ import annotations

import numpy as np

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
    _beta,
    momentum_angular_update,
    momentum_effective_lr,
    momentum_noise_factor,
    momentum_radius,
    momentum_radius_discrete,
    momentum_relaxation_time,
    momentum_temperature,
)
from thermosgd.theory.sgd import _dim, _out, _positive

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

# ----------------------------------------------------------------------------- dispatch
# The fixed-LR protocol under each optimizer ("sgd" = plain SGD, the paper's "lr" protocol),
# for the network monitor and the analysis.

OPTIMIZERS = ("sgd", "momentum", "adamw")


def _optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    return name


def _momentum(optimizer: str, momentum) -> float:
    if optimizer == "sgd":
        return 0.0
    if momentum is None:
        raise ValueError(f"optimizer {optimizer!r} needs momentum (heavy-ball beta / beta1)")
    return float(_beta("momentum", momentum))


def lr_radius_sde(optimizer: str, *, lr, wd, sigma2, dim, momentum=None):
    """SDE stationary radius of the fixed-LR protocol under ``optimizer``: SGD r*^4 = eta (d-1)
    sigma2 / (2 lambda); heavy ball the same with eta / (1-beta) (`momentum_radius`); AdamW
    r*^2 = eta d / (2 lambda) (`adamw_radius`, independent of sigma2 and the betas)."""
    _optimizer(optimizer)
    if optimizer == "adamw":
        _positive("sigma2", sigma2)
        return adamw_radius(lr, wd, dim)
    return momentum_radius(lr, wd, _momentum(optimizer, momentum), sigma2, dim)


def lr_radius_discrete(optimizer: str, *, lr, wd, dim, trace_sigma, grad_norm2, momentum=None):
    """Radius with the mean-gradient term: SGD r*^4 = eta (trace_sigma + grad_norm2) /
    (2 lambda) (the paper's "discr."); `momentum_radius_discrete`; AdamW
    `adamw_radius_discrete` with ``exact=True`` (all orders in eta lambda: the decoupled decay
    weakens the momentum correlation, a large effect at b1 = 0.9)."""
    _optimizer(optimizer)
    b = _momentum(optimizer, momentum)
    if optimizer == "adamw":
        return adamw_radius_discrete(lr, wd, b, dim, trace_sigma, grad_norm2, exact=True)
    _dim(dim)
    return momentum_radius_discrete(lr, wd, b, trace_sigma, grad_norm2)


def lr_radius_power(optimizer: str) -> int:
    """k with r*^k linear in the noise: 4 (SGD, heavy ball), 2 (AdamW; the relative standard
    error of r* is that of the noise over k)."""
    return 2 if _optimizer(optimizer) == "adamw" else 4


def lr_temperature(optimizer: str, *, lr, wd, sigma2, dim, momentum=None):
    """Temperature of the fixed-LR protocol: SGD sqrt(eta lambda sigma2 / (2 (d-1))); heavy
    ball the same with eta / (1-beta) (`momentum_temperature`); AdamW the same expression as
    SGD (`adamw_temperature`, equal second moments assumed)."""
    _optimizer(optimizer)
    if optimizer == "adamw":
        return adamw_temperature(lr, wd, sigma2, dim)
    return momentum_temperature(lr, wd, _momentum(optimizer, momentum), sigma2, dim)


def lr_effective_step(optimizer: str, *, lr, radius, sigma2, dim, momentum=None):
    """Langevin step eta-tilde of the direction on the unit sphere at radius r (T = eta-tilde
    sigma2 / 2): SGD eta / r^2; heavy ball eta / ((1-beta) r^2); AdamW eta / (sqrt(s) r^2) with
    the per-coordinate second moment sqrt(s) = sigma sqrt((d-1)/d) / r."""
    _optimizer(optimizer)
    lr = _positive("lr", lr)
    r = _positive("radius", radius)
    if optimizer == "adamw":
        sigma2 = _positive("sigma2", sigma2)
        d = _dim(dim)
        return _out(lr / (np.sqrt(sigma2 * (d - 1.0) / d) * r))
    return _out(lr / ((1.0 - _momentum(optimizer, momentum)) * r * r))


def lr_pressure(optimizer: str, *, wd, radius, sigma2, dim):
    """Pressure of the gas law p r^2 = (d-1) T: lambda for SGD and heavy ball (coupled WD);
    AdamW's coupled-equivalent lambda sqrt(s) (`adamw_pressure`)."""
    _optimizer(optimizer)
    if optimizer == "adamw":
        return adamw_pressure(wd, radius, sigma2, dim)
    return _out(_positive("wd", wd))


def lr_relaxation_time(optimizer: str, *, lr, wd, momentum=None):
    """Radius relaxation time in steps: SGD 1 / (4 eta lambda) (of r^4); heavy ball
    (1-beta) / (4 eta lambda); AdamW 1 / (2 eta lambda) (of r^2)."""
    _optimizer(optimizer)
    if optimizer == "adamw":
        return adamw_relaxation_time(lr, wd)
    return momentum_relaxation_time(lr, wd, _momentum(optimizer, momentum))


def lr_maxwell_slope(optimizer: str, dim):
    """dS/dlog(eta) - dS/dlog(lambda) of the fixed-LR protocol (landscape-independent).

    S = S_dir + (d-1) log r. For all three optimizers the direction law depends on (eta,
    lambda) only through eta lambda (SGD: eta-tilde = sqrt(2 eta lambda/((d-1) sigma2)); heavy
    ball: the same with eta / (1-beta); AdamW: eta-tilde = sqrt(2 eta lambda) / (sigma
    sqrt(d-1))), so S_dir cancels in the difference and only the radius counts:
    SGD and heavy ball r^4 ~ eta / lambda give (d-1)/2; AdamW r^2 ~ eta / lambda gives d-1.
    """
    _optimizer(optimizer)
    d = _dim(dim)
    return _out((1.0 if optimizer == "adamw" else 0.5) * (d - 1.0))
