"""Thermodynamic checks of a grid of stationary states: the paper's network section (9.6-9.8).

For one protocol's stationary runs (`thermosgd.analysis.table.split_rows`), `analyze_protocol`
computes:

* the equation of state (`equation_of_state`): measured radius (lr, elr) or sphere pressure
  against the SDE and the discretization-corrected predictions, per point and worst relative
  errors, and the fraction of runs within 5%;
* the quadratic fit S(x, y) = a0 + a1 x + a2 y + a3 x^2 + a4 y^2 + a5 xy (`fit_quadratic`),
  with x = log rate (lr or elr) and y = log wd (log r on the sphere), natural logs, its R^2;
* the Maxwell checks exactly as the paper reports them (`maxwell_checks`);
* the collapse of sigma2, U and T onto elr (elr, sphere) or lr*wd (lr) (`collapse_ratio`);
* the Gibbs potential G = U - T* S + p* V (F = U - T* S on the sphere, per radius) at the
  (T*, p*) of a few target runs (`potential_targets`), computed by
  `thermosgd.theory.gibbs_potential` / `helmholtz_potential` (`potential_values`), its argmin
  over the measured states and the distance in grid cells (`potential_argmin`), and the map
  G - min G that the figures draw (`potential_map`);
* the excluded runs (not stationary, diverged, or missing a value) and why, every run with
  its measured state (`run_rows`), and the parts too few stationary runs leave out, with why
  (``unavailable``): a small sweep gets what it can.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from thermosgd import spec, theory
from thermosgd.analysis.table import (
    EOS_COLUMNS,
    _f,
    _hyper,
    _rows,
    as_columns,
    second_axis,
    split_rows,
)

__all__ = [
    "COLLAPSE_QUANTITIES",
    "EOS_TOLERANCE",
    "MIN_AXIS_VALUES",
    "MIN_COLLAPSE_RUNS",
    "MIN_FIT_RUNS",
    "MIN_POTENTIAL_RUNS",
    "RUN_QUANTITIES",
    "QuadraticFit",
    "analyze_protocol",
    "collapse_ratio",
    "collapse_variable",
    "equation_of_state",
    "fit_quadratic",
    "grid_cells",
    "maxwell_checks",
    "potential_argmin",
    "potential_map",
    "potential_states",
    "potential_targets",
    "potential_values",
    "quadratic_dx",
    "quadratic_dy",
    "quadratic_surface",
    "run_rows",
]

#: quantities whose collapse onto the collapse variable is quantified
COLLAPSE_QUANTITIES = ("sigma2", "energy", "temperature")

#: the fraction of the equation-of-state check (relative error below 5%)
EOS_TOLERANCE = 0.05

#: minimum number of stationary runs, and of distinct values per axis, for the quadratic fit
MIN_FIT_RUNS = 6
MIN_AXIS_VALUES = 3
#: minimum number of stationary runs for a collapse ratio and for the potential minimization
#: (a 2x2 grid)
MIN_COLLAPSE_RUNS = 4
MIN_POTENTIAL_RUNS = 4


# --------------------------------------------------------------------------------------------
# grid bookkeeping


def _levels(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of log x (equal to 1e-6 relative) and each point's level index."""
    lx = np.log(x)
    key = np.round(lx, 6)
    levels, idx = np.unique(key, return_inverse=True)
    centres = np.array([lx[idx == i].mean() for i in range(levels.size)])
    return centres, idx


