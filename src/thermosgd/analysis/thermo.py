"""Analysis of grids of stationary states: the paper's neural-network section (9.6-9.8).

Input: a tidy table, one row per run (a dict of equal-length columns, or a pandas DataFrame;
pandas is never imported here), with the columns that training runs write in
``stationary.json``: protocol, lr, elr, wd, radius_set, dim, temperature, pressure, volume,
energy, entropy, sigma2, trace_sigma, grad_norm2, radius, radius_sde, radius_discrete,
pressure_sde, pressure_discrete, stationary, and optionally entropy_dir, reasons, diverged,
run, and the whole-set evaluations eval_train_loss, eval_train_acc, eval_test_loss,
eval_test_acc, gap_loss, gap_acc. Isotropic-study tables (``results.csv`` of ``thermosgd
isotropic``) are accepted too: their ``*_theory`` columns stand for the ``*_sde`` ones.

For each protocol present, `analyze_protocol` computes, on the stationary runs only:

* the equation of state: measured radius (lr, elr) or sphere pressure against the SDE and the
  discretization-corrected predictions, per point and worst relative errors, and the fraction
  of stationary runs within 5%;
* the quadratic fit S(x, y) = a0 + a1 x + a2 y + a3 x^2 + a4 y^2 + a5 xy, with x = log rate
  (lr or elr) and y = log wd (log r on the sphere), natural logs, and its R^2;
* the Maxwell checks exactly as the paper reports them (`maxwell_checks`);
* the collapse of sigma2, U and T onto elr (elr, sphere) or lr*wd (lr) (`collapse_ratio`);
* the Gibbs potential G = U - T* S + p* V (F = U - T* S on the sphere, per radius) at the
  (T*, p*) of a few target runs, its argmin over the measured states and the distance in grid
  cells (`potential_argmin`);
* the excluded runs (not stationary, diverged, or missing a value) and why.

`analyze` also relates the stationary entropy and temperature to generalization (test loss and
accuracy, generalization gaps) across the stationary runs of each protocol and of all protocols
together: Spearman rank correlations with bootstrap intervals (`thermosgd.generalization`).

`analyze` does this for every protocol and adds the acceptance checks of the reproduction;
`write_analysis` writes ``analysis.json``; `run_analysis` does load, analyze, figures, write.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from thermosgd import theory

__all__ = [
    "AXES",
    "COLLAPSE_QUANTITIES",
    "PAPER_NN_RESULTS",
    "SI_DISTANCES",
    "QuadraticFit",
    "acceptance_checks",
    "analyze",
    "analyze_non_si",
    "analyze_optimizers",
    "analyze_protocol",
    "as_columns",
    "collapse_ratio",
    "collapse_variable",
    "equation_of_state",
    "fit_quadratic",
    "generalization_groups",
    "grid_cells",
    "load_table",
    "maxwell_checks",
    "optimizer_column",
    "potential_argmin",
    "potential_targets",
    "run_analysis",
    "second_axis",
    "split_rows",
    "variant_column",
    "write_analysis",
]

#: grid axes per protocol: (rate column, second-axis column)
AXES = {"lr": ("lr", "wd"), "elr": ("elr", "wd"), "sphere": ("elr", "radius_set")}

#: quantities whose collapse onto the collapse variable is quantified
COLLAPSE_QUANTITIES = ("sigma2", "energy", "temperature")

#: the fraction of the equation-of-state check (relative error below 5%)
EOS_TOLERANCE = 0.05

#: minimum number of stationary runs, and of distinct values per axis, for the quadratic fit
MIN_FIT_RUNS = 6
MIN_AXIS_VALUES = 3

#: the paper's numbers (saved notebook outputs, paper.md section 9.7), for reference in reports.
#: "maxwell_coefficients" are normalized by (d-1)/2 except where the key says "/(a1-a2)".
PAPER_NN_RESULTS = [
    {"model": "ConvNet-8 / CIFAR-10", "dim": 24408, "protocol": "elr", "r2": 0.99748,
     "max_rel_error": 0.0652, "coefficients": {"a2": -1.128, "2a4": -0.0159, "a5": -0.0056}},
    {"model": "ConvNet-8 / CIFAR-10", "dim": 24408, "protocol": "lr", "r2": 0.99260,
     "max_rel_error": 0.176, "coefficients": {"a1-a2": 0.989, "2a3-a5": -0.038,
                                              "2a4-a5": -0.033}},
    {"model": "ConvNet-8 / CIFAR-10", "dim": 24408, "protocol": "sphere", "r2": 0.99585},
    {"model": "ConvNet-16 / CIFAR-100", "dim": 97200, "protocol": "elr", "r2": 0.97912,
     "max_rel_error": 0.0395, "coefficients": {"a2": -0.930, "2a4": -0.0015, "a5": 0.0088}},
    {"model": "ConvNet-16 / CIFAR-100", "dim": 97200, "protocol": "lr", "r2": 0.84117,
     "max_rel_error": 0.233, "coefficients": {"a1-a2": 0.659, "2a3-a5": -0.047,
                                              "2a4-a5": 0.0007}},
    {"model": "ConvNet-16 / CIFAR-100", "dim": 97200, "protocol": "sphere", "r2": 0.94096},
    {"model": "ResNet-18 (k=4) / CIFAR-10", "dim": 43692, "protocol": "elr", "r2": 0.99255,
     "max_rel_error": 0.0246, "coefficients": {"a2": -1.029, "2a4": -0.0079, "a5": 0.0002}},
    {"model": "ResNet-18 (k=4) / CIFAR-10", "dim": 43692, "protocol": "lr", "r2": 0.99393,
     "max_rel_error": 0.0295, "coefficients": {"a1-a2": 0.993, "(2a3-a5)/(a1-a2)": 0.0049,
                                              "(2a4-a5)/(a1-a2)": 0.0046}},
    {"model": "ResNet-18 (k=4) / CIFAR-10", "dim": 43692, "protocol": "sphere", "r2": 0.99581},
    {"model": "ResNet-18 (k=4) / CIFAR-100", "dim": 43692, "protocol": "elr", "r2": 0.99489,
     "max_rel_error": 0.0190, "coefficients": {"a2": -1.022, "2a4": -0.0063, "a5": 0.0005}},
    {"model": "ResNet-18 (k=4) / CIFAR-100", "dim": 43692, "protocol": "lr", "r2": 0.98938,
     "max_rel_error": 0.0563, "coefficients": {"a1-a2": 1.075, "(2a3-a5)/(a1-a2)": 8e-5,
                                              "(2a4-a5)/(a1-a2)": -0.0076}},
    {"model": "ResNet-18 (k=4) / CIFAR-100", "dim": 43692, "protocol": "sphere", "r2": 0.99528},
]

#: acceptance thresholds of the cpu reproduction (issue "sweeps, analysis, report")
ACCEPTANCE = {"maxwell_max_rel_error": {"elr": 0.10, "lr": 0.15},
              "eos_fraction_within_5pct": 0.90, "potential_max_distance_cells": 1}

_NUMERIC = ("lr", "elr", "wd", "radius_set", "dim", "temperature", "pressure", "volume",
            "energy", "entropy", "entropy_dir", "sigma2", "trace_sigma", "grad_norm2", "radius",
            "radius_sde", "radius_discrete", "pressure_sde", "pressure_discrete",
            "eval_train_loss", "eval_train_acc", "eval_test_loss", "eval_test_acc", "gap_loss",
            "gap_acc", "si_radial_gradient", "si_radial_gradient_rms", "si_loss_change",
            "momentum", "beta2")
_ALIASES = {"radius_sde": "radius_theory", "pressure_sde": "pressure_theory"}
# columns every analysed row needs (per protocol: the axes and the equation-of-state ones)
_NEEDED = ("temperature", "energy", "entropy", "sigma2", "volume")
_EOS = {"lr": ("radius", "radius_sde", "radius_discrete"),
        "elr": ("radius", "radius_sde", "radius_discrete"),
        "sphere": ("pressure", "pressure_sde", "pressure_discrete")}


# --------------------------------------------------------------------------------------------
# the table


def _parse_bool(name: str, values) -> np.ndarray:
    out = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if isinstance(v, bool | np.bool_):
            out[i] = bool(v)
        elif v is None or (isinstance(v, float | np.floating) and math.isnan(v)):
            out[i] = False
        elif isinstance(v, int | float | np.integer | np.floating):
            out[i] = bool(v)
        elif isinstance(v, str) and v.strip().lower() in ("true", "1", "yes", "1.0"):
            out[i] = True
        elif isinstance(v, str) and v.strip().lower() in ("false", "0", "no", "0.0", ""):
            out[i] = False
        else:
            raise ValueError(f"column {name!r}: cannot read {v!r} as true/false (row {i})")
    return out


def _parse_float(name: str, values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64)
    out = np.empty(len(arr), dtype=np.float64)
    for i, v in enumerate(arr):
        if v is None or (isinstance(v, str) and v.strip() == ""):
            out[i] = np.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"column {name!r}: {v!r} (row {i}) is not a number") from None
    return out


def _parse_text(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float | np.floating) and math.isnan(v)):
            out[i] = ""
        elif isinstance(v, list | tuple | np.ndarray):
            out[i] = "; ".join(str(x) for x in v)
        else:
            out[i] = str(v)
            if out[i].startswith("["):  # a JSON list of reasons, as flattened documents hold
                try:
                    items = json.loads(out[i])
                except ValueError:
                    continue
                if isinstance(items, list):
                    out[i] = "; ".join(str(x) for x in items)
    return out


def as_columns(table) -> dict[str, np.ndarray]:
    """Normalize a tidy table to a dict of numpy columns.

    Accepts a mapping of equal-length sequences or a pandas DataFrame (anything with
    ``columns`` and ``__getitem__`` returning a column with ``to_numpy``). Numeric columns
    become float64 (empty cells and None -> NaN); ``stationary`` and ``diverged`` become bool
    (``"true"``/``"false"`` strings as written by `thermosgd.io.write_csv` are read);
    ``protocol``, ``reasons`` and ``run`` become str (missing -> ""); isotropic-study
    ``radius_theory``/``pressure_theory`` fill absent ``radius_sde``/``pressure_sde``. Missing
    optional columns are added: ``reasons`` "", ``diverged`` False, ``run`` "row <i>".
    """
    if hasattr(table, "columns") and not isinstance(table, Mapping):
        try:
            raw = {str(c): np.asarray(table[c].to_numpy()) for c in table.columns}
        except (AttributeError, KeyError, TypeError) as e:
            raise ValueError(f"table: cannot read the columns of a {type(table).__name__}: {e}"
                             ) from None
    elif isinstance(table, Mapping):
        raw = {}
        for k, v in table.items():
            arr = np.asarray(v, dtype=object if isinstance(v, list | tuple) else None)
            raw[str(k)] = arr.reshape(-1) if arr.ndim == 0 else arr
    else:
        raise ValueError(f"table must be a dict of columns or a pandas DataFrame, got "
                         f"{type(table).__name__}")
    lengths = {len(v) for v in raw.values()}
    if len(lengths) > 1:
        raise ValueError(f"table: columns have different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    # flattened documents may prefix the names ("stationary.energy"): use a unique match
    for name in (*_NUMERIC, "protocol", "stationary", "diverged", "reasons", "run"):
        if name not in raw:
            hits = [k for k in raw if k.endswith("." + name)]
            if len(hits) == 1:
                raw[name] = raw[hits[0]]
    if "run" not in raw and "name" in raw:
        raw["run"] = raw["name"]
    if "protocol" not in raw:
        raise ValueError("table has no 'protocol' column (one of lr, elr, sphere per run)")
    cols: dict[str, np.ndarray] = {}
    for k, v in raw.items():
        if k in _NUMERIC:
            cols[k] = _parse_float(k, v)
        elif k in ("stationary", "diverged"):
            cols[k] = _parse_bool(k, v)
        elif k in ("protocol", "reasons", "run", "variant", "optimizer"):
            cols[k] = _parse_text(v)
        else:
            cols[k] = v
    for new, old in _ALIASES.items():
        if new not in cols and old in raw:
            cols[new] = _parse_float(old, raw[old])
    cols.setdefault("reasons", np.full(n, "", dtype=object))
    cols.setdefault("diverged", np.zeros(n, dtype=bool))
    cols.setdefault("run", np.array([f"row {i}" for i in range(n)], dtype=object))
    bad = sorted({p for p in cols["protocol"] if p and p not in AXES})
    if bad:
        raise ValueError(f"table: unknown protocol(s) {bad}; expected lr, elr or sphere")
    return cols


def load_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a tidy table: a ``.csv`` (`thermosgd.io.read_csv`) or ``.parquet`` (pandas)
    file, or a directory holding ``results.csv`` or ``results.parquet``."""
    from thermosgd.io import read_csv

    p = Path(path)
    if p.is_dir():
        for name in ("results.csv", "results.parquet"):
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise ValueError(f"{path}: no results.csv or results.parquet here; run "
                             f"'thermosgd collect {path}' first")
    if not p.is_file():
        raise ValueError(f"{path}: no such file")
    if p.suffix == ".parquet":
        try:
            import pandas as pd
        except ImportError:
            raise ValueError(f"{p}: reading parquet needs pandas; pip install "
                             f"'thermosgd[tables]' or use results.csv") from None
        return as_columns(pd.read_parquet(p))
    return as_columns(read_csv(p))


