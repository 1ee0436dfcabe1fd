"""The predictions a training run writes beside its measurements: the temperature of a noise
probe (metrics.csv) and the discretization-corrected radius / pressure from the training
steps' own gradients (stationary.json).

Both are `thermosgd.theory.predict` at the measured noise (the only optimizer branch of the
library); nothing here asks which optimizer a config runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from thermosgd.theory import Prediction, predict
from thermosgd.train.config import TrainConfig

__all__ = ["probe_temperature", "steps_noise"]


def _predict(c: TrainConfig, dim: int, **measured) -> Prediction:
    kw = c.optimizer_kwargs
    return predict(c.protocol, c.optimizer, dim=dim, **c.hyperparameters,
                   momentum=kw["momentum"], beta2=kw["beta2"], **measured)


def probe_temperature(c: TrainConfig, dim: int, trace_sigma: float) -> float:
    """The protocol's temperature at a probe's tr Sigma (sigma2 = tr Sigma / (d-1) > 0): SGD lr
    sqrt(lr wd sigma2 / (2 (d-1))), elr and sphere elr sigma2 / 2; momentum / AdamW their
    fixed-LR forms (`thermosgd.theory.predict`)."""
    return _predict(c, dim, trace_sigma=trace_sigma).temperature


def steps_noise(c: TrainConfig, dim: int, rows: Sequence[dict], window_start: int
                ) -> dict[str, float]:
    """Q from the training steps' own gradients over the window (block means of r^2 ||g_B||^2,
    standard error from 20 batch means) and the discretization-corrected predictions from it,
    Q counted as noise (grad_norm2 = 0: the noise bound): the sphere's pressure_discrete_steps
    = elr Q / (2 r^2) at its set radius, else radius_discrete_steps (SE: the relative SE of Q
    over the power k of r*^k linear in Q)."""
    nan = math.nan
    rows = [r for r in rows if r["step"] >= window_start]
    q = np.array([r.get("trace_total_steps", nan) for r in rows], dtype=np.float64)
    out = {"trace_total_steps": nan, "trace_total_steps_se": nan}
    if q.size and np.isfinite(q).all():
        out["trace_total_steps"] = float(q.mean())
        if q.size >= 8:
            b = np.array([part.mean() for part in np.array_split(q, min(20, q.size // 2))])
            out["trace_total_steps_se"] = float(b.std(ddof=1) / math.sqrt(b.size))
    Q, Q_se = out["trace_total_steps"], out["trace_total_steps_se"]
    noise = {"trace_sigma": Q, "grad_norm2": 0.0, "trace_total": Q, "trace_total_se": Q_se}
    if c.protocol == "sphere":  # the radius is the set one
        p = _predict(c, dim, radius_measured=c.radius, **noise)
        out["pressure_discrete_steps"] = p.pressure_discrete
        out["pressure_discrete_steps_se"] = p.pressure_discrete_se
    else:
        p = _predict(c, dim, **noise)
        out["radius_discrete_steps"] = p.radius_discrete
        out["radius_discrete_steps_se"] = p.radius_discrete_se
    return out
