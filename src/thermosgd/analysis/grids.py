"""The analysis of a whole results table: per protocol, per optimizer, per model variant.

`analyze` runs `thermosgd.analysis.thermo.analyze_protocol` on every protocol of the paper's
runs (scale-invariant networks trained with plain SGD), and adds

* ``"optimizers"`` (`analyze_optimizers`): the fixed-LR analysis per (optimizer, momentum,
  beta2) group when the table holds momentum or AdamW runs;
* ``"non_si"`` (`analyze_non_si`): how the gas-law and Maxwell errors grow with the distance
  from scale invariance when the table holds model variants that break it;
* ``"generalization"`` (`generalization_groups`): Spearman rank correlations of the stationary
  entropy and temperature with generalization (`thermosgd.estimators.generalization`);
* ``"acceptance"`` (`acceptance_checks`), when given thresholds: the reproduction's pass/fail
  criteria. The thresholds themselves are the workflow's (`thermosgd.workflows.analyze`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from thermosgd import spec
from thermosgd._validate import check_choice, check_int, check_number
from thermosgd.analysis.table import (
    EOS_COLUMNS,
    _f,
    _hyper,
    _median,
    _parse_text,
    _take,
    _text,
    as_columns,
    second_axis,
    split_rows,
)
from thermosgd.analysis.thermo import (
    EOS_TOLERANCE,
    MIN_FIT_RUNS,
    analyze_protocol,
    equation_of_state,
    fit_quadratic,
    maxwell_checks,
)
from thermosgd.estimators.generalization import OUTCOMES, bootstrap_rank_correlation, relate

__all__ = [
    "MIN_STATIONARY_FRACTION",
    "SI_DISTANCES",
    "acceptance_checks",
    "analyze",
    "analyze_non_si",
    "analyze_optimizers",
    "generalization_groups",
    "optimizer_checks",
    "optimizer_column",
    "optimizer_groups",
    "paper_rows",
    "potential_cells_needed",
    "variant_column",
]

#: a run's distance from scale invariance (stationary.json): relative radial component of the
#: mean probe gradient, its per-minibatch rms, and the loss change under scaling by 1/2 or 2
SI_DISTANCES = ("si_radial_gradient", "si_radial_gradient_rms", "si_loss_change")

#: the Maxwell coefficient whose deviation from its ideal value is the "slope deviation"
_SLOPE_COEF = {"elr": "a2", "lr": "a1-a2", "sphere": "a2"}

#: the order of the optimizer groups
_OPTIMIZER_ORDER = {name: i for i, name in enumerate(spec.OPTIMIZERS)}


# --------------------------------------------------------------------------------------------
# columns that say which group a row belongs to


def variant_column(cols: dict) -> np.ndarray:
    """The model variant of every row ("si" where the table has no ``variant`` or it is
    empty: runs made before variants existed are the paper's SI networks)."""
    n = len(cols["protocol"])
    if "variant" not in cols:
        return np.full(n, "si", dtype=object)
    v = _parse_text(cols["variant"])
    return np.where(v == "", "si", v).astype(object)


def optimizer_column(cols: dict) -> np.ndarray:
    """The optimizer of every row ("sgd" where the table has no ``optimizer`` or it is empty:
    runs made before optimizers existed are plain SGD)."""
    n = len(cols["protocol"])
    if "optimizer" not in cols:
        return np.full(n, "sgd", dtype=object)
    v = _parse_text(cols["optimizer"])
    return np.where(v == "", "sgd", v).astype(object)


def paper_rows(cols: dict) -> tuple[dict, dict]:
    """The scale-invariant rows (the paper's networks), and of those the plain-SGD ones:
    (si_cols, sgd_cols), the sub-tables the paper's analysis and figures use."""
    si = cols
    variants = variant_column(cols)
    if (variants != "si").any():
        si = _take(cols, np.flatnonzero(variants == "si"))
    sgd = si
    opts = optimizer_column(si)
    if (opts != "sgd").any():
        sgd = _take(si, np.flatnonzero(opts == "sgd"))
    return si, sgd


# --------------------------------------------------------------------------------------------
# momentum and AdamW (issue 6)


def _group_label(o: str, b1: float, b2: float) -> str:
    if o == "sgd":
        return "sgd"
    if o == "momentum":
        return f"momentum {b1:g}"
    return f"adamw {b1:g}/{b2:g}"


def optimizer_groups(cols: dict) -> list[dict]:
    """The fixed-LR rows of each (optimizer, momentum, beta2) group, ordered sgd, momentum,
    adamw: [{"optimizer", "momentum", "beta2", "label", "rows"}] (momentum NaN for SGD, beta2
    NaN except for AdamW; rows index ``cols``)."""
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
    order = sorted(keys, key=lambda t: (_OPTIMIZER_ORDER.get(t[0], 3), t[0], t[1], t[2]))
    return [{"optimizer": o, "momentum": m, "beta2": b, "label": _group_label(o, m, b),
             "rows": np.asarray(keys[(o, m, b)])} for o, m, b in order]


def analyze_optimizers(table, *, strict: bool = True, tolerance: float = EOS_TOLERANCE,
                       thresholds: Mapping | None = None) -> list[dict]:
    """The fixed-LR analysis (`analyze_protocol` with protocol "lr") per optimizer group.

    Groups: `optimizer_groups` (plain SGD included, for comparison). Each entry is the
    `analyze_protocol` result (or {"error"} when it fails and ``strict`` is False) with
    ``optimizer``, ``momentum``, ``beta2``, ``label`` and, with ``thresholds``, ``checks``
    (`optimizer_checks`).
    """
    cols = as_columns(table)
    groups = optimizer_groups(cols)
    if not groups:
        raise ValueError("table has no runs of protocol 'lr' (momentum and AdamW run it only)")
    out = []
    for g in groups:
        o, m, b = g["optimizer"], g["momentum"], g["beta2"]
        sub = _take(cols, g["rows"])
        head = {"optimizer": o, "momentum": _f(m), "beta2": _f(b), "label": g["label"]}
        try:
            spec.check_optimizer(o, "lr")
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
                 "runs": int(g["rows"].size)}
        if thresholds is not None:
            r["checks"] = optimizer_checks(r, thresholds)
        out.append(r)
    return out


