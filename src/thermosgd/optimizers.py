"""Closed forms for heavy-ball momentum SGD (coupled WD) and AdamW (decoupled WD) on a
scale-invariant group: stationary radius, equilibrium angular update, temperature.

Derivations are written out in ``docs/theory.md`` (section "Momentum and AdamW"); the isotropic
simulator `thermosgd.isotropic_momentum` checks them. Conventions as in `thermosgd.theory`: pure,
vectorized, float64, a 0-d result is a ``numpy.float64``; bad input raises ``ValueError``.

Updates (g = stochastic gradient, tangent to w, E||g||^2 = Q / r^2 with Q = trace_sigma +
grad_norm2 on the unit sphere):

* heavy ball (PyTorch ``SGD(momentum=beta, weight_decay=lambda)``):
  ``v <- beta v + g + lambda w;  w <- w - eta v``.
* AdamW: ``m <- b1 m + (1-b1) g;  s <- b2 s + (1-b2) g*g;  w <- w - eta (m_hat / (sqrt(s_hat)
  + eps) + lambda w)`` with bias corrections m_hat = m / (1-b1^t), s_hat = s / (1-b2^t).

Main results (leading order in eta lambda, noise-dominated gradients):

* heavy ball: r*^4 = eta (d-1) sigma2 / (2 lambda (1-beta)), i.e. plain SGD with eta -> eta /
  (1-beta) (the momentum correlation factor is exactly 1); T = sqrt(eta lambda sigma2 / (2 (d-1)
  (1-beta))); angular update per step sqrt(2 eta lambda / (1+beta)).
* AdamW: r*^2 = eta d / (2 lambda) (independent of sigma, beta1, beta2); angular update
  sqrt(2 eta lambda (1-b1)/(1+b1)); T = sigma sqrt(eta lambda / (2 (d-1))) (equal second moments
  in every coordinate); gas law p V = (d-1) T / 2 with the effective pressure
  p = lambda sqrt(s) (s = per-coordinate gradient second moment).

The ``lr_*`` functions dispatch on ``optimizer`` in {"sgd", "momentum", "adamw"} for the fixed-LR
protocol (radius, temperature, pressure, relaxation time, Maxwell slope), as used by
`thermosgd.monitor` and `thermosgd.analysis` on networks.
"""

from __future__ import annotations

import numpy as np

from thermosgd.theory import _as_float, _dim, _nonnegative, _out, _positive

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


def _beta(name: str, x) -> np.ndarray:
    arr = _as_float(name, x)
    if not np.all((arr >= 0) & (arr < 1)):
        raise ValueError(f"{name} must be in [0, 1), got {x!r}")
    return arr


# ----------------------------------------------------------------------------- heavy ball


def momentum_effective_lr(lr, momentum):
    """Long-time step of heavy ball: eta / (1 - beta) (the gain of the AR(1) filter at zero
    frequency; drift and weight decay both act through it)."""
    return _out(_positive("lr", lr) / (1.0 - _beta("momentum", momentum)))


def momentum_noise_factor(momentum):
    """Per-step variance of the filtered noise relative to its long-time value: E||v||^2 /
    (E||g||^2 / (1-beta)^2) = (1-beta) / (1+beta) (stationary AR(1) variance 1/(1-beta^2))."""
    b = _beta("momentum", momentum)
    return _out((1.0 - b) / (1.0 + b))


def momentum_radius(lr, wd, momentum, sigma2, dim):
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
    lr = _positive("lr", lr)
    wd = _positive("wd", wd)
    b = _beta("momentum", momentum)
    sigma2 = _positive("sigma2", sigma2)
    d = _dim(dim)
    return _out((lr * (d - 1.0) * sigma2 / (2.0 * wd * (1.0 - b))) ** 0.25)


def momentum_radius_discrete(lr, wd, momentum, trace_sigma, grad_norm2):
    """Heavy-ball radius with the mean-gradient (finite step) term:
    r*^4 = eta (trace_sigma + grad_norm2 (1-beta)/(1+beta)) / (2 lambda (1-beta)).

    Exact balance (leading order in eta lambda, g tangent): 2 lambda r^2 = eta (1+beta) E||v||^2
    (v without its weight-decay part), whatever the gradient's time correlations. For a harmonic
    well of curvature h per tangent direction the stationary AR(2) gives E||v||^2 =
    (G / (1-beta^2)) / (1 - eta-tilde_eff h (1-beta) / (2 (1+beta))), and at low temperature
    grad_norm2 / trace_sigma = eta-tilde_eff h / 2. beta = 0 gives back the plain-SGD "discr."
    radius r*^4 = eta (trace_sigma + grad_norm2) / (2 lambda).
    """
    lr = _positive("lr", lr)
    wd = _positive("wd", wd)
    b = _beta("momentum", momentum)
    q = _positive("trace_sigma", trace_sigma) + _nonnegative("grad_norm2", grad_norm2) * (
        (1.0 - b) / (1.0 + b))
    return _out((lr * q / (2.0 * wd * (1.0 - b))) ** 0.25)


