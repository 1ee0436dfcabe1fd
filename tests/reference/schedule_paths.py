"""Reference for `thermosgd.schedules.paths`: the radial map and the per-step exact SDE
solution of a scheduled run, written as plain Python loops over steps (one schedule at a
time, floats, no vectorization).

`lagged_path` iterates the same map vectorized over schedules (`radial_map`,
`radial_map_relaxing_noise`); `sde_path` solves the linear recurrences of the SDE without a
loop over steps (block-wise cumulative sums; `sde_lr`, `sde_elr`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["radial_map", "radial_map_relaxing_noise", "sde_elr", "sde_lr"]


def radial_map(protocol: str, rate: Sequence[float], wd: Sequence[float], r2_0: float,
               trace_total: Callable[[float], float]) -> np.ndarray:
    """r^2_{t+1} = (1 - eta_t lambda_t)^2 r^2_t + eta_t^2 Q(elr_t) / r^2_t with
    elr_t = eta_t / r^2_t ("lr") or eta_t = elr_t r^2_t ("elr"); returns r^2_t."""
    r2 = [float(r2_0)]
    for t in range(len(rate) - 1):
        x = r2[-1]
        if protocol == "lr":
            eta = float(rate[t])
            elr = eta / x
        else:
            elr = float(rate[t])
            eta = elr * x
        q = float(trace_total(elr))
        r2.append((1 - eta * float(wd[t])) ** 2 * x + eta**2 * q / x)
    return np.array(r2)


def radial_map_relaxing_noise(rate: Sequence[float], wd: float, r2_0: float, h: float,
                              trace_total: Callable[[float], float],
                              sigma2: Callable[[float], float]) -> dict[str, np.ndarray]:
    """The fixed-LR radial map with Q_t and sigma2_t relaxing towards Q(elr_t), sigma2(elr_t)
    at the rate min(1, h elr_t) per step (starting at their stationary values); returns
    r^2_t and the temperature elr_t sigma2_t / 2."""
    r2, q, s2 = float(r2_0), None, None
    out_r2, out_t = [], []
    for t in range(len(rate)):
        eta = float(rate[t])
        elr = eta / r2
        if q is None:
            q, s2 = float(trace_total(elr)), float(sigma2(elr))
        out_r2.append(r2)
        out_t.append(elr * s2 / 2)
        k = min(1.0, h * elr)
        r2, q, s2 = ((1 - eta * wd) ** 2 * r2 + eta**2 * q / r2,
                     q + k * (float(trace_total(elr)) - q),
                     s2 + k * (float(sigma2(elr)) - s2))
    return {"r2": np.array(out_r2), "temperature": np.array(out_t)}


def sde_lr(lr: Sequence[float], wd: float, q: float, x0: float) -> np.ndarray:
    """x = r^4 under dx/dt = -4 eta lambda x + 2 eta^2 Q, solved exactly over each step with
    eta held at eta_t: x_{t+1} = x* + (x_t - x*) exp(-4 eta_t lambda), x* = eta_t Q / (2
    lambda). Returns x_t."""
    x = [float(x0)]
    for t in range(len(lr) - 1):
        xs = float(lr[t]) * q / (2 * wd)
        x.append(xs + (x[-1] - xs) * math.exp(-4 * float(lr[t]) * wd))
    return np.array(x)


def sde_elr(elr: Sequence[float], wd: float, trace_total: Callable[[float], float],
            v0: float) -> np.ndarray:
    """v = 1 / r^2 under dv/dt = 2 elr lambda - elr^2 Q(elr) v, solved exactly over each step:
    v_{t+1} = v* + (v_t - v*) exp(-elr_t^2 Q), v* = 2 lambda / (elr_t Q). Returns v_t."""
    v = [float(v0)]
    for t in range(len(elr) - 1):
        q = float(trace_total(elr[t]))
        vs = 2 * wd / (elr[t] * q)
        v.append(vs + (v[-1] - vs) * math.exp(-elr[t] ** 2 * q))
    return np.array(v)
