"""Schedules as thermodynamic processes: equilibrium paths, processes, the lagged path and lag.

A `Process` is a pair of per-step arrays (rate_t, wd_t): rate = eta (protocol ``"lr"``,
w <- w - eta (g + lambda w)) or eta-tilde (protocol ``"elr"``, eta_t = eta-tilde r_t^2).

Stationary state at the effective learning rate elr (`state_at`; ``exact`` keeps the
eta^2 lambda^2 term of the one-step balance, see `thermosgd.theory.sgd.radius_discrete`),
with psi(elr) = elr^2 Q(elr):

* "elr": r^2 = phi(elr) / (elr lambda); "lr": psi(elr) = 2 eta lambda (exact: eta lambda
  (2 - eta lambda)) is solved for elr, and r^2 = eta / elr;
  phi(elr) = psi / 2 (exact: 1 - sqrt(1 - psi), the stable root; NaN for psi >= 1);
* T = elr sigma2(elr) / 2, p = lambda, V = r^2 / 2,
  S = (d-1)/2 log(2 pi e T) + (d-1)/2 log(r^2).

The thermodynamic processes are defined by what they hold fixed (equilibrium values,
`equilibrium`):

* `isothermal`: T fixed while lambda changes. "lr": eta_t lambda_t = const (exact for any
  noise curve: the stationary eta-tilde depends on (eta, lambda) only through eta lambda);
  "elr": eta-tilde fixed (T = eta-tilde sigma2(eta-tilde) / 2).
* `isobaric`: lambda fixed, T follows a given path; the rate is solved from T.
* `adiabatic`: the equilibrium entropy S = (d-1)/2 log(2 pi e T) + (d-1) log r fixed while
  lambda changes (theory.equipartition_entropy + theory.full_entropy). S depends on
  T r^2 = 2 T V only, so an adiabat keeps T V fixed; with the ideal-gas law p V = (d-1) T / 2
  that is p V^2 = const (adiabatic index 2, C_V = (d-1)/2). For constant sigma2 (SDE):
  "lr": T V = eta sigma2 / 4, so eta stays fixed; "elr": T V = (d-1) eta-tilde^2 sigma2^2
  / (8 lambda), so eta-tilde ~ sqrt(lambda). With a fitted sigma2(elr) the rate is solved.

Lag: `lagged_path` iterates the mean one-step radial map
r^2 <- (1 - eta_t lambda_t)^2 r^2 + eta_t^2 Q(eta_t / r^2) / r^2 (eta_t = eta-tilde_t r^2 for
"elr"), vectorized over schedules. `relaxation_times` gives the linear relaxation time of
that map's SDE limit: "elr": 1 / (elr^2 Q(elr)) (as theory.relaxation_time); "lr":
1 / (4 eta lambda (1 + s / 2)), s = d log Q / d log elr at the equilibrium: Q depends on the
radius through elr = eta / r^2, which changes the linear rate of r^4 from theory's
4 eta lambda (s = 0). For x = r^4 (lr) or 1/r^2 (elr) relaxing linearly,
x - x_eq ~ -tau dx_eq/dt, so to first order V / V_eq - 1 = -tau d log V_eq / dt for both
protocols: the quasi-static ratio tau |d log V_eq/dt| (`lag_measures`) is the predicted
relative gap. On networks the noise itself lags (the direction law relaxes more slowly than
the radius): ``angular_rate`` lets Q and sigma2 relax at a rate h elr per step
(docs/schedules.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thermosgd._validate import positive_array
from thermosgd.schedules._roots import monotone_segment, smallest_root
from thermosgd.schedules.noise_curve import NoiseCurve, as_curve
from thermosgd.schedules.shapes import check_wd_protocol
from thermosgd.theory.sgd import angular_mixing_time, equipartition_entropy, full_entropy

__all__ = [
    "Process",
    "adiabatic",
    "equilibrium",
    "isobaric",
    "isothermal",
    "lag_measures",
    "lagged_path",
    "relaxation_times",
    "sde_path",
    "state_at",
]


@dataclass(frozen=True)
class Process:
    """A schedule: per-step ``rate`` (eta for "lr", eta-tilde for "elr") and weight decay
    ``wd``, broadcast to a common shape (..., steps) (leading axes: several schedules)."""

    protocol: str
    rate: np.ndarray
    wd: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        check_wd_protocol(self.protocol)
        rate = positive_array("rate", self.rate)
        wd = positive_array("wd", self.wd)
        try:
            rate, wd = np.broadcast_arrays(rate, wd)
        except ValueError:
            raise ValueError(f"rate {rate.shape} and wd {wd.shape} do not broadcast") from None
        if rate.ndim == 0:
            rate, wd = rate[None], wd[None]
        object.__setattr__(self, "rate", np.array(rate, dtype=np.float64))
        object.__setattr__(self, "wd", np.array(wd, dtype=np.float64))

    @property
    def steps(self) -> int:
        """The number of steps (the last axis)."""
        return int(self.rate.shape[-1])


# --------------------------------------------------------------------------------------------
# stationary state at a given effective learning rate


def _psi(curve: NoiseCurve, elr: np.ndarray) -> np.ndarray:
    """psi(elr) = elr^2 Q(elr)."""
    return elr * elr * curve.trace_total(elr)


def _phi(psi: np.ndarray, exact: bool) -> np.ndarray:
    """eta lambda at the stationary state of effective LR elr, from psi = elr^2 Q(elr):
    psi / 2, or (exact) 1 - sqrt(1 - psi) = psi / (1 + sqrt(1 - psi)), NaN for psi >= 1: the
    fixed point of the mean one-step radial map the paths iterate. It ignores the
    multiplicative noise of ||g||^2 (relative variance v, 2 / (d-1) for isotropic noise), which
    moves the mean radius by about -5 psi v / 16: negligible for the networks (d in the
    thousands), and why `thermosgd.theory.radius_discrete` refuses it for "elr"."""
    if not exact:
        return psi / 2.0
    ok = psi < 1.0
    with np.errstate(invalid="ignore"):
        return np.where(ok, psi / (1.0 + np.sqrt(np.where(ok, 1.0 - psi, 1.0))), np.nan)


def _solve_elr(curve: NoiseCurve, g, target) -> np.ndarray:
    """The smallest elr in curve.domain with g(elr) = target (searched in log elr; NaN where
    out of reach)."""
    lo, hi = (math.log(v) for v in curve.domain)
    return np.exp(smallest_root(lambda x: g(np.exp(x)), target, lo, hi))


def _entropy(temperature: np.ndarray, r2: np.ndarray, dim: int) -> np.ndarray:
    """S = theory.full_entropy(theory.equipartition_entropy(T, d), r, d)
    = (d-1)/2 log(2 pi e T) + (d-1) log r; NaN where T or r^2 is not a positive number."""
    t, r2 = np.broadcast_arrays(np.asarray(temperature, float), np.asarray(r2, float))
    ok = np.isfinite(t) & (t > 0) & np.isfinite(r2) & (r2 > 0)
    s_dir = equipartition_entropy(np.where(ok, t, 1.0), dim)
    s = full_entropy(s_dir, np.sqrt(np.where(ok, r2, 1.0)), dim)
    return np.where(ok, s, np.nan)


def state_at(protocol: str, elr, wd, noise: NoiseCurve | float, *, dim: int | None = None,
             lr=None, exact: bool = True) -> dict[str, np.ndarray]:
    """Stationary state at effective LR ``elr`` and weight decay ``wd`` (arrays broadcast).

    "elr": r^2 = phi(elr) / (elr lambda), eta = elr r^2. "lr": eta = ``lr`` if given (then
    r^2 = eta / elr), else eta = phi(elr) / lambda. T = elr sigma2(elr) / 2, V = r^2 / 2,
    p = lambda, S = (d-1)/2 log(2 pi e T) + (d-1) log r. Keys: elr, lr, wd, radius, volume,
    temperature, pressure, entropy.
    """
    check_wd_protocol(protocol)
    c = as_curve(noise, dim)
    elr, lam = np.broadcast_arrays(positive_array("elr", elr), positive_array("wd", wd))
    eta_lam = _phi(_psi(c, elr), exact)
    if protocol == "lr" and lr is not None:
        eta = np.broadcast_to(positive_array("lr", lr), elr.shape)
        r2 = eta / elr
    else:
        r2 = eta_lam / (elr * lam)
        eta = elr * r2
    t = elr * c.sigma2(elr) / 2.0
    s = _entropy(t, r2, c.dim)
    return {"elr": elr, "lr": eta, "wd": lam, "radius": np.sqrt(r2), "volume": r2 / 2.0,
            "temperature": t, "pressure": lam, "entropy": s}


def _elr_of_lr(c: NoiseCurve, lr: np.ndarray, wd: np.ndarray, exact: bool) -> np.ndarray:
    """Stationary elr of the fixed-LR protocol: psi(elr) = 2 eta lambda (exact: eta lambda
    (2 - eta lambda); NaN for eta lambda >= 2)."""
    el = lr * wd
    h = el * (2.0 - el) if exact else 2.0 * el
    h = np.where(el < 2.0, h, np.nan) if exact else h
    return _solve_elr(c, lambda elr: np.log(_psi(c, elr)), np.log(np.where(h > 0, h, np.nan)))


def equilibrium(process: Process, noise: NoiseCurve | float, *, dim: int | None = None,
                exact: bool = True) -> dict[str, np.ndarray]:
    """The equilibrium (stationary) path of a schedule: the state each step's (rate, wd)
    would settle to (`state_at`), plus the relaxation time ``tau`` (`relaxation_times`).
    Arrays of the process's shape; NaN where no stationary state exists in the noise curve's
    domain."""
    c = as_curve(noise, dim)
    if process.protocol == "elr":
        elr = process.rate
        lo, hi = c.domain
        elr = np.where((elr >= lo) & (elr <= hi), elr, np.nan)
        st = state_at("elr", np.where(np.isnan(elr), 1.0, elr), process.wd, c, exact=exact)
        st = {k: np.where(np.isnan(elr), np.nan, v) for k, v in st.items()}
    else:
        elr = _elr_of_lr(c, process.rate, process.wd, exact)
        ok = np.isfinite(elr)
        st = state_at("lr", np.where(ok, elr, 1.0), process.wd, c, lr=process.rate,
                      exact=exact)
        st = {k: np.where(ok, v, np.nan) for k, v in st.items()}
    st["tau"] = relaxation_times(process.protocol, st["elr"], process.rate, process.wd, c)
    return st


def relaxation_times(protocol: str, elr, rate, wd, noise: NoiseCurve | float, *,
                     dim: int | None = None) -> np.ndarray:
    """Linear relaxation time (iterations) of the radius at the state of effective LR elr.

    "elr": 1 / (elr^2 Q(elr)) (theory.relaxation_time: Q depends on the schedule only).
    "lr": 1 / (4 eta lambda (1 + s/2)), s = d log Q / d log elr at elr: linearizing
    d r^4/dt = -4 eta lambda r^4 + 2 eta^2 Q(eta / r^2) at r*^4 adds 2 eta^2 Q'(elr) delr/dr^4
    = -s eta^2 Q / r^4 = -2 s eta lambda to the rate. NaN where 1 + s/2 <= 0 (no restoring
    force) or elr is NaN.
    """
    check_wd_protocol(protocol)
    c = as_curve(noise, dim)
    elr = np.asarray(elr, dtype=np.float64)
    ok = np.isfinite(elr) & (elr > 0)
    e = np.where(ok, elr, 1.0)
    if protocol == "elr":
        tau = 1.0 / (e * e * c.trace_total(e))
    else:
        factor = 1.0 + c.slope_total(e) / 2.0
        rate = np.asarray(rate, dtype=np.float64)
        wd = np.asarray(wd, dtype=np.float64)
        with np.errstate(divide="ignore"):
            tau = np.where(factor > 0, 1.0 / (4.0 * rate * wd * np.where(factor > 0, factor, 1)),
                           np.nan)
    return np.where(ok, tau, np.nan)


# --------------------------------------------------------------------------------------------
# processes


def isothermal(protocol: str, wd, *, rate0: float, name: str = "isothermal") -> Process:
    """Change lambda along ``wd`` at fixed equilibrium T: "lr": eta_t = eta_0 lambda_0 /
    lambda_t; "elr": eta-tilde_t = eta-tilde_0 (independent of the noise curve)."""
    check_wd_protocol(protocol)
    wd = positive_array("wd", wd)
    r0 = float(positive_array("rate0", rate0))
    lam0 = wd.reshape(-1)[0] if wd.ndim else float(wd)
    rate = r0 * lam0 / wd if protocol == "lr" else np.full(wd.shape, r0)
    return Process(protocol, rate, wd, name)


def _rate_for_temperature(protocol: str, temperature: np.ndarray, wd: np.ndarray,
                          c: NoiseCurve, exact: bool) -> np.ndarray:
    elr = _solve_elr(c, lambda e: np.log(e * c.sigma2(e) / 2.0), np.log(temperature))
    if protocol == "elr":
        return elr
    return _phi(_psi(c, elr), exact) / wd


def isobaric(protocol: str, temperature, wd: float, noise: NoiseCurve | float, *,
             dim: int | None = None, exact: bool = True, name: str = "isobaric") -> Process:
    """Hold lambda = ``wd`` and move the equilibrium T along ``temperature``: the rate is
    solved from T = elr sigma2(elr) / 2 ("elr": eta-tilde = elr; "lr": eta = phi(elr) /
    lambda). Raises where a temperature is out of the noise curve's reach."""
    check_wd_protocol(protocol)
    c = as_curve(noise, dim)
    t = positive_array("temperature", temperature)
    lam = np.broadcast_to(positive_array("wd", wd), t.shape)
    rate = _rate_for_temperature(protocol, t, lam, c, exact)
    if not np.all(np.isfinite(rate)):
        raise ValueError("isobaric: some temperatures are out of reach of the noise curve")
    return Process(protocol, rate, lam, name)


