"""Summaries of an isotropic-model study: Maxwell slopes, worst errors, potential minima.

Arrays in (the table of `thermosgd.sim.isotropic.stationary_table` and its `IsotropicConfig`),
numbers and arrays out; nothing is simulated, drawn or written here:

* `maxwell_summary`: entropy slopes dS/dlog(x) along each row / column of the grid (weighted
  least squares on stationary points) against `theory.isotropic_entropy_slopes` and
  `theory.maxwell_slope`;
* `potential_argmin` / `potential_map` / `potential_maps`: the Gibbs potential
  G = U - T* S + p* V (lr, elr) or the Helmholtz potential F = U - T* S per radius column
  (sphere) of the measured states at a target's (T*, p*), computed by `theory.gibbs_potential`
  / `theory.helmholtz_potential` (the maps are what the potential figure draws);
* `summarize`: the study summary (``summary.json``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from thermosgd import theory
from thermosgd.sim.isotropic import IsotropicConfig
from thermosgd.spec import axes

__all__ = ["maxwell_summary", "potential_argmin", "potential_map", "potential_maps", "summarize"]


# --------------------------------------------------------------------------------------------
# Maxwell slopes


def _row_slopes(x: np.ndarray, y: np.ndarray, se: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Weighted least-squares slope of y on x along the last axis, for each row with >= 3
    usable points; returns (slope, its standard error) per row, NaN where unusable."""
    out = np.full((x.shape[0], 2), np.nan)
    for i in range(x.shape[0]):
        m = mask[i] & np.isfinite(y[i])
        if m.sum() < 3:
            continue
        wts = 1.0 / np.maximum(se[i, m], 1e-12) ** 2 if np.all(np.isfinite(se[i, m])) else None
        X = np.stack([np.ones(m.sum()), x[i, m]], 1)
        W = np.ones(m.sum()) if wts is None else wts / wts.mean()
        cov = np.linalg.inv(X.T @ (W[:, None] * X))
        beta = cov @ X.T @ (W * y[i, m])
        resid = y[i, m] - X @ beta
        dof = max(m.sum() - 2, 1)
        s2 = float(W @ resid**2) / dof  # scale by the observed scatter (conservative)
        out[i] = beta[1], math.sqrt(cov[1, 1] * s2)
    return out


def _slope_summary(slopes: np.ndarray, theory_value: float, norm: float) -> dict:
    """Mean and spread over rows of the per-row slopes, against the theory value; ``normalized``
    divides by ``norm`` ((d-1)/2)."""
    s = slopes[:, 0]
    ok = np.isfinite(s)
    if not ok.any():  # fewer than 3 stationary points in every row: no slope
        return {"measured": None, "std_over_rows": None, "stderr": None, "theory": theory_value,
                "normalized": None, "normalized_std": None, "rows": 0, "per_row": []}
    mean = float(s[ok].mean())
    spread = float(s[ok].std(ddof=1)) if ok.sum() > 1 else float(slopes[ok, 1][0])
    return {
        "measured": mean, "std_over_rows": spread,
        "stderr": float(np.sqrt(np.nansum(slopes[ok, 1] ** 2)) / ok.sum()),
        "theory": theory_value, "normalized": mean / norm,
        "normalized_std": spread / norm, "rows": int(ok.sum()),
        "per_row": [None if not np.isfinite(v) else float(v) for v in s],
    }


