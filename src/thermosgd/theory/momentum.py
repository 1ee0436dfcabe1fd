"""Closed forms of heavy-ball momentum SGD (coupled weight decay) on a scale-invariant group.

Update (PyTorch ``SGD(momentum=beta, weight_decay=lambda)``, g = stochastic gradient, tangent to
w, E||g||^2 = Q / r^2 with Q = trace_sigma + grad_norm2 on the unit sphere):
``v <- beta v + g + lambda w;  w <- w - eta v``.

Main results (leading order in eta lambda, noise-dominated gradients): r*^4 = eta (d-1) sigma2 /
(2 lambda (1-beta)), i.e. plain SGD with eta -> eta / (1-beta) (the momentum correlation factor
is exactly 1); T = sqrt(eta lambda sigma2 / (2 (d-1) (1-beta))); angular update per step
sqrt(2 eta lambda / (1+beta)); to all orders in eta lambda (white noise) r*^4 is larger by
1 / (1 - eta lambda / (2 (1+beta))) (`momentum_finite_step_factor`). Derivations:
``docs/theory.md`` (section "Momentum and AdamW"); the isotropic simulator checks them.

Conventions as in `thermosgd.theory.sgd`: pure, vectorized, float64, a 0-d result is a
``numpy.float64``; bad input raises ``ValueError``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from thermosgd._validate import finite_array, nonnegative_array, positive_array
from thermosgd.theory.sgd import Float, _dim, _out

__all__ = [
    "RADIUS_POWER",
    "momentum_angular_update",
    "momentum_effective_lr",
    "momentum_elr_at_radius",
    "momentum_finite_step_factor",
    "momentum_maxwell_slope",
    "momentum_noise_factor",
    "momentum_radius",
    "momentum_radius_discrete",
    "momentum_relaxation_time",
    "momentum_temperature",
]

#: k with r*^k linear in the noise (the relative standard error of r* is the noise's over k)
RADIUS_POWER = 4


def _beta(name: str, x) -> np.ndarray:
    """A momentum coefficient (a number or an array of them) as float64, each in [0, 1)."""
    arr = finite_array(name, x)
    if not np.all((arr >= 0) & (arr < 1)):
        raise ValueError(f"{name} == {x!r}, must be in [0, 1)")
    return arr


def momentum_effective_lr(lr: ArrayLike, momentum: ArrayLike) -> Float:
    """Long-time step of heavy ball: eta / (1 - beta) (the gain of the AR(1) filter at zero
    frequency; drift and weight decay both act through it)."""
    return _out(positive_array("lr", lr) / (1.0 - _beta("momentum", momentum)))


def momentum_noise_factor(momentum: ArrayLike) -> Float:
    """Per-step variance of the filtered noise relative to its long-time value: E||v||^2 /
    (E||g||^2 / (1-beta)^2) = (1-beta) / (1+beta) (stationary AR(1) variance 1/(1-beta^2))."""
    b = _beta("momentum", momentum)
    return _out((1.0 - b) / (1.0 + b))


def momentum_radius(
    lr: ArrayLike, wd: ArrayLike, momentum: ArrayLike, sigma2: ArrayLike, dim: ArrayLike
) -> Float:
    """SDE stationary radius of heavy ball with coupled WD: r*^4 = eta (d-1) sigma2 /
    (2 lambda (1-beta)).

    One-step balance E||w_{t+1}||^2 = E||w_t||^2: 2 E<w_t, v_{t+1}> = eta E||v_{t+1}||^2, with
    E||v||^2 = G / (1-beta^2) (G = E||g||^2 = (d-1) sigma2 / r^2) and
    E<w_t, v_{t+1}> = lambda r^2 / (1-beta) - eta G beta / ((1-beta)(1-beta^2)) (the momentum
    correlation: w_t has already moved along the noise still held in v). This gives
    2 lambda r^2 = eta G / (1-beta): the correction factor c(beta) is exactly 1. When r
    fluctuates (strong momentum, low d) the balance reads lambda E[r^2] = eta (d-1) sigma2
    E[1/r^2] / (2 (1-beta)): r*^4 predicts E[r^2] / E[1/r^2], not (E r)^4.
    """
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    b = _beta("momentum", momentum)
    sigma2 = positive_array("sigma2", sigma2)
    d = _dim(dim)
    return _out((lr * (d - 1.0) * sigma2 / (2.0 * wd * (1.0 - b))) ** 0.25)


def momentum_finite_step_factor(lr: ArrayLike, wd: ArrayLike, momentum: ArrayLike) -> Float:
    """r*^4 (all orders in eta lambda) / r*^4 (leading order): 1 / (1 - eta lambda / (2 (1+beta)));
    NaN where eta lambda >= 2 (1+beta) (no stationary radius).

    With V_t = w_(t-1) - w_t the update is w_(t+1) = A w_t - beta w_(t-1) - eta g_t,
    A = 1 + beta - eta lambda. For white noise tangent to w_t (E<w_t, g_t> = E<w_(t-1), g_t> = 0)
    the lag-one moment is E<w_(t+1), w_t> = A E r^2 / (1+beta), and the stationary second
    moment solves E r^2 (1-beta) (1+beta-A) (1+beta+A) / (1+beta) = eta^2 E||g||^2, i.e.
    lambda E[r^2] (1 - eta lambda / (2 (1+beta))) = eta (d-1) sigma^2 E[1/r^2] / (2 (1-beta)).
    beta = 0 gives SGD's exact 2 / (2 - eta lambda) (`thermosgd.theory.sgd.radius_discrete`);
    the AR(2) map is stable for eta lambda < 2 (1+beta).
    """
    el = positive_array("lr", lr) * positive_array("wd", wd)
    b = _beta("momentum", momentum)
    den = 1.0 - el / (2.0 * (1.0 + b))
    with np.errstate(divide="ignore", invalid="ignore"):
        return _out(np.where(den > 0, 1.0 / np.where(den > 0, den, 1.0), np.nan))


def momentum_radius_discrete(
    lr: ArrayLike, wd: ArrayLike, momentum: ArrayLike, trace_sigma: ArrayLike,
    grad_norm2: ArrayLike, exact: bool = False
) -> Float:
    """Heavy-ball radius with the mean-gradient (finite step) term:
    r*^4 = eta (trace_sigma + grad_norm2 (1-beta)/(1+beta)) / (2 lambda (1-beta)).

    Exact balance (leading order in eta lambda, g tangent): 2 lambda r^2 = eta (1+beta) E||v||^2
    (v without its weight-decay part), whatever the gradient's time correlations. For a harmonic
    well of curvature h per tangent direction the stationary AR(2) gives E||v||^2 =
    (G / (1-beta^2)) / (1 - eta-tilde_eff h (1-beta) / (2 (1+beta))), and at low temperature
    grad_norm2 / trace_sigma = eta-tilde_eff h / 2. beta = 0 gives back the plain-SGD "discr."
    radius r*^4 = eta (trace_sigma + grad_norm2) / (2 lambda).

    ``exact=True`` keeps every order in eta lambda: r*^4 times `momentum_finite_step_factor`
    1 / (1 - eta lambda / (2 (1+beta))) (NaN where eta lambda >= 2 (1+beta)); beta = 0 is
    `thermosgd.theory.sgd.radius_discrete` ("lr", exact=True).
    """
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    b = _beta("momentum", momentum)
    q = positive_array("trace_sigma", trace_sigma) + nonnegative_array("grad_norm2", grad_norm2) * (
        (1.0 - b) / (1.0 + b))
    r4 = lr * q / (2.0 * wd * (1.0 - b))
    if exact:
        r4 = r4 * momentum_finite_step_factor(lr, wd, b)
    return _out(r4**0.25)


def momentum_temperature(
    lr: ArrayLike, wd: ArrayLike, momentum: ArrayLike, sigma2: ArrayLike, dim: ArrayLike
) -> Float:
    """Heavy-ball temperature T = eta-tilde_eff sigma2 / 2 with eta-tilde_eff = eta / ((1-beta)
    r*^2): T = sqrt(eta lambda sigma2 / (2 (d-1) (1-beta))) (gas law lambda r*^2 = (d-1) T)."""
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    b = _beta("momentum", momentum)
    sigma2 = positive_array("sigma2", sigma2)
    d = _dim(dim)
    return _out(np.sqrt(lr * wd * sigma2 / (2.0 * (d - 1.0) * (1.0 - b))))


def momentum_angular_update(lr: ArrayLike, wd: ArrayLike, momentum: ArrayLike) -> Float:
    """Equilibrium angular update per step of heavy ball: sqrt(2 eta lambda / (1+beta)) (Wan et
    al.'s spherical motion dynamics, Kosson et al.).

    Exact at stationarity as a ratio of means, E||w_{t+1} - w_t||^2 = 2 eta lambda E[r^2] /
    (1+beta) (only <w_t, g_t> = 0 is used); the RMS of the per-step angle equals it when r
    hardly fluctuates.
    """
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    b = _beta("momentum", momentum)
    return _out(np.sqrt(2.0 * lr * wd / (1.0 + b)))


def momentum_relaxation_time(lr: ArrayLike, wd: ArrayLike, momentum: ArrayLike) -> Float:
    """Relaxation time of r^4 under heavy ball, in steps: (1-beta) / (4 eta lambda)."""
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    b = _beta("momentum", momentum)
    return _out((1.0 - b) / (4.0 * lr * wd))


def momentum_elr_at_radius(lr: ArrayLike, radius: ArrayLike, momentum: ArrayLike) -> Float:
    """Langevin step of the direction on the unit sphere at radius r: eta-tilde = eta /
    ((1-beta) r^2) (T = eta-tilde sigma2 / 2)."""
    lr = positive_array("lr", lr)
    r = positive_array("radius", radius)
    b = _beta("momentum", momentum)
    return _out(lr / ((1.0 - b) * r * r))


def momentum_maxwell_slope(dim: ArrayLike) -> Float:
    """dS/dlog(eta) - dS/dlog(lambda) of heavy ball at fixed LR: (d-1)/2, as for SGD.

    The direction law depends on (eta, lambda) only through eta lambda (the step eta / (1-beta)
    of plain SGD), so S_dir cancels in the difference; r^4 ~ eta / lambda gives (d-1)/4 twice.
    """
    return _out(0.5 * (_dim(dim) - 1.0))