def adiabatic(protocol: str, wd, *, rate0: float, noise: NoiseCurve | float,
              dim: int | None = None, exact: bool = True, name: str = "adiabatic") -> Process:
    """Change lambda along ``wd`` at fixed equilibrium entropy S (the value at (rate0,
    wd[0])): for each lambda_t the effective LR elr_t solves S(elr, lambda_t) = S_0
    (`state_at`; S increases with elr), then "elr": eta-tilde_t = elr_t; "lr":
    eta_t = phi(elr_t) / lambda_t. For constant sigma2 and exact=False this is eta_t = eta_0
    ("lr") and eta-tilde_t = eta-tilde_0 sqrt(lambda_t / lambda_0) ("elr")."""
    check_wd_protocol(protocol)
    c = as_curve(noise, dim)
    wd = positive_array("wd", wd)
    r0 = float(positive_array("rate0", rate0))
    lam0 = float(wd.reshape(-1)[0])
    start = equilibrium(Process(protocol, r0, lam0), c, exact=exact)
    s0 = float(start["entropy"].reshape(-1)[0])
    if not math.isfinite(s0):
        raise ValueError("adiabatic: no stationary state at (rate0, wd[0])")
    # S(elr, lambda) = A(elr) - (d-1)/2 log(lambda) with A(elr) = S(elr, 1): r^2 = phi(elr) /
    # (elr lambda) in both protocols. Solve A(elr_t) = S_0 + (d-1)/2 log(lambda_t) on the
    # branch of A (monotone segment) that holds the starting elr_0.
    scale = abs(s0) + c.dim  # O(1) values for the root finder

    def a_of_x(x):
        return state_at(protocol, np.exp(x), 1.0, c, exact=exact)["entropy"] / scale

    lo, hi = (math.log(v) for v in c.domain)
    lo, hi = monotone_segment(a_of_x, math.log(float(start["elr"].reshape(-1)[0])), lo, hi)
    target = (s0 + (c.dim - 1) / 2.0 * np.log(wd)) / scale
    elr = np.exp(smallest_root(a_of_x, target, lo, hi))
    if not np.all(np.isfinite(elr)):
        raise ValueError("adiabatic: the entropy S_0 is out of reach for some weight decays "
                         "(on the branch of the starting effective learning rate)")
    rate = elr if protocol == "elr" else _phi(_psi(c, elr), exact) / wd
    return Process(protocol, rate, wd, name)


