"""Closed forms of AdamW (decoupled weight decay) on a scale-invariant group.

Update (torch semantics, g = stochastic gradient, tangent to w): ``m <- b1 m + (1-b1) g;
s <- b2 s + (1-b2) g*g;  w <- w - eta (m_hat / (sqrt(s_hat) + eps) + lambda w)`` with bias
corrections m_hat = m / (1-b1^t), s_hat = s / (1-b2^t).

Main results (noise-dominated gradients, equal second moments in every coordinate): leading
order in eta lambda r*^2 = eta d / (2 lambda) (independent of sigma, beta1, beta2); to all
orders (a = 1 - eta lambda) r*^2 = eta d / (2 lambda) F with F = `adamw_finite_step_factor`
(the decoupled decay weakens the momentum correlation, b1 -> a b1); angular update
sqrt(2 eta lambda (1-b1)/(1+b1)); T = sigma sqrt(eta lambda / (2 (d-1))) sqrt(F), the
temperature of the gas law p V = (d-1) T / 2 with the effective pressure p = lambda sqrt(s)
(s = per-coordinate gradient second moment) at the all-orders radius; the radius relaxes on
the slow mode of the coupled (r^2, s) dynamics, ~ 1/(2 eta lambda) + 2/(1-b2) steps. Derivations:
``docs/theory.md`` (section "Momentum and AdamW").

Conventions as in `thermosgd.theory.sgd`: pure, vectorized, float64, a 0-d result is a
``numpy.float64``; bad input raises ``ValueError``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from thermosgd._validate import check_int, finite_array, nonnegative_array, positive_array
from thermosgd.spec import DEFAULT_BETA2
from thermosgd.theory.momentum import _beta
from thermosgd.theory.sgd import Float, _dim, _out

__all__ = [
    "RADIUS_POWER",
    "adamw_angular_update",
    "adamw_elr_at_radius",
    "adamw_finite_step_factor",
    "adamw_maxwell_slope",
    "adamw_pressure",
    "adamw_radius",
    "adamw_radius2_path",
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


def adamw_finite_step_factor(lr: ArrayLike, wd: ArrayLike, beta1: ArrayLike) -> Float:
    """F = r*^2 (all orders in eta lambda) / (eta d / (2 lambda)) =
    2 eta lambda (1-b1) (1 + a b1) / ((1+b1) (1 - a^2) (1 - a b1)), a = 1 - eta lambda.

    With w_{t+1} = a w_t - eta u_t, w_t = a^k w_{t-k} - eta sum_j a^(j-1) u_{t-j}: the decoupled
    decay shrinks the part of w that the old gradients held in m are correlated with, and for
    white noise E<w, u> = -eta E||u||^2 b1 / (1 - a b1). The balance (1 - a^2) E r^2 =
    eta^2 E||u||^2 - 2 eta a E<w, u> with E||u||^2 = d (1-b1)/(1+b1) gives r*^2 =
    eta^2 E||u||^2 (1 + a b1) / ((1 - a^2)(1 - a b1)). F -> 1 as eta lambda -> 0 and
    F = 1 - eta lambda (1 + b1) / (1 - b1) / 2 + O((eta lambda)^2) (0.53 at eta lambda = 0.09,
    b1 = 0.9). Raises where eta lambda >= 1 (the decay alone would flip or zero w).
    """
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    b1 = _beta("beta1", beta1)
    a = 1.0 - lr * wd
    if np.any(a <= 0):
        raise ValueError(f"lr * wd == {float(np.max(lr * wd))!r}, must be < 1 (all-orders "
                         "AdamW forms)")
    return _out(2.0 * lr * wd * (1.0 - b1) * (1.0 + a * b1)
                / ((1.0 + b1) * (1.0 - a * a) * (1.0 - a * b1)))


def adamw_radius_discrete(
    lr: ArrayLike, wd: ArrayLike, beta1: ArrayLike, dim: ArrayLike, trace_sigma: ArrayLike,
    grad_norm2: ArrayLike, exact: bool = False
) -> Float:
    """AdamW radius with the mean-gradient (finite step) term: r*^2 = eta d / (2 lambda)
    (trace_sigma + grad_norm2 (1-b1)/(1+b1)) / (trace_sigma + grad_norm2).

    Exact balance (g tangent, equal second moments s): 2 lambda r^2 = eta (1+b1)/(1-b1) E||u||^2.
    The second moment s counts noise and mean gradient alike (the 1 / (ts + gn) factor); the
    harmonic AR(2) velocity variance adds the (1-b1)/(1+b1) gn term as for heavy ball.

    ``exact=True`` keeps every order in eta lambda: times `adamw_finite_step_factor` F, i.e.
    r*^2 = eta^2 E||u||^2 (1 + a b1) / ((1 - a^2)(1 - a b1)) with E||u||^2 = d (1-b1)/(1+b1)
    times the grad_norm2 factor above: the momentum correlation b1 -> a b1 lowers r*^2 by
    ~ eta lambda / (1 - b1) relative (-47% in r*^2 at eta lambda = 0.09, b1 = 0.9), which the
    eta lambda -> 0 form misses.
    """
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    b1 = _beta("beta1", beta1)
    d = _dim(dim)
    ts = positive_array("trace_sigma", trace_sigma)
    gn = nonnegative_array("grad_norm2", grad_norm2)
    factor = (ts + gn * (1.0 - b1) / (1.0 + b1)) / (ts + gn)
    if exact:
        factor = factor * adamw_finite_step_factor(lr, wd, b1)
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


def adamw_temperature(lr: ArrayLike, wd: ArrayLike, sigma2: ArrayLike, dim: ArrayLike,
                      beta1: ArrayLike, exact: bool = True) -> Float:
    """AdamW temperature T = sigma sqrt(eta lambda / (2 (d-1))) sqrt(F), F =
    `adamw_finite_step_factor` (``exact=False``: F = 1, the eta lambda -> 0 limit), assuming
    equal second moments s = (d-1) sigma2 / (d r^2) in every coordinate.

    T = p r*^2 / (d-1): the ideal-gas law with the coupled-equivalent pressure p = lambda sqrt(s)
    = lambda sigma sqrt((d-1)/d) / r at the all-orders radius r*^2 = eta d F / (2 lambda), i.e.
    T = lambda sigma r* / sqrt(d (d-1)). As eta lambda -> 0 it is the Langevin value
    eta-tilde sigma2 / 2 of the direction's step eta-tilde = eta / (sqrt(s) r^2) on the unit
    sphere; at finite eta lambda that step is larger (r* is smaller) but the temperature read
    off the energy is lower, by sqrt(F) as the gas law says (measured, docs/theory.md: the
    momentum filter and the decay act together, not through eta-tilde alone). With unequal
    second moments the preconditioned dynamics is not reversible w.r.t. exp(-L/T) and T is only
    an effective temperature.
    """
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    sigma2 = positive_array("sigma2", sigma2)
    d = _dim(dim)
    f = adamw_finite_step_factor(lr, wd, beta1) if exact else _beta("beta1", beta1) * 0.0 + 1.0
    return _out(np.sqrt(sigma2 * lr * wd * f / (2.0 * (d - 1.0))))


def adamw_pressure(wd: ArrayLike, radius: ArrayLike, sigma2: ArrayLike, dim: ArrayLike) -> Float:
    """Effective (coupled-equivalent) pressure of AdamW: p = lambda sqrt(s) =
    lambda sigma sqrt((d-1)/d) / r. Decoupled WD eta lambda w equals a coupled WD p at the
    gradient step eta / sqrt(s); with it p r*^2 = (d-1) T (the ideal-gas law)."""
    wd = positive_array("wd", wd)
    r = positive_array("radius", radius)
    sigma2 = positive_array("sigma2", sigma2)
    d = _dim(dim)
    return _out(wd * np.sqrt(sigma2 * (d - 1.0) / d) / r)


def _relaxation_rates(lr, wd, beta2) -> tuple[np.ndarray, np.ndarray]:
    """(k, c): the per-step rate 1 - a^2 of r^2 under the decay and the EMA rate 1 - b2."""
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    b2 = _beta("beta2", beta2)
    a = 1.0 - lr * wd
    return 1.0 - a * a, 1.0 - b2


def adamw_relaxation_time(lr: ArrayLike, wd: ArrayLike, beta2: ArrayLike = DEFAULT_BETA2
                          ) -> Float:
    """Relaxation time of r^2 under AdamW, in steps: -1 / log(mu), mu the slow eigenvalue of
    the linearized (r^2, s) map (`adamw_radius2_path`),

    mu = (tr + sqrt(tr^2 - 4 det)) / 2, tr = 2 - 2k + kc - c, det = b2 (1 - 2k),

    k = 1 - (1 - eta lambda)^2, c = 1 - b2. The update is normalized by sqrt(s), and s, an
    average of g^2 ~ 1/r^2 over ~1/(1-b2) steps, lags the radius: with x = r^2 / r*^2 and
    y = s r*^2 (y = 1/x at rest), x' = (1-k) x + k / (x y), y' = b2 y + c / x'. The continuous
    limit is tau = (2 k + c + sqrt(4 k^2 + c^2)) / (2 k c): 1 / (2 eta lambda) for c >> k
    (s follows r), 2 / (1-b2) for k >> c (r follows s: x^2 y stays 1 and y relaxes at c / 2).
    At eta lambda = 0.005, b2 = 0.999: ~2050 steps, not 100.
    """
    k, c = _relaxation_rates(lr, wd, beta2)
    tr = 2.0 - 2.0 * k + k * c - c
    det = (1.0 - c) * (1.0 - 2.0 * k)
    mu = 0.5 * (tr + np.sqrt(np.maximum(tr * tr - 4.0 * det, 0.0)))
    with np.errstate(divide="ignore"):
        return _out(-1.0 / np.log(mu))


def adamw_radius2_path(lr: float, wd: float, beta2: float, start: float, steps: int
                       ) -> np.ndarray:
    """Mean-field path of r^2 / r*^2 over ``steps`` AdamW steps from r^2 = ``start`` r*^2 with
    zero buffers (r* the stationary radius): x_0 = start, then for t = 1..steps

    y_t = (b2 (1 - b2^(t-1)) y_(t-1) + (1-b2) / x_(t-1)) / (1 - b2^t),  (bias-corrected s)
    x_t = (1-k) x_(t-1) + k / (x_(t-1) y_t),  k = 1 - (1 - eta lambda)^2:

    the balance (1 - a^2) r*^2 = eta^2 E||u||^2 (1 + momentum correlation) with E||u||^2
    scaled by (1/r^2) / s, the current squared gradient over its running average. Returns
    x_1..x_steps; it decays as exp(-t / `adamw_relaxation_time`) at late times, faster early
    while the bias-corrected average spans only t steps.
    """
    k, c = (float(v) for v in _relaxation_rates(lr, wd, beta2))
    steps = check_int("steps", steps, min_val=1)
    x = float(positive_array("start", start))
    b2, y = 1.0 - c, 0.0
    out = np.empty(steps)
    for t in range(1, steps + 1):
        y = (b2 * (1.0 - b2 ** (t - 1)) * y + c / x) / (1.0 - b2**t)
        x = (1.0 - k) * x + k / (x * y)
        out[t - 1] = x
    return out


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