def grid_cells(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Integer grid coordinates (i, j) of each point: the rank of log x and log y among their
    distinct values (values equal to 1e-6 relative count as one). Shape (n, 2)."""
    _, i = _levels(np.asarray(x, float))
    _, j = _levels(np.asarray(y, float))
    return np.stack([i, j], axis=1)


# --------------------------------------------------------------------------------------------
# equation of state


def equation_of_state(measured, sde, discrete, tolerance: float = EOS_TOLERANCE) -> dict:
    """Relative errors measured / prediction - 1 of the SDE and discretization-corrected
    predictions: per point, worst absolute, median absolute, and the fraction of points with
    |error| <= ``tolerance``. Non-finite points are skipped (counted in ``n_missing``)."""
    m, s, d = (np.asarray(v, float) for v in (measured, sde, discrete))
    out: dict = {"tolerance": tolerance}
    for name, pred in (("sde", s), ("discrete", d)):
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = m / pred - 1.0
        ok = np.isfinite(rel)
        a = np.abs(rel[ok])
        out[f"rel_error_{name}"] = rel
        out[f"max_rel_error_{name}"] = float(a.max()) if a.size else None
        out[f"median_rel_error_{name}"] = float(np.median(a)) if a.size else None
        out[f"fraction_within_{name}"] = float(np.mean(a <= tolerance)) if a.size else None
        out[f"worst_index_{name}"] = int(np.flatnonzero(ok)[np.argmax(a)]) if a.size else None
        out["n_missing"] = int((~ok).sum())
    return out


# --------------------------------------------------------------------------------------------
# quadratic fit of the entropy


def quadratic_surface(coef, x, y):
    """S(x, y) = a0 + a1 x + a2 y + a3 x^2 + a4 y^2 + a5 xy for coef = (a0, ..., a5)."""
    a = coef
    x, y = np.asarray(x, float), np.asarray(y, float)
    return a[0] + a[1] * x + a[2] * y + a[3] * x * x + a[4] * y * y + a[5] * x * y


def quadratic_dx(coef, x, y):
    """dS/dx = a1 + 2 a3 x + a5 y."""
    a = coef
    return a[1] + 2 * a[3] * np.asarray(x, float) + a[5] * np.asarray(y, float)


def quadratic_dy(coef, x, y):
    """dS/dy = a2 + 2 a4 y + a5 x."""
    a = coef
    return a[2] + 2 * a[4] * np.asarray(y, float) + a[5] * np.asarray(x, float)


class QuadraticFit:
    """Least-squares fit S(x, y) = a0 + a1 x + a2 y + a3 x^2 + a4 y^2 + a5 xy.

    Solved in centred coordinates (x - mean x, y - mean y) for conditioning and transformed
    back exactly, so the coefficients are those of the raw x, y (the paper's a0..a5).
    ``cov`` is the coefficient covariance s^2 (X^T X)^{-1} with s^2 = SS_res / (n - 6) (NaN
    when n = 6). R^2 = 1 - SS_res / SS_tot.
    """

    def __init__(self, x, y, s):
        x, y, s = (np.asarray(v, float) for v in (x, y, s))
        n = x.size
        mx, my = float(x.mean()), float(y.mean())
        u, v = x - mx, y - my
        X = np.stack([np.ones(n), u, v, u * u, v * v, u * v], axis=1)
        b, _, rank, _ = np.linalg.lstsq(X, s, rcond=None)
        if rank < 6:
            raise ValueError("quadratic fit: the runs do not span a 2-D grid (design matrix of "
                             f"rank {rank} < 6); add runs off the line they lie on")
        resid = s - X @ b
        ss_res = float(resid @ resid)
        ss_tot = float(((s - s.mean()) ** 2).sum())
        dof = n - 6
        s2 = ss_res / dof if dof > 0 else np.nan
        cov_b = s2 * np.linalg.inv(X.T @ X)
        # a = M b for x = u + mx, y = v + my
        M = np.eye(6)
        M[0] = [1, -mx, -my, mx * mx, my * my, mx * my]
        M[1] = [0, 1, 0, -2 * mx, 0, -my]
        M[2] = [0, 0, 1, 0, -2 * my, -mx]
        self.coef = M @ b
        self.cov = M @ cov_b @ M.T
        self.n = n
        self.r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
        self.rms_residual = math.sqrt(ss_res / n)
        self.residuals = resid

    def predict(self, x, y):
        """The fitted S at (x, y) (`quadratic_surface`)."""
        return quadratic_surface(self.coef, x, y)

    def dx(self, x, y):
        """dS/dx = a1 + 2 a3 x + a5 y."""
        return quadratic_dx(self.coef, x, y)

    def dy(self, x, y):
        """dS/dy = a2 + 2 a4 y + a5 x."""
        return quadratic_dy(self.coef, x, y)

    def stderr(self, weights) -> float:
        """Standard error of the linear combination sum_k weights[k] a_k."""
        w = np.asarray(weights, float)
        return float(np.sqrt(max(w @ self.cov @ w, 0.0))) if np.all(np.isfinite(self.cov)) \
            else float("nan")

    def to_dict(self) -> dict:
        """Coefficients, standard errors, R^2 and residual size (a warning when n = 6)."""
        se = np.sqrt(np.clip(np.diag(self.cov), 0, None))
        out = {"coefficients": self.coef.tolist(), "stderr": se.tolist(), "r2": self.r2,
               "n_points": self.n, "dof": self.n - 6, "rms_residual": self.rms_residual,
               "form": "S = a0 + a1 x + a2 y + a3 x^2 + a4 y^2 + a5 x y"}
        if self.n == 6:
            out["warning"] = ("6 runs for 6 coefficients: the fit interpolates (R^2 = 1 says "
                              "nothing) and has no error bars; add runs")
        return out


def fit_quadratic(x, y, s, *, what: str = "quadratic fit", x_name: str = "x",
                  y_name: str = "y") -> QuadraticFit:
    """`QuadraticFit` of s over (x, y) after checking there is enough to fit: at least 6
    points and 3 distinct values on each axis, else ValueError saying what to add."""
    x, y, s = (np.asarray(v, float) for v in (x, y, s))
    if x.size < MIN_FIT_RUNS:
        raise ValueError(f"{what}: only {x.size} stationary run(s), the quadratic entropy fit "
                         f"needs at least {MIN_FIT_RUNS}; run more grid points or longer runs "
                         f"so that they become stationary")
    for name, v in ((x_name, x), (y_name, y)):
        k = np.unique(np.round(v, 6)).size
        if k < MIN_AXIS_VALUES:
            raise ValueError(f"{what}: the stationary runs have {k} distinct value(s) of "
                             f"{name}, the quadratic fit needs at least {MIN_AXIS_VALUES}; add "
                             f"grid values along {name}")
    return QuadraticFit(x, y, s)


# --------------------------------------------------------------------------------------------
# Maxwell relations


def maxwell_checks(fit: QuadraticFit, protocol: str, dim: int, x, y, *,
                   optimizer: str = "sgd") -> dict:
    """The Maxwell-relation numbers of the paper (section 9.6) from the quadratic fit.

    With N the landscape-independent slope of `thermosgd.theory.maxwell_relation` (in
    absolute value) and the derivatives evaluated at the grid points (x, y):

    * "elr": dS/dlog(wd) = -N, N = (d-1)/2. max_rel_error = max |dS/dy + N| / N; normalized
      coefficients a2/N (ideal -1), 2 a4/N and a5/N (ideal 0).
    * "lr": dS/dlog(lr) - dS/dlog(wd) = N. max_rel_error = max |dS/dx - dS/dy - N| / N;
      (a1 - a2)/N (ideal 1), (2 a3 - a5)/N and (2 a4 - a5)/N (ideal 0), and the latter two
      divided by (a1 - a2) as in the paper's ResNet notebooks. N = (d-1)/2 for SGD and heavy
      ball; AdamW's radius r*^2 ~ eta/lambda gives N = d-1 (``optimizer``).
    * "sphere" (not reported by the paper): dS/dlog(r) = N = d - 1. max_rel_error
      = max |dS/dy - N| / N; a2/N (ideal 1), 2 a4/N and a5/N (ideal 0).

    Each normalized coefficient comes with its standard error from the fit's covariance.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    target, relation = theory.maxwell_relation(protocol, optimizer, dim)
    norm = abs(target)
    a = fit.coef
    if protocol == "lr":
        deriv = fit.dx(x, y) - fit.dy(x, y)
        combos = {"a1-a2": ([0, 1, -1, 0, 0, 0], 1.0), "2a3-a5": ([0, 0, 0, 2, 0, -1], 0.0),
                  "2a4-a5": ([0, 0, 0, 0, 2, -1], 0.0)}
    else:
        deriv = fit.dy(x, y)
        combos = {"a2": ([0, 0, 1, 0, 0, 0], math.copysign(1.0, target)),
                  "2a4": ([0, 0, 0, 0, 2, 0], 0.0), "a5": ([0, 0, 0, 0, 0, 1], 0.0)}
    rel = (deriv - target) / norm
    coeffs, stderr, ideal = {}, {}, {}
    for name, (w, ideal_value) in combos.items():
        coeffs[name] = float(np.dot(w, a) / norm)
        stderr[name] = fit.stderr(w) / norm
        ideal[name] = ideal_value
    out = {
        "relation": relation, "theory": target, "normalization": norm,
        "max_rel_error": float(np.max(np.abs(rel))),
        "mean_rel_error": float(np.mean(np.abs(rel))),
        "derivative_min": float(deriv.min()), "derivative_max": float(deriv.max()),
        "coefficients": coeffs, "coefficients_stderr": stderr, "ideal": ideal,
    }
    if protocol == "lr":
        d12 = a[1] - a[2]
        out["coefficients_over_a1_minus_a2"] = {
            "(2a3-a5)/(a1-a2)": float((2 * a[3] - a[5]) / d12) if d12 else None,
            "(2a4-a5)/(a1-a2)": float((2 * a[4] - a[5]) / d12) if d12 else None}
    return out


# --------------------------------------------------------------------------------------------
# collapse


def collapse_variable(cols: dict, protocol: str, rows=None) -> tuple[str, np.ndarray]:
    """(name, values) of the variable the direction statistics should depend on alone:
    elr for "elr" and "sphere", lr*wd (the intrinsic learning rate) for "lr"."""
    rows = slice(None) if rows is None else rows
    if protocol == "lr":
        return "lr*wd", cols["lr"][rows] * cols["wd"][rows]
    return "elr", cols["elr"][rows]


def _collapse_curves(lc: np.ndarray, z: np.ndarray, group: np.ndarray) -> list:
    """One curve (sorted distinct log c, mean z there) per value of the group with >= 2."""
    curves = []
    for gv in np.unique(np.round(np.log(group), 6)):
        m = np.round(np.log(group), 6) == gv
        keys, inv = np.unique(np.round(lc[m], 6), return_inverse=True)
        if keys.size < 2:
            continue
        xs = np.array([lc[m][inv == i].mean() for i in range(keys.size)])
        zs = np.array([z[m][inv == i].mean() for i in range(keys.size)])
        curves.append((xs, zs))
    return curves


def collapse_ratio(c, q, group) -> dict:
    """How well q collapses onto a single function of c across the groups (one group per
    value of the other hyperparameter: wd, or r on the sphere). One number, ``ratio``:

    * work with z = log q when all q > 0 (``scale`` "log"), else z = q ("linear");
    * each group's curve z(log c) is its points sorted by c (repeats at one c averaged);
    * at each distinct c covered by at least two curves (inside their [min, max] range), the
      curves are interpolated linearly in log c and their standard deviation (ddof=1) taken;
      ``scatter`` is the root mean square of these standard deviations;
    * ``spread`` is the standard deviation (ddof=1) of z over all points, i.e. the variation
      along the collapse variable (and across groups);
    * ``ratio`` = scatter / spread: 0 for a perfect collapse; of order 1 when the groups
      differ as much as the quantity varies (no collapse).

    ``ratio`` is None (with ``why``) when fewer than two groups have two points or no c is
    covered by two curves, and 0 (with ``note``) when q is constant to 1e-9 relative.
    """
    c, q = np.asarray(c, float), np.asarray(q, float)
    group = np.asarray(group, float)
    ok = np.isfinite(c) & (c > 0) & np.isfinite(q) & np.isfinite(group)
    c, q, group = c[ok], q[ok], group[ok]
    scale = "log" if q.size and np.all(q > 0) else "linear"
    z = np.log(q) if scale == "log" else q
    lc = np.log(c)
    out = {"scale": scale, "ratio": None, "scatter": None, "spread": None, "n_compared": 0,
           "n_groups": 0}
    curves = _collapse_curves(lc, z, group)
    out["n_groups"] = len(curves)
    if len(curves) < 2:
        out["why"] = "fewer than two curves (values of the other hyperparameter) with two points"
        return out
    eps = 1e-6
    stds = []
    for x0 in _levels(c)[0]:
        vals = [np.interp(x0, xs, zs) for xs, zs in curves
                if xs[0] - eps <= x0 <= xs[-1] + eps]
        if len(vals) >= 2:
            stds.append(np.std(vals, ddof=1))
    if not stds:
        out["why"] = "no value of the collapse variable is covered by two curves"
        return out
    scatter = float(np.sqrt(np.mean(np.square(stds))))
    spread = float(np.std(z, ddof=1))
    out.update(scatter=scatter, spread=spread, n_compared=len(stds))
    # a quantity constant to rounding (e.g. a set noise level) collapses trivially
    floor = 1e-9 * (1.0 if scale == "log" else max(float(np.max(np.abs(z))), 1e-300))
    if spread <= floor:
        out.update(ratio=0.0, note="constant: no variation to collapse")
    else:
        out["ratio"] = scatter / spread
    return out


# --------------------------------------------------------------------------------------------
# potentials


def _usable(x: float) -> bool:
    return math.isfinite(x) and x > 0


def potential_values(energy, entropy, volume, temperature, pressure, target: int, *,
                     fixed_volume: bool = False, mask=None) -> np.ndarray:
    """The potential of every measured state k at the target state's (T*, p*).

    * ``fixed_volume=False`` (lr, elr): G_k = U_k - T* S_k + p* V_k
      (`thermosgd.theory.gibbs_potential`);
    * ``fixed_volume=True`` (sphere): F_k = U_k - T* S_k (`thermosgd.theory.helmholtz_potential`).

    The candidates are the states of ``mask`` (default all) with finite U and S (and, for G, a
    finite V > 0); the others get +inf. When T* (or p* for G) is not a finite number > 0 the
    potential is undefined: NaN for every candidate.
    """
    U, S, V, T, P = (np.asarray(a, float) for a in (energy, entropy, volume, temperature,
                                                     pressure))
    ok = np.isfinite(U) & np.isfinite(S)
    if mask is not None:
        ok &= np.asarray(mask, bool)
    if not fixed_volume:
        ok &= np.isfinite(V) & (V > 0)
    out = np.full(U.shape, np.inf)
    t = int(target)
    if not (_usable(T[t]) and (fixed_volume or _usable(P[t]))):
        out[ok] = np.nan
    elif fixed_volume:
        out[ok] = theory.helmholtz_potential(U[ok], T[t], S[ok])
    else:
        out[ok] = theory.gibbs_potential(U[ok], T[t], S[ok], P[t], V[ok])
    return out


def potential_argmin(energy, entropy, volume, temperature, pressure, cells, target: int, *,
                     fixed_volume: bool = False, mask=None) -> dict:
    """Minimize the potential at the target state's (T*, p*) over the measured states.

    * ``fixed_volume=False`` (lr, elr): argmin_k G_k over all states (`potential_values`);
    * ``fixed_volume=True`` (sphere): argmin_k F_k over the states in the target's column (same
      second-axis cell, i.e. the same radius).

    ``cells`` (n, 2) are the states' grid coordinates; ``mask`` restricts the candidates
    (others count as +inf; ties go to the first state). Returns {"target", "argmin"} (state
    indices), the cells and the Chebyshev ``distance`` in cells.
    """
    cells = np.asarray(cells, int)
    t = int(target)
    pot = potential_values(energy, entropy, volume, temperature, pressure, t,
                           fixed_volume=fixed_volume, mask=mask)
    if fixed_volume:
        cand = np.flatnonzero(cells[:, 1] == cells[t, 1])
        k = int(cand[np.argmin(pot[cand])])
    else:
        k = int(np.argmin(pot))
    return {"target": t, "argmin": k, "target_cell": cells[t].tolist(),
            "argmin_cell": cells[k].tolist(),
            "distance": int(np.max(np.abs(cells[k] - cells[t])))}


def potential_map(energy, entropy, volume, temperature, pressure, cells, target: int, *,
                  fixed_volume: bool = False, mask=None) -> np.ndarray:
    """The potential landscape a figure draws: G - min G over the states (lr, elr), or
    F - min F within each second-axis cell (sphere: per radius), at the target's (T*, p*)
    (`potential_values`); NaN for the states that are not candidates. Its zero (in the
    target's column on the sphere) is `potential_argmin`'s state."""
    cells = np.asarray(cells, int)
    pot = potential_values(energy, entropy, volume, temperature, pressure, target,
                           fixed_volume=fixed_volume, mask=mask)
    pot = np.where(np.isfinite(pot), pot, np.nan)
    if not fixed_volume:
        return pot - np.nanmin(pot)
    for c in np.unique(cells[:, 1]):
        m = cells[:, 1] == c
        pot[m] -= np.nanmin(pot[m])
    return pot


def potential_targets(cells: np.ndarray, fractions=(0.125, 0.5, 0.875)) -> list[int]:
    """Indices of target states: for each pair of fractions (f, g) of the two axes, the
    state whose cell is nearest to (f (n_x - 1), g (n_y - 1)) (Chebyshev distance, then
    Euclidean, then first). Duplicates removed; the paper's {2, 8, 14} of 17 per axis."""
    cells = np.asarray(cells, int)
    nx, ny = cells[:, 0].max() + 1, cells[:, 1].max() + 1
    out: list[int] = []
    for f in fractions:
        for g in fractions:
            want = np.array([round(f * (nx - 1)), round(g * (ny - 1))])
            d = np.abs(cells - want)
            key = d.max(1) * 1e6 + (d**2).sum(1)
            k = int(np.argmin(key))
            if k not in out:
                out.append(k)
    return out


def potential_states(cols: dict, protocol: str, used: np.ndarray, optimizer: str = "sgd"
                     ) -> dict[str, np.ndarray]:
    """The states the potential is minimized over (``used`` rows of one protocol) and the
    pressure p* it is taken at: {"energy", "entropy", "volume", "temperature", "pressure",
    "cells", "fixed_volume"}.

    p = lambda (``wd``) for lr and elr, the measured ``pressure`` column (lambda sqrt(s)) for
    AdamW's decoupled weight decay, none on the sphere (F has no pV term). The argmin
    (`analyze_protocol`) and the map the figure draws
    (`thermosgd.analysis.figure_data.figure_arrays`) both take it from here.
    """
    rate = spec.rate_name(protocol)
    cells = grid_cells(cols[rate][used], second_axis(cols, protocol)[used])
    pressure = np.zeros(used.size) if protocol == "sphere" else cols["wd"][used]
    if optimizer == "adamw":
        pressure = cols["pressure"][used]
    return {"energy": cols["energy"][used], "entropy": cols["entropy"][used],
            "volume": cols["volume"][used], "temperature": cols["temperature"][used],
            "pressure": pressure, "cells": cells, "fixed_volume": protocol == "sphere"}


def _potential_args(states: dict) -> tuple:
    return tuple(states[k] for k in ("energy", "entropy", "volume", "temperature", "pressure",
                                     "cells"))


# --------------------------------------------------------------------------------------------
# one protocol


def _eos_section(cols: dict, protocol: str, used: np.ndarray, tolerance: float) -> dict:
    """The equation-of-state entry: per stationary run and the summary numbers."""
    mkey, skey, dkey = EOS_COLUMNS[protocol]
    eos = equation_of_state(cols[mkey][used], cols[skey][used], cols[dkey][used], tolerance)
    points = []
    for i, k in enumerate(used):
        points.append({"run": cols["run"][k], "row": int(k), **_hyper(cols, protocol, k),
                       "measured": _f(cols[mkey][k]), "sde": _f(cols[skey][k]),
                       "discrete": _f(cols[dkey][k]),
                       "rel_error_sde": _f(eos["rel_error_sde"][i]),
                       "rel_error_discrete": _f(eos["rel_error_discrete"][i])})
    out = {"quantity": mkey, "points": points}
    for key, v in eos.items():
        if key.startswith("rel_error_"):
            continue
        if key.startswith("worst_index_"):
            out["worst_run_" + key[len("worst_index_"):]] = (
                None if v is None else points[v]["run"])
        else:
            out[key] = v
    return out


def _collapse_section(cols: dict, protocol: str, used: np.ndarray, yr: np.ndarray) -> dict:
    """Collapse ratios of the direction statistics onto the collapse variable."""
    cname, cval = collapse_variable(cols, protocol, used)
    second_name = spec.hyperparameters(protocol)[1]
    coll = {"variable": cname, "groups": second_name, "quantities": {}}
    extra = ("entropy_dir",) if "entropy_dir" in cols else ()
    for q in (*COLLAPSE_QUANTITIES, *extra):
        if q in cols and np.isfinite(cols[q][used]).sum() >= MIN_COLLAPSE_RUNS:
            coll["quantities"][q] = collapse_ratio(cval, cols[q][used], yr)
    return coll


def _potential_section(cols: dict, protocol: str, used: np.ndarray,
                       targets: Sequence[int] | None, optimizer: str) -> dict:
    """The potential argmin at each target's (T*, p*) (`potential_states`)."""
    states = potential_states(cols, protocol, used, optimizer)
    cells = states["cells"]
    pos = {int(k): i for i, k in enumerate(used)}
    if targets is None:
        tlist = potential_targets(cells)
    else:
        bad = [t for t in targets if int(t) not in pos]
        if bad:
            raise ValueError(f"targets {bad} are not stationary {protocol!r} rows of the table")
        tlist = [pos[int(t)] for t in targets]
    pot = []
    for t in tlist:
        r = potential_argmin(*_potential_args(states), t, fixed_volume=states["fixed_volume"])
        k = used[r["argmin"]]
        pot.append({"target_run": cols["run"][used[t]], "argmin_run": cols["run"][k],
                    "target": _hyper(cols, protocol, used[t]),
                    "argmin": _hyper(cols, protocol, k),
                    "target_cell": r["target_cell"], "argmin_cell": r["argmin_cell"],
                    "distance_cells": r["distance"]})
    return {"name": "F = U - T* S (per radius)" if protocol == "sphere"
            else "G = U - T* S + p* V", "targets": pot,
            "max_distance_cells": max(p["distance_cells"] for p in pot)}


def analyze_protocol(table, protocol: str, *, targets: Sequence[int] | None = None,
                     tolerance: float = EOS_TOLERANCE, optimizer: str = "sgd") -> dict:
    """Equation of state, quadratic entropy fit and Maxwell checks, collapse and potential
    argmin for one protocol's stationary runs (see the module docstring).

    ``optimizer`` ("lr" only: "momentum", "adamw"; the table holds that optimizer's runs) sets
    the Maxwell slope (`thermosgd.theory.maxwell_relation`) and, for AdamW, the pressure of
    the Gibbs potential (`potential_states`).

    ``targets``: row indices (into the table) of the potential targets; default
    `potential_targets` of the stationary grid. Raises ValueError when the table has no run of
    the protocol or its runs mix several ``dim``. With too few stationary runs for a part
    (the equation of state needs 1, the fit and Maxwell checks `MIN_FIT_RUNS` on a 2-D grid,
    collapse `MIN_COLLAPSE_RUNS`, the potential `MIN_POTENTIAL_RUNS`) that part is left out
    and listed in ``"unavailable"`` ([{"section", "reason"}]); ``"runs_table"`` lists every
    run (`run_rows`) whatever was computed.
    """
    cols = as_columns(table)
    spec.check_protocol(protocol)
    rate, second_name = spec.hyperparameters(protocol)
    all_rows = _rows(cols, protocol)
    if all_rows.size == 0:
        raise ValueError(f"table has no runs of protocol {protocol!r}")
    used, excluded = split_rows(cols, protocol)
    dims = np.unique(cols["dim"][all_rows][np.isfinite(cols["dim"][all_rows])])
    if dims.size != 1:
        raise ValueError(f"protocol {protocol!r}: the runs have dim {dims.tolist()}; analyze "
                         f"one model at a time (filter the table by dim)")
    dim = int(dims[0])
    out: dict = {"protocol": protocol, "dim": dim, "axes": [rate, second_name],
                 "runs": int(all_rows.size), "stationary_runs": int(used.size),
                 "excluded": excluded}
    xr, yr = cols[rate][used], second_axis(cols, protocol)[used]
    out["grid"] = {rate: sorted({float(v) for v in np.unique(np.round(xr, 12))}),
                   second_name: sorted({float(v) for v in np.unique(np.round(yr, 12))})}
    out["runs_table"] = run_rows(cols, protocol, all_rows, used, excluded)
    unavailable: list[dict] = []
    n = int(used.size)
    if n:
        out["equation_of_state"] = _eos_section(cols, protocol, used, tolerance)
    else:
        unavailable.append({"section": "equation of state",
                            "reason": "needs >= 1 stationary run, have 0"})
    x, y = np.log(xr), np.log(yr)
    y_label = "log r" if protocol == "sphere" else "log wd"
    try:
        fit = fit_quadratic(x, y, cols["entropy"][used], what="fit", x_name=f"log {rate}",
                            y_name=y_label)
    except ValueError as e:
        detail = ("run more grid points or longer runs so that they become stationary"
                  if n < MIN_FIT_RUNS else str(e).removeprefix("fit: "))
        unavailable.append({"section": "Maxwell relation (quadratic entropy fit)",
                            "reason": f"needs >= {MIN_FIT_RUNS} stationary runs on a 2-D grid "
                                      f"(>= {MIN_AXIS_VALUES} values per axis), have {n}; "
                                      f"{detail}"})
    else:
        out["entropy_fit"] = {"x": f"log {rate}", "y": y_label, **fit.to_dict()}
        out["maxwell"] = maxwell_checks(fit, protocol, dim, x, y, optimizer=optimizer)
    coll = _collapse_section(cols, protocol, used, yr)
    if coll["quantities"]:
        out["collapse"] = coll
    else:
        unavailable.append({"section": "collapse",
                            "reason": f"needs >= {MIN_COLLAPSE_RUNS} stationary runs with "
                                      f"finite values, have {n}"})
    if n >= MIN_POTENTIAL_RUNS:
        out["potential"] = _potential_section(cols, protocol, used, targets, optimizer)
    else:
        unavailable.append({"section": "potential minimization",
                            "reason": f"needs >= {MIN_POTENTIAL_RUNS} stationary runs, have {n}"})
    out["unavailable"] = unavailable
    return out


#: the per-run quantities of `run_rows` (those the table has)
RUN_QUANTITIES = ("radius", "pressure", "temperature", "energy", "entropy", "sigma2")


def run_rows(cols: dict, protocol: str, rows: np.ndarray, used: np.ndarray,
             excluded: Sequence[dict]) -> list[dict]:
    """One entry per run of ``rows`` (stationary or not): run, the grid hyperparameters,
    ``stationary`` (in ``used``, the rows the analysis uses), the `RUN_QUANTITIES` the table
    has (None where missing) and, for a run of ``excluded`` (`split_rows`), why."""
    used_set = {int(k) for k in used}
    reasons = {e["row"]: e["reasons"] for e in excluded}
    out = []
    for k in rows:
        k = int(k)
        out.append({"run": cols["run"][k], **_hyper(cols, protocol, k),
                    "stationary": k in used_set,
                    **{q: _f(cols[q][k]) for q in RUN_QUANTITIES if q in cols},
                    "reasons": reasons.get(k, "")})
    return out