# --------------------------------------------------------------------------------------------
# the lagged (actual) path and the lag


def _init_radius(process: Process, c: NoiseCurve, init_radius, exact: bool, who: str):
    """The given initial radius, or the equilibrium radius of step 0."""
    if init_radius is not None:
        return positive_array("init_radius", init_radius)
    first = Process(process.protocol, process.rate[..., :1], process.wd[..., :1])
    r0 = equilibrium(first, c, exact=exact)["radius"][..., 0]
    if not np.all(np.isfinite(r0)):
        raise ValueError(f"{who}: no stationary radius at step 0; give init_radius")
    return r0


def lagged_path(process: Process, noise: NoiseCurve | float, *, dim: int | None = None,
                init_radius=None, exact: bool = True, trace_total=None,
                angular_rate: float | None = None) -> dict[str, np.ndarray]:
    """The mean radial path of a scheduled run: r_t = radius before step t.

    Iterates r^2_{t+1} = (1 - eta_t lambda_t)^2 r^2_t + eta_t^2 Q_t / r^2_t with
    elr_t = eta_t / r^2_t ("lr") or eta_t = eta-tilde_t r^2_t, elr_t = eta-tilde_t ("elr")
    (the expected squared norm after one SGD step with coupled weight decay, g orthogonal to
    w, E||g||^2 = Q / r^2), vectorized over the leading (schedule) axes. Q_t:

    * default: the stationary Q(elr_t) of the noise curve (the angular state follows
      instantly); outside the curve's domain it is extrapolated;
    * ``trace_total``: a given per-step Q (broadcast to the process's shape), e.g. the
      measured one, to test the radial dynamics alone;
    * ``angular_rate`` = h: Q_t and sigma2_t relax towards Q(elr_t), sigma2(elr_t) at the
      rate 1 / theory.angular_mixing_time(elr_t, h) = h elr_t per step,
      Q_{t+1} = Q_t + min(1, h elr_t) (Q(elr_t) - Q_t) (a one-parameter model of the angular
      lag; h plays the curvature of the loss on the unit sphere).

    ``init_radius`` default: the equilibrium radius of step 0 (with ``exact``). Returns elr
    (elr_t), radius, volume, temperature (elr_t sigma2_t / 2), entropy, wd, lr (eta_t),
    trace_total (Q_t).
    """
    c = as_curve(noise, dim)
    r0 = _init_radius(process, c, init_radius, exact, "lagged_path")
    if angular_rate is not None:
        angular_rate = float(positive_array("angular_rate", angular_rate))
        if trace_total is not None:
            raise ValueError("lagged_path: give trace_total or angular_rate, not both")
    shape = process.rate.shape
    n = shape[-1]
    r2 = np.empty(shape)
    qs = np.empty(shape)
    s2 = None
    r2[..., 0] = np.broadcast_to(r0, shape[:-1]) ** 2
    rate, lam = process.rate, process.wd
    q_given = None
    if trace_total is not None:
        q_given = np.broadcast_to(positive_array("trace_total", trace_total), shape)
    elif process.protocol == "elr" and angular_rate is None:
        q_given = c.trace_total(rate)

    def elr_of(t):
        return rate[..., t] / r2[..., t] if process.protocol == "lr" else rate[..., t]

    if angular_rate is not None:
        s2 = np.empty(shape)
        elr0 = elr_of(0)
        qs[..., 0], s2[..., 0] = c.trace_total(elr0), c.sigma2(elr0)
    for t in range(n):
        x = r2[..., t]
        if angular_rate is not None:
            if t + 1 < n:
                e = elr_of(t)
                k = np.minimum(1.0, 1.0 / angular_mixing_time(e, angular_rate))
                qs[..., t + 1] = qs[..., t] + k * (c.trace_total(e) - qs[..., t])
                s2[..., t + 1] = s2[..., t] + k * (c.sigma2(e) - s2[..., t])
        elif q_given is None:
            qs[..., t] = c.trace_total(elr_of(t))
        else:
            qs[..., t] = q_given[..., t]
        if t + 1 < n:
            eta = rate[..., t] if process.protocol == "lr" else rate[..., t] * x
            r2[..., t + 1] = (1.0 - eta * lam[..., t]) ** 2 * x + eta * eta * qs[..., t] / x
    elr = rate / r2 if process.protocol == "lr" else rate
    temp = elr * (c.sigma2(elr) if s2 is None else s2) / 2.0
    ent = _entropy(temp, r2, c.dim)
    lr = rate if process.protocol == "lr" else rate * r2
    return {"elr": elr, "lr": lr, "wd": lam, "radius": np.sqrt(r2), "volume": r2 / 2.0,
            "temperature": temp, "entropy": ent, "trace_total": qs}


