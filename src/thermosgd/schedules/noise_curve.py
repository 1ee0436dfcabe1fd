"""The noise curve of a model: sigma2(elr) and Q(elr) on the unit sphere, fitted to a sweep.

`NoiseCurve` holds sigma2(elr) = tr Sigma / (d-1) and q(elr) = Q / (d-1) (Q = tr Sigma +
||grad L||^2, all on the unit sphere) as functions of the effective learning rate
elr = eta-tilde: log-log polynomials fitted to a results table (`fit_noise_curve` of the
`noise_points` of its stationary rows) or constants (`NoiseCurve.constant`). The dataclass
fields ``u_ref``, ``u_min``, ``u_max`` keep their names: they are keys of the written
schedule.json / prediction.json documents (`NoiseCurve.to_dict`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from thermosgd._validate import check_int, check_number, finite_array, positive_array
from thermosgd.schedules.shapes import check_wd_protocol

__all__ = ["NoiseCurve", "as_curve", "fit_noise_curve", "noise_points"]


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
    """sigma2(elr) = tr Sigma / (d-1) and q(elr) = Q / (d-1) on the unit sphere.

    log sigma2 = sum_k sigma2_coef[k] x^k and log q = sum_k total_coef[k] x^k with
    x = log(elr / u_ref). ``*_cov``: covariance of the coefficients (zeros: exact);
    [u_min, u_max]: the fitted range of elr; ``extrapolate``: how far (a factor on each side)
    the solvers may leave it. ``dim`` = d. ``sigma2_rms``/``total_rms``: RMS relative
    residual of the fits (0 for a constant curve).
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
        check_int("dim", self.dim, min_val=2)
        for name in ("sigma2_coef", "total_coef"):
            c = finite_array(name, getattr(self, name)).reshape(-1)
            if c.size < 1:
                raise ValueError(f"{name} == {c.tolist()!r}, must hold at least one "
                                 "coefficient")
            object.__setattr__(self, name, c)
        for name in ("u_ref", "u_min", "u_max"):
            positive_array(name, getattr(self, name))
        check_number("u_max", self.u_max, min_val=self.u_min)
        check_number("extrapolate", self.extrapolate, min_val=1.0)
        for name, coef in (("sigma2_cov", self.sigma2_coef), ("total_cov", self.total_coef)):
            cov = getattr(self, name)
            cov = np.zeros((coef.size, coef.size)) if cov is None else finite_array(name, cov)
            if cov.shape != (coef.size, coef.size):
                raise ValueError(f"{name} has shape {cov.shape}, must be "
                                 f"{coef.size}x{coef.size}")
            object.__setattr__(self, name, cov)

    @classmethod
    def constant(cls, sigma2: float, dim: int, trace_total: float | None = None) -> NoiseCurve:
        """Noise independent of elr: sigma2 and Q = trace_total (default (d-1) sigma2: the SDE
        theory, no gradient term)."""
        s = float(positive_array("sigma2", sigma2))
        d = check_int("dim", dim, min_val=2)
        q = ((d - 1) * s if trace_total is None
             else float(positive_array("trace_total", trace_total)))
        return cls(dim=d, sigma2_coef=np.array([math.log(s)]),
                   total_coef=np.array([math.log(q / (d - 1))]), source="constant")

    # -- evaluation ------------------------------------------------------------------------

    def _x(self, elr) -> np.ndarray:
        """log(elr / u_ref); NaN propagates (the solvers mark unreachable points with it)."""
        try:
            a = np.asarray(elr, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"elr == {elr!r}, must be a real number or array") from None
        if np.any(a <= 0) or np.any(np.isinf(a)):
            raise ValueError(f"elr == {elr!r}, must be > 0 and finite")
        return np.log(a / self.u_ref)

    def sigma2(self, elr) -> np.ndarray:
        """sigma2(elr) = tr Sigma / (d - 1) on the unit sphere."""
        return np.exp(_polyval(self.sigma2_coef, self._x(elr)))

    def trace_total(self, elr) -> np.ndarray:
        """Q(elr) = tr Sigma + ||grad L||^2 on the unit sphere."""
        return (self.dim - 1) * np.exp(_polyval(self.total_coef, self._x(elr)))

    def slope_sigma2(self, elr) -> np.ndarray:
        """d log sigma2 / d log elr."""
        return _polyval(_polyder(self.sigma2_coef), self._x(elr))

    def slope_total(self, elr) -> np.ndarray:
        """d log Q / d log elr."""
        return _polyval(_polyder(self.total_coef), self._x(elr))

    @property
    def domain(self) -> tuple[float, float]:
        """(lo, hi): where the solvers look for elr (the fit range widened by
        ``extrapolate``)."""
        return self.u_min / self.extrapolate, self.u_max * self.extrapolate

    def perturbed(self, which: str, delta: np.ndarray) -> NoiseCurve:
        """The curve with ``which`` ("sigma2" or "total") coefficients shifted by delta."""
        kw = {f"{which}_coef": getattr(self, f"{which}_coef") + delta}
        return replace(self, **kw)

    def to_dict(self) -> dict:
        """A JSON-ready dict of the fields (arrays as lists)."""
        d = asdict(self)
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> NoiseCurve:
        """The inverse of `to_dict`."""
        return cls(**{k: (np.asarray(v) if isinstance(v, list) else v) for k, v in d.items()})