def _rows(cols: dict, protocol: str) -> np.ndarray:
    return np.flatnonzero(cols["protocol"] == protocol)


def second_axis(cols: dict, protocol: str) -> np.ndarray:
    """Values of the second grid axis: wd, or the set radius on the sphere (falls back to the
    measured radius where ``radius_set`` is absent)."""
    if protocol != "sphere":
        return cols["wd"]
    r = cols.get("radius_set", np.full(len(cols["protocol"]), np.nan))
    if "radius" in cols:
        r = np.where(np.isfinite(r), r, cols["radius"])
    return r


def _needed_columns(protocol: str) -> tuple[str, ...]:
    rate, second = AXES[protocol]
    return (rate, "wd" if second == "wd" else "radius_set", *_NEEDED, *_EOS[protocol])


def split_rows(cols: dict, protocol: str) -> tuple[np.ndarray, list[dict]]:
    """Rows of ``protocol`` used by the analysis, and the excluded ones with their reasons.

    A row is used when it is flagged stationary, not diverged, and has finite, valid values
    of every needed column (the grid axes > 0, T, U, S, sigma2, V and the equation-of-state
    columns). Excluded rows come back as {"run", "row", <axes>, "reasons"}.
    """
    rate, _ = AXES[protocol]
    rows = _rows(cols, protocol)
    second = second_axis(cols, protocol)
    missing_cols = [c for c in ("dim", "stationary", *_needed_columns(protocol))
                    if c not in cols and not (c == "radius_set" and "radius" in cols)]
    if missing_cols:
        raise ValueError(f"table: protocol {protocol!r} needs column(s) "
                         f"{', '.join(missing_cols)}; collect the runs' stationary.json again")
    used, excluded = [], []
    for k in rows:
        why = []
        if cols["diverged"][k]:
            why.append("diverged")
        err = _text(cols, "error", k)
        state = _text(cols, "state", k)  # a sweep's run state: done, diverged, failed, ...
        if err:
            why.append(f"failed: {err}")
        elif state and state not in ("done", "diverged", "complete"):
            why.append(f"run {state}")
        elif not cols["stationary"][k]:
            why.append(cols["reasons"][k] or "flagged non-stationary")
        bad = [c for c in _needed_columns(protocol)
               if c != "radius_set" and not np.isfinite(cols[c][k])]
        if not (np.isfinite(second[k]) and second[k] > 0):
            bad.append("radius_set" if protocol == "sphere" else "wd")
        if np.isfinite(cols[rate][k]) and cols[rate][k] <= 0:
            bad.append(rate)
        if bad and not why:
            why.append("missing or invalid " + ", ".join(dict.fromkeys(bad)))
        if why:
            excluded.append({"run": cols["run"][k], "row": int(k), **_hyper(cols, protocol, k),
                             "reasons": "; ".join(why)})
        else:
            used.append(k)
    return np.asarray(used, dtype=int), excluded


