"""Closed forms of AdamW (decoupled weight decay) on a scale-invariant group.

Update (torch semantics, g = stochastic gradient, tangent to w): ``m <- b1 m + (1-b1) g;
s <- b2 s + (1-b2) g*g;  w <- w - eta (m_hat / (sqrt(s_hat) + eps) + lambda w)`` with bias
corrections m_hat = m / (1-b1^t), s_hat = s / (1-b2^t).

Main results (leading order in eta lambda, noise-dominated gradients): r*^2 = eta d / (2 lambda)
(independent of sigma, beta1, beta2); angular update sqrt(2 eta lambda (1-b1)/(1+b1));
T = sigma sqrt(eta lambda / (2 (d-1))) (equal second moments in every coordinate); gas law
p V = (d-1) T / 2 with the effective pressure p = lambda sqrt(s) (s = per-coordinate gradient
second moment). Derivations: ``docs/theory.md`` (section "Momentum and AdamW").

Conventions as in `thermosgd.theory.sgd`: pure, vectorized, float64, a 0-d result is a
``numpy.float64``; bad input raises ``ValueError``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from thermosgd._validate import finite_array, nonnegative_array, positive_array
from thermosgd.theory.momentum import _beta
from thermosgd.theory.sgd import Float, _dim, _out

__all__ = [
    "RADIUS_POWER",
    "adamw_angular_update",
    "adamw_elr_at_radius",
    "adamw_maxwell_slope",
    "adamw_pressure",
    "adamw_radius",
    "adamw_radius_discrete",
    "adamw_radius_ratio_isotropic",
    "adamw_relaxation_time",
    "adamw_temperature",
    "adamw_update_norm2",
]

#: k with r*^k linear in the noise: the SE of the discrete radius is the noise's over k (the
#: SDE radius r*^2 = eta d / (2 lambda) does not depend on the noise at all)
RADIUS_POWER = 2


def adamw_update_norm2(beta1: ArrayLike, dim: ArrayLike) -> Float:
    """E||m_hat / sqrt(s_hat)||^2 = d (1-b1)/(1+b1) for noise-dominated gradients: each
    coordinate of m has variance (1-b1)/(1+b1) times that of g, and s equals it."""
    b1 = _beta("beta1", beta1)
    d = _dim(dim)
    return _out(d * (1.0 - b1) / (1.0 + b1))


def adamw_radius(lr: ArrayLike, wd: ArrayLike, dim: ArrayLike) -> Float:
    """SDE stationary radius of AdamW on a scale-invariant group: r*^2 = eta d / (2 lambda).

    The normalized update u = m_hat / sqrt(s_hat) does not scale with r. Balance of ||w||^2 per
    step: 2 eta lambda r^2 = eta^2 E||u||^2 - 2 eta E<w, u> with E||u||^2 = d (1-b1)/(1+b1) and
    E<w, u> = -eta d b1/(1+b1) (momentum correlation), so 2 lambda r^2 = eta d: independent of
    sigma, b1 and b2.
    """
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    d = _dim(dim)
    return _out(np.sqrt(lr * d / (2.0 * wd)))


def adamw_radius_discrete(
    lr: ArrayLike, wd: ArrayLike, beta1: ArrayLike, dim: ArrayLike, trace_sigma: ArrayLike,
    grad_norm2: ArrayLike, exact: bool = False
) -> Float:
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
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    b1 = _beta("beta1", beta1)
    d = _dim(dim)
    ts = positive_array("trace_sigma", trace_sigma)
    gn = nonnegative_array("grad_norm2", grad_norm2)
    factor = (ts + gn * (1.0 - b1) / (1.0 + b1)) / (ts + gn)
    if exact:
        a = 1.0 - lr * wd
        if np.any(a <= 0):
            raise ValueError(f"lr * wd == {float(np.max(lr * wd))!r}, must be < 1 (exact "
                             "AdamW radius)")
        u2 = d * factor * (1.0 - b1) / (1.0 + b1)
        return _out(np.sqrt(lr * lr * u2 * (1.0 + a * b1) / ((1.0 - a * a) * (1.0 - a * b1))))
    return _out(np.sqrt(lr * d * factor / (2.0 * wd)))


def adamw_radius_ratio_isotropic(mu: ArrayLike) -> np.float64:
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
    m = finite_array("mu", mu)
    if m.ndim != 1 or m.size < 2 or not np.linalg.norm(m) > 0:
        raise ValueError(f"mu == {mu!r}, must be a nonzero vector of length >= 2")
    m = m / np.linalg.norm(m)
    if np.max(np.abs(m)) >= 1.0 - 1e-12:
        raise ValueError(f"mu == {mu!r}, must not lie on a coordinate axis (a zero second "
                         "moment)")
    d = m.size
    q = 1.0 / np.sqrt(1.0 - m * m)
    pi = np.eye(d) - np.outer(m, m)
    a = pi @ np.diag(q) @ pi
    b = pi @ (q * m)
    k = (np.trace(a) * b @ np.linalg.pinv(a) @ b - b @ b + np.trace(a @ a)
         - np.trace(a) * (m @ (q * m)))
    return np.float64((d - k) / d)


def adamw_angular_update(lr: ArrayLike, wd: ArrayLike, beta1: ArrayLike) -> Float:
    """Equilibrium RMS angular update per step of AdamW: eta sqrt(E||u||^2) / r* =
    sqrt(2 eta lambda (1-b1)/(1+b1)) (rotational equilibrium, Kosson et al. 2024)."""
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    b1 = _beta("beta1", beta1)
    return _out(np.sqrt(2.0 * lr * wd * (1.0 - b1) / (1.0 + b1)))


def adamw_temperature(lr: ArrayLike, wd: ArrayLike, sigma2: ArrayLike, dim: ArrayLike) -> Float:
    """AdamW temperature T = sigma sqrt(eta lambda / (2 (d-1))), assuming equal second moments
    s = (d-1) sigma2 / (d r^2) in every coordinate (a preconditioner proportional to I).

    The direction moves by -(eta / (sqrt(s) r^2)) (grad_S L + sigma xi) per step on the unit
    sphere, a Langevin step eta-tilde = eta / (sqrt(s) r^2); T = eta-tilde sigma2 / 2 at
    r*^2 = eta d / (2 lambda). With unequal second moments the preconditioned dynamics is not
    reversible w.r.t. exp(-L/T) and T is only an effective temperature.
    """
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    sigma2 = positive_array("sigma2", sigma2)
    d = _dim(dim)
    return _out(np.sqrt(sigma2 * lr * wd / (2.0 * (d - 1.0))))


def adamw_pressure(wd: ArrayLike, radius: ArrayLike, sigma2: ArrayLike, dim: ArrayLike) -> Float:
    """Effective (coupled-equivalent) pressure of AdamW: p = lambda sqrt(s) =
    lambda sigma sqrt((d-1)/d) / r. Decoupled WD eta lambda w equals a coupled WD p at the
    gradient step eta / sqrt(s); with it p r*^2 = (d-1) T (the ideal-gas law)."""
    wd = positive_array("wd", wd)
    r = positive_array("radius", radius)
    sigma2 = positive_array("sigma2", sigma2)
    d = _dim(dim)
    return _out(wd * np.sqrt(sigma2 * (d - 1.0) / d) / r)


def adamw_relaxation_time(lr: ArrayLike, wd: ArrayLike) -> Float:
    """Relaxation time of r^2 under AdamW, in steps: 1 / (2 eta lambda) (the update is
    scale-free, so d r^2/dt = -2 eta lambda r^2 + eta^2 d is linear in r^2)."""
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    return _out(1.0 / (2.0 * lr * wd))


def adamw_elr_at_radius(
    lr: ArrayLike, radius: ArrayLike, sigma2: ArrayLike, dim: ArrayLike
) -> Float:
    """Langevin step of the direction on the unit sphere at radius r: eta-tilde = eta /
    (sqrt(s) r^2) with the per-coordinate second moment sqrt(s) = sigma sqrt((d-1)/d) / r,
    i.e. eta / (sigma sqrt((d-1)/d) r)."""
    lr = positive_array("lr", lr)
    r = positive_array("radius", radius)
    sigma2 = positive_array("sigma2", sigma2)
    d = _dim(dim)
    return _out(lr / (np.sqrt(sigma2 * (d - 1.0) / d) * r))


def adamw_maxwell_slope(dim: ArrayLike) -> Float:
    """dS/dlog(eta) - dS/dlog(lambda) of AdamW at fixed LR: d-1, twice SGD's.

    The direction law depends on (eta, lambda) only through eta lambda (eta-tilde =
    sqrt(2 eta lambda) / (sigma sqrt(d-1))), so S_dir cancels in the difference and only the
    radius counts: (d-1) log r with r^2 ~ eta / lambda gives (d-1)/2 twice.
    """
    return _out(1.0 * (_dim(dim) - 1.0))