def as_curve(noise: NoiseCurve | float, dim: int | None) -> NoiseCurve:
    """``noise`` itself (checking ``dim`` against it if given), or a constant sigma2 as a
    `NoiseCurve.constant` in dimension ``dim``."""
    if isinstance(noise, NoiseCurve):
        if dim is not None and check_int("dim", dim, min_val=2) != noise.dim:
            raise ValueError(f"dim {dim} differs from the noise curve's dim {noise.dim}")
        return noise
    if dim is None:
        raise ValueError("a constant sigma2 needs dim")
    return NoiseCurve.constant(noise, dim)


def noise_points(table: dict, protocols: Sequence[str] = ("elr",), *,
                 stationary_only: bool = True, q_column: str = "trace_total"
                 ) -> dict[str, np.ndarray]:
    """The (elr_measured, sigma2, q) points of a results table
    (`thermosgd.analysis.load_table`).

    elr_measured = the table's measured effective LR (column ``elr_measured``, else
    ``elr_effective``; else elr for "elr" rows, lr / radius^2 for "lr" rows); sigma2 =
    trace_sigma / (d-1) (or the sigma2 column), q = trace_total / (d-1) (or (trace_sigma +
    grad_norm2) / (d-1)), with standard errors when the table has them; temperature =
    elr_measured sigma2 / 2, the temperature of the direction dynamics (for "lr" rows the
    table's ``temperature`` column is instead the SDE formula sqrt(eta lambda sigma2 /
    (2 (d-1))), which assumes the SDE radius, i.e. no ||grad L||^2 term;
    ``temperature_measured`` is elr_measured sigma2 / 2). Rows of other protocols,
    non-stationary rows (``stationary_only``) and rows with missing values are dropped. Keys:
    elr_measured, sigma2, sigma2_se, q, q_se, dim, protocol, lr, elr, wd, radius,
    temperature. ``q_column``: the column of Q, e.g. "trace_total_steps" (Q from every
    training step's own minibatch gradient, where the table has it) instead of the noise
    probes' "trace_total".
    """
    if not isinstance(table, dict) or "protocol" not in table:
        raise ValueError("table must be a column dict with a 'protocol' column (load_table)")
    for p in protocols:
        check_wd_protocol(p)
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
    # the measured column: elr_measured (spec's naming convention), elr_effective (older tables)
    elr_measured = col("elr_measured" if "elr_measured" in table else "elr_effective")
    fallback = np.where(proto == "elr", elr, lr / radius**2)
    elr_measured = np.where(np.isfinite(elr_measured), elr_measured, fallback)
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
    keep &= np.isfinite(elr_measured) & (elr_measured > 0) & np.isfinite(sigma2) & (sigma2 > 0)
    keep &= np.isfinite(q) & (q > 0) & np.isfinite(dim)
    out = {"elr_measured": elr_measured, "sigma2": sigma2, "sigma2_se": s2se, "q": q,
           "q_se": qse, "dim": dim, "protocol": proto, "lr": lr, "elr": elr, "wd": wd,
           "radius": radius, "temperature": elr_measured * sigma2 / 2.0}
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
    x = log(elr / u_ref) (u_ref the geometric mean of the measured elr's) to the rows of
    ``protocols``.

    Weighted least squares with the delta-method errors se(log y) = se(y) / y; the coefficient
    covariance is scaled up by chi2/dof when the points scatter more than their errors.
    Needs at least degree + 2 usable rows over at least degree + 1 distinct elr's, all of one
    d. ``q_column``: see `noise_points`.
    """
    degree = check_int("degree", degree, min_val=0, max_val=3)
    pts = noise_points(table, protocols, stationary_only=stationary_only, q_column=q_column)
    elr = pts["elr_measured"]
    n = len(elr)
    if n < degree + 2 or len(np.unique(np.round(np.log(elr), 9))) < degree + 1:
        raise ValueError(f"fit_noise_curve: {n} usable row(s) of protocol(s) "
                         f"{', '.join(protocols)}; degree {degree} needs at least {degree + 2} "
                         f"over {degree + 1} distinct effective learning rates")
    dims = np.unique(pts["dim"])
    if len(dims) != 1:
        raise ValueError(f"fit_noise_curve: rows have different dims {dims.tolist()}")
    u_ref = float(np.exp(np.mean(np.log(elr))))
    x = np.log(elr / u_ref)
    cs, cov_s, rms_s = _wls(x, np.log(pts["sigma2"]), pts["sigma2_se"] / pts["sigma2"], degree)
    cq, cov_q, rms_q = _wls(x, np.log(pts["q"]), pts["q_se"] / pts["q"], degree)
    return NoiseCurve(dim=int(dims[0]), sigma2_coef=cs, total_coef=cq, u_ref=u_ref,
                      u_min=float(elr.min()), u_max=float(elr.max()),
                      sigma2_cov=cov_s, total_cov=cov_q, extrapolate=float(extrapolate),
                      points=n, sigma2_rms=rms_s, total_rms=rms_q,
                      source=f"fit to {n} stationary {'+'.join(protocols)} rows")