def optimizer_checks(r: dict, thresholds: Mapping) -> list[dict]:
    """The checks of one optimizer group against the paper's lr-protocol thresholds
    (``thresholds["maxwell_max_rel_error"]["lr"]``, ``thresholds["eos_fraction_within_5pct"]``):
    the Maxwell max relative error, and the fraction of stationary runs whose radius is within
    5% of the optimizer's discrete prediction."""
    if "error" in r:
        return [{"check": "analysis", "value": None, "threshold": None, "passed": False,
                 "note": r["error"]}]
    lim = thresholds["maxwell_max_rel_error"]["lr"]
    if "maxwell" in r:
        v = r["maxwell"]["max_rel_error"]
        c = {"check": f"Maxwell max relative error ({r['maxwell']['relation']})", "value": v,
             "threshold": f"<= {lim}", "passed": bool(v <= lim)}
        if r["entropy_fit"].get("warning"):
            c = _not_assessed(c, f"{r['entropy_fit']['warning']} (needs >= {MIN_FIT_RUNS + 1} "
                                 f"stationary runs, have {r['entropy_fit']['n_points']})")
    else:
        c = _not_computed("Maxwell max relative error", f"<= {lim}", r)
    lim_e = thresholds["eos_fraction_within_5pct"]
    name = "radius within 5% of the discrete prediction (fraction of runs)"
    if "equation_of_state" not in r:
        return [c, _not_computed(name, f">= {lim_e}", r)]
    frac = r["equation_of_state"]["fraction_within_discrete"]
    return [c, {"check": name, "value": frac, "threshold": f">= {lim_e}",
                "passed": bool(frac is not None and frac >= lim_e)}]


#: the analysis part each acceptance check needs (`thermosgd.analysis.thermo.analyze_protocol`
#: lists the parts it could not compute under "unavailable")
_CHECK_PART = {"Maxwell": "Maxwell relation", "radius": "equation of state",
               "pressure": "equation of state", "potential": "potential minimization",
               "sigma2": "collapse"}


#: below this fraction of stationary runs a part that could not be computed is a failed
#: reproduction (the runs did not equilibrate), not a sweep too small to assess it
MIN_STATIONARY_FRACTION = 0.5