def _linear_recurrence(log_alpha: np.ndarray, beta: np.ndarray, y0: np.ndarray,
                       block: float = 600.0) -> np.ndarray:
    """y_{t+1} = alpha_t y_t + beta_t (alpha in (0, 1], beta >= 0) solved without a loop over
    steps: within a block, y_t = e^{L_t} (y_s + sum_{j<t} beta_j e^{-L_{j+1}}) with L the
    cumulative log alpha from the block start s; blocks end before -L exceeds ``block`` (no
    overflow; all terms are positive, so no cancellation). Last axis = steps (n - 1)."""
    n1 = log_alpha.shape[-1]
    y = np.empty((*log_alpha.shape[:-1], n1 + 1))
    y[..., 0] = y0
    decay = (-log_alpha).reshape(-1, n1).max(axis=0)  # the fastest decay of each step
    total = np.concatenate([[0.0], np.cumsum(decay)])
    start = 0
    while start < n1:
        end = int(np.searchsorted(total, total[start] + block, side="right")) - 1
        end = min(max(end, start + 1), n1)
        L = np.cumsum(log_alpha[..., start:end], axis=-1)
        w = np.cumsum(beta[..., start:end] * np.exp(-L), axis=-1)
        y[..., start + 1:end + 1] = np.exp(L) * (y[..., start, None] + w)
        start = end
    return y


