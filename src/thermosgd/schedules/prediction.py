"""Prediction from a noise curve: stationary states of (rate, wd), and (rate, wd) for a target.

`predict` gives the stationary state of given hyperparameters with standard errors from the
fit's covariances (delta method), `recommend` inverts it (hyperparameters reaching a target
temperature and/or radius), `temperature_range` says which temperatures a curve can reach,
`validate_predictions` compares predictions with measured rows of a table.
`prediction_columns` / `format_columns` turn a result into printable columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from thermosgd._validate import positive_array
from thermosgd.schedules.noise_curve import NoiseCurve, as_curve, noise_points
from thermosgd.schedules.paths import (
    Process,
    _phi,
    _psi,
    _solve_elr,
    equilibrium,
    relaxation_times,
    state_at,
)
from thermosgd.schedules.shapes import check_wd_protocol
from thermosgd.spec import rate_name

__all__ = ["format_columns", "predict", "prediction_columns", "recommend",
           "temperature_range", "validate_predictions"]


def _other_rate(protocol: str) -> str:
    """The rate hyperparameter the protocol does not take ("elr" for "lr", "lr" for "elr")."""
    return "elr" if rate_name(protocol) == "lr" else "lr"


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
    eta-tilde, solving elr^2 Q(elr) = eta lambda (2 - eta lambda) at fixed LR), radius,
    temperature T = elr sigma2(elr) / 2, volume, entropy, tau, with ``radius_se`` and
    ``temperature_se`` propagated from the fit's coefficient covariances, and
    ``extrapolated`` (True where the stationary eta-tilde lies outside the fitted range)."""
    check_wd_protocol(protocol)
    c = as_curve(noise, dim)
    name = rate_name(protocol)
    given = {"lr": lr, "elr": elr}
    rate, other = given[name], given[_other_rate(protocol)]
    if rate is None:
        raise ValueError(f"predict: protocol {protocol!r} needs {name}")
    if other is not None:
        raise ValueError(f"predict: protocol {protocol!r} takes {name}, not "
                         f"{_other_rate(protocol)}")
    rate, wd = np.broadcast_arrays(positive_array(name, rate), positive_array("wd", wd))

    def fn(curve):
        p = Process(protocol, rate.reshape(-1), wd.reshape(-1))
        st = equilibrium(p, curve, exact=exact)
        return {k: v.reshape(rate.shape) for k, v in st.items()}

    out = _with_se(fn, c, ("radius", "temperature"))
    elr_st = out["elr"]
    out["extrapolated"] = ~((elr_st >= c.u_min) & (elr_st <= c.u_max))
    return out


_TARGETS = ("temperature", "radius", "rate", "wd")


def _recommend_elr(c: NoiseCurve, protocol: str, vals: dict[str, np.ndarray],
                   exact: bool) -> np.ndarray:
    """The stationary elr fixed by the two given targets (see `recommend`)."""
    pair = set(vals)
    if "temperature" in pair:
        return _solve_elr(c, lambda e: np.log(e * c.sigma2(e) / 2.0),
                          np.log(vals["temperature"]))
    if pair == {"radius", "wd"}:
        r2lam = vals["radius"] ** 2 * vals["wd"]
        return _solve_elr(c, lambda e: np.log(_phi(_psi(c, e), exact) / e), np.log(r2lam))
    # radius + rate
    return vals["rate"] / vals["radius"] ** 2 if protocol == "lr" else vals["rate"]