def _not_computed(check: str, threshold: str | None, r: dict) -> dict:
    """A check whose part of the analysis was not computed (too few stationary runs or grid
    values for it): not assessed at this size (``passed`` None, ``assessed`` False), the
    reason (what it needs, what the sweep has) as its note -- unless fewer than
    `MIN_STATIONARY_FRACTION` of the protocol's runs are stationary: then the runs, not the
    sweep's size, are the cause, and the check fails (``passed`` False) saying so."""
    part = _CHECK_PART[check.split(" ")[0]]
    why = next((u["reason"] for u in r.get("unavailable", [])
                if u["section"].startswith(part)), "not computed")
    runs, stationary = r.get("runs", 0), r.get("stationary_runs", 0)
    if threshold is not None and runs and stationary < MIN_STATIONARY_FRACTION * runs:
        return {"check": check, "value": None, "threshold": threshold, "passed": False,
                "assessed": True,
                "note": f"only {stationary} of {runs} runs stationary (train longer or check "
                        f"their reasons): {part} {why}"}
    return {"check": check, "value": None, "threshold": threshold, "passed": None,
            "assessed": False, "note": f"not assessed at this size: {part} {why}"}


def _not_assessed(c: dict, why: str) -> dict:
    """``c`` with its value kept but no verdict: not assessed at this size, because ``why``."""
    return {**c, "passed": None, "assessed": False, "note": f"not assessed at this size: {why}"}


def potential_cells_needed(max_distance: int) -> int:
    """Values per grid axis the potential check needs to say anything: 2 m + 3 for a
    tolerance of m cells (with fewer, the +-m window around a central target covers the
    whole axis, so any argmin passes)."""
    return 2 * int(max_distance) + 3


# --------------------------------------------------------------------------------------------
# everything


def acceptance_checks(result: dict, thresholds: Mapping) -> dict:
    """The reproduction's acceptance criteria against the analysis: Maxwell max relative error
    (``thresholds["maxwell_max_rel_error"][protocol]``), discretization-corrected equation of
    state within 5% for a fraction of the stationary runs (``"eos_fraction_within_5pct"``),
    potential argmin near the target (``"potential_max_distance_cells"``), and the sigma2
    collapse ratio (reported, no threshold).

    A check the sweep's size cannot resolve gets no verdict (``passed`` None, ``assessed``
    False, the note says what it needs): its part of the analysis was not computed (too few
    stationary runs or grid values), the entropy fit interpolates (6 runs, no error bars), or
    the potential grid has fewer than `potential_cells_needed` values per axis. Returns
    {"checks", "failed", "not_assessed" (the "protocol check" names), "all_passed" (nothing
    failed and everything assessed)}."""
    checks = []
    for proto, r in result["protocols"].items():
        if "error" in r:
            checks.append({"protocol": proto, "check": "analysis", "value": None,
                           "threshold": None, "passed": False, "note": r["error"]})
            continue
        checks += [{"protocol": proto, **c} for c in _protocol_checks(proto, r, thresholds)]
    for c in checks:
        c.setdefault("assessed", True)
    failed = [f"{c['protocol']} {c['check']}" for c in checks if c["passed"] is False]
    missing = [f"{c['protocol']} {c['check']}" for c in checks
               if not c["assessed"] and c["threshold"] is not None]
    return {"checks": checks, "failed": failed, "not_assessed": missing,
            "all_passed": not failed and not missing}