def maxwell_summary(table: dict, c: IsotropicConfig) -> dict:
    """Maxwell-relation slopes measured from linear fits of S (full entropy) along each row /
    column of the grid (stationary points only), as the paper reports them (mean +- std over
    the other hyperparameter), against theory.maxwell_slope and isotropic_entropy_slopes."""
    n1, n2 = c.grid_shape
    S = table["entropy"].reshape(n1, n2)
    se = table["entropy_se"].reshape(n1, n2)
    ok = table["stationary"].reshape(n1, n2).astype(bool)
    a, b = c.axes
    col_a, col_b = axes(c.protocol)  # the sphere's radius axis is the column radius_set
    xa = np.log(table[col_a].reshape(n1, n2))
    xb = np.log(table[col_b].reshape(n1, n2))
    half = (c.dim - 1) / 2
    iso = theory.isotropic_entropy_slopes(c.protocol, c.dim)
    along_b = _slope_summary(_row_slopes(xb, S, se, ok), float(iso[b]), half)
    along_a = _slope_summary(_row_slopes(xa.T, S.T, se.T, ok.T), float(iso[a]), half)
    out = {f"dS/dlog({b})": along_b, f"dS/dlog({a})": along_a}
    if c.protocol == "lr" and along_a["measured"] is not None and along_b["measured"] is not None:
        diff = along_a["measured"] - along_b["measured"]
        out["dS/dlog(lr) - dS/dlog(wd)"] = {
            "measured": diff, "theory": float(theory.maxwell_slope("lr", c.dim)),
            "normalized": diff / half,
            "stderr": math.hypot(along_a["stderr"], along_b["stderr"]),
        }
    # the S_dir slope (temperature dependence at fixed volume), exact vMF prediction
    return out


# --------------------------------------------------------------------------------------------
# potentials


def _potential_targets(n: int) -> list[int]:
    """Grid indices near 1/8, 1/2 and 7/8 of an axis of n cells (the paper's {2, 8, 14} of 17)."""
    return sorted({round(f * (n - 1)) for f in (0.125, 0.5, 0.875)})


def _potential(table: dict, c: IsotropicConfig, target: tuple[int, int]) -> np.ndarray:
    """The potential of every measured state at the target's (T*, p*), shape grid_shape:
    G = U - T* S + p* V (`theory.gibbs_potential`; lr, elr) or F = U - T* S
    (`theory.helmholtz_potential`; sphere), NaN where U, S (or V) is not finite."""
    n1, n2 = c.grid_shape
    i, j = target
    U, S, V, T, P = (np.asarray(table[k], dtype=float).reshape(n1, n2) for k in
                     ("energy", "entropy", "volume", "temperature", "pressure"))
    pot = np.full((n1, n2), np.nan)
    if c.protocol == "sphere":
        ok = np.isfinite(U) & np.isfinite(S)
        pot[ok] = theory.helmholtz_potential(U[ok], T[i, j], S[ok])
    else:
        ok = np.isfinite(U) & np.isfinite(S) & np.isfinite(V)
        pot[ok] = theory.gibbs_potential(U[ok], T[i, j], S[ok], P[i, j], V[ok])
    return pot


def _first_argmin(values: np.ndarray) -> int:
    """Index of the first smallest finite value (0 when none is finite)."""
    return int(np.argmin(np.where(np.isfinite(values), values, np.inf)))


def potential_argmin(table: dict, c: IsotropicConfig, targets: tuple[int, ...] | None = None
                     ) -> list[dict]:
    """Minimize the potential over the grid of measured states at the (T, p) of a target state.

    lr/elr: G(state) = U - T* S + p* V (Gibbs) over the whole grid; sphere: F(state) = U - T* S
    (Helmholtz, V fixed) over the target's radius column. The minimum is the zero of
    `potential_map` (ties: the first in C order). Targets default to grid indices near 1/8, 1/2
    and 7/8 of each axis (the paper's {2, 8, 14} of 17); ``targets`` replaces the rows.
    Returns, per target, the argmin cell and its Chebyshev distance in cells.
    """
    n1, n2 = c.grid_shape
    sphere = c.protocol == "sphere"
    res = []
    for i in targets or _potential_targets(n1):
        for j in _potential_targets(n2):
            pot = _potential(table, c, (i, j))
            if sphere:
                cell = (_first_argmin(pot[:, j]), j)
            else:
                cell = np.unravel_index(_first_argmin(pot.ravel()), (n1, n2))
            argmin = [int(cell[0]), int(cell[1])]
            res.append({"target": [i, j], "argmin": argmin,
                        "distance": max(abs(argmin[0] - i), abs(argmin[1] - j)),
                        "potential": "F" if sphere else "G"})
    return res


