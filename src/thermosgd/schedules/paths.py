"""Learning-rate / weight-decay schedules as thermodynamic processes, and their prediction.

Functional core (pure numpy float64 functions on arrays) + a thin training driver.

Schedules and processes
-----------------------
A schedule is a pair of per-step arrays (rate_t, lambda_t): rate = eta (protocol ``"lr"``,
w <- w - eta (g + lambda w)) or eta-tilde (protocol ``"elr"``, eta_t = eta-tilde r_t^2). The
common schedules (`constant`, `step_decay`, `cosine`, `linear_warmup`) build them; the
thermodynamic processes are defined by what they hold fixed (equilibrium values, `equilibrium`):

* `isothermal`: T fixed while lambda changes. "lr": eta_t lambda_t = const (exact for any
  noise curve: the stationary eta-tilde depends on (eta, lambda) only through eta lambda);
  "elr": eta-tilde fixed (T = eta-tilde sigma2(eta-tilde) / 2).
* `isobaric`: lambda fixed, T follows a given path; the rate is solved from T.
* `adiabatic`: the equilibrium entropy S = (d-1)/2 log(2 pi e T) + (d-1) log r fixed while
  lambda changes (theory.equipartition_entropy + theory.full_entropy). S depends on
  T r^2 = 2 T V only, so an adiabat keeps T V fixed; with the ideal-gas law p V = (d-1) T / 2
  that is p V^2 = const (adiabatic index 2, C_V = (d-1)/2). For constant sigma2 (SDE):
  "lr": T V = eta sigma2 / 4, so eta stays fixed; "elr": T V = (d-1) eta-tilde^2 sigma2^2
  / (8 lambda), so eta-tilde ~ sqrt(lambda). With a fitted sigma2(eta-tilde) the rate is solved.

Noise curve
-----------
`NoiseCurve` holds sigma2(u) = tr Sigma / (d-1) and q(u) = Q / (d-1) (Q = tr Sigma + ||grad
L||^2, all on the unit sphere) as functions of the effective learning rate u = eta-tilde:
log-log polynomials fitted to a sweep table (`fit_noise_curve`) or constants
(`NoiseCurve.constant`). Stationary state at u (``exact`` keeps the eta^2 lambda^2 term of the
one-step balance, see `thermosgd.theory.radius_discrete`), with psi(u) = u^2 Q(u):

* "elr": r^2 = phi(u) / (u lambda); "lr": psi(u) = 2 eta lambda (exact: eta lambda (2 - eta
  lambda)) is solved for u, and r^2 = eta / u;
  phi(u) = psi / 2 (exact: 1 - sqrt(1 - psi), the stable root; NaN for psi >= 1);
* T = u sigma2(u) / 2, p = lambda, V = r^2 / 2, S = (d-1)/2 log(2 pi e T) + (d-1)/2 log(r^2).

Lag
---
`lagged_path` iterates the mean one-step radial map
r^2 <- (1 - eta_t lambda_t)^2 r^2 + eta_t^2 Q(eta_t / r^2) / r^2 (eta_t = eta-tilde_t r^2 for
"elr"), vectorized over schedules. `relaxation_times` gives the linear relaxation time of
that map's SDE limit: "elr": 1 / (u^2 Q(u)) (as theory.relaxation_time); "lr":
1 / (4 eta lambda (1 + s / 2)), s = d log Q / d log u at the equilibrium: Q depends on the
radius through u = eta / r^2, which changes the linear rate of r^4 from theory's 4 eta lambda
(s = 0). For x = r^4 (lr) or 1/r^2 (elr) relaxing linearly, x - x_eq ~ -tau dx_eq/dt, so to
first order V / V_eq - 1 = -tau d log V_eq / dt for both protocols: the quasi-static ratio
tau |d log V_eq/dt| (`lag_measures`) is the predicted relative gap. On networks the noise
itself lags (the direction law relaxes more slowly than the radius): ``angular_rate`` lets Q
and sigma2 relax at a rate h u per step (docs/schedules.md).

Prediction and tracking
-----------------------
`predict` / `recommend` / `validate_predictions` turn a fitted curve into stationary states and
back; `track` trains a BN-MLP on digits under a schedule (records through a
`thermosgd.monitor.ThermoMonitor`), `follow` compares any monitored run with its schedule, and
`write_track` writes the CSV / PNG / schedule.json of either.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from thermosgd import theory
from thermosgd.theory import _as_float, _positive

__all__ = [
    "PROCESS_PROTOCOLS",
    "SCHEDULES",
    "NoiseCurve",
    "Process",
    "TrackConfig",
    "adiabatic",
    "analyze_track",
    "analyze_trajectory",
    "constant",
    "cosine",
    "equilibrium",
    "fit_noise_curve",
    "fit_relaxation",
    "follow",
    "format_columns",
    "format_track",
    "isobaric",
    "isothermal",
    "lag_measures",
    "lagged_path",
    "linear_warmup",
    "make_schedule",
    "noise_points",
    "predict",
    "prediction_columns",
    "recommend",
    "relaxation_times",
    "sde_path",
    "state_at",
    "step_decay",
    "temperature_range",
    "track",
    "track_summary",
    "validate_predictions",
    "write_track",
    "write_validation",
]

PROCESS_PROTOCOLS = ("lr", "elr")
SCHEDULES = ("constant", "step", "cosine")
_RATE = {"lr": "lr", "elr": "elr"}
_BISECT_ITERS = 200


# --------------------------------------------------------------------------------------------
# validation helpers


def _protocol(protocol: Any) -> str:
    if protocol not in PROCESS_PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROCESS_PROTOCOLS}, got {protocol!r}")
    return protocol


def _steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return int(steps)


def _dim(dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    return int(dim)


# --------------------------------------------------------------------------------------------
# common schedules (values per step t = 0 .. steps-1)


def constant(steps: int, value: float) -> np.ndarray:
    """value at every step."""
    return np.full(_steps(steps), float(_positive("value", value)))


def step_decay(steps: int, value: float, *, milestones: Sequence[int], gamma: float = 0.1
               ) -> np.ndarray:
    """value * gamma^k, k = number of milestones <= t (torch's MultiStepLR)."""
    n = _steps(steps)
    v = float(_positive("value", value))
    g = float(_positive("gamma", gamma))
    m = np.asarray(sorted(int(s) for s in milestones), dtype=np.int64)
    if m.size and (m[0] < 1 or m[-1] >= n):
        raise ValueError(f"milestones must lie in [1, steps-1] = [1, {n - 1}], got {list(m)}")
    k = np.searchsorted(m, np.arange(n), side="right")
    return v * g ** k


def cosine(steps: int, value: float, *, final: float = 0.0) -> np.ndarray:
    """final + (value - final) (1 + cos(pi t / steps)) / 2 (torch's CosineAnnealingLR with
    T_max = steps; > final at every step t < steps)."""
    n = _steps(steps)
    v = float(_positive("value", value))
    f = float(_as_float("final", final))
    if not 0 <= f < v:
        raise ValueError(f"final must be in [0, value) = [0, {v}), got {f}")
    t = np.arange(n)
    return f + (v - f) * (1.0 + np.cos(np.pi * t / n)) / 2.0


def linear_warmup(values: Any, warmup: int, *, start: float = 0.0) -> np.ndarray:
    """A schedule with a linear warm-up composed in: values_t * (start + (1 - start)
    min(1, (t + 1) / warmup)) (last axis = steps; the first step is > 0 even for start = 0)."""
    v = _positive("values", values)
    w = _steps(warmup)
    s = float(_as_float("start", start))
    if not 0 <= s <= 1:
        raise ValueError(f"start must be in [0, 1], got {s}")
    t = np.arange(v.shape[-1])
    return v * (s + (1.0 - s) * np.minimum(1.0, (t + 1.0) / w))


def make_schedule(kind: str, steps: int, value: float, *, milestones: Sequence[int] = (),
                  gamma: float = 0.1, final: float = 0.0, warmup: int = 0) -> np.ndarray:
    """One of ``SCHEDULES`` by name ("constant", "step", "cosine"), optional warm-up."""
    if kind == "constant":
        v = constant(steps, value)
    elif kind == "step":
        if not milestones:
            raise ValueError("a step schedule needs milestones")
        v = step_decay(steps, value, milestones=milestones, gamma=gamma)
    elif kind == "cosine":
        v = cosine(steps, value, final=final)
    else:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    return linear_warmup(v, warmup) if warmup else v


@dataclass(frozen=True)
class Process:
    """A schedule: per-step ``rate`` (eta for "lr", eta-tilde for "elr") and weight decay
    ``wd``, broadcast to a common shape (..., steps) (leading axes: several schedules)."""

    protocol: str
    rate: np.ndarray
    wd: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        _protocol(self.protocol)
        rate = _positive("rate", self.rate)
        wd = _positive("wd", self.wd)
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
        return int(self.rate.shape[-1])


# --------------------------------------------------------------------------------------------
# noise curve sigma2(u), Q(u)


def _polyval(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sum_k coef[k] x^k (increasing powers)."""
    out = np.zeros_like(x)
    for c in coef[::-1]:
        out = out * x + c
    return out


def _polyder(coef: np.ndarray) -> np.ndarray:
    return coef[1:] * np.arange(1, len(coef)) if len(coef) > 1 else np.zeros(1)


@dataclass(frozen=True)
class NoiseCurve:
    """sigma2(u) = tr Sigma / (d-1) and q(u) = Q / (d-1) on the unit sphere vs u = eta-tilde.

    log sigma2 = sum_k sigma2_coef[k] x^k and log q = sum_k total_coef[k] x^k with
    x = log(u / u_ref). ``*_cov``: covariance of the coefficients (zeros: exact);
    [u_min, u_max]: the fitted range; ``extrapolate``: how far (a factor on each side) the
    solvers may leave it. ``dim`` = d. ``sigma2_rms``/``total_rms``: RMS relative residual of
    the fits (0 for a constant curve).
    """

    dim: int
    sigma2_coef: np.ndarray
    total_coef: np.ndarray
    u_ref: float = 1.0
    u_min: float = 1e-12
    u_max: float = 1e6
    sigma2_cov: np.ndarray | None = None
    total_cov: np.ndarray | None = None
    extrapolate: float = 2.0
    points: int = 0
    sigma2_rms: float = 0.0
    total_rms: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        _dim(self.dim)
        for name in ("sigma2_coef", "total_coef"):
            c = _as_float(name, getattr(self, name)).reshape(-1)
            if c.size < 1:
                raise ValueError(f"{name} needs at least one coefficient")
            object.__setattr__(self, name, c)
        for name in ("u_ref", "u_min", "u_max", "extrapolate"):
            _positive(name, getattr(self, name))
        if not self.u_min <= self.u_max or self.extrapolate < 1:
            raise ValueError("need u_min <= u_max and extrapolate >= 1")
        for name, coef in (("sigma2_cov", self.sigma2_coef), ("total_cov", self.total_coef)):
            cov = getattr(self, name)
            cov = np.zeros((coef.size, coef.size)) if cov is None else _as_float(
                name, cov)
            if cov.shape != (coef.size, coef.size):
                raise ValueError(f"{name} must be {coef.size}x{coef.size}, got {cov.shape}")
            object.__setattr__(self, name, cov)

    @classmethod
    def constant(cls, sigma2: float, dim: int, trace_total: float | None = None) -> NoiseCurve:
        """Noise independent of u: sigma2 and Q = trace_total (default (d-1) sigma2: the SDE
        theory, no gradient term)."""
        s = float(_positive("sigma2", sigma2))
        d = _dim(dim)
        q = (d - 1) * s if trace_total is None else float(_positive("trace_total", trace_total))
        return cls(dim=d, sigma2_coef=np.array([math.log(s)]),
                   total_coef=np.array([math.log(q / (d - 1))]), source="constant")

    # -- evaluation ------------------------------------------------------------------------

    def _x(self, u) -> np.ndarray:
        """log(u / u_ref); NaN propagates (the solvers mark unreachable points with it)."""
        try:
            a = np.asarray(u, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"elr must be a real number or array, got {u!r}") from None
        if np.any(a <= 0) or np.any(np.isinf(a)):
            raise ValueError("elr must be > 0 and finite")
        return np.log(a / self.u_ref)

    def sigma2(self, u) -> np.ndarray:
        """sigma2(u) = tr Sigma / (d - 1) on the unit sphere."""
        return np.exp(_polyval(self.sigma2_coef, self._x(u)))

    def trace_total(self, u) -> np.ndarray:
        """Q(u) = tr Sigma + ||grad L||^2 on the unit sphere."""
        return (self.dim - 1) * np.exp(_polyval(self.total_coef, self._x(u)))

    def slope_sigma2(self, u) -> np.ndarray:
        """d log sigma2 / d log u."""
        return _polyval(_polyder(self.sigma2_coef), self._x(u))

    def slope_total(self, u) -> np.ndarray:
        """d log Q / d log u."""
        return _polyval(_polyder(self.total_coef), self._x(u))

    @property
    def domain(self) -> tuple[float, float]:
        """(lo, hi): where the solvers look for u (the fit range widened by ``extrapolate``)."""
        return self.u_min / self.extrapolate, self.u_max * self.extrapolate

    def perturbed(self, which: str, delta: np.ndarray) -> NoiseCurve:
        """The curve with ``which`` ("sigma2" or "total") coefficients shifted by delta."""
        kw = {f"{which}_coef": getattr(self, f"{which}_coef") + delta}
        return replace(self, **kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> NoiseCurve:
        return cls(**{k: (np.asarray(v) if isinstance(v, list) else v) for k, v in d.items()})


def _as_curve(noise: NoiseCurve | float, dim: int | None) -> NoiseCurve:
    if isinstance(noise, NoiseCurve):
        if dim is not None and _dim(dim) != noise.dim:
            raise ValueError(f"dim {dim} differs from the noise curve's dim {noise.dim}")
        return noise
    if dim is None:
        raise ValueError("a constant sigma2 needs dim")
    return NoiseCurve.constant(noise, dim)


def noise_points(table: dict, protocols: Sequence[str] = ("elr",), *,
                 stationary_only: bool = True, q_column: str = "trace_total"
                 ) -> dict[str, np.ndarray]:
    """The (u, sigma2, q) points of a results table (`thermosgd.analysis.load_table`).

    u = elr_effective (else elr for "elr" rows, lr / radius^2 for "lr" rows); sigma2 =
    trace_sigma / (d-1) (or the sigma2 column), q = trace_total / (d-1) (or (trace_sigma +
    grad_norm2) / (d-1)), with standard errors when the table has them; temperature =
    u sigma2 / 2, the temperature of the direction dynamics (for "lr" rows the table's
    ``temperature`` column is instead the SDE formula sqrt(eta lambda sigma2 / (2 (d-1))),
    which assumes the SDE radius, i.e. no ||grad L||^2 term; ``temperature_measured`` is
    u sigma2 / 2). Rows of other protocols, non-stationary rows (``stationary_only``) and
    rows with missing values are dropped. Keys: u, sigma2, sigma2_se, q, q_se, dim,
    protocol, lr, elr, wd, radius, temperature. ``q_column``: the column of Q, e.g.
    "trace_total_steps" (Q from every training step's own minibatch gradient, where the
    table has it) instead of the noise probes' "trace_total".
    """
    if not isinstance(table, dict) or "protocol" not in table:
        raise ValueError("table must be a column dict with a 'protocol' column (load_table)")
    for p in protocols:
        _protocol(p)
    n = len(table["protocol"])

    def col(name: str) -> np.ndarray:
        if name not in table:
            return np.full(n, np.nan)
        try:
            return np.asarray(table[name], dtype=np.float64)
        except (TypeError, ValueError):
            return np.full(n, np.nan)

    proto = np.asarray(table["protocol"]).astype(str)
    dim = col("dim")
    lr, elr, wd, radius = col("lr"), col("elr"), col("wd"), col("radius")
    u = col("elr_effective")
    fallback = np.where(proto == "elr", elr, lr / radius**2)
    u = np.where(np.isfinite(u), u, fallback)
    ts, gn = col("trace_sigma"), col("grad_norm2")
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma2 = np.where(np.isfinite(ts), ts / (dim - 1), col("sigma2"))
        s2se = np.where(np.isfinite(ts), col("trace_sigma_se") / (dim - 1), col("sigma2_se"))
        tt = col(q_column)
        tt = np.where(np.isfinite(tt), tt, ts + gn)
        q = tt / (dim - 1)
        tse = col(f"{q_column}_se")
        tse = np.where(np.isfinite(tse), tse, np.hypot(col("trace_sigma_se"),
                                                       col("grad_norm2_se")))
        qse = tse / (dim - 1)
    keep = np.isin(proto, list(protocols))
    if stationary_only and "stationary" in table:
        st = np.asarray(table["stationary"])
        keep &= np.array([str(v).lower() in ("true", "1", "1.0") for v in st])
    keep &= np.isfinite(u) & (u > 0) & np.isfinite(sigma2) & (sigma2 > 0)
    keep &= np.isfinite(q) & (q > 0) & np.isfinite(dim)
    out = {"u": u, "sigma2": sigma2, "sigma2_se": s2se, "q": q, "q_se": qse, "dim": dim,
           "protocol": proto, "lr": lr, "elr": elr, "wd": wd, "radius": radius,
           "temperature": u * sigma2 / 2.0}
    return {k: v[keep] for k, v in out.items()}


def _wls(x: np.ndarray, y: np.ndarray, se: np.ndarray, degree: int
         ) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted least squares y ~ sum_k c_k x^k; returns (c, cov, rms residual). With
    standard errors for every point, cov = (X^T W X)^-1 max(1, chi2 / dof) (the spread of the
    points when it exceeds their error bars); otherwise ordinary least squares with
    cov = (X^T X)^-1 RSS / dof."""
    X = np.vander(x, degree + 1, increasing=True)
    ok = np.isfinite(se) & (se > 0)
    weighted = bool(ok.all())
    w = 1.0 / np.where(ok, se, 1.0) ** 2 if weighted else np.ones_like(x)
    A = X.T @ (w[:, None] * X)
    c = np.linalg.solve(A, X.T @ (w * y))
    res = y - X @ c
    dof = len(x) - degree - 1
    chi2 = float(np.sum(w * res**2)) / dof if dof > 0 else 0.0
    scale = max(1.0, chi2) if weighted else chi2
    cov = np.linalg.inv(A) * scale
    return c, cov, float(np.sqrt(np.mean(res**2)))


def fit_noise_curve(table: dict, protocols: Sequence[str] = ("elr",), *, degree: int = 2,
                    stationary_only: bool = True, extrapolate: float = 2.0,
                    q_column: str = "trace_total") -> NoiseCurve:
    """Fit log sigma2 and log q = log(Q / (d-1)) as polynomials of degree ``degree`` in
    x = log(u / u_ref) (u_ref the geometric mean of the u's) to the rows of ``protocols``.

    Weighted least squares with the delta-method errors se(log y) = se(y) / y; the coefficient
    covariance is scaled up by chi2/dof when the points scatter more than their errors.
    Needs at least degree + 2 usable rows over at least degree + 1 distinct u's, all of one d.
    ``q_column``: see `noise_points`.
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= 3:
        raise ValueError(f"degree must be an integer in [0, 3], got {degree!r}")
    pts = noise_points(table, protocols, stationary_only=stationary_only, q_column=q_column)
    n = len(pts["u"])
    if n < degree + 2 or len(np.unique(np.round(np.log(pts["u"]), 9))) < degree + 1:
        raise ValueError(f"fit_noise_curve: {n} usable row(s) of protocol(s) "
                         f"{', '.join(protocols)}; degree {degree} needs at least {degree + 2} "
                         f"over {degree + 1} distinct effective learning rates")
    dims = np.unique(pts["dim"])
    if len(dims) != 1:
        raise ValueError(f"fit_noise_curve: rows have different dims {dims.tolist()}")
    u_ref = float(np.exp(np.mean(np.log(pts["u"]))))
    x = np.log(pts["u"] / u_ref)
    cs, cov_s, rms_s = _wls(x, np.log(pts["sigma2"]), pts["sigma2_se"] / pts["sigma2"], degree)
    cq, cov_q, rms_q = _wls(x, np.log(pts["q"]), pts["q_se"] / pts["q"], degree)
    return NoiseCurve(dim=int(dims[0]), sigma2_coef=cs, total_coef=cq, u_ref=u_ref,
                      u_min=float(pts["u"].min()), u_max=float(pts["u"].max()),
                      sigma2_cov=cov_s, total_cov=cov_q, extrapolate=float(extrapolate),
                      points=n, sigma2_rms=rms_s, total_rms=rms_q,
                      source=f"fit to {n} stationary {'+'.join(protocols)} rows")


# --------------------------------------------------------------------------------------------
# stationary state at a given effective learning rate


def _psi(curve: NoiseCurve, u: np.ndarray) -> np.ndarray:
    """psi(u) = u^2 Q(u)."""
    return u * u * curve.trace_total(u)


def _phi(psi: np.ndarray, exact: bool) -> np.ndarray:
    """eta lambda at the stationary state of effective LR u, from psi = u^2 Q(u): psi / 2,
    or (exact) 1 - sqrt(1 - psi) = psi / (1 + sqrt(1 - psi)), NaN for psi >= 1."""
    if not exact:
        return psi / 2.0
    ok = psi < 1.0
    with np.errstate(invalid="ignore"):
        return np.where(ok, psi / (1.0 + np.sqrt(np.where(ok, 1.0 - psi, 1.0))), np.nan)


def _smallest_root(f, target, lo: float, hi: float, grid: int = 257,
                   chunk: int = 8192) -> np.ndarray:
    """The smallest x in [lo, hi] with f(x) = target, vectorized over target.

    f maps an array of x to an array of the same shape (it must not depend on which target
    is being solved). A scan of f on ``grid`` points brackets the first sign change of
    f - target, then bisection refines it to float precision; targets are processed in
    chunks (memory grid x chunk). NaN where f - target does not change sign on the grid
    (out of reach, or two roots closer than a grid step). Where f is not monotone this picks
    the lowest effective learning rate that reaches the target.
    """
    target = np.asarray(target, dtype=np.float64)
    flat = target.reshape(-1)
    out = np.full(flat.shape, np.nan)
    xs = np.linspace(lo, hi, grid)
    step = (hi - lo) / (grid - 1)
    with np.errstate(invalid="ignore", over="ignore"):
        fx = f(xs)
        for start in range(0, flat.size, chunk):
            tg = flat[start:start + chunk]
            diff = fx[:, None] - tg[None, :]
            cross = (np.sign(diff[:-1]) * np.sign(diff[1:]) <= 0) & np.isfinite(diff[:-1]) \
                & np.isfinite(diff[1:])
            found = cross.any(axis=0)
            k = np.argmax(cross, axis=0)
            a, fa = xs[k], diff[k, np.arange(tg.size)]
            b = a + step
            for _ in range(_BISECT_ITERS):
                m = 0.5 * (a + b)
                fm = f(m) - tg
                same = np.sign(fm) == np.sign(fa)
                a, fa, b = np.where(same, m, a), np.where(same, fm, fa), np.where(same, b, m)
                if np.all(b - a <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(a))):
                    break
            out[start:start + chunk] = np.where(found, 0.5 * (a + b), np.nan)
    return out.reshape(target.shape)


def _monotone_segment(f, x0: float, lo: float, hi: float, grid: int = 1025
                      ) -> tuple[float, float]:
    """The sub-interval of [lo, hi] around x0 on which f (sampled on ``grid`` points) is
    monotone in the direction it has at x0."""
    xs = np.linspace(lo, hi, grid)
    with np.errstate(invalid="ignore"):
        sign = np.sign(np.diff(f(xs)))
    k = int(np.clip(np.searchsorted(xs, x0) - 1, 0, grid - 2))
    left = right = k
    while left > 0 and sign[left - 1] == sign[k]:
        left -= 1
    while right < grid - 2 and sign[right + 1] == sign[k]:
        right += 1
    return float(xs[left]), float(xs[right + 1])


def _solve_u(curve: NoiseCurve, g, target) -> np.ndarray:
    """The smallest u in curve.domain with g(u) = target (searched in log u)."""
    lo, hi = (math.log(v) for v in curve.domain)
    return np.exp(_smallest_root(lambda x: g(np.exp(x)), target, lo, hi))


def _entropy(temperature: np.ndarray, r2: np.ndarray, dim: int) -> np.ndarray:
    """S = theory.full_entropy(theory.equipartition_entropy(T, d), r, d)
    = (d-1)/2 log(2 pi e T) + (d-1) log r; NaN where T or r^2 is not a positive number."""
    t, r2 = np.broadcast_arrays(np.asarray(temperature, float), np.asarray(r2, float))
    ok = np.isfinite(t) & (t > 0) & np.isfinite(r2) & (r2 > 0)
    s_dir = theory.equipartition_entropy(np.where(ok, t, 1.0), dim)
    s = theory.full_entropy(s_dir, np.sqrt(np.where(ok, r2, 1.0)), dim)
    return np.where(ok, s, np.nan)


def state_at(protocol: str, u, wd, noise: NoiseCurve | float, *, dim: int | None = None,
             lr=None, exact: bool = True) -> dict[str, np.ndarray]:
    """Stationary state at effective LR ``u`` and weight decay ``wd`` (arrays broadcast).

    "elr": r^2 = phi(u) / (u lambda), eta = u r^2. "lr": eta = ``lr`` if given (then
    r^2 = eta / u), else eta = phi(u) / lambda. T = u sigma2(u) / 2, V = r^2 / 2, p = lambda,
    S = (d-1)/2 log(2 pi e T) + (d-1) log r. Keys: elr, lr, wd, radius, volume, temperature,
    pressure, entropy.
    """
    _protocol(protocol)
    c = _as_curve(noise, dim)
    u, lam = np.broadcast_arrays(_positive("elr", u), _positive("wd", wd))
    phi = _phi(_psi(c, u), exact)
    if protocol == "lr" and lr is not None:
        eta = np.broadcast_to(_positive("lr", lr), u.shape)
        r2 = eta / u
    else:
        r2 = phi / (u * lam)
        eta = u * r2
    t = u * c.sigma2(u) / 2.0
    s = _entropy(t, r2, c.dim)
    return {"elr": u, "lr": eta, "wd": lam, "radius": np.sqrt(r2), "volume": r2 / 2.0,
            "temperature": t, "pressure": lam, "entropy": s}


def _u_of_lr(c: NoiseCurve, lr: np.ndarray, wd: np.ndarray, exact: bool) -> np.ndarray:
    """Stationary u of the fixed-LR protocol: psi(u) = 2 eta lambda (exact: eta lambda
    (2 - eta lambda); NaN for eta lambda >= 2)."""
    el = lr * wd
    h = el * (2.0 - el) if exact else 2.0 * el
    h = np.where(el < 2.0, h, np.nan) if exact else h
    return _solve_u(c, lambda u: np.log(_psi(c, u)), np.log(np.where(h > 0, h, np.nan)))


def equilibrium(process: Process, noise: NoiseCurve | float, *, dim: int | None = None,
                exact: bool = True) -> dict[str, np.ndarray]:
    """The equilibrium (stationary) path of a schedule: the state each step's (rate, wd)
    would settle to (`state_at`), plus the relaxation time ``tau`` (`relaxation_times`).
    Arrays of the process's shape; NaN where no stationary state exists in the noise curve's
    domain."""
    c = _as_curve(noise, dim)
    if process.protocol == "elr":
        u = process.rate
        lo, hi = c.domain
        u = np.where((u >= lo) & (u <= hi), u, np.nan)
        st = state_at("elr", np.where(np.isnan(u), 1.0, u), process.wd, c, exact=exact)
        st = {k: np.where(np.isnan(u), np.nan, v) for k, v in st.items()}
    else:
        u = _u_of_lr(c, process.rate, process.wd, exact)
        ok = np.isfinite(u)
        st = state_at("lr", np.where(ok, u, 1.0), process.wd, c, lr=process.rate, exact=exact)
        st = {k: np.where(ok, v, np.nan) for k, v in st.items()}
    st["tau"] = relaxation_times(process.protocol, st["elr"], process.rate, process.wd, c)
    return st


def relaxation_times(protocol: str, u, rate, wd, noise: NoiseCurve | float, *,
                     dim: int | None = None) -> np.ndarray:
    """Linear relaxation time (iterations) of the radius at the state of effective LR u.

    "elr": 1 / (u^2 Q(u)) (theory.relaxation_time: Q depends on the schedule only).
    "lr": 1 / (4 eta lambda (1 + s/2)), s = d log Q / d log u at u: linearizing
    d r^4/dt = -4 eta lambda r^4 + 2 eta^2 Q(eta / r^2) at r*^4 adds 2 eta^2 Q'(u) du/dr^4
    = -s eta^2 Q / r^4 = -2 s eta lambda to the rate. NaN where 1 + s/2 <= 0 (no restoring
    force) or u is NaN.
    """
    _protocol(protocol)
    c = _as_curve(noise, dim)
    u = np.asarray(u, dtype=np.float64)
    ok = np.isfinite(u) & (u > 0)
    uu = np.where(ok, u, 1.0)
    if protocol == "elr":
        tau = 1.0 / (uu * uu * c.trace_total(uu))
    else:
        factor = 1.0 + c.slope_total(uu) / 2.0
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
    _protocol(protocol)
    wd = _positive("wd", wd)
    r0 = float(_positive("rate0", rate0))
    lam0 = wd.reshape(-1)[0] if wd.ndim else float(wd)
    rate = r0 * lam0 / wd if protocol == "lr" else np.full(wd.shape, r0)
    return Process(protocol, rate, wd, name)


def _rate_for_temperature(protocol: str, temperature: np.ndarray, wd: np.ndarray,
                          c: NoiseCurve, exact: bool) -> np.ndarray:
    u = _solve_u(c, lambda u: np.log(u * c.sigma2(u) / 2.0), np.log(temperature))
    if protocol == "elr":
        return u
    return _phi(_psi(c, u), exact) / wd


def isobaric(protocol: str, temperature, wd: float, noise: NoiseCurve | float, *,
             dim: int | None = None, exact: bool = True, name: str = "isobaric") -> Process:
    """Hold lambda = ``wd`` and move the equilibrium T along ``temperature``: the rate is
    solved from T = u sigma2(u) / 2 ("elr": eta-tilde = u; "lr": eta = phi(u) / lambda).
    Raises where a temperature is out of the noise curve's reach."""
    _protocol(protocol)
    c = _as_curve(noise, dim)
    t = _positive("temperature", temperature)
    lam = np.broadcast_to(_positive("wd", wd), t.shape)
    rate = _rate_for_temperature(protocol, t, lam, c, exact)
    if not np.all(np.isfinite(rate)):
        raise ValueError("isobaric: some temperatures are out of reach of the noise curve")
    return Process(protocol, rate, lam, name)


def adiabatic(protocol: str, wd, *, rate0: float, noise: NoiseCurve | float,
              dim: int | None = None, exact: bool = True, name: str = "adiabatic") -> Process:
    """Change lambda along ``wd`` at fixed equilibrium entropy S (the value at (rate0,
    wd[0])): for each lambda_t the effective LR u_t solves S(u, lambda_t) = S_0 (`state_at`;
    S increases with u), then "elr": eta-tilde_t = u_t; "lr": eta_t = phi(u_t) / lambda_t.
    For constant sigma2 and exact=False this is eta_t = eta_0 ("lr") and eta-tilde_t =
    eta-tilde_0 sqrt(lambda_t / lambda_0) ("elr")."""
    _protocol(protocol)
    c = _as_curve(noise, dim)
    wd = _positive("wd", wd)
    r0 = float(_positive("rate0", rate0))
    lam0 = float(wd.reshape(-1)[0])
    start = equilibrium(Process(protocol, r0, lam0), c, exact=exact)
    s0 = float(start["entropy"].reshape(-1)[0])
    if not math.isfinite(s0):
        raise ValueError("adiabatic: no stationary state at (rate0, wd[0])")
    # S(u, lambda) = A(u) - (d-1)/2 log(lambda) with A(u) = S(u, 1): r^2 = phi(u) / (u lambda)
    # in both protocols. Solve A(u_t) = S_0 + (d-1)/2 log(lambda_t) on the branch of A
    # (monotone segment) that holds the starting u_0.
    scale = abs(s0) + c.dim  # O(1) values for the root finder

    def a_of_x(x):
        return state_at(protocol, np.exp(x), 1.0, c, exact=exact)["entropy"] / scale

    lo, hi = (math.log(v) for v in c.domain)
    lo, hi = _monotone_segment(a_of_x, math.log(float(start["elr"].reshape(-1)[0])), lo, hi)
    target = (s0 + (c.dim - 1) / 2.0 * np.log(wd)) / scale
    u = np.exp(_smallest_root(a_of_x, target, lo, hi))
    if not np.all(np.isfinite(u)):
        raise ValueError("adiabatic: the entropy S_0 is out of reach for some weight decays "
                         "(on the branch of the starting effective learning rate)")
    rate = u if protocol == "elr" else _phi(_psi(c, u), exact) / wd
    return Process(protocol, rate, wd, name)


# --------------------------------------------------------------------------------------------
# the lagged (actual) path and the lag


def lagged_path(process: Process, noise: NoiseCurve | float, *, dim: int | None = None,
                init_radius=None, exact: bool = True, trace_total=None,
                angular_rate: float | None = None) -> dict[str, np.ndarray]:
    """The mean radial path of a scheduled run: r_t = radius before step t.

    Iterates r^2_{t+1} = (1 - eta_t lambda_t)^2 r^2_t + eta_t^2 Q_t / r^2_t with
    u_t = eta_t / r^2_t ("lr") or eta_t = eta-tilde_t r^2_t, u_t = eta-tilde_t ("elr") (the
    expected squared norm after one SGD step with coupled weight decay, g orthogonal to w,
    E||g||^2 = Q / r^2), vectorized over the leading (schedule) axes. Q_t:

    * default: the stationary Q(u_t) of the noise curve (the angular state follows
      instantly); outside the curve's domain it is extrapolated;
    * ``trace_total``: a given per-step Q (broadcast to the process's shape), e.g. the
      measured one, to test the radial dynamics alone;
    * ``angular_rate`` = h: Q_t and sigma2_t relax towards Q(u_t), sigma2(u_t) at the rate
      1 / theory.angular_mixing_time(u_t, h) = h u_t per step,
      Q_{t+1} = Q_t + min(1, h u_t) (Q(u_t) - Q_t) (a one-parameter model of the angular
      lag; h plays the curvature of the loss on the unit sphere).

    ``init_radius`` default: the equilibrium radius of step 0 (with ``exact``). Returns elr
    (u_t), radius, volume, temperature (u_t sigma2_t / 2), entropy, wd, lr (eta_t),
    trace_total (Q_t).
    """
    c = _as_curve(noise, dim)
    if init_radius is None:
        first = Process(process.protocol, process.rate[..., :1], process.wd[..., :1])
        r0 = equilibrium(first, c, exact=exact)["radius"][..., 0]
        if not np.all(np.isfinite(r0)):
            raise ValueError("lagged_path: no stationary radius at step 0; give init_radius")
    else:
        r0 = _positive("init_radius", init_radius)
    if angular_rate is not None:
        angular_rate = float(_positive("angular_rate", angular_rate))
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
        q_given = np.broadcast_to(_positive("trace_total", trace_total), shape)
    elif process.protocol == "elr" and angular_rate is None:
        q_given = c.trace_total(rate)

    def u_of(t):
        return rate[..., t] / r2[..., t] if process.protocol == "lr" else rate[..., t]

    if angular_rate is not None:
        s2 = np.empty(shape)
        u0 = u_of(0)
        qs[..., 0], s2[..., 0] = c.trace_total(u0), c.sigma2(u0)
    for t in range(n):
        x = r2[..., t]
        if angular_rate is not None:
            if t + 1 < n:
                u = u_of(t)
                k = np.minimum(1.0, 1.0 / theory.angular_mixing_time(u, angular_rate))
                qs[..., t + 1] = qs[..., t] + k * (c.trace_total(u) - qs[..., t])
                s2[..., t + 1] = s2[..., t] + k * (c.sigma2(u) - s2[..., t])
        elif q_given is None:
            qs[..., t] = c.trace_total(u_of(t))
        else:
            qs[..., t] = q_given[..., t]
        if t + 1 < n:
            eta = rate[..., t] if process.protocol == "lr" else rate[..., t] * x
            r2[..., t + 1] = (1.0 - eta * lam[..., t]) ** 2 * x + eta * eta * qs[..., t] / x
    u = rate / r2 if process.protocol == "lr" else rate
    temp = u * (c.sigma2(u) if s2 is None else s2) / 2.0
    ent = _entropy(temp, r2, c.dim)
    lr = rate if process.protocol == "lr" else rate * r2
    return {"elr": u, "lr": lr, "wd": lam, "radius": np.sqrt(r2), "volume": r2 / 2.0,
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

    "elr": v = 1 / r^2 obeys dv/dt = 2 u lambda - u^2 Q(u) v (linear: Q depends on the
    schedule only), so v_{t+1} = v* + (v_t - v*) e^{-u^2 Q}, v* = 2 lambda / (u Q).
    "lr": x = r^4 obeys dx/dt = -4 eta lambda x + 2 eta^2 Q, linear when Q does not depend on
    the radius: a constant noise curve or a given per-step ``trace_total``; otherwise
    ValueError (use `lagged_path`). It differs from the one-step map (`lagged_path`) by
    O(eta lambda) per relaxation time. Returns the keys of `lagged_path` (temperature with
    the curve's sigma2)."""
    c = _as_curve(noise, dim)
    shape = process.rate.shape
    rate, lam = process.rate, process.wd
    if trace_total is not None:
        q = np.broadcast_to(_positive("trace_total", trace_total), shape)
    elif process.protocol == "elr":
        q = c.trace_total(rate)
    elif c.total_coef.size == 1 or not np.any(c.total_coef[1:]):
        q = np.broadcast_to(c.trace_total(1.0), shape)
    else:
        raise ValueError("sde_path: at fixed LR with a noise curve that depends on elr the "
                         "radial ODE is nonlinear; use lagged_path")
    if init_radius is None:
        first = Process(process.protocol, rate[..., :1], lam[..., :1])
        r0 = equilibrium(first, c, exact=False)["radius"][..., 0]
        if not np.all(np.isfinite(r0)):
            raise ValueError("sde_path: no stationary radius at step 0; give init_radius")
    else:
        r0 = np.broadcast_to(_positive("init_radius", init_radius), shape[:-1])
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
    u = rate / r2 if process.protocol == "lr" else rate
    temp = u * c.sigma2(u) / 2.0
    return {"elr": u, "lr": rate if process.protocol == "lr" else rate * r2, "wd": lam,
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


# --------------------------------------------------------------------------------------------
# prediction and recommendation


def _with_se(fn, c: NoiseCurve, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """fn(curve) -> dict; adds ``<key>_se`` by the delta method over both coefficient sets
    (independent fits): along each eigenvector of a covariance, the central difference of
    log value over +-1e-3 standard deviations; var(log value) = sum of squared slopes."""
    base = fn(c)
    var = {k: np.zeros(np.shape(base[k])) for k in keys}
    for which in ("sigma2", "total"):
        cov = getattr(c, f"{which}_cov")
        if not np.any(cov):
            continue
        w, vecs = np.linalg.eigh(cov)
        for lam_i, vec in zip(w, vecs.T, strict=True):
            if lam_i <= 0:
                continue
            sd = math.sqrt(lam_i)
            h = 1e-3
            plus = fn(c.perturbed(which, h * sd * vec))
            minus = fn(c.perturbed(which, -h * sd * vec))
            for k in keys:
                with np.errstate(invalid="ignore", divide="ignore"):
                    dlog = (np.log(plus[k]) - np.log(minus[k])) / (2 * h)
                var[k] = var[k] + dlog**2
    for k in keys:
        base[f"{k}_se"] = np.abs(base[k]) * np.sqrt(var[k])
    return base


def predict(noise: NoiseCurve | float, protocol: str, *, wd, lr=None, elr=None,
            dim: int | None = None, exact: bool = True) -> dict[str, np.ndarray]:
    """Predicted stationary state of the fixed-LR ("lr": give lr, wd) or fixed-ELR ("elr":
    give elr, wd) protocol from a noise curve (arrays broadcast): elr (the stationary
    eta-tilde), radius, temperature, volume, entropy, tau, with ``radius_se`` and
    ``temperature_se`` propagated from the fit's coefficient covariances, and
    ``extrapolated`` (True where the stationary eta-tilde lies outside the fitted range)."""
    _protocol(protocol)
    c = _as_curve(noise, dim)
    rate = lr if protocol == "lr" else elr
    other = elr if protocol == "lr" else lr
    if rate is None:
        raise ValueError(f"predict: protocol {protocol!r} needs {_RATE[protocol]}")
    if other is not None:
        raise ValueError(f"predict: protocol {protocol!r} takes {_RATE[protocol]}, not "
                         f"{'elr' if protocol == 'lr' else 'lr'}")
    rate, wd = np.broadcast_arrays(_positive(_RATE[protocol], rate), _positive("wd", wd))

    def fn(curve):
        p = Process(protocol, rate.reshape(-1), wd.reshape(-1))
        st = equilibrium(p, curve, exact=exact)
        return {k: v.reshape(rate.shape) for k, v in st.items()}

    out = _with_se(fn, c, ("radius", "temperature"))
    u = out["elr"]
    out["extrapolated"] = ~((u >= c.u_min) & (u <= c.u_max))
    return out


_TARGETS = ("temperature", "radius", "rate", "wd")


def recommend(noise: NoiseCurve | float, protocol: str, *, target_temperature=None,
              target_radius=None, lr=None, elr=None, wd=None, dim: int | None = None,
              exact: bool = True) -> dict[str, np.ndarray]:
    """(eta or eta-tilde, lambda) reaching a target: give exactly two of target_temperature,
    target_radius, the rate (lr for "lr", elr for "elr") and wd (arrays broadcast).

    With u the stationary effective LR, phi(u) = eta lambda (see the module docstring) and
    r^2 = phi(u) / (u lambda): a temperature fixes u (T = u sigma2(u) / 2); a radius with wd
    solves phi(u) / u = lambda r^2; a radius with the rate: "lr" u = eta / r^2, "elr"
    u = eta-tilde. Then "lr": eta = phi(u) / lambda or lambda = phi(u) / eta; "elr":
    eta-tilde = u, lambda = phi(u) / (u r^2). ("elr" + temperature + rate is refused: T
    depends on eta-tilde only.) Returns `state_at` of the solution (keys lr, elr, wd, radius,
    temperature, volume, entropy, pressure, tau, extrapolated); NaN where unreachable.
    Where the target is reached at several effective learning rates (T(u) need not be
    monotone), the smallest one is returned.
    """
    _protocol(protocol)
    c = _as_curve(noise, dim)
    rate = lr if protocol == "lr" else elr
    if (elr if protocol == "lr" else lr) is not None:
        raise ValueError(f"recommend: protocol {protocol!r} takes {_RATE[protocol]}, not "
                         f"{'elr' if protocol == 'lr' else 'lr'}")
    given = {"temperature": target_temperature, "radius": target_radius, "rate": rate, "wd": wd}
    names = [k for k in _TARGETS if given[k] is not None]
    if len(names) != 2:
        raise ValueError(f"recommend: give exactly two of target_temperature, target_radius, "
                         f"{_RATE[protocol]}, wd (got {', '.join(names) or 'none'})")
    if names == ["rate", "wd"]:
        raise ValueError("recommend: with the rate and wd both given, use predict")
    vals = dict(zip(names, np.broadcast_arrays(
        *(_positive(f"target_{k}" if k in ("temperature", "radius") else
               (_RATE[protocol] if k == "rate" else k), given[k]) for k in names)),
        strict=True))

    def u_from_t(t):
        return _solve_u(c, lambda u: np.log(u * c.sigma2(u) / 2.0), np.log(t))

    pair = set(names)
    if pair == {"temperature", "rate"} and protocol == "elr":
        raise ValueError("recommend: at fixed ELR the temperature depends on elr only; give "
                         "wd or target_radius with target_temperature")
    if "temperature" in pair:
        u = u_from_t(vals["temperature"])
    elif pair == {"radius", "wd"}:
        r2lam = vals["radius"] ** 2 * vals["wd"]
        u = _solve_u(c, lambda u: np.log(_phi(_psi(c, u), exact) / u), np.log(r2lam))
    else:  # radius + rate
        u = vals["rate"] / vals["radius"] ** 2 if protocol == "lr" else vals["rate"]
    phi = _phi(_psi(c, u), exact)
    if "wd" in pair:
        lam = vals["wd"]
    elif "radius" in pair:
        lam = phi / (u * vals["radius"] ** 2)
    else:  # temperature + rate ("lr")
        lam = phi / vals["rate"]
    ok = np.isfinite(u) & np.isfinite(lam) & (lam > 0)
    st = state_at(protocol, np.where(ok, u, 1.0), np.where(ok, lam, 1.0), c, exact=exact)
    st = {k: np.where(ok, v, np.nan) for k, v in st.items()}
    st["tau"] = relaxation_times(protocol, st["elr"], st[_RATE[protocol]], st["wd"], c)
    st["extrapolated"] = ok & ~((st["elr"] >= c.u_min) & (st["elr"] <= c.u_max))
    return st


def temperature_range(noise: NoiseCurve | float, *, dim: int | None = None,
                      grid: int = 1025) -> dict[str, float]:
    """Range of the stationary temperature T(u) = u sigma2(u) / 2 over the noise curve's
    domain (sampled on ``grid`` log-spaced points): t_min, t_max and the u of t_max (T(u)
    can peak inside the domain: targets above t_max are unreachable)."""
    c = _as_curve(noise, dim)
    u = np.geomspace(*c.domain, grid)
    t = u * c.sigma2(u) / 2.0
    k = int(np.argmax(t))
    return {"t_min": float(t.min()), "t_max": float(t[k]), "elr_at_t_max": float(u[k])}


def validate_predictions(noise: NoiseCurve, table: dict, protocol: str, *,
                         exact: bool = True) -> dict[str, Any]:
    """Predict the stationary radius and temperature of every stationary ``protocol`` row of
    ``table`` from its (rate, wd) and compare with the measured values: per-row arrays
    (rate, wd, radius, radius_pred, radius_pred_se, radius_err, temperature, temperature_pred,
    temperature_err, extrapolated) and summaries (median / max |relative error|)."""
    pts = noise_points(table, (protocol,))
    if len(pts["u"]) == 0:
        raise ValueError(f"validate_predictions: no stationary {protocol!r} rows in the table")
    rate = pts["lr"] if protocol == "lr" else pts["elr"]
    kw = {"lr": rate} if protocol == "lr" else {"elr": rate}
    pred = predict(noise, protocol, wd=pts["wd"], exact=exact, **kw)
    t_meas = pts["temperature"]
    r_err = pred["radius"] / pts["radius"] - 1.0
    t_err = pred["temperature"] / t_meas - 1.0
    rows = {"rate": rate, "wd": pts["wd"], "radius": pts["radius"],
            "radius_pred": pred["radius"], "radius_pred_se": pred["radius_se"],
            "radius_err": r_err, "temperature": t_meas,
            "temperature_pred": pred["temperature"],
            "temperature_pred_se": pred["temperature_se"], "temperature_err": t_err,
            "elr_measured": pts["u"], "elr_pred": pred["elr"],
            "extrapolated": pred["extrapolated"]}

    def summ(e):
        e = np.abs(e[np.isfinite(e)])
        return {"median": float(np.median(e)) if e.size else None,
                "max": float(np.max(e)) if e.size else None}

    inside = ~pred["extrapolated"]
    return {"protocol": protocol, "rows": rows, "n": len(rate),
            "n_extrapolated": int(np.sum(pred["extrapolated"])),
            "n_unreachable": int(np.sum(~np.isfinite(pred["radius"]))),
            "radius": summ(r_err), "temperature": summ(t_err),
            "radius_inside": summ(r_err[inside]), "temperature_inside": summ(t_err[inside])}


def format_columns(cols: dict[str, np.ndarray], digits: int = 4) -> str:
    """Aligned plain-text table of equal-length columns (floats with ``digits`` significant
    digits, NaN as "n/a")."""

    def cell(v) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (float, np.floating)):
            return "n/a" if not np.isfinite(v) else f"{v:.{digits}g}"
        return str(v)

    names = list(cols)
    rows = [[cell(v) for v in vals] for vals in zip(*(cols[k] for k in names), strict=True)]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    lines = ["  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def prediction_columns(result: dict[str, np.ndarray], protocol: str) -> dict[str, np.ndarray]:
    """The columns of a `predict` or `recommend` result worth printing, flattened."""
    rate = _RATE[protocol]
    keys = [rate, "wd", "elr" if protocol == "lr" else "lr", "radius", "radius_se",
            "temperature", "temperature_se", "tau", "extrapolated"]
    names = {"elr": "elr_stationary", "lr": "lr_effective"}
    out = {}
    for k in keys:
        if k in result:
            name = names.get(k, k) if k != rate else k
            out[name] = np.ravel(result[k])
    return out


# --------------------------------------------------------------------------------------------
# tracking a real scheduled run


@dataclass(frozen=True)
class TrackConfig:
    """A scheduled training run of a BN-MLP on digits (the cpu preset's network).

    ``schedule`` ("constant", "step", "cosine") shapes the rate (``lr`` for "lr", ``elr`` for
    "elr") over ``steps`` steps; ``milestones``/``gamma`` (step), ``final`` (cosine, as a
    fraction of the initial rate), ``warmup`` steps. ``wd_schedule`` applies the same kind of
    schedule to wd (default constant). The network first trains ``burn_in`` steps at the
    initial hyperparameters (so the schedule starts near equilibrium). Every ``log_every``
    steps the radius and minibatch loss are recorded; every ``noise_every`` steps
    ``noise_batches`` minibatch gradients give tr Sigma and ||grad L||^2.
    """

    protocol: str = "lr"
    schedule: str = "cosine"
    lr: float | None = 3.0
    elr: float | None = None
    wd: float = 0.01
    steps: int = 4000
    burn_in: int = 3000
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    final: float = 0.1
    warmup: int = 0
    wd_schedule: str = "constant"
    hidden: tuple[int, ...] = (32, 32)
    label_noise: float = 0.3
    batch_size: int = 128
    seed: int = 1
    init_radius: float = 1.0
    log_every: int = 10
    noise_every: int = 100
    noise_batches: int = 64

    def __post_init__(self) -> None:
        _protocol(self.protocol)
        if self.schedule not in SCHEDULES or self.wd_schedule not in SCHEDULES:
            raise ValueError(f"schedule and wd_schedule must be one of {SCHEDULES}, got "
                             f"{self.schedule!r}, {self.wd_schedule!r}")
        rate = self.lr if self.protocol == "lr" else self.elr
        if rate is None:
            raise ValueError(f"protocol {self.protocol!r} needs {_RATE[self.protocol]}")
        if (self.elr if self.protocol == "lr" else self.lr) is not None:
            raise ValueError(f"protocol {self.protocol!r} takes {_RATE[self.protocol]} only; "
                             f"set the other rate to None")
        _positive(_RATE[self.protocol], rate)
        _positive("wd", self.wd)
        _positive("init_radius", self.init_radius)
        if not 0 < self.final < 1:
            raise ValueError(f"final must be in (0, 1), got {self.final}")
        for name in ("steps", "log_every", "noise_every", "batch_size"):
            _steps(getattr(self, name))
        if isinstance(self.burn_in, bool) or not isinstance(self.burn_in, int) or self.burn_in < 0:
            raise ValueError(f"burn_in must be an integer >= 0, got {self.burn_in!r}")
        if self.noise_every % self.log_every:
            raise ValueError("noise_every must be a multiple of log_every")
        if self.noise_batches < 3:
            raise ValueError(f"noise_batches must be >= 3, got {self.noise_batches}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        self.process()  # validates the schedule parameters

    @property
    def rate(self) -> float:
        return float(self.lr if self.protocol == "lr" else self.elr)

    def process(self) -> Process:
        """The schedule as a `Process` over ``steps`` steps."""
        kw = {"milestones": self.milestones, "gamma": self.gamma}
        rate = make_schedule(self.schedule, self.steps, self.rate, final=self.final * self.rate,
                             warmup=self.warmup, **kw)
        wd = make_schedule(self.wd_schedule, self.steps, self.wd, final=self.final * self.wd,
                           **kw)
        return Process(self.protocol, rate, wd, f"{self.schedule} {self.protocol}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["milestones"], d["hidden"] = list(self.milestones), list(self.hidden)
        return d


def track(config: TrackConfig, noise: NoiseCurve | None = None, *, exact: bool = True,
          data=None, angular_rate: float | None = None) -> dict[str, Any]:
    """Train ``config`` and compare its measured (T, V) trajectory with the schedule's
    equilibrium path and the predicted lagged path.

    The rate/wd of the protocol optimizer's param group are set before every step. ``noise``:
    the model's sigma2(u), Q(u) curve (e.g. `fit_noise_curve` of the cpu sweep); None fits one
    to this run's own probes (log-log quadratic in u). Returns {"config", "noise", "records":
    per-log columns (step, lr, elr, wd, radius, loss, volume, volume_eq, volume_lag,
    temperature_eq, temperature_lag, tau, quasi_static, gap, gap_lag; volume_lag_q: the
    lagged path driven by the measured Q), "probes": per-probe
    columns (step, elr, trace_sigma, trace_sigma_se, grad_norm2, sigma2, temperature,
    temperature_se, temperature_eq, temperature_lag), "summary"}. Steps count from the start
    of the schedule (the burn-in has negative steps and is not recorded).
    """
    import torch
    import torch.nn.functional as F

    from thermosgd.data import load_digits
    from thermosgd.models import bn_mlp, si_dim, si_parameters
    from thermosgd.monitor import ThermoMonitor, estimate_gradient_noise
    from thermosgd.protocols import FixedELR, FixedLR

    c = config
    proc = c.process()
    ds = data if data is not None else load_digits(label_noise=c.label_noise, seed=1)
    model = bn_mlp(int(np.prod(ds.input_shape)), c.hidden, ds.num_classes)
    params = si_parameters(model)
    dim = si_dim(model)
    with torch.no_grad():
        r = math.sqrt(sum(float(p.double().square().sum()) for p in params))
        for p in params:
            p.mul_(c.init_radius / r)
    if c.protocol == "lr":
        opt = FixedLR(params, lr=float(proc.rate[0]), wd=float(proc.wd[0]))
    else:
        opt = FixedELR(params, elr=float(proc.rate[0]), wd=float(proc.wd[0]))
    group = opt.param_groups[0]
    key = _RATE[c.protocol]
    gen = torch.Generator().manual_seed(c.seed)
    probe_gen = torch.Generator().manual_seed(c.seed + 7919)

    def step(rate: float, wd: float) -> float:
        idx = torch.randint(0, ds.n_train, (c.batch_size,), generator=gen)
        group[key], group["wd"] = rate, wd
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(ds.x_train[idx]), ds.y_train[idx])
        loss.backward()
        opt.step()
        return float(loss.detach())

    for _ in range(c.burn_in):
        step(float(proc.rate[0]), float(proc.wd[0]))
    # the run's records go through a ThermoMonitor (its initial hyperparameters; the schedule
    # is in proc); step t = the state before the t-th scheduled update
    monitor = ThermoMonitor(c.protocol, dim, wd=float(proc.wd[0]),
                            **{key: float(proc.rate[0])})
    for t in range(c.steps):
        if t % c.noise_every == 0:
            monitor.record_noise(t, estimate_gradient_noise(
                model, F.cross_entropy, ds.x_train, ds.y_train, params,
                n_batches=c.noise_batches, batch_size=c.batch_size, generator=probe_gen))
        radius = opt.radius()
        loss = step(float(proc.rate[t]), float(proc.wd[t]))
        if t % c.log_every == 0:
            monitor.record_step(t, radius=radius, loss=loss)
        if not math.isfinite(loss):
            raise ValueError(f"track: training diverged at step {t} (loss {loss})")
    return analyze_track(c, proc, monitor.history(), monitor.noise_history(), dim, noise,
                         exact=exact, angular_rate=angular_rate)


def follow(monitor, process: Process, noise: NoiseCurve | None = None, *, exact: bool = True,
           angular_rate: float | None = None, milestone: int | None = None) -> dict[str, Any]:
    """Follow a `thermosgd.monitor.ThermoMonitor` of any scheduled training loop against
    ``process`` (the schedule it ran; monitor step t = the state before update t of the
    process, as `ThermoMonitor.record_step` counts): measured (T, V, S) against the
    equilibrium curve and the lagged paths (`analyze_trajectory`). The monitor needs step
    records (radius) and noise probes."""
    hist, probes = monitor.history(), monitor.noise_history()
    if len(hist["step"]) < 2 or len(probes["step"]) < 1:
        raise ValueError("follow: the monitor needs >= 2 step records and >= 1 noise probe")
    if hist["step"][-1] >= process.steps or probes["step"][-1] >= process.steps:
        raise ValueError(f"follow: the monitor has steps beyond the process's {process.steps}")
    return analyze_trajectory(process, hist, probes, monitor.dim, noise, exact=exact,
                              angular_rate=angular_rate, milestone=milestone)


def _curve_from_probes(probes: dict, u: np.ndarray, dim: int) -> NoiseCurve:
    table = {"protocol": np.full(len(u), "elr"), "elr_effective": u, "dim": np.full(len(u), dim),
             "trace_sigma": probes["trace_sigma"], "trace_sigma_se": probes["trace_sigma_se"],
             "trace_total": probes["trace_total"], "trace_total_se": probes["trace_total_se"]}
    distinct = len(np.unique(np.round(np.log(u), 6)))
    degree = 2 if distinct >= 6 else (1 if distinct >= 3 else 0)
    return replace(fit_noise_curve(table, ("elr",), degree=degree, stationary_only=False),
                   source=f"fit (degree {degree}) to this run's {len(u)} noise probes")


def analyze_track(c: TrackConfig, proc: Process, records: dict, probes: dict, dim: int,
                  noise: NoiseCurve | None, *, exact: bool = True,
                  angular_rate: float | None = None) -> dict[str, Any]:
    """The comparison part of `track` (pure): `analyze_trajectory` plus the config."""
    milestone = min(c.milestones) if c.schedule == "step" and c.milestones else None
    out = analyze_trajectory(proc, records, probes, dim, noise, exact=exact,
                             angular_rate=angular_rate, milestone=milestone)
    return {"config": c.to_dict(), **out}


def analyze_trajectory(proc: Process, records: dict, probes: dict, dim: int,
                       noise: NoiseCurve | None, *, exact: bool = True,
                       angular_rate: float | None = None, milestone: int | None = None
                       ) -> dict[str, Any]:
    """Measured records (step, radius, loss) and noise probes (step, radius, trace_sigma(_se),
    grad_norm2, trace_total(_se)) of a run of ``proc`` against its equilibrium path and
    lagged paths (pure). ``noise`` None: a curve fitted to the probes themselves. With
    ``angular_rate`` (h of `lagged_path`) the path with relaxing noise is added (records
    ``volume_lag_angular``, ``temperature_lag_angular``; probes ``temperature_lag_angular``).
    Probes also get the equipartition entropy S = (d-1)/2 log(2 pi e T) + (d-1) log r of the
    measured T and r and of the paths (entropy, entropy_eq, entropy_lag). ``milestone``:
    see `track_summary`."""
    protocol = proc.protocol
    steps = np.asarray(records["step"]).astype(int)
    r = np.asarray(records["radius"], dtype=np.float64)
    rate, wd = proc.rate, proc.wd
    u_meas = rate[steps] / r**2 if protocol == "lr" else rate[steps]
    pst = np.asarray(probes["step"]).astype(int)
    pu = rate[pst] / probes["radius"] ** 2 if protocol == "lr" else rate[pst]
    curve = noise if noise is not None else _curve_from_probes(probes, pu, dim)
    if curve.dim != dim:
        raise ValueError(f"the noise curve is for d = {curve.dim}, the network has d = {dim}")
    eq = equilibrium(proc, curve, exact=exact)
    r0 = records["radius"][0]
    lag = lagged_path(proc, curve, init_radius=r0, exact=exact)
    # the same radial map driven by the measured Q (linear between probes): radial dynamics
    # alone, without the assumption that Q follows its stationary curve instantly
    q_meas = np.interp(np.arange(proc.steps), pst, probes["trace_total"])
    lag_q = lagged_path(proc, curve, init_radius=r0, exact=exact,
                        trace_total=np.maximum(q_meas, np.finfo(float).tiny))
    lag_a = (None if angular_rate is None else
             lagged_path(proc, curve, init_radius=r0, exact=exact, angular_rate=angular_rate))
    meas = lag_measures(r**2 / 2.0, eq["volume"][steps], eq["tau"][steps])
    recs = {"step": steps.astype(float), "lr": rate[steps] if protocol == "lr" else
            rate[steps] * r**2, "elr": u_meas, "wd": wd[steps], "radius": r,
            "loss": records["loss"], "volume": r**2 / 2.0, "volume_eq": eq["volume"][steps],
            "volume_lag": lag["volume"][steps], "volume_lag_q": lag_q["volume"][steps],
            "temperature_eq": eq["temperature"][steps],
            "temperature_lag": lag["temperature"][steps], "tau": eq["tau"][steps],
            "quasi_static": lag_measures(eq["volume"], eq["volume"], eq["tau"])["quasi_static"][
                steps],
            "gap": meas["gap"], "gap_lag": lag["volume"][steps] / eq["volume"][steps] - 1.0}
    s2 = probes["trace_sigma"] / (dim - 1)
    t_meas = pu * s2 / 2.0
    prob = {"step": pst.astype(float), "elr": pu, "radius": probes["radius"],
            "trace_sigma": probes["trace_sigma"], "trace_sigma_se": probes["trace_sigma_se"],
            "grad_norm2": probes["grad_norm2"], "trace_total": probes["trace_total"],
            "sigma2": s2, "temperature": t_meas,
            "temperature_se": pu * probes["trace_sigma_se"] / (dim - 1) / 2.0,
            "temperature_eq": eq["temperature"][pst], "temperature_lag": lag["temperature"][pst],
            "entropy": _entropy(t_meas, probes["radius"] ** 2, dim),
            "entropy_eq": eq["entropy"][pst], "entropy_lag": lag["entropy"][pst]}
    if lag_a is not None:
        recs["volume_lag_angular"] = lag_a["volume"][steps]
        recs["temperature_lag_angular"] = lag_a["temperature"][steps]
        prob["temperature_lag_angular"] = lag_a["temperature"][pst]
    return {"protocol": protocol, "dim": dim, "noise": curve.to_dict(), "exact": exact,
            "angular_rate": angular_rate, "records": recs, "probes": prob,
            "summary": track_summary(recs, prob, milestone)}


def write_track(result: dict[str, Any], out_dir, *, figures: bool = True) -> dict[str, Any]:
    """Write a `track` result into ``out_dir``: records.csv (one row per logged step),
    probes.csv (one row per noise probe), PNG figures (`thermosgd.plots.schedule_figures`)
    and schedule.json (config, noise curve, summary, file names; the report finds the
    directory by it). Returns the JSON document."""
    from pathlib import Path

    from thermosgd.io import write_csv, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "records.csv", result["records"])
    write_csv(out / "probes.csv", result["probes"])
    names: list[str] = []
    if figures:
        from thermosgd.plots import schedule_figures

        names = [p.name for p in schedule_figures(result, out)]
    doc = {k: result.get(k) for k in ("config", "protocol", "dim", "exact", "angular_rate",
                                      "noise", "summary")}
    doc["files"] = ["records.csv", "probes.csv"]
    doc["figures"] = names
    write_json(out / "schedule.json", doc)
    return doc


def format_track(summary: dict[str, Any]) -> str:
    """A few lines from a `track_summary`."""

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = [f"max |V/V_eq - 1|: measured {pct(summary['max_abs_gap_measured'])}, lagged path "
             f"{pct(summary['max_abs_gap_predicted'])}",
             f"RMS rel. error of V: lagged path {pct(summary['volume_rms_rel_error_lagged'])}, "
             f"equilibrium curve {pct(summary['volume_rms_rel_error_equilibrium'])}, radial map "
             f"with the measured Q {pct(summary['volume_rms_rel_error_lagged_measured_q'])}",
             f"RMS rel. error of T: lagged path "
             f"{pct(summary['temperature_rms_rel_error_lagged'])}, equilibrium curve "
             f"{pct(summary['temperature_rms_rel_error_equilibrium'])}",
             f"radial relaxation time {summary['tau_min']:.3g}..{summary['tau_max']:.3g} steps; "
             f"max quasi-static ratio tau |dlogV_eq/dt| {summary['max_quasi_static']:.3g}"]
    if "volume_rms_rel_error_angular" in summary:
        lines.append(f"with relaxing noise (angular rate h): RMS rel. error of V "
                     f"{pct(summary['volume_rms_rel_error_angular'])}, of T "
                     f"{pct(summary['temperature_rms_rel_error_angular'])}")
    fit = summary.get("q_relaxation")
    if "milestone" in summary:
        lines.append(f"after the first milestone (step {summary['milestone']}): Q relaxes "
                     + ("(no exponential fit)" if fit is None else
                        f"with tau_Q = {fit['tau']:.0f} +- {fit['tau_se']:.0f} steps (h = "
                        f"{summary['angular_rate_fit']:.3g})")
                     + f" vs radial tau {summary['tau_after_milestone']:.0f}")
    return "\n".join(lines)


def write_validation(validations: Sequence[dict[str, Any]], out_dir, *,
                     figures: bool = True) -> dict[str, Any]:
    """Write `validate_predictions` results (each with a ``label`` and its ``noise`` curve
    dict) into ``out_dir``: prediction.json (summaries and per-run rows; the report finds the
    directory by it) and prediction.png (`thermosgd.plots.prediction_figure`)."""
    from pathlib import Path

    from thermosgd.io import write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = ("label", "protocol", "n", "n_extrapolated", "n_unreachable", "radius",
            "temperature", "radius_inside", "temperature_inside", "noise")
    doc = {"validations": [{**{k: v.get(k) for k in keys},
                            "rows": {k: np.asarray(a).tolist() for k, a in v["rows"].items()}}
                           for v in validations], "figures": []}
    if figures:
        from thermosgd.plots import prediction_figure

        doc["figures"] = [prediction_figure(list(validations), out / "prediction.png").name]
    write_json(out / "prediction.json", doc)
    return doc


def fit_relaxation(t, y) -> dict[str, float] | None:
    """Least-squares fit y = y_inf + (y_0 - y_inf) exp(-(t - t[0]) / tau) (scipy curve_fit):
    {tau, tau_se, y_0, y_inf}; None when it does not converge, tau is not positive, longer
    than 10x the span of t, or its standard error exceeds it."""
    from scipy.optimize import OptimizeWarning, curve_fit

    t = np.asarray(t, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    if len(t) < 4:
        return None
    t = t - t[0]

    def model(tt, y0, yinf, tau):
        return yinf + (y0 - yinf) * np.exp(-tt / tau)

    tail = y[len(y) // 2:].mean()
    p0 = (y[0], tail, max(t[-1] / 4.0, 1.0))
    try:
        with warnings.catch_warnings():  # an undetermined covariance is handled below
            warnings.simplefilter("ignore", OptimizeWarning)
            p, cov = curve_fit(model, t, y, p0=p0, maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    if not (p[2] > 0 and np.all(np.isfinite(cov))) or p[2] > 10 * t[-1] \
            or np.sqrt(cov[2, 2]) > p[2]:
        return None  # no decay within the data, or tau not determined by them
    return {"tau": float(p[2]), "tau_se": float(np.sqrt(cov[2, 2])), "y_0": float(p[0]),
            "y_inf": float(p[1])}


def track_summary(records: dict, probes: dict, milestone: int | None = None
                  ) -> dict[str, Any]:
    """Numbers of a tracked run: max |V/V_eq - 1| measured and predicted (lagged path), the
    RMS error of the lagged-path volume and temperature against the measurements, the same
    for the equilibrium curve, and the max quasi-static ratio. With ``milestone`` (the first
    step of a step decay): the relaxation time of the measured Q after it (`fit_relaxation`)
    next to the radial relaxation time tau there, and the angular rate h = 1 / (tau_Q mean(u))
    it implies (mean over the probes after the milestone). With the relaxing-noise path in the
    records: its RMS errors too."""

    def rms(a, b):
        e = a / b - 1.0
        e = e[np.isfinite(e)]
        return float(np.sqrt(np.mean(e**2))) if e.size else None

    def amax(a):
        a = np.abs(a[np.isfinite(a)])
        return float(a.max()) if a.size else None

    out = {"max_abs_gap_measured": amax(records["gap"]),
            "max_abs_gap_predicted": amax(records["gap_lag"]),
            "volume_rms_rel_error_lagged": rms(records["volume_lag"], records["volume"]),
            "volume_rms_rel_error_equilibrium": rms(records["volume_eq"], records["volume"]),
            "volume_rms_rel_error_lagged_measured_q": rms(records["volume_lag_q"],
                                                          records["volume"]),
            "temperature_rms_rel_error_lagged": rms(probes["temperature_lag"],
                                                    probes["temperature"]),
            "temperature_rms_rel_error_equilibrium": rms(probes["temperature_eq"],
                                                         probes["temperature"]),
            "max_quasi_static": amax(records["quasi_static"]),
            "tau_min": float(np.nanmin(records["tau"])),
            "tau_max": float(np.nanmax(records["tau"]))}
    if milestone is not None:
        after = probes["step"] >= milestone
        fit = fit_relaxation(probes["step"][after], probes["trace_total"][after])
        k = int(np.searchsorted(records["step"], milestone))
        out["milestone"] = int(milestone)
        out["q_relaxation"] = fit
        out["tau_after_milestone"] = (float(records["tau"][k]) if k < len(records["tau"])
                                      else None)
        out["angular_rate_fit"] = (None if fit is None else
                                   1.0 / (fit["tau"] * float(np.mean(probes["elr"][after]))))
    if "volume_lag_angular" in records:
        out["volume_rms_rel_error_angular"] = rms(records["volume_lag_angular"],
                                                  records["volume"])
        out["temperature_rms_rel_error_angular"] = rms(probes["temperature_lag_angular"],
                                                       probes["temperature"])
    return out