def momentum_temperature(lr, wd, momentum, sigma2, dim):
    """Heavy-ball temperature T = eta-tilde_eff sigma2 / 2 with eta-tilde_eff = eta / ((1-beta)
    r*^2): T = sqrt(eta lambda sigma2 / (2 (d-1) (1-beta))) (gas law lambda r*^2 = (d-1) T)."""
    lr = _positive("lr", lr)
    wd = _positive("wd", wd)
    b = _beta("momentum", momentum)
    sigma2 = _positive("sigma2", sigma2)
    d = _dim(dim)
    return _out(np.sqrt(lr * wd * sigma2 / (2.0 * (d - 1.0) * (1.0 - b))))


def momentum_angular_update(lr, wd, momentum):
    """Equilibrium angular update per step of heavy ball: sqrt(2 eta lambda / (1+beta)) (Wan et
    al.'s spherical motion dynamics, Kosson et al.).

    Exact at stationarity as a ratio of means, E||w_{t+1} - w_t||^2 = 2 eta lambda E[r^2] /
    (1+beta) (only <w_t, g_t> = 0 is used); the RMS of the per-step angle equals it when r
    hardly fluctuates.
    """
    lr = _positive("lr", lr)
    wd = _positive("wd", wd)
    b = _beta("momentum", momentum)
    return _out(np.sqrt(2.0 * lr * wd / (1.0 + b)))


def momentum_relaxation_time(lr, wd, momentum):
    """Relaxation time of r^4 under heavy ball, in steps: (1-beta) / (4 eta lambda)."""
    lr = _positive("lr", lr)
    wd = _positive("wd", wd)
    b = _beta("momentum", momentum)
    return _out((1.0 - b) / (4.0 * lr * wd))


# ----------------------------------------------------------------------------- AdamW


def adamw_update_norm2(beta1, dim):
    """E||m_hat / sqrt(s_hat)||^2 = d (1-b1)/(1+b1) for noise-dominated gradients: each
    coordinate of m has variance (1-b1)/(1+b1) times that of g, and s equals it."""
    b1 = _beta("beta1", beta1)
    d = _dim(dim)
    return _out(d * (1.0 - b1) / (1.0 + b1))


def adamw_radius(lr, wd, dim):
    """SDE stationary radius of AdamW on a scale-invariant group: r*^2 = eta d / (2 lambda).

    The normalized update u = m_hat / sqrt(s_hat) does not scale with r. Balance of ||w||^2 per
    step: 2 eta lambda r^2 = eta^2 E||u||^2 - 2 eta E<w, u> with E||u||^2 = d (1-b1)/(1+b1) and
    E<w, u> = -eta d b1/(1+b1) (momentum correlation), so 2 lambda r^2 = eta d: independent of
    sigma, b1 and b2.
    """
    lr = _positive("lr", lr)
    wd = _positive("wd", wd)
    d = _dim(dim)
    return _out(np.sqrt(lr * d / (2.0 * wd)))


def adamw_radius_discrete(lr, wd, beta1, dim, trace_sigma, grad_norm2, exact: bool = False):
    """AdamW radius with the mean-gradient (finite step) term: r*^2 = eta d / (2 lambda)
    (trace_sigma + grad_norm2 (1-b1)/(1+b1)) / (trace_sigma + grad_norm2).

    Exact balance (g tangent, equal second moments s): 2 lambda r^2 = eta (1+b1)/(1-b1) E||u||^2.
    The second moment s counts noise and mean gradient alike (the 1 / (ts + gn) factor); the
    harmonic AR(2) velocity variance adds the (1-b1)/(1+b1) gn term as for heavy ball.

    ``exact=True`` keeps every order in eta lambda. With a = 1 - eta lambda, w_{t+1} = a w_t -
    eta u_t, so w_t = a^k w_{t-k} - eta sum_j a^(j-1) u_{t-j}: the decoupled decay shrinks the
    part of w that the old gradients held in m are correlated with, and for white noise
    E<w, u> = -eta E||u||^2 b1 / (1 - a b1). The balance (1 - a^2) E r^2 = eta^2 E||u||^2 -
    2 eta a E<w, u> then gives r*^2 = eta^2 E||u||^2 (1 + a b1) / ((1 - a^2) (1 - a b1)), with
    E||u||^2 = d (1-b1)/(1+b1) times the grad_norm2 factor above: the momentum correlation
    b1 -> a b1 lowers r*^2 by ~ eta lambda / (1 - b1) relative (-45% in r*^2 at eta lambda =
    0.09, b1 = 0.9), which the eta lambda -> 0 form misses.
    """
    lr = _positive("lr", lr)
    wd = _positive("wd", wd)
    b1 = _beta("beta1", beta1)
    d = _dim(dim)
    ts = _positive("trace_sigma", trace_sigma)
    gn = _nonnegative("grad_norm2", grad_norm2)
    factor = (ts + gn * (1.0 - b1) / (1.0 + b1)) / (ts + gn)
    if exact:
        a = 1.0 - lr * wd
        if np.any(a <= 0):
            raise ValueError("exact AdamW radius needs lr * wd < 1")
        u2 = d * factor * (1.0 - b1) / (1.0 + b1)
        return _out(np.sqrt(lr * lr * u2 * (1.0 + a * b1) / ((1.0 - a * a) * (1.0 - a * b1))))
    return _out(np.sqrt(lr * d * factor / (2.0 * wd)))