def potential_map(table: dict, c: IsotropicConfig, target: tuple[int, int]) -> np.ndarray:
    """G - min G (lr/elr) over the grid, or F - min F per radius column (sphere: rows = states
    of the target's column), at the target's (T, p), shape grid_shape; NaN where U, S (or V)
    is not finite (diverged points). Its zero is the `potential_argmin` of the target."""
    pot = _potential(table, c, target)
    if c.protocol == "sphere":
        return pot - np.nanmin(pot, axis=0, keepdims=True)
    return pot - np.nanmin(pot)


def potential_maps(table: dict, c: IsotropicConfig) -> list[dict]:
    """What the potential figure draws: per target of `potential_argmin`, {"target": [i, j],
    "argmin": [k, l], "map": `potential_map` (its zero is the argmin)}."""
    return [{"target": p["target"], "argmin": p["argmin"],
             "map": potential_map(table, c, (p["target"][0], p["target"][1]))}
            for p in potential_argmin(table, c)]


# --------------------------------------------------------------------------------------------
# the study summary


def _worst(rel: np.ndarray, mask: np.ndarray) -> float | None:
    """max |rel| over the masked finite entries (None when there are none)."""
    m = mask & np.isfinite(rel)
    return float(np.max(np.abs(rel[m]))) if m.any() else None


def summarize(table: dict, c: IsotropicConfig, seconds: float | None = None) -> dict:
    """Study summary: Maxwell slopes, worst relative errors of the equation of state (SDE and
    discretization-corrected), of U and S_dir against exact vMF, potential argmins, flags."""
    ok = table["stationary"].astype(bool)
    out: dict = {"config": dataclasses.asdict(c), "grid_points": int(ok.size),
                 "stationary_points": int(ok.sum()),
                 "non_stationary": [_label(table, k, c) for k in np.flatnonzero(~ok)]}
    if c.protocol == "sphere":
        meas, sde, disc = table["pressure"], table["pressure_theory"], table["pressure_discrete"]
        key = "pressure"
    else:
        meas, sde, disc = table["radius"], table["radius_theory"], table["radius_discrete"]
        key = "radius"
    out[f"{key}_max_rel_error_discrete"] = _worst(meas / disc - 1, ok)
    out[f"{key}_max_rel_error_sde"] = _worst(meas / sde - 1, ok)
    out["energy_max_rel_error_exact"] = _worst(table["energy"] / table["energy_theory"] - 1, ok)
    z = (table["energy"] - table["energy_theory"]) / table["energy_se"]
    out["energy_max_abs_z_exact"] = _worst(z, ok)
    out["energy_max_rel_error_discrete"] = _worst(
        table["energy"] / table["energy_discrete"] - 1, ok)
    zd = (table["energy"] - table["energy_discrete"]) / table["energy_se"]
    out["energy_max_abs_z_discrete"] = _worst(zd, ok)
    out["entropy_dir_max_abs_error_exact"] = _worst(
        table["entropy_dir"] - table["entropy_dir_theory"], ok)
    out["entropy_dir_max_abs_error_discrete"] = _worst(
        table["entropy_dir"] - table["entropy_dir_discrete"], ok)
    out["maxwell"] = maxwell_summary(table, c)
    pot = potential_argmin(table, c)
    out["potential_argmin"] = {"targets": pot,
                               "max_distance_cells": max(p["distance"] for p in pot)}
    out["diverged"] = int(table["diverged"].sum())
    if seconds is not None:
        out["simulation_seconds"] = seconds
    return out


def _label(table: dict, k: int, c: IsotropicConfig) -> dict:
    """Grid point k of a non-stationary list: its two hyperparameters and why."""
    a, b = c.axes
    col_b = axes(c.protocol)[1]
    reasons = [name for name, bad in (("diverged", table["diverged"][k]),
                                      ("radius not relaxed", not table["relaxed"][k]),
                                      ("radius drifting", table["drifting"][k])) if bad]
    return {a: float(table[a][k]), b: float(table[col_b][k]), "why": ", ".join(reasons)}