def _text(cols: dict, name: str, k: int) -> str:
    """Cell k of an optional text column ('' when absent, None or NaN)."""
    if name not in cols:
        return ""
    v = cols[name][k]
    if v is None or (isinstance(v, float | np.floating) and math.isnan(v)):
        return ""
    return str(v).strip()


def _hyper(cols: dict, protocol: str, k: int) -> dict:
    rate = AXES[protocol][0]
    name = "radius" if protocol == "sphere" else "wd"
    return {rate: _f(cols[rate][k]), name: _f(second_axis(cols, protocol)[k])}


def _f(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


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
        a = self.coef
        x, y = np.asarray(x, float), np.asarray(y, float)
        return a[0] + a[1] * x + a[2] * y + a[3] * x * x + a[4] * y * y + a[5] * x * y

    def dx(self, x, y):
        """dS/dx = a1 + 2 a3 x + a5 y."""
        a = self.coef
        return a[1] + 2 * a[3] * np.asarray(x, float) + a[5] * np.asarray(y, float)

    def dy(self, x, y):
        """dS/dy = a2 + 2 a4 y + a5 x."""
        a = self.coef
        return a[2] + 2 * a[4] * np.asarray(y, float) + a[5] * np.asarray(x, float)

    def stderr(self, weights) -> float:
        """Standard error of the linear combination sum_k weights[k] a_k."""
        w = np.asarray(weights, float)
        return float(np.sqrt(max(w @ self.cov @ w, 0.0))) if np.all(np.isfinite(self.cov)) \
            else float("nan")

    def to_dict(self) -> dict:
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

    With N = (d-1)/2 and the derivatives evaluated at the grid points (x, y):

    * "elr": dS/dlog(wd) = -N. max_rel_error = max |dS/dy + N| / N; normalized coefficients
      a2/N (ideal -1), 2 a4/N and a5/N (ideal 0).
    * "lr": dS/dlog(lr) - dS/dlog(wd) = N. max_rel_error = max |dS/dx - dS/dy - N| / N;
      (a1 - a2)/N (ideal 1), (2 a3 - a5)/N and (2 a4 - a5)/N (ideal 0), and the latter two
      divided by (a1 - a2) as in the paper's ResNet notebooks.
    * "sphere" (not reported by the paper): dS/dlog(r) = d - 1. max_rel_error
      = max |dS/dy - (d-1)| / (d-1); a2/(d-1) (ideal 1), 2 a4/(d-1) and a5/(d-1) (ideal 0).

    Each normalized coefficient comes with its standard error from the fit's covariance.
    ``optimizer`` (protocol "lr"): heavy ball keeps (d-1)/2; AdamW's radius r*^2 ~ eta/lambda
    gives d-1 (`thermosgd.optimizers.lr_maxwell_slope`), the normalization N above.
    """
    from thermosgd.optimizers import lr_maxwell_slope

    x, y = np.asarray(x, float), np.asarray(y, float)
    target = float(theory.maxwell_slope(protocol, dim))
    if protocol == "lr":
        target = float(lr_maxwell_slope(optimizer, dim))
    elif optimizer != "sgd":
        raise ValueError(f"optimizer {optimizer!r} runs the fixed-LR protocol only")
    norm = abs(target)
    a = fit.coef
    if protocol == "lr":
        deriv = fit.dx(x, y) - fit.dy(x, y)
        relation = ("dS/dlog(lr) - dS/dlog(wd) = d-1" if optimizer == "adamw"
                    else "dS/dlog(lr) - dS/dlog(wd) = (d-1)/2")
        combos = {"a1-a2": ([0, 1, -1, 0, 0, 0], 1.0), "2a3-a5": ([0, 0, 0, 2, 0, -1], 0.0),
                  "2a4-a5": ([0, 0, 0, 0, 2, -1], 0.0)}
    else:
        deriv = fit.dy(x, y)
        relation = ("dS/dlog(wd) = -(d-1)/2" if protocol == "elr"
                    else "dS/dlog(r) = d-1 (not reported by the paper)")
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
    curves = []
    for gv in np.unique(np.round(np.log(group), 6)):
        m = np.round(np.log(group), 6) == gv
        keys, inv = np.unique(np.round(lc[m], 6), return_inverse=True)
        if keys.size < 2:
            continue
        xs = np.array([lc[m][inv == i].mean() for i in range(keys.size)])
        zs = np.array([z[m][inv == i].mean() for i in range(keys.size)])
        curves.append((xs, zs))
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


def potential_argmin(energy, entropy, volume, temperature, pressure, cells, target: int, *,
                     fixed_volume: bool = False, mask=None) -> dict:
    """Minimize the potential at the target state's (T*, p*) over the measured states.

    * ``fixed_volume=False`` (lr, elr): G_k = U_k - T* S_k + p* V_k over all states k.
    * ``fixed_volume=True`` (sphere): F_k = U_k - T* S_k over the states in the target's
      column (same second-axis cell, i.e. the same radius).

    ``cells`` (n, 2) are the states' grid coordinates; ``mask`` (default: finite U and S)
    selects the candidates (others count as +inf; ties go to the first state). Returns
    {"target", "argmin"} (state indices), the cells and the Chebyshev ``distance`` in cells.
    """
    U, S, V, T, P = (np.asarray(a, float) for a in (energy, entropy, volume, temperature,
                                                     pressure))
    cells = np.asarray(cells, int)
    ok = np.isfinite(U) & np.isfinite(S) if mask is None else np.asarray(mask, bool)
    t = int(target)
    if fixed_volume:
        cand = np.flatnonzero(cells[:, 1] == cells[t, 1])
        with np.errstate(invalid="ignore"):
            pot = np.where(ok[cand], U[cand] - T[t] * S[cand], np.inf)
        k = int(cand[np.argmin(pot)])
    else:
        with np.errstate(invalid="ignore"):
            pot = np.where(ok, U - T[t] * S + P[t] * V, np.inf)
        k = int(np.argmin(pot))
    return {"target": t, "argmin": k, "target_cell": cells[t].tolist(),
            "argmin_cell": cells[k].tolist(),
            "distance": int(np.max(np.abs(cells[k] - cells[t])))}


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


# --------------------------------------------------------------------------------------------
# one protocol


def analyze_protocol(table, protocol: str, *, targets: Sequence[int] | None = None,
                     tolerance: float = EOS_TOLERANCE, optimizer: str = "sgd") -> dict:
    """Equation of state, quadratic entropy fit and Maxwell checks, collapse and potential
    argmin for one protocol's stationary runs (see the module docstring).

    ``optimizer`` ("lr" only: "momentum", "adamw"; the table holds that optimizer's runs) sets
    the Maxwell slope (`thermosgd.optimizers.lr_maxwell_slope`) and, for AdamW, the pressure
    of the Gibbs potential (the measured ``pressure`` column, lambda sqrt(s), instead of wd).

    ``targets``: row indices (into the table) of the potential targets; default
    `potential_targets` of the stationary grid. Raises ValueError when there are too few
    stationary runs for the fit, or the runs mix several ``dim``.
    """
    cols = as_columns(table)
    theory.validate_protocol(protocol)
    rate, _ = AXES[protocol]
    second_name = "radius" if protocol == "sphere" else "wd"
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
    second = second_axis(cols, protocol)
    xr, yr = cols[rate][used], second[used]
    out["grid"] = {rate: sorted({float(v) for v in np.unique(np.round(xr, 12))}),
                   second_name: sorted({float(v) for v in np.unique(np.round(yr, 12))})}
    what = f"protocol {protocol!r}"
    if used.size < MIN_FIT_RUNS:
        fit_quadratic(np.zeros(used.size), np.zeros(used.size), np.zeros(used.size),
                      what=what)  # raises the explanatory error

    # equation of state
    mkey, skey, dkey = _EOS[protocol]
    eos = equation_of_state(cols[mkey][used], cols[skey][used], cols[dkey][used], tolerance)
    points = []
    for i, k in enumerate(used):
        points.append({"run": cols["run"][k], "row": int(k), **_hyper(cols, protocol, k),
                       "measured": _f(cols[mkey][k]), "sde": _f(cols[skey][k]),
                       "discrete": _f(cols[dkey][k]),
                       "rel_error_sde": _f(eos["rel_error_sde"][i]),
                       "rel_error_discrete": _f(eos["rel_error_discrete"][i])})
    eos_out = {"quantity": mkey, "points": points}
    for key, v in eos.items():
        if key.startswith("rel_error_"):
            continue
        if key.startswith("worst_index_"):
            eos_out["worst_run_" + key[len("worst_index_"):]] = (
                None if v is None else points[v]["run"])
        else:
            eos_out[key] = v
    out["equation_of_state"] = eos_out

    # entropy fit and Maxwell relations
    x, y = np.log(xr), np.log(yr)
    y_label = "log r" if protocol == "sphere" else "log wd"
    fit = fit_quadratic(x, y, cols["entropy"][used], what=what, x_name=f"log {rate}",
                        y_name=y_label)
    out["entropy_fit"] = {"x": f"log {rate}", "y": y_label, **fit.to_dict()}
    out["maxwell"] = maxwell_checks(fit, protocol, dim, x, y, optimizer=optimizer)

    # collapse of the direction statistics
    cname, cval = collapse_variable(cols, protocol, used)
    coll = {"variable": cname, "groups": second_name, "quantities": {}}
    extra = ("entropy_dir",) if "entropy_dir" in cols else ()
    for q in (*COLLAPSE_QUANTITIES, *extra):
        if q in cols and np.isfinite(cols[q][used]).sum() >= 4:
            coll["quantities"][q] = collapse_ratio(cval, cols[q][used], yr)
    out["collapse"] = coll

    # potential minimization
    cells = grid_cells(xr, yr)
    pos = {int(k): i for i, k in enumerate(used)}
    if targets is None:
        tlist = potential_targets(cells)
    else:
        bad = [t for t in targets if int(t) not in pos]
        if bad:
            raise ValueError(f"targets {bad} are not stationary {protocol!r} rows of the table")
        tlist = [pos[int(t)] for t in targets]
    # p = lambda for lr/elr (the sphere's F has no pV term)
    pressure = np.zeros(used.size) if protocol == "sphere" else cols["wd"][used]
    if optimizer == "adamw":
        pressure = cols["pressure"][used]
    pot = []
    for t in tlist:
        r = potential_argmin(cols["energy"][used], cols["entropy"][used], cols["volume"][used],
                             cols["temperature"][used], pressure, cells, t,
                             fixed_volume=protocol == "sphere")
        k = used[r["argmin"]]
        pot.append({"target_run": cols["run"][used[t]], "argmin_run": cols["run"][k],
                    "target": _hyper(cols, protocol, used[t]),
                    "argmin": _hyper(cols, protocol, k),
                    "target_cell": r["target_cell"], "argmin_cell": r["argmin_cell"],
                    "distance_cells": r["distance"]})
    out["potential"] = {"name": "F = U - T* S (per radius)" if protocol == "sphere"
                        else "G = U - T* S + p* V", "targets": pot,
                        "max_distance_cells": max(p["distance_cells"] for p in pot)}
    return out


# --------------------------------------------------------------------------------------------
# everything


def acceptance_checks(result: dict) -> dict:
    """The reproduction's acceptance criteria against the analysis (``ACCEPTANCE``): Maxwell
    max relative error (elr <= 10%, lr <= 15%), discretization-corrected equation of state
    within 5% for >= 90% of stationary runs, potential argmin on or next to the target
    (<= 1 cell), and the sigma2 collapse ratio (reported, no threshold)."""
    checks = []
    for proto, r in result["protocols"].items():
        if "error" in r:
            checks.append({"protocol": proto, "check": "analysis", "value": None,
                           "threshold": None, "passed": False, "note": r["error"]})
            continue
        lim = ACCEPTANCE["maxwell_max_rel_error"].get(proto)
        if lim is not None:
            v = r["maxwell"]["max_rel_error"]
            c = {"protocol": proto, "check": "Maxwell max relative error", "value": v,
                 "threshold": f"<= {lim}", "passed": bool(v <= lim)}
            if r["entropy_fit"].get("warning"):  # an interpolating fit proves nothing
                c.update(passed=False, note=r["entropy_fit"]["warning"])
            checks.append(c)
        frac = r["equation_of_state"]["fraction_within_discrete"]
        lim = ACCEPTANCE["eos_fraction_within_5pct"]
        checks.append({"protocol": proto,
                       "check": f"{r['equation_of_state']['quantity']} within 5% of the "
                                f"discretization-corrected prediction (fraction of runs)",
                       "value": frac, "threshold": f">= {lim}",
                       "passed": bool(frac is not None and frac >= lim)})
        v = r["potential"]["max_distance_cells"]
        lim = ACCEPTANCE["potential_max_distance_cells"]
        checks.append({"protocol": proto, "check": "potential argmin distance to target (cells)",
                       "value": v, "threshold": f"<= {lim}", "passed": bool(v <= lim)})
        s = r["collapse"]["quantities"].get("sigma2", {})
        checks.append({"protocol": proto,
                       "check": f"sigma2 collapse ratio onto {r['collapse']['variable']}",
                       "value": s.get("ratio"), "threshold": None, "passed": None})
    return {"checks": checks,
            "all_passed": all(c["passed"] for c in checks if c["passed"] is not None)}


def analyze(table, *, strict: bool = True, targets: Mapping[str, Sequence[int]] | None = None,
            tolerance: float = EOS_TOLERANCE) -> dict:
    """Analyze every protocol of the table (`analyze_protocol`).

    ``strict=True`` raises the first ValueError (e.g. too few stationary runs for the fit);
    ``strict=False`` records it as {"error": message} for that protocol (with its excluded
    runs) and goes on. Rows trained with momentum or AdamW (``optimizer`` column) are left out
    of the paper's analysis and analyzed per optimizer in ``"optimizers"``
    (`analyze_optimizers`). Returns {"protocols": {protocol: ...}, "excluded": [...],
    "n_runs", "acceptance": `acceptance_checks`}.
    """
    cols = as_columns(table)
    n_runs = len(cols["protocol"])
    non_si = None
    variants = variant_column(cols)
    if (variants != "si").any():  # the paper's analysis below: the SI networks only
        non_si = analyze_non_si(cols, tolerance=tolerance)
        cols = _take(cols, np.flatnonzero(variants == "si"))
    si_cols, optim = cols, None
    opts = optimizer_column(cols)
    if (opts != "sgd").any():  # the paper's analysis below: plain SGD only
        optim = analyze_optimizers(cols, strict=strict, tolerance=tolerance)
        cols = _take(cols, np.flatnonzero(opts == "sgd"))
    present = [p for p in ("elr", "lr", "sphere") if (cols["protocol"] == p).any()]
    if not present and non_si is None and optim is None:
        raise ValueError("table has no runs (no rows with protocol lr, elr or sphere)")
    result: dict = {"n_runs": n_runs, "protocols": {}}
    for p in present:
        try:
            result["protocols"][p] = analyze_protocol(
                cols, p, targets=(targets or {}).get(p), tolerance=tolerance)
        except ValueError as e:
            if strict:
                raise
            try:
                excl = split_rows(cols, p)[1]
            except ValueError:
                excl = []
            result["protocols"][p] = {"protocol": p, "error": str(e), "excluded": excl,
                                      "runs": int((cols["protocol"] == p).sum())}
    result["excluded"] = [{"protocol": p, **e} for p, r in result["protocols"].items()
                          for e in r["excluded"]]
    for k in np.flatnonzero(cols["protocol"] == ""):  # e.g. a run that failed before starting
        result["excluded"].append({"protocol": None, "run": cols["run"][k], "row": int(k),
                                   "reasons": f"failed: {_text(cols, 'error', k)}"
                                   if _text(cols, "error", k) else "no protocol"})
    result["acceptance"] = acceptance_checks(result)
    gen = generalization_groups(si_cols)
    if gen:
        result["generalization"] = gen
    if optim is not None:
        result["optimizers"] = optim
    if non_si is not None:
        result["non_si"] = non_si
    return result


def generalization_groups(cols: dict, *, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """`thermosgd.generalization.relate` over the stationary runs (`split_rows`) of each
    protocol (and optimizer, when the table has that column) and, when several protocols are
    present, over all of them together ("all"), with the table ``rows`` of each group. Empty
    when the table has no evaluations."""
    from thermosgd.generalization import OUTCOMES, relate

    if not any(k in cols and np.isfinite(cols[k]).any() for k in OUTCOMES):
        return []
    groups: list[tuple[str, str | None, np.ndarray]] = []
    for p in ("elr", "lr", "sphere"):
        if not (cols["protocol"] == p).any():
            continue
        try:
            used = split_rows(cols, p)[0]
        except ValueError:
            continue
        if "optimizer" not in cols:
            groups.append((p, None, used))
            continue
        names = optimizer_column(cols)[used]
        for o in sorted(set(names)):
            groups.append((p, o, used[names == o]))
    if len(groups) > 1:
        groups.append(("all", None, np.concatenate([g[2] for g in groups])))
    out = []
    for p, o, rows in groups:
        rel = relate(cols, rows, n_boot=n_boot, seed=seed)
        if rel:
            out.append({"protocol": p, "optimizer": o, "runs": int(rows.size),
                        "rows": rows.tolist(), "correlations": rel})
    return out


# --------------------------------------------------------------------------------------------
# non-scale-invariant variants (issue 6)

#: a run's distance from scale invariance (stationary.json): relative radial component of the
#: mean probe gradient, its per-minibatch rms, and the loss change under scaling by 1/2 or 2
SI_DISTANCES = ("si_radial_gradient", "si_radial_gradient_rms", "si_loss_change")

#: the Maxwell coefficient whose deviation from its ideal value is the "slope deviation"
_SLOPE_COEF = {"elr": "a2", "lr": "a1-a2", "sphere": "a2"}


def variant_column(cols: dict) -> np.ndarray:
    """The model variant of every row ("si" where the table has no ``variant`` or it is
    empty: runs made before variants existed are the paper's SI networks)."""
    n = len(cols["protocol"])
    if "variant" not in cols:
        return np.full(n, "si", dtype=object)
    v = _parse_text(cols["variant"])
    return np.where(v == "", "si", v).astype(object)


def _take(cols: dict, rows: np.ndarray) -> dict:
    return {k: np.asarray(v)[rows] for k, v in cols.items()}


def _median(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


def analyze_non_si(table, *, tolerance: float = EOS_TOLERANCE,
                   distance: str = "si_radial_gradient", n_boot: int = 2000,
                   seed: int = 0) -> dict:
    """How the gas-law and Maxwell errors grow with the distance from scale invariance.

    For every (protocol, variant) of the table (``variant`` column; see
    `thermosgd.models.MLP_VARIANTS`), on its stationary runs (`split_rows`): the median of each
    SI distance (`SI_DISTANCES`), the equation-of-state errors (`equation_of_state`: median
    and worst |measured/predicted - 1|, discretization-corrected and SDE) and, where the runs
    span a 3x3 grid, the Maxwell check of the quadratic entropy fit (`maxwell_checks`:
    max/mean relative error of the fitted derivative; the slope ratio = its mean over the
    grid points / the theory's slope, ideal 1, and the slope deviation |ratio - 1|; the
    normalized coefficient a2 (elr, sphere) or a1 - a2 (lr), which is the slope at log wd = 0
    (wd = 1), far outside a typical grid, so only reported).

    Across the runs of each protocol (all variants pooled), Spearman's rank correlation
    (`thermosgd.generalization.bootstrap_rank_correlation`, percentile bootstrap interval) of
    ``distance`` with the per-run |EOS error| (discretized and SDE); across the variants, of
    their median ``distance`` with the Maxwell max relative error (>= 4 variants with a fit;
    with fewer the bootstrap interval degenerates).
    Returns {"distance", "variants": [...] (per protocol, by increasing median distance),
    "correlations": [...], "points": [...]} (points: one per stationary run, for the figure).
    """
    if distance not in SI_DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(SI_DISTANCES)}, got {distance!r}")
    cols = as_columns(table)
    if distance not in cols:
        raise ValueError(f"table has no {distance!r} column: train the runs with a thermosgd "
                         "that measures the distance from scale invariance, then collect again")
    variants = variant_column(cols)
    out: dict = {"distance": distance, "tolerance": tolerance, "variants": [],
                 "correlations": [], "points": []}
    for p in ("elr", "lr", "sphere"):
        if not (cols["protocol"] == p).any():
            continue
        rate, _ = AXES[p]
        mkey, skey, dkey = _EOS[p]
        entries, dist_all, err_d, err_s = [], [], [], []
        for v in dict.fromkeys(variants[cols["protocol"] == p]):
            rows = np.flatnonzero(variants == v)
            sub = _take(cols, rows)
            used, excluded = split_rows(sub, p)
            e: dict = {"protocol": p, "variant": v, "runs": int((sub["protocol"] == p).sum()),
                       "stationary_runs": int(used.size),
                       "dim": _f(np.nanmedian(sub["dim"][used])) if used.size else None,
                       "excluded": excluded}
            for dn in SI_DISTANCES:
                e[f"{dn}_median"] = _median(sub[dn][used]) if dn in sub else None
            if used.size:
                eos = equation_of_state(sub[mkey][used], sub[skey][used], sub[dkey][used],
                                        tolerance)
                for kind in ("discrete", "sde"):
                    e[f"eos_median_rel_error_{kind}"] = eos[f"median_rel_error_{kind}"]
                    e[f"eos_max_rel_error_{kind}"] = eos[f"max_rel_error_{kind}"]
                for i, k in enumerate(used):
                    d = float(sub[distance][k])
                    ed, es = eos["rel_error_discrete"][i], eos["rel_error_sde"][i]
                    out["points"].append({"protocol": p, "variant": v, "run": sub["run"][k],
                                          **_hyper(sub, p, k), "distance": _f(d),
                                          **{dn: _f(sub[dn][k]) for dn in SI_DISTANCES
                                             if dn in sub},
                                          "rel_error_discrete": _f(ed),
                                          "rel_error_sde": _f(es)})
                    if np.isfinite(d) and np.isfinite(ed) and np.isfinite(es):
                        dist_all.append(d)
                        err_d.append(abs(ed))
                        err_s.append(abs(es))
            try:
                x, y = np.log(sub[rate][used]), np.log(second_axis(sub, p)[used])
                fit = fit_quadratic(x, y, sub["entropy"][used], what=f"variant {v!r}",
                                    x_name=f"log {rate}", y_name="log second axis")
                dims = np.unique(sub["dim"][used])
                if dims.size != 1:
                    raise ValueError(f"variant {v!r}: runs of several dim {dims.tolist()}")
                m = maxwell_checks(fit, p, int(dims[0]), x, y)
            except ValueError as err:
                e["maxwell_error"] = str(err)
            else:
                key = _SLOPE_COEF[p]
                deriv = fit.dx(x, y) - fit.dy(x, y) if p == "lr" else fit.dy(x, y)
                ratio = float(np.mean(deriv) / m["theory"])
                e.update(maxwell_max_rel_error=m["max_rel_error"],
                         maxwell_mean_rel_error=m["mean_rel_error"],
                         maxwell_slope_ratio=ratio, maxwell_slope_deviation=abs(ratio - 1.0),
                         maxwell_coefficient=key, maxwell_coefficient_value=m["coefficients"][key],
                         maxwell_coefficient_stderr=m["coefficients_stderr"][key],
                         entropy_fit_r2=fit.r2, entropy_fit_warning=fit.to_dict().get("warning"))
            entries.append(e)
        # nearest to scale invariance first (variants without a distance last)
        entries.sort(key=lambda e: (e[f"{distance}_median"] is None,
                                    e[f"{distance}_median"] or 0.0))
        out["variants"] += entries
        for kind, errs in (("discrete", err_d), ("sde", err_s)):
            if len(dist_all) >= 4:
                out["correlations"].append({
                    "protocol": p, "over": "runs", "x": distance,
                    "y": f"EOS abs. rel. error ({kind})",
                    **_rank(dist_all, errs, n_boot, seed)})
        fitted = [e for e in entries if "maxwell_max_rel_error" in e
                  and e.get(f"{distance}_median") is not None]
        if len(fitted) >= 4:
            out["correlations"].append({
                "protocol": p, "over": "variants", "x": f"median {distance}",
                "y": "Maxwell max rel. error",
                **_rank([e[f"{distance}_median"] for e in fitted],
                        [e["maxwell_max_rel_error"] for e in fitted], n_boot, seed)})
    if not out["variants"]:
        raise ValueError("table has no runs (no rows with protocol lr, elr or sphere)")
    return out


def _rank(x, y, n_boot: int, seed: int) -> dict:
    from thermosgd.generalization import bootstrap_rank_correlation

    r = bootstrap_rank_correlation(np.asarray(x, float), np.asarray(y, float), n_boot=n_boot,
                                   seed=seed)
    return {k: (_f(v) if isinstance(v, float) else v) for k, v in r.items()}


# --------------------------------------------------------------------------------------------
# momentum and AdamW (issue 6)

#: thresholds reported per optimizer group: the paper's lr-protocol ones (``ACCEPTANCE``)
OPTIMIZER_CHECKS = {"maxwell_max_rel_error": ACCEPTANCE["maxwell_max_rel_error"]["lr"],
                    "eos_fraction_within_5pct": ACCEPTANCE["eos_fraction_within_5pct"]}


def optimizer_column(cols: dict) -> np.ndarray:
    """The optimizer of every row ("sgd" where the table has no ``optimizer`` or it is empty:
    runs made before optimizers existed are plain SGD)."""
    n = len(cols["protocol"])
    if "optimizer" not in cols:
        return np.full(n, "sgd", dtype=object)
    v = _parse_text(cols["optimizer"])
    return np.where(v == "", "sgd", v).astype(object)


def _group_label(o: str, b1: float, b2: float) -> str:
    if o == "sgd":
        return "sgd"
    if o == "momentum":
        return f"momentum {b1:g}"
    return f"adamw {b1:g}/{b2:g}"


def analyze_optimizers(table, *, strict: bool = True,
                       tolerance: float = EOS_TOLERANCE) -> list[dict]:
    """The fixed-LR analysis (`analyze_protocol` with protocol "lr") per optimizer group.

    Groups: (optimizer, momentum, beta2) over the rows of protocol "lr" (plain SGD included,
    for comparison), ordered sgd, momentum, adamw. Each entry is the `analyze_protocol` result
    (or {"error"} when it fails and ``strict`` is False) with ``optimizer``, ``momentum``,
    ``beta2``, ``label`` and ``checks``: the equation of state (radius within 5% of the
    optimizer's discrete prediction for >= 90% of the stationary runs) and the Maxwell max
    relative error (<= 15%), the paper's lr-protocol thresholds (``OPTIMIZER_CHECKS``).
    """
    cols = as_columns(table)
    rows = np.flatnonzero(cols["protocol"] == "lr")
    opts = optimizer_column(cols)
    nan = np.full(len(opts), np.nan)
    b1, b2 = cols.get("momentum", nan), cols.get("beta2", nan)
    keys: dict[tuple, list[int]] = {}
    for k in rows:
        o = str(opts[k])
        key = (o, float(b1[k]) if o != "sgd" else math.nan,
               float(b2[k]) if o == "adamw" else math.nan)
        keys.setdefault(key, []).append(int(k))
    if not keys:
        raise ValueError("table has no runs of protocol 'lr' (momentum and AdamW run it only)")
    order = {"sgd": 0, "momentum": 1, "adamw": 2}
    out = []
    for key in sorted(keys, key=lambda t: (order.get(t[0], 3), t[0], t[1], t[2])):
        o, m, b = key
        sub = _take(cols, np.asarray(keys[key]))
        head = {"optimizer": o, "momentum": _f(m), "beta2": _f(b),
                "label": _group_label(o, m, b)}
        try:
            if o not in order:
                raise ValueError(f"unknown optimizer {o!r}; expected sgd, momentum or adamw")
            if o != "sgd" and not math.isfinite(m):
                raise ValueError(f"optimizer {o!r}: the table has no momentum for its runs")
            r = {**head, **analyze_protocol(sub, "lr", tolerance=tolerance, optimizer=o)}
        except ValueError as e:
            if strict:
                raise
            try:
                excl = split_rows(sub, "lr")[1]
            except ValueError:
                excl = []
            r = {**head, "protocol": "lr", "error": str(e), "excluded": excl,
                 "runs": len(keys[key])}
        r["checks"] = _optimizer_checks(r)
        out.append(r)
    return out


def _optimizer_checks(r: dict) -> list[dict]:
    if "error" in r:
        return [{"check": "analysis", "value": None, "threshold": None, "passed": False,
                 "note": r["error"]}]
    lim = OPTIMIZER_CHECKS["maxwell_max_rel_error"]
    v = r["maxwell"]["max_rel_error"]
    c = {"check": f"Maxwell max relative error ({r['maxwell']['relation']})", "value": v,
         "threshold": f"<= {lim}", "passed": bool(v <= lim)}
    if r["entropy_fit"].get("warning"):
        c.update(passed=False, note=r["entropy_fit"]["warning"])
    frac = r["equation_of_state"]["fraction_within_discrete"]
    lim_e = OPTIMIZER_CHECKS["eos_fraction_within_5pct"]
    return [c, {"check": "radius within 5% of the discrete prediction (fraction of runs)",
                "value": frac, "threshold": f">= {lim_e}",
                "passed": bool(frac is not None and frac >= lim_e)}]


def write_analysis(result: dict, directory: str | os.PathLike) -> Path:
    """Atomically write ``result`` as ``<directory>/analysis.json``; returns the path."""
    from thermosgd.io import write_json

    path = Path(directory) / "analysis.json"
    write_json(path, result)
    return path


def run_analysis(directory: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                 figures: bool = True, strict: bool = True) -> dict:
    """Load ``<directory>/results.csv`` (or ``.parquet``), analyze it, write the figures and
    then ``analysis.json`` into ``out_dir`` (default: ``directory``). Nothing is written when
    the analysis fails (ValueError)."""
    cols = load_table(directory)
    result = analyze(cols, strict=strict)
    out = Path(out_dir) if out_dir is not None else Path(directory)
    if figures:
        from thermosgd.plots import nn_figures

        result["figures"] = [p.name for p in nn_figures(cols, result, out)]
    write_analysis(result, out)
    return result


def format_analysis(result: dict) -> str:
    """A few human-readable lines per protocol (for the command line)."""

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = []
    for p, r in result["protocols"].items():
        if "error" in r:
            lines.append(f"== {p}: not analyzed: {r['error']}")
            continue
        e = r["equation_of_state"]
        m = r["maxwell"]
        lines.append(f"== {p}: {r['stationary_runs']}/{r['runs']} stationary runs, d={r['dim']}")
        lines.append(f"   {e['quantity']}: worst rel. error {pct(e['max_rel_error_discrete'])} "
                     f"(discretization-corrected), {pct(e['max_rel_error_sde'])} (SDE); "
                     f"{pct(e['fraction_within_discrete'])} of runs within "
                     f"{100 * e['tolerance']:.0f}%")
        coef = ", ".join(f"{k} {v:+.3f}" for k, v in m["coefficients"].items())
        lines.append(f"   entropy fit R^2 {r['entropy_fit']['r2']:.4f}; {m['relation']}: "
                     f"max rel. error {pct(m['max_rel_error'])}; normalized {coef}")
        coll = ", ".join(f"{q} {v['ratio']:.3f}" for q, v in r["collapse"]["quantities"].items()
                         if v["ratio"] is not None)
        lines.append(f"   collapse onto {r['collapse']['variable']} (scatter/spread): {coll}")
        lines.append(f"   potential argmin: max distance to target "
                     f"{r['potential']['max_distance_cells']} cell(s)")
    for r in result.get("optimizers", []):
        if "error" in r:
            lines.append(f"== lr, {r['label']}: not analyzed: {r['error']}")
            continue
        e, m = r["equation_of_state"], r["maxwell"]
        lines.append(f"== lr, {r['label']}: {r['stationary_runs']}/{r['runs']} stationary runs; "
                     f"radius worst/median error {pct(e['max_rel_error_discrete'])}/"
                     f"{pct(e['median_rel_error_discrete'])} (discrete), "
                     f"{pct(e['max_rel_error_sde'])}/{pct(e['median_rel_error_sde'])} (SDE); "
                     f"{m['relation']}: max rel. error {pct(m['max_rel_error'])} "
                     f"(R^2 {r['entropy_fit']['r2']:.4f})")
    bad = [c for c in result["acceptance"]["checks"] if c["passed"] is False]
    lines.append("acceptance: " + ("all checks passed" if not bad else
                                   "FAILED " + "; ".join(f"{c['protocol']} {c['check']}"
                                                         for c in bad)))
    return "\n".join(lines)
