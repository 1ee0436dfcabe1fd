"""The arrays the network figures draw, computed from a table and its analysis result.

`thermosgd.viz.plots` draws and never computes: every number it shows comes from here (or
from the JSON-able analysis result). `figure_arrays(table, result)` returns, for every analyzed
protocol of `thermosgd.analysis.grids.analyze` and every optimizer group, the stationary
runs' grid values, the equation-of-state points, the collapse curves' inputs, the fitted
entropy surface along each grid line, the Maxwell derivative of the fit at the grid points,
and the potential map G - min G (F - min F per radius on the sphere) of every target, made by
`thermosgd.analysis.thermo.potential_map` at the same pressure as the reported argmin
(`thermosgd.analysis.thermo.potential_states`).

Nothing here goes into ``analysis.json``; the result stays as `analyze` returns it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from thermosgd import spec
from thermosgd.analysis.grids import optimizer_groups, paper_rows
from thermosgd.analysis.table import EOS_COLUMNS, _take, as_columns, second_axis, split_rows
from thermosgd.analysis.thermo import (
    _potential_args,
    collapse_variable,
    potential_map,
    potential_states,
    quadratic_dx,
    quadratic_dy,
    quadratic_surface,
)

__all__ = [
    "COLLAPSE_FIGURE_QUANTITIES",
    "GENERALIZATION_COLUMNS",
    "figure_arrays",
    "generalization_figure_arrays",
    "optimizer_figure_arrays",
    "protocol_figure_arrays",
]

#: the quantities of the collapse figure
COLLAPSE_FIGURE_QUANTITIES = ("temperature", "energy", "sigma2")

#: the columns of the generalization figure (state variables, outcomes, their errors)
GENERALIZATION_COLUMNS = ("temperature", "entropy", "gap_loss", "eval_test_acc", "gap_loss_se",
                          "eval_test_acc_se")

#: points of a fitted entropy curve along one grid line
_CURVE_POINTS = 50


def _level_keys(v: np.ndarray) -> np.ndarray:
    """The grid line of each point: log v rounded to 1e-6 (equal values to 1e-6 relative)."""
    return np.round(np.log(v), 6)


def _entropy_curves(coef: np.ndarray, x: np.ndarray, y: np.ndarray, s: np.ndarray,
                    along: str) -> list[dict]:
    """Per grid line (one per second-axis value when ``along`` is "rate", one per rate when
    "second"): its measured entropies and the fitted S (`quadratic_surface`) on 50
    log-spaced points between its extreme values."""
    gv, xx = (y, x) if along == "rate" else (x, y)
    keys = _level_keys(gv)
    curves = []
    for lv in np.unique(keys):
        m = np.flatnonzero(keys == lv)
        grid = np.geomspace(xx[m].min(), xx[m].max(), _CURVE_POINTS)
        g = np.exp(lv)
        fit = (quadratic_surface(coef, np.log(grid), np.log(g)) if along == "rate"
               else quadratic_surface(coef, np.log(g), np.log(grid)))
        curves.append({"x": xx[m], "entropy": s[m], "fit_x": grid, "fit": fit})
    return curves


def _maxwell_curves(coef: np.ndarray, protocol: str, x: np.ndarray, y: np.ndarray,
                    norm: float) -> list[dict]:
    """The fit's Maxwell derivative (dS/dx - dS/dy for lr, dS/dy otherwise) / ``norm`` at the
    grid points, one curve per second-axis value sorted by the rate."""
    lx, ly = np.log(x), np.log(y)
    dx, dy = quadratic_dx(coef, lx, ly), quadratic_dy(coef, lx, ly)
    deriv = (dx - dy) if protocol == "lr" else dy
    curves = []
    keys = np.round(ly, 6)
    for lv in np.unique(_level_keys(y)):
        k = keys == lv
        o = np.argsort(lx[k])
        curves.append({"x": x[k][o], "value": deriv[k][o] / norm})
    return curves


def protocol_figure_arrays(cols: dict, protocol: str, res: dict, optimizer: str = "sgd") -> dict:
    """The arrays of one protocol's (or optimizer group's) four figures, from the table and
    its `analyze_protocol` entry ``res``: {"protocol", "rate", "second", "x", "y" (grid values
    of the stationary runs), "eos" (stationary and excluded runs), and the "collapse",
    "entropy", "maxwell", "potential" of the parts ``res`` has (a small sweep's analysis
    may lack some: `thermosgd.analysis.thermo.analyze_protocol`)}."""
    used, excluded = split_rows(cols, protocol)
    excl = np.array([e["row"] for e in excluded], dtype=int)
    rate, second = spec.hyperparameters(protocol)
    xv, yv = cols[rate], second_axis(cols, protocol)
    x, y = xv[used], yv[used]
    mkey, skey, dkey = EOS_COLUMNS[protocol]
    out = {
        "protocol": protocol, "rate": rate, "second": second, "x": x, "y": y,
        "eos": {"quantity": mkey, "measured": cols[mkey][used], "sde": cols[skey][used],
                "discrete": cols[dkey][used], "excluded_x": xv[excl],
                "excluded_measured": cols[mkey][excl]},
    }
    if "collapse" in res:
        cname, cval = collapse_variable(cols, protocol, used)
        out["collapse"] = {"variable": cname, "values": cval,
                           "quantities": {q: cols[q][used] for q in COLLAPSE_FIGURE_QUANTITIES}}
    if "entropy_fit" in res:
        coef = np.asarray(res["entropy_fit"]["coefficients"], float)
        m = res["maxwell"]
        out["entropy"] = {"rate": _entropy_curves(coef, x, y, cols["entropy"][used], "rate"),
                          "second": _entropy_curves(coef, x, y, cols["entropy"][used],
                                                    "second")}
        out["maxwell"] = {"curves": _maxwell_curves(coef, protocol, x, y, m["normalization"]),
                          "target": m["theory"] / m["normalization"]}
    if "potential" in res:
        states = potential_states(cols, protocol, used, optimizer)
        runs = list(cols["run"][used])
        maps = []
        for t in res["potential"]["targets"]:
            i, k = runs.index(t["target_run"]), runs.index(t["argmin_run"])
            maps.append({"target": i, "argmin": k, "target_cell": t["target_cell"],
                         "distance": t["distance_cells"],
                         "map": potential_map(*_potential_args(states), i,
                                              fixed_volume=states["fixed_volume"])})
        out["potential"] = {"cells": states["cells"], "maps": maps}
    return out


def _same(a, b) -> bool:
    """Two group parameters agree (both absent, or equal to 1e-8 relative)."""
    a = math.nan if a is None else float(a)
    b = math.nan if b is None else float(b)
    return (math.isnan(a) and math.isnan(b)) or bool(np.isclose(a, b))


def optimizer_figure_arrays(table, groups: Sequence[dict]) -> list[dict | None]:
    """`protocol_figure_arrays` of each optimizer group of `analyze_optimizers` (``groups``,
    the result's entries; None for a group that failed), from the table's rows of that group."""
    cols = as_columns(table)
    found = optimizer_groups(cols)
    out: list[dict | None] = []
    for g in groups:
        if "error" in g:
            out.append(None)
            continue
        rows = [f["rows"] for f in found if f["optimizer"] == g["optimizer"]
                and _same(f["momentum"], g["momentum"]) and _same(f["beta2"], g["beta2"])]
        if len(rows) != 1:
            raise ValueError(f"optimizer group {g['label']!r}: not found in the table")
        out.append(protocol_figure_arrays(_take(cols, rows[0]), "lr", g, g["optimizer"]))
    return out


def generalization_figure_arrays(cols: dict, groups: Sequence[dict]) -> list[dict]:
    """Per generalization group of `generalization_groups` (not "all"): its protocol,
    optimizer and the `GENERALIZATION_COLUMNS` of its rows (those the table has). ``cols`` is
    the table the groups' rows index (the scale-invariant runs, `paper_rows`)."""
    out = []
    for g in groups:
        if g["protocol"] == "all":
            continue
        rows = np.asarray(g["rows"], dtype=int)
        out.append({"protocol": g["protocol"], "optimizer": g["optimizer"],
                    "columns": {k: cols[k][rows] for k in GENERALIZATION_COLUMNS if k in cols}})
    return out


def figure_arrays(table, result: dict) -> dict:
    """Every array the network figures of ``result`` (`thermosgd.analysis.grids.analyze` of
    ``table``) draw: {"protocols": {protocol: `protocol_figure_arrays`} (analyzed protocols),
    "optimizers": `optimizer_figure_arrays` (or []), "generalization":
    `generalization_figure_arrays` (or [])}."""
    si_cols, sgd_cols = paper_rows(as_columns(table))
    out: dict = {"protocols": {}, "optimizers": [], "generalization": []}
    if result.get("optimizers"):
        out["optimizers"] = optimizer_figure_arrays(si_cols, result["optimizers"])
    for p, res in result["protocols"].items():
        if "error" not in res:
            out["protocols"][p] = protocol_figure_arrays(sgd_cols, p, res)
    if result.get("generalization"):
        out["generalization"] = generalization_figure_arrays(si_cols, result["generalization"])
    return out
