"""Results tables for the analysis: read them, normalize their columns, pick the usable rows.

A results table has one row per run: a mapping of equal-length columns, a pandas DataFrame
(pandas is never imported here), or a sequence of stationary records (mappings, turned into
columns by `thermosgd.records.stationary_table`). Its columns are those of ``stationary.json``
(`thermosgd.records.FIELDS`): protocol, lr, elr, wd, radius_set, dim, temperature, pressure,
volume, energy, entropy, sigma2, trace_sigma, grad_norm2, radius, radius_sde, radius_discrete,
pressure_sde, pressure_discrete, stationary, and optionally entropy_dir, reasons, diverged,
run, the whole-set evaluations and the distances from scale invariance.

Two older spellings are read too: a sweep's collected table, whose names may carry the prefix
of the document they were flattened from (``record.energy``, `thermosgd.records.flatten`), and
an isotropic study's ``results.csv``, whose ``*_theory`` columns stand for ``*_sde``.

`split_rows` says which rows of a protocol the analysis uses (stationary, not diverged, every
needed value finite and valid) and why the others are left out.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from thermosgd import records, spec
from thermosgd.io import read_csv

__all__ = [
    "EOS_COLUMNS",
    "NUMERIC_COLUMNS",
    "as_columns",
    "load_table",
    "second_axis",
    "split_rows",
]

#: columns read as float64 (empty cells and None -> NaN)
NUMERIC_COLUMNS = (
    "lr", "elr", "wd", "radius_set", "dim", "temperature", "pressure", "volume", "energy",
    "entropy", "entropy_dir", "sigma2", "trace_sigma", "grad_norm2", "radius", "radius_sde",
    "radius_discrete", "pressure_sde", "pressure_discrete", "eval_train_loss", "eval_train_acc",
    "eval_test_loss", "eval_test_acc", "gap_loss", "gap_acc", "si_radial_gradient",
    "si_radial_gradient_rms", "si_loss_change", "momentum", "beta2")

#: the equation-of-state columns of each protocol: (measured, SDE, discretization-corrected)
EOS_COLUMNS: dict[str, tuple[str, str, str]] = {
    "lr": ("radius", "radius_sde", "radius_discrete"),
    "elr": ("radius", "radius_sde", "radius_discrete"),
    "sphere": ("pressure", "pressure_sde", "pressure_discrete"),
}

# an isotropic study's names of the SDE predictions
_ALIASES = {"radius_sde": "radius_theory", "pressure_sde": "pressure_theory"}
# columns every analysed row needs (per protocol also its axes and equation-of-state columns)
_NEEDED = ("temperature", "energy", "entropy", "sigma2", "volume")
_TEXT = ("protocol", "reasons", "run", "variant", "optimizer")


# --------------------------------------------------------------------------------------------
# cell parsers


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


# --------------------------------------------------------------------------------------------
# tables


def _raw_columns(table) -> dict[str, np.ndarray]:
    """The table's columns as numpy arrays, whatever shape the table comes in."""
    if hasattr(table, "columns") and not isinstance(table, Mapping):
        try:
            return {str(c): np.asarray(table[c].to_numpy()) for c in table.columns}
        except (AttributeError, KeyError, TypeError) as e:
            raise ValueError(f"table: cannot read the columns of a {type(table).__name__}: {e}"
                             ) from None
    if (isinstance(table, Sequence) and not isinstance(table, str) and len(table) > 0
            and all(isinstance(r, Mapping) for r in table)):
        table = records.stationary_table(table)
    if not isinstance(table, Mapping):
        raise ValueError(f"table must be a dict of columns or a pandas DataFrame, got "
                         f"{type(table).__name__}")
    raw = {}
    for k, v in table.items():
        arr = np.asarray(v, dtype=object if isinstance(v, list | tuple) else None)
        raw[str(k)] = arr.reshape(-1) if arr.ndim == 0 else arr
    return raw


