"""Closed forms of the SGD ideal gas: temperature, pressure, volume, energy, entropy.

Every function is pure and vectorized: array arguments broadcast against each other (numpy
rules), all arithmetic is float64, a 0-d result comes back as a ``numpy.float64`` scalar.
Bad input (a non-positive learning rate, effective learning rate, weight decay, radius or
noise level, ``dim < 2`` or a non-integer ``dim``, NaN or infinity) raises ``ValueError`` with
a one-line message naming the argument.

Protocols (`thermosgd.spec.PROTOCOLS`):

* ``"lr"``: fixed learning rate ``lr`` = eta and weight decay ``wd`` = lambda,
  ``w <- w - eta (g + lambda w)``.
* ``"elr"``: fixed effective learning rate ``elr`` = eta-tilde = eta / r^2 and weight decay,
  ``w <- w - eta-tilde ||w||^2 (g + lambda w)``.
* ``"sphere"``: fixed radius r, effective learning rate ``elr``, no weight decay,
  ``w <- r (w - eta-tilde r^2 g) / ||w - eta-tilde r^2 g||``.

Symbols: ``dim`` = d (scale-invariant parameters, directions live on S^{d-1});
``sigma2`` = per-direction gradient-noise variance on the unit sphere;
``trace_sigma`` = tr Sigma on the unit sphere (= (d-1) sigma2 for isotropic noise);
``grad_norm2`` = ||grad L||^2 on the unit sphere; Q = trace_sigma + grad_norm2 = E||g||^2 on
the unit sphere. Time is counted in iterations. Thermodynamic dictionary: T = eta-tilde
sigma2 / 2, p = lambda (or the effective weight decay on the sphere), V = r^2 / 2,
U = E[L], S = S(directions) + (d-1) log r.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from thermosgd._validate import finite_array, nonnegative_array, positive_array
from thermosgd.spec import HYPERPARAMETERS, check_protocol

#: what a closed form returns: a numpy float64 scalar for 0-d input, else a float64 array
Float = np.float64 | np.ndarray

__all__ = [
    "angular_mixing_time",
    "angular_update",
    "discrete_energy",
    "discrete_entropy_shift",
    "elr_at_radius",
    "equipartition_energy",
    "equipartition_entropy",
    "full_entropy",
    "gibbs_potential",
    "helmholtz_potential",
    "ideal_gas_pressure",
    "ideal_gas_residual",
    "isotropic_entropy_slopes",
    "maxwell_slope",
    "radius_discrete",
    "radius_sde",
    "relaxation_time",
    "sphere_pressure_discrete",
    "sphere_pressure_from_norm",
    "sphere_pressure_sde",
    "stationary_elr_lr",
    "temperature",
    "temperature_elr",
    "temperature_lr",
    "volume",
]

# ----------------------------------------------------------------------------- arguments
# Scalar and array checks are thermosgd._validate's (one message style); the registry of
# protocols and their hyperparameters is thermosgd.spec.

def _dim(dim) -> np.ndarray:
    """``dim`` (a number or an array of them) as float64: integers >= 2 (S^(dim-1))."""
    d = finite_array("dim", dim)
    if not np.all((d == np.round(d)) & (d >= 2)):
        raise ValueError(f"dim == {dim!r}, must be an integer >= 2")
    return d


def _out(x: np.ndarray):
    """Return a numpy float64 scalar for 0-d results, the array otherwise."""
    x = np.asarray(x, dtype=np.float64)
    return x[()] if x.ndim == 0 else x


def _hyperparams(func: str, protocol: str, needed: tuple[str, ...], **given) -> dict:
    """Check the hyperparameters passed to a protocol dispatcher.

    ``needed`` must all be given; one that the protocol does not have (`thermosgd.spec`
    ``HYPERPARAMETERS``) must not be. Returns the validated (positive, finite) arrays of the
    given ones.
    """
    has = HYPERPARAMETERS[check_protocol(protocol)]
    for k, v in given.items():
        if v is not None and k not in has:
            raise ValueError(f"{k} == {v!r}, must be None: protocol {protocol!r} has no {k} "
                             f"({func}; its hyperparameters are {', '.join(has)})")
    for k in needed:
        if given.get(k) is None:
            raise ValueError(f"{k} == None, must be given: protocol {protocol!r} needs "
                             f"{', '.join(needed)} ({func})")
    return {k: positive_array(k, v) for k, v in given.items() if v is not None}


# ----------------------------------------------------------------------------- temperature


def temperature_elr(elr: ArrayLike, sigma2: ArrayLike) -> Float:
    """Temperature at fixed effective learning rate (ELR and sphere protocols).

    T = eta-tilde sigma2 / 2: the direction follows Langevin dynamics on the unit sphere with
    step eta-tilde and per-direction noise variance eta-tilde^2 sigma2, whose stationary law
    is exp(-L / T).
    """
    elr = positive_array("elr", elr)
    sigma2 = positive_array("sigma2", sigma2)
    return _out(elr * sigma2 / 2.0)


def stationary_elr_lr(lr: ArrayLike, wd: ArrayLike, sigma2: ArrayLike, dim: ArrayLike) -> Float:
    """Stationary effective learning rate of the fixed-LR protocol.

    eta-tilde* = eta / r*^2 = sqrt(2 eta lambda / ((d-1) sigma2)), with r*^4 = eta (d-1) sigma2
    / (2 lambda) the SDE stationary radius.
    """
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    sigma2 = positive_array("sigma2", sigma2)
    d = _dim(dim)
    return _out(np.sqrt(2.0 * lr * wd / ((d - 1.0) * sigma2)))


def temperature_lr(lr: ArrayLike, wd: ArrayLike, sigma2: ArrayLike, dim: ArrayLike) -> Float:
    """Temperature at fixed learning rate: T = sqrt(eta lambda sigma2 / (2 (d-1))).

    This is T = eta-tilde* sigma2 / 2 at the stationary effective learning rate
    eta-tilde* = sqrt(2 eta lambda / ((d-1) sigma2)); it depends on (eta, lambda) only through
    the product eta lambda.
    """
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    sigma2 = positive_array("sigma2", sigma2)
    d = _dim(dim)
    return _out(np.sqrt(lr * wd * sigma2 / (2.0 * (d - 1.0))))


def temperature(
    protocol: str, *, sigma2: ArrayLike, dim: ArrayLike, lr: ArrayLike | None = None,
    elr: ArrayLike | None = None, wd: ArrayLike | None = None
) -> Float:
    """Temperature T of a protocol.

    * "elr" (needs elr; wd allowed, unused) and "sphere" (needs elr): T = eta-tilde sigma2 / 2.
    * "lr" (needs lr, wd): T = sqrt(eta lambda sigma2 / (2 (d-1))).

    Raises ValueError if a needed hyperparameter is missing or one that the protocol does not
    have is given (e.g. ``wd`` for "sphere", ``elr`` for "lr").
    """
    check_protocol(protocol)
    needed = {"lr": ("lr", "wd"), "elr": ("elr",), "sphere": ("elr",)}[protocol]
    p = _hyperparams("temperature", protocol, needed, lr=lr, elr=elr, wd=wd)
    d = _dim(dim)
    if protocol == "lr":
        return temperature_lr(p["lr"], p["wd"], sigma2, d)
    positive_array("sigma2", sigma2)
    t = np.asarray(temperature_elr(p["elr"], sigma2))
    return _out(t + 0.0 * d)  # broadcast against dim like the other branch


def elr_at_radius(lr: ArrayLike, radius: ArrayLike) -> Float:
    """Effective learning rate of the fixed-LR protocol at radius r: eta-tilde = eta / r^2.

    The step of the direction's Langevin dynamics on the unit sphere (T = eta-tilde sigma2 / 2).
    """
    lr = positive_array("lr", lr)
    r = positive_array("radius", radius)
    return _out(lr / (r * r))


# ----------------------------------------------------------------------------- radius


def radius_sde(
    protocol: str, *, sigma2: ArrayLike, dim: ArrayLike, lr: ArrayLike | None = None,
    elr: ArrayLike | None = None, wd: ArrayLike | None = None
) -> Float:
    """Stationary radius r* of the SDE limit (ideal-gas law lambda r*^2 = (d-1) T).

    Radial SDE (no first-order noise: gradient and noise are tangent),
    d r^2/dt = -2 eta lambda r^2 + eta^2 (d-1) sigma2 / r^2 with eta = lr ("lr") or
    eta = eta-tilde r^2 ("elr"). Its zero gives

    * "elr" (needs elr, wd): r*^2 = eta-tilde (d-1) sigma2 / (2 lambda),
    * "lr" (needs lr, wd): r*^4 = eta (d-1) sigma2 / (2 lambda),

    both equal to r*^2 = (d-1) T / lambda. The sphere has no stationary radius (it is fixed):
    ValueError.
    """
    check_protocol(protocol)
    if protocol == "sphere":
        raise ValueError("radius_sde: the sphere protocol has a fixed radius, not a stationary one")
    p = _hyperparams("radius_sde", protocol, HYPERPARAMETERS[protocol], lr=lr, elr=elr, wd=wd)
    sigma2 = positive_array("sigma2", sigma2)
    d = _dim(dim)
    if protocol == "elr":
        return _out(np.sqrt(p["elr"] * (d - 1.0) * sigma2 / (2.0 * p["wd"])))
    return _out((p["lr"] * (d - 1.0) * sigma2 / (2.0 * p["wd"])) ** 0.25)


def radius_discrete(
    protocol: str, *, trace_sigma: ArrayLike, grad_norm2: ArrayLike, lr: ArrayLike | None = None,
    elr: ArrayLike | None = None, wd: ArrayLike | None = None, exact: bool = False
) -> Float:
    """Discretization-corrected stationary radius, with Q = trace_sigma + grad_norm2.

    One step of SGD with coupled weight decay, g orthogonal to w and E||g||^2 = Q / r^2:
    ||w_{t+1}||^2 = (1 - eta lambda)^2 ||w_t||^2 + eta^2 ||g||^2. Balance in expectation:
    r^4 (2 eta lambda - eta^2 lambda^2) = eta^2 Q.

    ``exact=False`` drops the eta^2 lambda^2 term (the paper's "discr." curves):

    * "elr": r*^2 = eta-tilde Q / (2 lambda),
    * "lr": r*^4 = eta Q / (2 lambda).

    ``exact=True`` keeps it ("lr" only):

    * "lr": r*^4 = eta Q / (lambda (2 - eta lambda)); NaN where eta lambda >= 2 (then
      |1 - eta lambda| >= 1 and weight decay no longer shrinks the norm: no fixed point). The
      relative size of the dropped term: the exact r*^4 is larger by a factor
      2 / (2 - eta lambda) = 1 + eta lambda / 2 + O((eta lambda)^2).
    * "elr": ValueError. The root of the mean map, eta-tilde^2 lambda^2 r^4 - 2 eta-tilde lambda
      r^2 + eta-tilde^2 Q = 0, i.e. r^2 = (1 - sqrt(1 - c)) / (eta-tilde lambda) with
      c = eta-tilde^2 Q, is not the stationary radius: with eta = eta-tilde r^2 the noise enters
      multiplicatively, u' = u ((1 - eta-tilde lambda u)^2 + c xi) (u = r^2, xi = ||g||^2 r^2 /
      Q, E xi = 1, relative variance v; v = 2/(d-1) for isotropic noise without a mean
      gradient). Expanding the map to second order around the root (relaxation rate ~ c,
      Var(log u) ~ c v / 2) moves the mean radius by -5 c v / 16 relative, the opposite way to
      the root's +c / 8 over the truncated form: the root is the better of the two only for
      v < 1/5 (isotropic noise: d > 11), and large xi can push eta-tilde lambda u past 2, where
      the decay grows the norm and the chain diverges although the root is finite (issue 11:
      d = 3, c = 0.2: root 4.7% off, worse than the truncated form; d = 10, c = 0.87: every
      chain diverged). The closed forms here do not know v, so the option is refused.
    """
    check_protocol(protocol)
    if protocol == "sphere":
        raise ValueError(
            "radius_discrete: the sphere protocol has a fixed radius, not a stationary one"
        )
    p = _hyperparams("radius_discrete", protocol, HYPERPARAMETERS[protocol], lr=lr, elr=elr,
                     wd=wd)
    q = positive_array("trace_sigma", trace_sigma) + nonnegative_array("grad_norm2", grad_norm2)
    wd = p["wd"]
    if protocol == "lr":
        eta = p["lr"]
        if not exact:
            return _out((eta * q / (2.0 * wd)) ** 0.25)
        denom = wd * (2.0 - eta * wd)
        with np.errstate(invalid="ignore", divide="ignore"):
            r4 = np.where(denom > 0, eta * q / np.where(denom > 0, denom, 1.0), np.nan)
        return _out(r4**0.25)
    if exact:
        raise ValueError("exact == True, must be False for protocol 'elr': the root of the mean "
                         "map ignores the multiplicative noise of ||g||^2 and is not the "
                         "stationary radius (radius_discrete docstring)")
    return _out(np.sqrt(p["elr"] * q / (2.0 * wd)))


# ----------------------------------------------------------------------------- sphere pressure


def sphere_pressure_sde(
    elr: ArrayLike, radius: ArrayLike, sigma2: ArrayLike, dim: ArrayLike
) -> Float:
    """Pressure (effective weight decay) on the sphere, SDE limit.

    lambda_eff = (d-1) T / r^2 = eta-tilde (d-1) sigma2 / (2 r^2): the weight decay that would
    hold the radius at r, i.e. the ideal-gas law p V = (d-1) T / 2 with V = r^2 / 2.
    """
    elr = positive_array("elr", elr)
    radius = positive_array("radius", radius)
    sigma2 = positive_array("sigma2", sigma2)
    d = _dim(dim)
    return _out(elr * (d - 1.0) * sigma2 / (2.0 * radius**2))


def sphere_pressure_discrete(
    elr: ArrayLike, radius: ArrayLike, trace_sigma: ArrayLike, grad_norm2: ArrayLike,
    exact: bool = False
) -> Float:
    """Discretization-corrected pressure on the sphere, with Q = trace_sigma + grad_norm2.

    ``exact=False``: lambda_eff = eta-tilde Q / (2 r^2).

    ``exact=True``: the pre-projection step w' = w - eta-tilde r^2 g (g orthogonal to w,
    E||g||^2 = Q / r^2) has norm r' = sqrt(E||w'||^2) = r sqrt(1 + eta-tilde^2 Q), and the
    paper's estimator lambda_eff = (r' - r) / (eta-tilde r^3) (see
    ``sphere_pressure_from_norm``) gives
    lambda_eff = (sqrt(1 + eta-tilde^2 Q) - 1) / (eta-tilde r^2)
    (= eta-tilde Q / (2 r^2) (1 - eta-tilde^2 Q / 4 + ...)). It uses the root mean square of
    ||w'||; the mean of ||w'|| is smaller by Jensen, by O(eta-tilde^2 Var||g||^2).
    """
    elr = positive_array("elr", elr)
    radius = positive_array("radius", radius)
    q = positive_array("trace_sigma", trace_sigma) + nonnegative_array("grad_norm2", grad_norm2)
    if not exact:
        return _out(elr * q / (2.0 * radius**2))
    x = elr * elr * q
    # sqrt(1 + x) - 1 written as x / (sqrt(1 + x) + 1) to avoid cancellation at small x.
    return _out(x / (np.sqrt(1.0 + x) + 1.0) / (elr * radius**2))


def sphere_pressure_from_norm(
    mean_preprojection_norm: ArrayLike, radius: ArrayLike, elr: ArrayLike
) -> Float:
    """Pressure estimator of the paper's code: lambda_eff = (r' - r) / (eta-tilde r^3).

    r' is the mean norm of the iterate before projection back to the sphere of radius r.
    Projection multiplies w' by r / r' = 1 - (r' - r) / r' ~ 1 - (r' - r) / r, which is the
    shrinkage 1 - eta lambda of a weight-decay step with eta = eta-tilde r^2.
    """
    r_pre = positive_array("mean_preprojection_norm", mean_preprojection_norm)
    radius = positive_array("radius", radius)
    elr = positive_array("elr", elr)
    return _out((r_pre - radius) / (elr * radius**3))


# ----------------------------------------------------------------------------- ideal gas


def volume(radius: ArrayLike) -> Float:
    """Volume V = r^2 / 2 (half the squared norm of the scale-invariant weights)."""
    radius = positive_array("radius", radius)
    return _out(radius**2 / 2.0)


def ideal_gas_pressure(temperature: ArrayLike, volume: ArrayLike, dim: ArrayLike) -> Float:
    """Ideal-gas pressure p = (d-1) T / (2 V) (N k_B = (d-1)/2)."""
    t = positive_array("temperature", temperature)
    v = positive_array("volume", volume)
    d = _dim(dim)
    return _out((d - 1.0) * t / (2.0 * v))


def ideal_gas_residual(
    pressure: ArrayLike, volume: ArrayLike, temperature: ArrayLike, dim: ArrayLike
) -> Float:
    """Relative violation of the ideal-gas law: p V / ((d-1) T / 2) - 1 (0 when it holds)."""
    p = positive_array("pressure", pressure)
    v = positive_array("volume", volume)
    t = positive_array("temperature", temperature)
    d = _dim(dim)
    return _out(p * v / ((d - 1.0) * t / 2.0) - 1.0)


# ----------------------------------------------------------------------------- energy, entropy


def equipartition_energy(temperature: ArrayLike, dim: ArrayLike) -> Float:
    """Equipartition energy U = (d-1) T / 2 (above the minimum of L).

    Laplace (low-temperature) value of E[L] under exp(-L / T) on S^{d-1} with curvature 1 at
    the minimum; for the isotropic model's linear loss L = 1 + mu.w (|mu| = 1, a von
    Mises-Fisher law with kappa = 1/T) the exact value is 1 - A_d(1/T)
    = (d-1) T / 2 - (d-1)(d-3) T^2 / 8 + O(T^3), exact up to O(exp(-2/T)) for d = 3.
    """
    t = positive_array("temperature", temperature)
    d = _dim(dim)
    return _out((d - 1.0) * t / 2.0)


def equipartition_entropy(temperature: ArrayLike, dim: ArrayLike) -> Float:
    """Entropy of the directions (nats, surface measure of the unit sphere), Laplace value.

    S_dir = (d-1)/2 log(2 pi e T): a Gaussian of variance T in each of the d-1 tangent
    directions. For the linear loss (von Mises-Fisher, kappa = 1/T) the exact value is
    S_dir - (d-1)(d-3) T / 4 + O(T^2), exact up to O(exp(-2/T)) for d = 3.
    """
    t = positive_array("temperature", temperature)
    d = _dim(dim)
    return _out((d - 1.0) / 2.0 * np.log(2.0 * np.pi * np.e * t))


def discrete_energy(energy: ArrayLike, elr: ArrayLike, curvature: ArrayLike = 1.0) -> Float:
    """Leading-order finite-step correction of the stationary energy: U_h = U (1 + h/2).

    The discrete chain w <- normalize(w - eta-tilde g) is an Euler scheme for the Langevin
    diffusion on the sphere; its stationary law is wider than the Gibbs law. Expanding the
    one-step balance of q = ||x||^2 (x: tangent coordinates at the minimum) to third order in
    the step, with the normalization factor 1/(1 + h^2 ||g||^2), gives
    E[q]_h = E[q]_Gibbs (1 + h/2) + O(h T^2), h = eta-tilde * curvature, independent of d and
    sigma; U = q/2 + q^2/8 + ... inherits the factor. (Flat check: x <- (1-h) x + noise has
    stationary variance T/(1 - h/2).) For the linear loss the curvature at the minimum is 1.
    The next order is negative and grows with (d-1) T; see docs/isotropic.md.
    """
    u = finite_array("energy", energy)
    h = positive_array("elr", elr) * positive_array("curvature", curvature)
    return _out(u * (1.0 + h / 2.0))


def discrete_entropy_shift(elr: ArrayLike, dim: ArrayLike, curvature: ArrayLike = 1.0) -> Float:
    """Leading-order finite-step shift of the entropy of directions: (d-1)/2 log(1 + h/2).

    The same widening as `discrete_energy` (variance factor 1 + h/2 in each of the d-1 tangent
    directions of a near-Gaussian law), h = eta-tilde * curvature.
    """
    h = positive_array("elr", elr) * positive_array("curvature", curvature)
    return _out((_dim(dim) - 1.0) / 2.0 * np.log1p(h / 2.0))


def full_entropy(entropy_dir: ArrayLike, radius: ArrayLike, dim: ArrayLike) -> Float:
    """Entropy on the sphere of radius r: S = S_dir + (d-1) log r.

    The surface measure of S^{d-1} scales as r^{d-1}; the radius is deterministic in the SDE
    limit, so no radial term appears.
    """
    s = finite_array("entropy_dir", entropy_dir)
    radius = positive_array("radius", radius)
    d = _dim(dim)
    return _out(s + (d - 1.0) * np.log(radius))


# ----------------------------------------------------------------------------- potentials


def gibbs_potential(
    energy: ArrayLike, temperature: ArrayLike, entropy: ArrayLike, pressure: ArrayLike,
    volume: ArrayLike
) -> Float:
    """Gibbs potential G = U - T S + p V.

    With p = lambda and V = r^2 / 2 this is E[L + lambda ||w||^2 / 2] - T S, the free energy
    of the L2-regularized loss; at fixed (T, p) it is minimized by the stationary state.
    """
    u = finite_array("energy", energy)
    t = positive_array("temperature", temperature)
    s = finite_array("entropy", entropy)
    p = positive_array("pressure", pressure)
    v = positive_array("volume", volume)
    return _out(u - t * s + p * v)


def helmholtz_potential(energy: ArrayLike, temperature: ArrayLike, entropy: ArrayLike) -> Float:
    """Helmholtz potential F = U - T S (natural at fixed volume, i.e. on the sphere)."""
    u = finite_array("energy", energy)
    t = positive_array("temperature", temperature)
    s = finite_array("entropy", entropy)
    return _out(u - t * s)


# ----------------------------------------------------------------------------- Maxwell slopes


def maxwell_slope(protocol: str, dim: ArrayLike) -> Float:
    """Landscape-independent entropy slope predicted by the Maxwell relations (nats).

    Uses only S = S_dir + (d-1) log r with S_dir a function of the direction law, and the
    ideal-gas radius r*^2 = (d-1) T / lambda:

    * "elr": dS/dlog(lambda) at fixed eta-tilde = -(d-1)/2. T = eta-tilde sigma2 / 2 does not
      depend on lambda, so S_dir is constant and (d-1) log r* = (d-1)/2 (log((d-1) T)
      - log lambda). Equivalently (dS/dp)_T = -(dV/dT)_p = -(d-1)/(2p).
    * "lr": dS/dlog(eta) at fixed lambda - dS/dlog(lambda) at fixed eta = (d-1)/2. The
      direction law depends on (eta, lambda) only through eta lambda, so the S_dir terms
      cancel in the difference; (d-1) log r* = (d-1)/4 (log eta - log lambda) + const
      contributes (d-1)/4 + (d-1)/4.
    * "sphere": dS/dlog(r) at fixed eta-tilde = d-1 (S_dir depends on eta-tilde only).
    """
    check_protocol(protocol)
    d = _dim(dim)
    factor = {"elr": -0.5, "lr": 0.5, "sphere": 1.0}[protocol]
    return _out(factor * (d - 1.0))


def isotropic_entropy_slopes(protocol: str, dim: ArrayLike) -> dict:
    """Individual entropy slopes dS/dlog(x) of the isotropic model (C_V = (d-1)/2 constant).

    With S_dir = (d-1)/2 log T + const (so T dS_dir/dT = C_V = (d-1)/2) and
    S = S_dir + (d-1) log r:

    * "lr": T = sqrt(eta lambda sigma2 / (2(d-1))) gives dlog T = (dlog eta + dlog lambda)/2,
      and r*^4 = eta (d-1) sigma2 / (2 lambda) gives (d-1) dlog r = (d-1)/4 (dlog eta
      - dlog lambda). Hence {"lr": (d-1)/4 + (d-1)/4 = (d-1)/2,
      "wd": (d-1)/4 - (d-1)/4 = 0}: changing lambda at fixed eta is an adiabat.
    * "elr": T = eta-tilde sigma2 / 2 and r*^2 = eta-tilde (d-1) sigma2 / (2 lambda). Hence
      {"elr": (d-1)/2 (S_dir) + (d-1)/2 (radius) = d-1, "wd": -(d-1)/2}.
    * "sphere": T = eta-tilde sigma2 / 2 and r fixed. Hence {"elr": (d-1)/2,
      "radius": d-1}.

    The "lr" difference and the "elr" "wd" entry, and the "sphere" "radius" entry, equal
    ``maxwell_slope`` (they do not depend on C_V); the others do.
    """
    check_protocol(protocol)
    d = _dim(dim)
    n = (d - 1.0) / 2.0
    if protocol == "lr":
        return {"lr": _out(n), "wd": _out(0.0 * n)}
    if protocol == "elr":
        return {"elr": _out(2.0 * n), "wd": _out(-n)}
    return {"elr": _out(n), "radius": _out(2.0 * n)}


# ----------------------------------------------------------------------------- time scales


def angular_update(lr: ArrayLike, wd: ArrayLike) -> Float:
    """Equilibrium angular update per step of SGD with coupled weight decay on an SI group:
    sqrt(E||w_{t+1} - w_t||^2 / E||w_t||^2) = sqrt(2 eta lambda).

    Exact at stationarity: ||w_{t+1} - w_t||^2 = eta^2 lambda^2 r^2 + eta^2 ||g||^2 (only
    <w_t, g_t> = 0 is used) and the norm balance (2 eta lambda - eta^2 lambda^2) E r^2 =
    eta^2 E||g||^2 sum to 2 eta lambda E r^2 (heavy ball's form at beta = 0).
    """
    lr = positive_array("lr", lr)
    wd = positive_array("wd", wd)
    return _out(np.sqrt(2.0 * lr * wd))


def relaxation_time(
    protocol: str, *, wd: ArrayLike | None = None, lr: ArrayLike | None = None,
    elr: ArrayLike | None = None, trace_total: ArrayLike | None = None
) -> Float:
    """Relaxation time of the radius, in iterations (SDE limit).

    * "lr" (needs lr, wd): tau = 1 / (4 eta lambda). With Q the unit-sphere E||g||^2,
      d r^4/dt = 2 r^2 d r^2/dt = -4 eta lambda r^4 + 2 eta^2 Q is linear in r^4, so
      r^4 - r*^4 decays exactly as exp(-4 eta lambda t).
    * "elr" (needs elr, trace_total = Q = trace_sigma + grad_norm2; wd allowed, unused):
      tau = 1 / (eta-tilde^2 Q). With u = r^2, du/dt = u (-2 eta-tilde lambda u
      + eta-tilde^2 Q) is logistic; linearized at u* = eta-tilde Q / (2 lambda) its rate is
      4 eta-tilde lambda u* - eta-tilde^2 Q = eta-tilde^2 Q, independent of lambda
      (1/u relaxes exactly at that rate).
    * "sphere" (elr allowed, unused): 0, the radius has no dynamics.

    ``trace_total`` is a property of the state, not a hyperparameter: it is accepted (and
    ignored) by "lr" and "sphere".
    """
    check_protocol(protocol)
    needed = {"lr": ("lr", "wd"), "elr": ("elr",), "sphere": ()}[protocol]
    p = _hyperparams("relaxation_time", protocol, needed, lr=lr, elr=elr, wd=wd)
    q = None if trace_total is None else positive_array("trace_total", trace_total)
    if protocol == "lr":
        return _out(1.0 / (4.0 * p["lr"] * p["wd"]))
    if protocol == "elr":
        if q is None:
            raise ValueError(
                "relaxation_time: protocol 'elr' needs trace_total (Q = trace_sigma + grad_norm2)"
            )
        return _out(1.0 / (p["elr"] ** 2 * q))
    return _out(np.zeros(np.shape(p["elr"])) if "elr" in p else 0.0)


def angular_mixing_time(elr: ArrayLike, curvature: ArrayLike = 1.0) -> Float:
    """Angular relaxation time on the unit sphere, in iterations: 1 / (eta-tilde h).

    Near the minimum the direction follows d(delta)/dt = -eta-tilde h delta (plus noise), with
    h the curvature of L on the unit sphere; h = 1 for the isotropic model's linear loss
    L = 1 + mu.w with |mu| = 1.
    """
    elr = positive_array("elr", elr)
    h = positive_array("curvature", curvature)
    return _out(1.0 / (elr * h))