def sde_path(process: Process, noise: NoiseCurve | float, *, dim: int | None = None,
             init_radius=None, trace_total=None) -> dict[str, np.ndarray]:
    """The radial SDE solved exactly with per-step constant hyperparameters, vectorized over
    steps and schedules (no Python loop over steps).

    "elr": v = 1 / r^2 obeys dv/dt = 2 elr lambda - elr^2 Q(elr) v (linear: Q depends on the
    schedule only), so v_{t+1} = v* + (v_t - v*) e^{-elr^2 Q}, v* = 2 lambda / (elr Q).
    "lr": x = r^4 obeys dx/dt = -4 eta lambda x + 2 eta^2 Q, linear when Q does not depend on
    the radius: a constant noise curve or a given per-step ``trace_total``; otherwise
    ValueError (use `lagged_path`). It differs from the one-step map (`lagged_path`) by
    O(eta lambda) per relaxation time. Returns the keys of `lagged_path` (temperature with
    the curve's sigma2)."""
    c = as_curve(noise, dim)
    shape = process.rate.shape
    rate, lam = process.rate, process.wd
    if trace_total is not None:
        q = np.broadcast_to(positive_array("trace_total", trace_total), shape)
    elif process.protocol == "elr":
        q = c.trace_total(rate)
    elif c.total_coef.size == 1 or not np.any(c.total_coef[1:]):
        q = np.broadcast_to(c.trace_total(1.0), shape)
    else:
        raise ValueError("sde_path: at fixed LR with a noise curve that depends on elr the "
                         "radial ODE is nonlinear; use lagged_path")
    r0 = np.broadcast_to(_init_radius(process, c, init_radius, False, "sde_path"), shape[:-1])
    if process.protocol == "elr":
        a = rate * rate * q
        vstar = 2.0 * lam / (rate * q)
        y = _linear_recurrence(-a[..., :-1], (vstar * -np.expm1(-a))[..., :-1], 1.0 / r0**2)
        r2 = 1.0 / y
    else:
        k = 4.0 * rate * lam
        xstar = rate * q / (2.0 * lam)
        y = _linear_recurrence(-k[..., :-1], (xstar * -np.expm1(-k))[..., :-1], r0**4)
        r2 = np.sqrt(y)
    elr = rate / r2 if process.protocol == "lr" else rate
    temp = elr * c.sigma2(elr) / 2.0
    return {"elr": elr, "lr": rate if process.protocol == "lr" else rate * r2, "wd": lam,
            "radius": np.sqrt(r2), "volume": r2 / 2.0, "temperature": temp,
            "entropy": _entropy(temp, r2, c.dim), "trace_total": np.array(q)}


def lag_measures(volume, volume_eq, tau) -> dict[str, np.ndarray]:
    """Lag of a path behind its equilibrium curve (last axis = steps).

    dlogV_eq_dt: d log V_eq / dt per iteration (numpy.gradient: central differences, one-sided
    at the ends); quasi_static: tau |d log V_eq / dt| (<< 1: quasi-static);
    gap_first_order: -tau d log V_eq / dt, the first-order prediction of the gap;
    gap: V / V_eq - 1. NaN (e.g. no equilibrium in the noise curve's domain) propagates.
    """
    v = np.asarray(volume, dtype=np.float64)
    veq = np.asarray(volume_eq, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        logv = np.log(veq)
        rate = np.gradient(logv, axis=-1) if logv.shape[-1] > 1 else np.zeros_like(logv)
        return {"dlogV_eq_dt": rate, "quasi_static": tau * np.abs(rate),
                "gap_first_order": -tau * rate, "gap": v / veq - 1.0}