def _protocol_checks(proto: str, r: dict, thresholds: Mapping) -> list[dict]:
    """The acceptance checks of one analyzed protocol (`acceptance_checks`); a check whose
    part was not computed, or that the sweep's size cannot resolve, is not assessed
    (`_not_computed`, `_not_assessed`)."""
    checks = []
    lim = thresholds["maxwell_max_rel_error"].get(proto)
    if lim is not None and "maxwell" in r:
        v = r["maxwell"]["max_rel_error"]
        c = {"check": "Maxwell max relative error", "value": v, "threshold": f"<= {lim}",
             "passed": bool(v <= lim)}
        if r["entropy_fit"].get("warning"):  # an interpolating fit proves nothing
            c = _not_assessed(c, f"{r['entropy_fit']['warning']} (needs >= {MIN_FIT_RUNS + 1} "
                                 f"stationary runs, have {r['entropy_fit']['n_points']})")
        checks.append(c)
    elif lim is not None:
        checks.append(_not_computed("Maxwell max relative error", f"<= {lim}", r))
    lim = thresholds["eos_fraction_within_5pct"]
    quantity = EOS_COLUMNS[proto][0]
    name = (f"{quantity} within 5% of the discretization-corrected prediction (fraction of "
            f"runs)")
    if "equation_of_state" in r:
        frac = r["equation_of_state"]["fraction_within_discrete"]
        checks.append({"check": name, "value": frac, "threshold": f">= {lim}",
                       "passed": bool(frac is not None and frac >= lim)})
    else:
        checks.append(_not_computed(name, f">= {lim}", r))
    lim = thresholds["potential_max_distance_cells"]
    name = "potential argmin distance to target (cells)"
    if "potential" in r:
        v = r["potential"]["max_distance_cells"]
        c = {"check": name, "value": v, "threshold": f"<= {lim}", "passed": bool(v <= lim)}
        need, have = potential_cells_needed(lim), min(len(g) for g in r["grid"].values())
        if have < need:
            c = _not_assessed(c, f"on a {have}-value axis a {lim}-cell tolerance passes almost "
                                 f"any argmin (needs >= {need} values per axis of stationary "
                                 f"runs, have {have})")
        checks.append(c)
    else:
        checks.append(_not_computed(name, f"<= {lim}", r))
    if "collapse" in r:
        s = r["collapse"]["quantities"].get("sigma2", {})
        checks.append({"check": f"sigma2 collapse ratio onto {r['collapse']['variable']}",
                       "value": s.get("ratio"), "threshold": None, "passed": None})
    else:
        checks.append(_not_computed("sigma2 collapse ratio", None, r))
    return checks


def _protocol_entry(cols: dict, p: str, strict: bool, targets, tolerance: float) -> dict:
    """`analyze_protocol`, or (``strict`` False) the error with the excluded runs."""
    try:
        return analyze_protocol(cols, p, targets=targets, tolerance=tolerance)
    except ValueError as e:
        if strict:
            raise
        try:
            excl = split_rows(cols, p)[1]
        except ValueError:
            excl = []
        return {"protocol": p, "error": str(e), "excluded": excl,
                "runs": int((cols["protocol"] == p).sum())}


def analyze(table, *, strict: bool = True, targets: Mapping[str, Sequence[int]] | None = None,
            tolerance: float = EOS_TOLERANCE, thresholds: Mapping | None = None) -> dict:
    """Analyze every protocol of the table (`analyze_protocol`).

    A protocol with too few stationary runs for some parts gets the others and lists the
    missing ones with the reason (`analyze_protocol`: ``"unavailable"``); the acceptance
    checks of a missing part fail with that reason. ``strict=True`` raises the first
    ValueError of a protocol that cannot be analyzed at all (e.g. runs of several dim);
    ``strict=False`` records it as {"error": message} for that protocol (with its excluded
    runs) and goes on. Rows of model variants that break scale invariance are analyzed in
    ``"non_si"`` (`analyze_non_si`); rows trained with momentum or AdamW (``optimizer``
    column) per optimizer in ``"optimizers"`` (`analyze_optimizers`); both are left out of
    the paper's analysis (`paper_rows`). Returns {"n_runs", "protocols": {protocol: ...},
    "excluded": [...]} and, with ``thresholds`` (`thermosgd.workflows.analyze.ACCEPTANCE`),
    "acceptance" (`acceptance_checks`) and each optimizer group's "checks".
    """
    check_number("tolerance", tolerance, min_val=0.0)
    cols = as_columns(table)
    n_runs = len(cols["protocol"])
    non_si = optim = None
    if (variant_column(cols) != "si").any():
        non_si = analyze_non_si(cols, tolerance=tolerance)
    si_cols, cols = paper_rows(cols)
    if (optimizer_column(si_cols) != "sgd").any():
        optim = analyze_optimizers(si_cols, strict=strict, tolerance=tolerance,
                                   thresholds=thresholds)
    present = [p for p in ("elr", "lr", "sphere") if (cols["protocol"] == p).any()]
    if not present and non_si is None and optim is None:
        raise ValueError("table has no runs (no rows with protocol lr, elr or sphere)")
    result: dict = {"n_runs": n_runs, "protocols": {}}
    for p in present:
        result["protocols"][p] = _protocol_entry(cols, p, strict, (targets or {}).get(p),
                                                 tolerance)
    result["excluded"] = [{"protocol": p, **e} for p, r in result["protocols"].items()
                          for e in r["excluded"]]
    for k in np.flatnonzero(cols["protocol"] == ""):  # e.g. a run that failed before starting
        result["excluded"].append({"protocol": None, "run": cols["run"][k], "row": int(k),
                                   "reasons": f"failed: {_text(cols, 'error', k)}"
                                   if _text(cols, "error", k) else "no protocol"})
    if thresholds is not None:
        result["acceptance"] = acceptance_checks(result, thresholds)
    gen = generalization_groups(si_cols)
    if gen:
        result["generalization"] = gen
    if optim is not None:
        result["optimizers"] = optim
    if non_si is not None:
        result["non_si"] = non_si
    return result