def recommend(noise: NoiseCurve | float, protocol: str, *, target_temperature=None,
              target_radius=None, lr=None, elr=None, wd=None, dim: int | None = None,
              exact: bool = True) -> dict[str, np.ndarray]:
    """(eta or eta-tilde, lambda) reaching a target: give exactly two of target_temperature,
    target_radius, the rate (lr for "lr", elr for "elr") and wd (arrays broadcast).

    With elr_st the stationary effective LR, phi(elr_st) = eta lambda (see
    `thermosgd.schedules.paths`) and r^2 = phi(elr_st) / (elr_st lambda): a temperature fixes
    elr_st (T = elr_st sigma2(elr_st) / 2); a radius with wd solves phi(elr_st) / elr_st =
    lambda r^2; a radius with the rate: "lr" elr_st = eta / r^2, "elr" elr_st = eta-tilde.
    Then "lr": eta = phi(elr_st) / lambda or lambda = phi(elr_st) / eta; "elr":
    eta-tilde = elr_st, lambda = phi(elr_st) / (elr_st r^2). ("elr" + temperature + rate is
    refused: T depends on eta-tilde only.) Returns `state_at` of the solution (keys lr, elr,
    wd, radius, temperature, volume, entropy, pressure, tau, extrapolated); NaN where
    unreachable. Where the target is reached at several effective learning rates (T(elr)
    need not be monotone), the smallest one is returned.
    """
    check_wd_protocol(protocol)
    c = as_curve(noise, dim)
    name = rate_name(protocol)
    rate = {"lr": lr, "elr": elr}[name]
    if {"lr": lr, "elr": elr}[_other_rate(protocol)] is not None:
        raise ValueError(f"recommend: protocol {protocol!r} takes {name}, not "
                         f"{_other_rate(protocol)}")
    given = {"temperature": target_temperature, "radius": target_radius, "rate": rate, "wd": wd}
    names = [k for k in _TARGETS if given[k] is not None]
    if len(names) != 2:
        raise ValueError(f"recommend: give exactly two of target_temperature, target_radius, "
                         f"{name}, wd (got {', '.join(names) or 'none'})")
    if names == ["rate", "wd"]:
        raise ValueError("recommend: with the rate and wd both given, use predict")
    vals = dict(zip(names, np.broadcast_arrays(
        *(positive_array(f"target_{k}" if k in ("temperature", "radius") else
                         (name if k == "rate" else k), given[k]) for k in names)),
        strict=True))
    pair = set(names)
    if pair == {"temperature", "rate"} and protocol == "elr":
        raise ValueError("recommend: at fixed ELR the temperature depends on elr only; give "
                         "wd or target_radius with target_temperature")
    elr_st = _recommend_elr(c, protocol, vals, exact)
    eta_lam = _phi(_psi(c, elr_st), exact)
    if "wd" in pair:
        lam = vals["wd"]
    elif "radius" in pair:
        lam = eta_lam / (elr_st * vals["radius"] ** 2)
    else:  # temperature + rate ("lr")
        lam = eta_lam / vals["rate"]
    ok = np.isfinite(elr_st) & np.isfinite(lam) & (lam > 0)
    st = state_at(protocol, np.where(ok, elr_st, 1.0), np.where(ok, lam, 1.0), c, exact=exact)
    st = {k: np.where(ok, v, np.nan) for k, v in st.items()}
    st["tau"] = relaxation_times(protocol, st["elr"], st[name], st["wd"], c)
    st["extrapolated"] = ok & ~((st["elr"] >= c.u_min) & (st["elr"] <= c.u_max))
    return st


def temperature_range(noise: NoiseCurve | float, *, dim: int | None = None,
                      grid: int = 1025) -> dict[str, float]:
    """Range of the stationary temperature T(elr) = elr sigma2(elr) / 2 over the noise
    curve's domain (sampled on ``grid`` log-spaced points): t_min, t_max and the elr of t_max
    (T(elr) can peak inside the domain: targets above t_max are unreachable)."""
    c = as_curve(noise, dim)
    elr = np.geomspace(*c.domain, grid)
    t = elr * c.sigma2(elr) / 2.0
    k = int(np.argmax(t))
    return {"t_min": float(t.min()), "t_max": float(t[k]), "elr_at_t_max": float(elr[k])}


def validate_predictions(noise: NoiseCurve, table: dict, protocol: str, *,
                         exact: bool = True) -> dict[str, Any]:
    """Predict the stationary radius and temperature of every stationary ``protocol`` row of
    ``table`` from its (rate, wd) and compare with the measured values: per-row arrays
    (rate, wd, radius, radius_pred, radius_pred_se, radius_err, temperature, temperature_pred,
    temperature_err, elr_measured, elr_pred, extrapolated) and summaries (median / max
    |relative error|)."""
    pts = noise_points(table, (protocol,))
    if len(pts["elr_measured"]) == 0:
        raise ValueError(f"validate_predictions: no stationary {protocol!r} rows in the table")
    name = rate_name(protocol)
    rate = pts[name]
    pred = predict(noise, protocol, wd=pts["wd"], exact=exact, **{name: rate})
    t_meas = pts["temperature"]
    r_err = pred["radius"] / pts["radius"] - 1.0
    t_err = pred["temperature"] / t_meas - 1.0
    rows = {"rate": rate, "wd": pts["wd"], "radius": pts["radius"],
            "radius_pred": pred["radius"], "radius_pred_se": pred["radius_se"],
            "radius_err": r_err, "temperature": t_meas,
            "temperature_pred": pred["temperature"],
            "temperature_pred_se": pred["temperature_se"], "temperature_err": t_err,
            "elr_measured": pts["elr_measured"], "elr_pred": pred["elr"],
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


#: the printed / written (``schedule predict --out``) names of the stationary rate that a
#: protocol does not set: kept as they were (columns of a written file)
_PREDICTED_RATE_COLUMNS = {"elr": "elr_predicted", "lr": "lr_predicted"}


def prediction_columns(result: dict[str, np.ndarray], protocol: str) -> dict[str, np.ndarray]:
    """The columns of a `predict` or `recommend` result worth printing, flattened: the set
    rate and wd, the stationary other rate (``elr_predicted`` at fixed LR, ``lr_predicted``
    at fixed ELR), radius, temperature (with standard errors), tau, extrapolated."""
    name = rate_name(protocol)
    other = _other_rate(protocol)
    keys = [name, "wd", other, "radius", "radius_se", "temperature", "temperature_se", "tau",
            "extrapolated"]
    out = {}
    for k in keys:
        if k in result:
            out[_PREDICTED_RATE_COLUMNS[k] if k == other else k] = np.ravel(result[k])
    return out
