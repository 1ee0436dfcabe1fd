"""The predictions a training run writes beside its measurements: the temperature of a noise
probe (metrics.csv) and the discretization-corrected radius / pressure from the training
steps' own gradients (stationary.json).

Both evaluate closed forms of `thermosgd.theory` (SGD) and `thermosgd.optimizers` (momentum,
AdamW) at measured noise; they are the only place in `thermosgd.train` that asks which
optimizer a config runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from thermosgd import optimizers, theory
from thermosgd.train.config import TrainConfig

__all__ = ["probe_temperature", "steps_noise"]


def probe_temperature(c: TrainConfig, dim: int, sigma2: float) -> float:
    """The protocol's temperature at the probe's sigma2 (> 0): SGD lr: sqrt(lr wd sigma2 /
    (2 (d-1))), elr and sphere: elr sigma2 / 2; momentum / AdamW: their fixed-LR forms."""
    if c.optimizer != "sgd":
        return float(
            optimizers.lr_temperature(
                c.optimizer, lr=c.lr, wd=c.wd, sigma2=sigma2, dim=dim,
                momentum=c.optimizer_kwargs["momentum"],
            )
        )
    hyper = {"lr": c.lr, "wd": c.wd} if c.protocol == "lr" else {"elr": c.elr}
    return float(theory.temperature(c.protocol, sigma2=sigma2, dim=dim, **hyper))


def steps_noise(c: TrainConfig, dim: int, rows: Sequence[dict], window_start: int
                ) -> dict[str, float]:
    """Q from the training steps' own gradients over the window (block means of r^2 ||g_B||^2,
    standard error from 20 batch means) and the discretization-corrected predictions from it
    (grad_norm2 counted as noise: the noise bound): sphere pressure_discrete_steps, else
    radius_discrete_steps (SE: relative SE of Q / the radius' power of Q)."""
    nan = math.nan
    rows = [r for r in rows if r["step"] >= window_start]
    q = np.array([r.get("trace_total_steps", nan) for r in rows], dtype=np.float64)
    out = {"trace_total_steps": nan, "trace_total_steps_se": nan}
    if q.size and np.isfinite(q).all():
        out["trace_total_steps"] = float(q.mean())
        if q.size >= 8:
            b = np.array([part.mean() for part in np.array_split(q, min(20, q.size // 2))])
            out["trace_total_steps_se"] = float(b.std(ddof=1) / math.sqrt(b.size))
    Q, rel = out["trace_total_steps"], out["trace_total_steps_se"] / out["trace_total_steps"]
    if c.protocol == "sphere":
        p = float(theory.sphere_pressure_discrete(c.elr, c.radius, Q, 0.0)) if Q > 0 else nan
        out["pressure_discrete_steps"], out["pressure_discrete_steps_se"] = p, p * rel
    else:
        kw = c.optimizer_kwargs
        if kw["optimizer"] != "sgd":  # Q alone: the noise bound (grad_norm2 counted as noise)
            r = (
                float(
                    optimizers.lr_radius_discrete(
                        kw["optimizer"], lr=c.lr, wd=c.wd, dim=dim, trace_sigma=Q,
                        grad_norm2=0.0, momentum=kw["momentum"],
                    )
                )
                if Q > 0
                else nan
            )
        else:
            r = (
                float(
                    theory.radius_discrete(
                        c.protocol, trace_sigma=Q, grad_norm2=0.0, **c.hyperparameters
                    )
                )
                if Q > 0
                else nan
            )
        power = optimizers.lr_radius_power(kw["optimizer"]) if c.protocol == "lr" else 2
        out["radius_discrete_steps"], out["radius_discrete_steps_se"] = r, r * rel / power
    return out