def generalization_groups(cols: dict, *, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """`thermosgd.estimators.generalization.relate` over the stationary runs (`split_rows`) of
    each protocol (and optimizer, when the table has that column) and, when several protocols
    are present, over all of them together ("all"), with the table ``rows`` of each group.
    Empty when the table has no evaluations."""
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


def _variant_maxwell(sub: dict, p: str, v: str, used: np.ndarray) -> dict:
    """The Maxwell numbers of one variant's quadratic entropy fit (or its error)."""
    rate = spec.rate_name(p)
    try:
        x, y = np.log(sub[rate][used]), np.log(second_axis(sub, p)[used])
        fit = fit_quadratic(x, y, sub["entropy"][used], what=f"variant {v!r}",
                            x_name=f"log {rate}", y_name="log second axis")
        dims = np.unique(sub["dim"][used])
        if dims.size != 1:
            raise ValueError(f"variant {v!r}: runs of several dim {dims.tolist()}")
        m = maxwell_checks(fit, p, int(dims[0]), x, y)
    except ValueError as err:
        return {"maxwell_error": str(err)}
    key = _SLOPE_COEF[p]
    deriv = fit.dx(x, y) - fit.dy(x, y) if p == "lr" else fit.dy(x, y)
    ratio = float(np.mean(deriv) / m["theory"])
    return dict(maxwell_max_rel_error=m["max_rel_error"],
                maxwell_mean_rel_error=m["mean_rel_error"],
                maxwell_slope_ratio=ratio, maxwell_slope_deviation=abs(ratio - 1.0),
                maxwell_coefficient=key, maxwell_coefficient_value=m["coefficients"][key],
                maxwell_coefficient_stderr=m["coefficients_stderr"][key],
                entropy_fit_r2=fit.r2, entropy_fit_warning=fit.to_dict().get("warning"))


def _variant_entry(cols: dict, variants: np.ndarray, p: str, v: str, distance: str,
                   tolerance: float, points: list, pooled: list) -> dict:
    """One (protocol, variant) entry; appends its stationary runs to ``points`` and
    (distance, |EOS error| discrete, SDE) to ``pooled``."""
    mkey, skey, dkey = EOS_COLUMNS[p]
    sub = _take(cols, np.flatnonzero(variants == v))
    used, excluded = split_rows(sub, p)
    e: dict = {"protocol": p, "variant": v, "runs": int((sub["protocol"] == p).sum()),
               "stationary_runs": int(used.size),
               "dim": _f(np.nanmedian(sub["dim"][used])) if used.size else None,
               "excluded": excluded}
    for dn in SI_DISTANCES:
        e[f"{dn}_median"] = _median(sub[dn][used]) if dn in sub else None
    if used.size:
        eos = equation_of_state(sub[mkey][used], sub[skey][used], sub[dkey][used], tolerance)
        for kind in ("discrete", "sde"):
            e[f"eos_median_rel_error_{kind}"] = eos[f"median_rel_error_{kind}"]
            e[f"eos_max_rel_error_{kind}"] = eos[f"max_rel_error_{kind}"]
        for i, k in enumerate(used):
            d = float(sub[distance][k])
            ed, es = eos["rel_error_discrete"][i], eos["rel_error_sde"][i]
            points.append({"protocol": p, "variant": v, "run": sub["run"][k],
                           **_hyper(sub, p, k), "distance": _f(d),
                           **{dn: _f(sub[dn][k]) for dn in SI_DISTANCES if dn in sub},
                           "rel_error_discrete": _f(ed), "rel_error_sde": _f(es)})
            if np.isfinite(d) and np.isfinite(ed) and np.isfinite(es):
                pooled.append((d, abs(ed), abs(es)))
    e.update(_variant_maxwell(sub, p, v, used))
    return e


def analyze_non_si(table, *, tolerance: float = EOS_TOLERANCE,
                   distance: str = "si_radial_gradient", n_boot: int = 2000,
                   seed: int = 0) -> dict:
    """How the gas-law and Maxwell errors grow with the distance from scale invariance.

    For every (protocol, variant) of the table (``variant`` column; see
    `thermosgd.nn.models.MLP_VARIANTS`), on its stationary runs (`split_rows`): the median of
    each SI distance (`SI_DISTANCES`), the equation-of-state errors (`equation_of_state`:
    median and worst |measured/predicted - 1|, discretization-corrected and SDE) and, where
    the runs span a 3x3 grid, the Maxwell check of the quadratic entropy fit
    (`maxwell_checks`: max/mean relative error of the fitted derivative; the slope ratio = its
    mean over the grid points / the theory's slope, ideal 1, and the slope deviation
    |ratio - 1|; the normalized coefficient a2 (elr, sphere) or a1 - a2 (lr), which is the
    slope at log wd = 0 (wd = 1), far outside a typical grid, so only reported).

    Across the runs of each protocol (all variants pooled), Spearman's rank correlation
    (`thermosgd.estimators.generalization.bootstrap_rank_correlation`, percentile bootstrap
    interval) of ``distance`` with the per-run |EOS error| (discretized and SDE); across the
    variants, of their median ``distance`` with the Maxwell max relative error (>= 4 variants
    with a fit; with fewer the bootstrap interval degenerates).
    Returns {"distance", "variants": [...] (per protocol, by increasing median distance),
    "correlations": [...], "points": [...]} (points: one per stationary run, for the figure).
    """
    check_choice("distance", distance, SI_DISTANCES)
    check_int("n_boot", n_boot, min_val=1)
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
        pooled: list[tuple[float, float, float]] = []
        entries = [_variant_entry(cols, variants, p, v, distance, tolerance, out["points"],
                                  pooled)
                   for v in dict.fromkeys(variants[cols["protocol"] == p])]
        # nearest to scale invariance first (variants without a distance last)
        entries.sort(key=lambda e: (e[f"{distance}_median"] is None,
                                    e[f"{distance}_median"] or 0.0))
        out["variants"] += entries
        out["correlations"] += _non_si_correlations(p, distance, entries, pooled, n_boot, seed)
    if not out["variants"]:
        raise ValueError("table has no runs (no rows with protocol lr, elr or sphere)")
    return out


def _non_si_correlations(p: str, distance: str, entries: list[dict], pooled: list,
                         n_boot: int, seed: int) -> list[dict]:
    """Rank correlations of the distance with the per-run EOS errors and the per-variant
    Maxwell errors of protocol ``p``."""
    out = []
    dist_all = [t[0] for t in pooled]
    for kind, j in (("discrete", 1), ("sde", 2)):
        if len(dist_all) >= 4:
            out.append({"protocol": p, "over": "runs", "x": distance,
                        "y": f"EOS abs. rel. error ({kind})",
                        **_rank(dist_all, [t[j] for t in pooled], n_boot, seed)})
    fitted = [e for e in entries if "maxwell_max_rel_error" in e
              and e.get(f"{distance}_median") is not None]
    if len(fitted) >= 4:
        out.append({"protocol": p, "over": "variants", "x": f"median {distance}",
                    "y": "Maxwell max rel. error",
                    **_rank([e[f"{distance}_median"] for e in fitted],
                            [e["maxwell_max_rel_error"] for e in fitted], n_boot, seed)})
    return out


def _rank(x, y, n_boot: int, seed: int) -> dict:
    r = bootstrap_rank_correlation(np.asarray(x, float), np.asarray(y, float), n_boot=n_boot,
                                   seed=seed)
    return {k: (_f(v) if isinstance(v, float) else v) for k, v in r.items()}