def as_columns(table) -> dict[str, np.ndarray]:
    """Normalize a tidy table to a dict of numpy columns.

    Accepts a mapping of equal-length sequences, a pandas DataFrame (anything with ``columns``
    and ``__getitem__`` returning a column with ``to_numpy``) or a sequence of stationary
    records. Numeric columns (`NUMERIC_COLUMNS`) become float64 (empty cells and None -> NaN);
    ``stationary`` and ``diverged`` become bool (``"true"``/``"false"`` strings as written by
    `thermosgd.io.write_csv` are read); ``protocol``, ``reasons``, ``run``, ``variant`` and
    ``optimizer`` become str (missing -> ""); a name missing from the table is taken from the
    one column ending in ``.<name>`` (flattened documents); isotropic-study
    ``radius_theory``/``pressure_theory`` fill absent ``radius_sde``/``pressure_sde``. Missing
    optional columns are added: ``reasons`` "", ``diverged`` False, ``run`` "row <i>".
    """
    raw = _raw_columns(table)
    lengths = {len(v) for v in raw.values()}
    if len(lengths) > 1:
        raise ValueError(f"table: columns have different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    # flattened documents may prefix the names ("stationary.energy"): use a unique match
    for name in (*NUMERIC_COLUMNS, "protocol", "stationary", "diverged", "reasons", "run"):
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
        if k in NUMERIC_COLUMNS:
            cols[k] = _parse_float(k, v)
        elif k in ("stationary", "diverged"):
            cols[k] = _parse_bool(k, v)
        elif k in _TEXT:
            cols[k] = _parse_text(v)
        else:
            cols[k] = v
    for new, old in _ALIASES.items():
        if new not in cols and old in raw:
            cols[new] = _parse_float(old, raw[old])
    cols.setdefault("reasons", np.full(n, "", dtype=object))
    cols.setdefault("diverged", np.zeros(n, dtype=bool))
    cols.setdefault("run", np.array([f"row {i}" for i in range(n)], dtype=object))
    bad = sorted({p for p in cols["protocol"] if p and p not in spec.PROTOCOLS})
    if bad:
        raise ValueError(f"table: unknown protocol(s) {bad}; expected lr, elr or sphere")
    return cols


def load_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a tidy table (`as_columns`): a ``.csv`` (`thermosgd.io.read_csv`) or ``.parquet``
    (pandas) file, or a directory holding ``results.csv`` or ``results.parquet``."""
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
    try:
        cols = read_csv(p)
    except ValueError as e:
        if p.name == "results.csv" and (p.parent / "runs").is_dir():  # a sweep's table
            raise ValueError(f"{e}; rebuild it with 'thermosgd collect {p.parent}'") from None
        raise
    return as_columns(cols)


# --------------------------------------------------------------------------------------------
# rows


def _rows(cols: dict, protocol: str) -> np.ndarray:
    return np.flatnonzero(cols["protocol"] == protocol)


def _take(cols: dict, rows: np.ndarray) -> dict:
    """The sub-table of ``rows``."""
    return {k: np.asarray(v)[rows] for k, v in cols.items()}


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
    return (*spec.axes(protocol), *_NEEDED, *EOS_COLUMNS[protocol])


def _exclusion_reasons(cols: dict, protocol: str, k: int, second: np.ndarray) -> list[str]:
    """Why row k cannot be used (empty: it can)."""
    rate = spec.rate_name(protocol)
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
    return why


def split_rows(cols: dict, protocol: str) -> tuple[np.ndarray, list[dict]]:
    """Rows of ``protocol`` used by the analysis, and the excluded ones with their reasons.

    A row is used when it is flagged stationary, not diverged, and has finite, valid values
    of every needed column (the grid axes > 0, T, U, S, sigma2, V and the equation-of-state
    columns). Excluded rows come back as {"run", "row", <axes>, "reasons"}.
    """
    rows = _rows(cols, protocol)
    second = second_axis(cols, protocol)
    missing_cols = [c for c in ("dim", "stationary", *_needed_columns(protocol))
                    if c not in cols and not (c == "radius_set" and "radius" in cols)]
    if missing_cols:
        raise ValueError(f"table: protocol {protocol!r} needs column(s) "
                         f"{', '.join(missing_cols)}; collect the runs' stationary.json again")
    used, excluded = [], []
    for k in rows:
        why = _exclusion_reasons(cols, protocol, k, second)
        if why:
            excluded.append({"run": cols["run"][k], "row": int(k), **_hyper(cols, protocol, k),
                             "reasons": "; ".join(why)})
        else:
            used.append(k)
    return np.asarray(used, dtype=int), excluded


# --------------------------------------------------------------------------------------------
# cells


def _text(cols: dict, name: str, k: int) -> str:
    """Cell k of an optional text column ('' when absent, None or NaN)."""
    if name not in cols:
        return ""
    v = cols[name][k]
    if v is None or (isinstance(v, float | np.floating) and math.isnan(v)):
        return ""
    return str(v).strip()


def _hyper(cols: dict, protocol: str, k: int) -> dict:
    """The two hyperparameters of row k: {rate: value, "wd" | "radius": value}."""
    rate, name = spec.hyperparameters(protocol)
    return {rate: _f(cols[rate][k]), name: _f(second_axis(cols, protocol)[k])}


def _f(x) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _median(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None
