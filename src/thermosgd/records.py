"""The schema of a stationary record and the one rows <-> columns table builder.

A *stationary record* is what a training run writes to ``stationary.json`` (and what a sweep
stores as ``record.json``): one flat mapping per run. `FIELDS` lists its keys, each with the
group it belongs to and a one-line meaning:

* ``run``: which run it is and how far it got (status, name, protocol, optimizer, window);
* ``hyperparameters``: the values as set (``lr``, ``elr``, ``wd``, the sphere's ``radius_set``);
* ``measured``: window means of what the run observed (radius, energy, noise, entropy, ...);
* ``predictions``: closed forms of `thermosgd.theory` evaluated at the measured noise;
* ``diagnostics``: the stationarity verdict, its tests and the distance from scale invariance.

A field marked ``se`` also has a standard error under ``<name>_se``. Set and measured values
follow the naming convention of `thermosgd.spec` (``_set`` / ``_measured`` suffixes; predictions
``_sde`` / ``_discrete`` / ``_predicted``).

Tables: a list of rows (mappings) and a mapping of equal-length columns are the two shapes of
a table; `rows_to_columns` and `columns_to_rows` convert between them. `flatten` turns a nested
document (a sweep's spec + record) into one row (``a.b`` keys, lists as JSON text), and
`stationary_table` turns stationary documents into the results table of a training grid.
Every results table of the package (``results.csv``, ``results.parquet``) is built here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "FIELDS",
    "GROUPS",
    "TABLE_SKIP",
    "Field",
    "columns_to_rows",
    "describe",
    "field_names",
    "flatten",
    "rows_to_columns",
    "stationary_row",
    "stationary_table",
]


class Field(NamedTuple):
    """One key of a stationary record: its name, group, meaning and whether ``<name>_se``
    (its standard error) is written beside it."""

    name: str
    group: str
    description: str
    se: bool = False


#: the groups of `FIELDS`, in order
GROUPS: tuple[str, ...] = ("run", "hyperparameters", "measured", "predictions", "diagnostics")

_RUN = (
    ("status", "'complete', 'diverged' or (returned, not written) 'interrupted'"),
    ("name", "the run's directory name (`thermosgd.train.run_name`)"),
    ("protocol", "lr, elr or sphere (`thermosgd.spec.PROTOCOLS`)"),
    ("optimizer", "sgd, momentum or adamw (`thermosgd.spec.OPTIMIZERS`)"),
    ("variant", "the model variant: si (scale-invariant) or one that breaks SI"),
    ("dim", "d: number of parameters of the trained (scale-invariant) group"),
    ("steps", "steps of the configured run"),
    ("steps_done", "steps taken when the record was written"),
    ("diverged_at", "step by which the loss or radius became non-finite (None: never)"),
    ("window_start", "first step of the stationary window"),
    ("window_end", "last recorded step of the window"),
    ("schedule", "the resolved measurement schedule (a mapping; not a table column)"),
    ("noise_fraction", "extra gradient evaluations per step spent on noise probes"),
    ("device", "torch device the run trained on"),
    ("seconds", "wall time spent training (shared equally within a batched group)"),
    ("n_records", "step records (log blocks) in the window"),
    ("n_noise", "noise probes in the window"),
    ("n_snapshots", "weight snapshots in the entropy queue"),
    ("n_evals", "whole-set evaluations in the window"),
)
_HYPER = (
    ("lr", "eta as set (protocol lr)"),
    ("elr", "eta-tilde = eta / r^2 as set (protocols elr, sphere)"),
    ("wd", "lambda as set (protocols lr, elr)"),
    ("radius_set", "the sphere's radius r as set (protocol sphere)"),
    ("momentum", "heavy-ball beta / AdamW beta1 (None for SGD)"),
    ("beta2", "AdamW beta2 (None otherwise)"),
)
_MEASURED = (
    ("radius", "mean |w| of the trained group over the window", True),
    ("volume", "V = r^2 / 2 of the window mean radius", True),
    ("energy", "U = mean minibatch training loss over the window", True),
    ("trace_sigma", "tr Sigma: gradient-noise trace on the unit sphere (probe mean)", True),
    ("grad_norm2", "||grad L||^2 on the unit sphere (probe mean)", True),
    ("trace_total", "Q = tr Sigma + ||grad L||^2 (probe mean)", True),
    ("sigma2", "per-direction noise variance tr Sigma / (d - 1)", True),
    ("elr_measured", "measured effective learning rate eta / r^2 (the sphere: elr)"),
    ("temperature_measured", "elr_measured sigma2 / 2", True),
    ("pressure", "lr, elr: wd; sphere: (mean r' - r) / (elr r^3), measured", True),
    ("entropy_dir", "directional entropy of the snapshots (chord k-NN, nats)", True),
    ("entropy", "entropy_dir + (d - 1) mean log r of the snapshots (nats)", True),
    ("trace_total_steps", "Q from every training step's own minibatch gradient", True),
    ("eval_train_loss", "whole training set loss (eval-mode BN), window mean", True),
    ("eval_train_acc", "whole training set accuracy, window mean", True),
    ("eval_test_loss", "test set loss, window mean (None without a test set)", True),
    ("eval_test_acc", "test set accuracy, window mean", True),
    ("gap_loss", "generalization gap test - train loss", True),
    ("gap_acc", "generalization gap train - test accuracy", True),
)
_PREDICTIONS = (
    ("temperature", "the protocol's T from the measured sigma2 (theory)", True),
    ("pressure_sde", "ideal-gas pressure elr_measured tr Sigma / (2 r^2)", True),
    ("pressure_discrete", "discretization-corrected pressure from Q", True),
    ("radius_sde", "SDE stationary radius from the measured tr Sigma (NaN on the sphere)", True),
    ("radius_discrete", "discretization-corrected radius from Q (NaN on the sphere)", True),
    ("relaxation_time", "linearized relaxation time of the radius, in steps"),
    ("radius_discrete_steps", "radius_discrete from trace_total_steps (lr, elr)", True),
    ("pressure_discrete_steps", "pressure_discrete from trace_total_steps (sphere)", True),
)
_DIAGNOSTICS = (
    ("diverged", "a non-finite loss, radius or noise record"),
    ("stationary", "the stationarity verdict over the window"),
    ("reasons", "why the window is not stationary (a list; '; '-joined in tables)"),
    ("warnings", "stationarity tests that could not be run (a list; not a table column)"),
    ("window_tau", "window length in relaxation times"),
    ("burn_in_tau", "steps before the window in relaxation times"),
    ("radius_drift", "relative drift of the radius over the window (lr, elr)"),
    ("pressure_drift", "relative drift of the pressure over the window (sphere)"),
    ("loss_change", "relative change of the loss between the window's halves"),
    ("noise_change", "relative change of the noise between the window's halves"),
    ("si_radial_gradient", "window mean relative radial gradient (distance from SI)"),
    ("si_radial_gradient_rms", "window RMS of the relative radial gradient"),
    ("si_loss_change", "max relative loss change under scaling the group by 1/2 or 2"),
    ("si_loss_change_half", "relative loss change under scaling by 1/2, at the end"),
    ("si_loss_change_double", "relative loss change under scaling by 2, at the end"),
    ("si_radial_gradient_end", "relative radial gradient at the end (one batch)"),
    ("summary", "the monitor's text summary (not a table column)"),
)

#: every key of a stationary record (standard errors implied by ``se``), grouped
FIELDS: tuple[Field, ...] = tuple(
    Field(f[0], group, f[1], len(f) > 2 and f[2])
    for group, fields in zip(GROUPS, (_RUN, _HYPER, _MEASURED, _PREDICTIONS, _DIAGNOSTICS),
                             strict=True)
    for f in fields
)
_BY_NAME = {f.name: f for f in FIELDS}

#: keys of a stationary document that are not columns of its table (mappings, lists, text)
TABLE_SKIP: frozenset[str] = frozenset({"summary", "schedule", "reasons"})


def field_names(group: str | None = None, *, with_se: bool = False) -> tuple[str, ...]:
    """The record's keys (of one group of `GROUPS`, or all), with their ``_se`` partners."""
    if group is not None and group not in GROUPS:
        raise ValueError(f"group == {group!r}, must be one of {', '.join(GROUPS)}")
    out: list[str] = []
    for f in FIELDS:
        if group is None or f.group == group:
            out.append(f.name)
            if with_se and f.se:
                out.append(f"{f.name}_se")
    return tuple(out)


