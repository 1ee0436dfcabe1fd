"""Shared fixtures of the schedules tests: a noise curve shaped like the cpu preset's BN-MLP
fit, and synthetic results tables whose rows sit exactly on a curve."""

from __future__ import annotations

import numpy as np

from thermosgd import schedules as S

__all__ = ["CURVE", "D", "curve_rows", "merge"]

D = 3072
# A curve shaped like the cpu preset's BN-MLP fit: log sigma2 and log q quadratic in log elr.
CURVE = S.NoiseCurve(dim=D, sigma2_coef=np.array([-3.84, -0.85, -0.16]),
                     total_coef=np.array([-3.58, -0.81, -0.14]), u_ref=0.0125,
                     u_min=0.004, u_max=0.04)


def curve_rows(curve: S.NoiseCurve, protocol: str, rate, wd, exact=True) -> dict:
    """A synthetic results table whose rows sit exactly on ``curve`` (the measured effective
    learning rate under its older column name ``elr_effective``)."""
    rate, wd = (np.asarray(a, float).ravel() for a in np.meshgrid(rate, wd))
    kw = {"lr": rate} if protocol == "lr" else {"elr": rate}
    st = S.predict(curve, protocol, wd=wd, exact=exact, **kw)
    elr = st["elr"]
    n = len(elr)
    nan = np.full(n, np.nan)
    return {"protocol": np.full(n, protocol), "lr": rate if protocol == "lr" else nan,
            "elr": rate if protocol == "elr" else nan, "wd": wd,
            "radius": st["radius"], "elr_effective": elr, "dim": np.full(n, float(curve.dim)),
            "trace_sigma": curve.sigma2(elr) * (curve.dim - 1),
            "trace_total": curve.trace_total(elr), "stationary": np.full(n, True)}


def merge(*tables):
    """The rows of several tables in one (missing columns: NaN)."""
    keys = set().union(*tables)
    n = [len(t["protocol"]) for t in tables]
    return {k: np.concatenate([t.get(k, np.full(m, np.nan))
                               for t, m in zip(tables, n, strict=True)]) for k in keys}