def adamw_radius_ratio_isotropic(mu) -> np.float64:
    """Linear-response estimate of r*^2 / (eta d / (2 lambda)) for AdamW on the isotropic model
    with loss direction ``mu`` (unequal second moments s_i ~ 1 - mu_i^2): (d - K) / d with

    K = tr(A) b^T A^+ b - |b|^2 + tr(A^2) - tr(A) mu^T Q mu,  Q = diag(1/sqrt(1 - mu_i^2)),
    A = Pi Q Pi, b = Pi Q mu, Pi = I - mu mu^T.

    From the balance 2 lambda r^2 = eta (E||u||^2 - 2 E<w, u> / eta) with E||u||^2 = d: the
    preconditioned mean gradient has a radial part E<w, u> = eta K / 2, computed from the
    stationary covariance C = (eps sigma^2 / 2) A of the direction's tangent offset and its
    noise-induced mean (second order in the step, fixed preconditioner). K = 0 when all
    |mu_i| are equal. Leading order only: it gets the sign and size of the excess but
    overestimates it (docs/theory.md lists the measured errors).
    """
    m = _as_float("mu", mu)
    if m.ndim != 1 or m.size < 2 or not np.linalg.norm(m) > 0:
        raise ValueError(f"mu must be a nonzero vector of length >= 2, got {mu!r}")
    m = m / np.linalg.norm(m)
    if np.max(np.abs(m)) >= 1.0 - 1e-12:
        raise ValueError("mu must not lie on a coordinate axis (a zero second moment)")
    d = m.size
    q = 1.0 / np.sqrt(1.0 - m * m)
    pi = np.eye(d) - np.outer(m, m)
    a = pi @ np.diag(q) @ pi
    b = pi @ (q * m)
    k = (np.trace(a) * b @ np.linalg.pinv(a) @ b - b @ b + np.trace(a @ a)
         - np.trace(a) * (m @ (q * m)))
    return np.float64((d - k) / d)


def adamw_angular_update(lr, wd, beta1):
    """Equilibrium RMS angular update per step of AdamW: eta sqrt(E||u||^2) / r* =
    sqrt(2 eta lambda (1-b1)/(1+b1)) (rotational equilibrium, Kosson et al. 2024)."""
    lr = _positive("lr", lr)
    wd = _positive("wd", wd)
    b1 = _beta("beta1", beta1)
    return _out(np.sqrt(2.0 * lr * wd * (1.0 - b1) / (1.0 + b1)))


def adamw_temperature(lr, wd, sigma2, dim):
    """AdamW temperature T = sigma sqrt(eta lambda / (2 (d-1))), assuming equal second moments
    s = (d-1) sigma2 / (d r^2) in every coordinate (a preconditioner proportional to I).

    The direction moves by -(eta / (sqrt(s) r^2)) (grad_S L + sigma xi) per step on the unit
    sphere, a Langevin step eta-tilde = eta / (sqrt(s) r^2); T = eta-tilde sigma2 / 2 at
    r*^2 = eta d / (2 lambda). With unequal second moments the preconditioned dynamics is not
    reversible w.r.t. exp(-L/T) and T is only an effective temperature.
    """
    lr = _positive("lr", lr)
    wd = _positive("wd", wd)
    sigma2 = _positive("sigma2", sigma2)
    d = _dim(dim)
    return _out(np.sqrt(sigma2 * lr * wd / (2.0 * (d - 1.0))))


def adamw_pressure(wd, radius, sigma2, dim):
    """Effective (coupled-equivalent) pressure of AdamW: p = lambda sqrt(s) =
    lambda sigma sqrt((d-1)/d) / r. Decoupled WD eta lambda w equals a coupled WD p at the
    gradient step eta / sqrt(s); with it p r*^2 = (d-1) T (the ideal-gas law)."""
    wd = _positive("wd", wd)
    r = _positive("radius", radius)
    sigma2 = _positive("sigma2", sigma2)
    d = _dim(dim)
    return _out(wd * np.sqrt(sigma2 * (d - 1.0) / d) / r)


def adamw_relaxation_time(lr, wd):
    """Relaxation time of r^2 under AdamW, in steps: 1 / (2 eta lambda) (the update is
    scale-free, so d r^2/dt = -2 eta lambda r^2 + eta^2 d is linear in r^2)."""
    lr = _positive("lr", lr)
    wd = _positive("wd", wd)
    return _out(1.0 / (2.0 * lr * wd))


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