def describe(name: str) -> str:
    """The one-line meaning of a record key (``<name>_se``: its standard error)."""
    if name in _BY_NAME:
        return _BY_NAME[name].description
    if name.endswith("_se") and _BY_NAME.get(name[:-3], Field("", "", "")).se:
        return f"standard error of {name[:-3]}"
    raise KeyError(f"{name!r} is not a key of a stationary record")


# --------------------------------------------------------------------------------------------
# tables


def _object_column(values: Sequence[Any]) -> np.ndarray:
    """A 1-d object array holding exactly ``values`` (never broadcast into more dimensions)."""
    col = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        col[i] = v
    return col


def rows_to_columns(rows: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Rows (mappings) -> equal-length object columns: the union of the rows' keys in order of
    first appearance, None where a row lacks a key (`thermosgd.io.write_csv` writes None and
    NaN as empty cells)."""
    rows = list(rows)
    names: dict[str, None] = {}
    for r in rows:
        for k in r:
            names.setdefault(k, None)
    return {k: _object_column([r.get(k) for r in rows]) for k in names}


def columns_to_rows(columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Equal-length columns -> one dict per row (the inverse of `rows_to_columns`; numpy
    scalars become Python scalars)."""
    cols = {k: np.asarray(v, dtype=object) if isinstance(v, list | tuple) else np.asarray(v)
            for k, v in columns.items()}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns == {sorted(lengths)} (lengths), must be equal")
    n = lengths.pop() if lengths else 0
    return [{k: (v[i].item() if isinstance(v[i], np.generic) else v[i])
             for k, v in cols.items()} for i in range(n)]


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """One flat row of a nested document: a nested mapping's keys joined by '.', lists and
    tuples as JSON text, everything else as it is."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        elif isinstance(v, list | tuple):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str, np.generic))


def stationary_row(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The table row of one stationary document: its scalar keys (not `TABLE_SKIP`) and the
    reasons joined by '; '."""
    row = {k: v for k, v in doc.items() if k not in TABLE_SKIP and _is_scalar(v)}
    row["reasons"] = "; ".join(doc.get("reasons") or [])
    return row


def stationary_table(docs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """One row per run: name, status, hyperparameters and every scalar of the stationary
    documents, then ``reasons`` ('; '-joined), ready for `thermosgd.io.write_csv`."""
    rows = [stationary_row(d) for d in docs]
    reasons = [r.pop("reasons") for r in rows]
    cols = rows_to_columns(rows)
    cols["reasons"] = _object_column(reasons)
    return cols
