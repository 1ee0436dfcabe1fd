"""The common schedule shapes: per-step values for t = 0 .. steps-1 (numpy float64).

`constant`, `step_decay` (torch's MultiStepLR), `cosine` (torch's CosineAnnealingLR) and a
`linear_warmup` composed into any of them; `make_schedule` picks one by name (`SCHEDULES`).
`check_wd_protocol`: the protocols such a schedule drives (rate and weight decay).
A pair of such arrays (rate_t, wd_t) is a `thermosgd.schedules.paths.Process`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from thermosgd._validate import (
    check_choice,
    check_fraction,
    check_int,
    check_number,
    finite_array,
    positive_array,
)
from thermosgd.spec import SCHEDULES, WD_PROTOCOLS

__all__ = ["SCHEDULES", "WD_PROTOCOLS", "check_wd_protocol", "constant", "cosine", "linear_warmup",
           "make_schedule", "step_decay"]

# SCHEDULES (the shapes `make_schedule` knows by name) and WD_PROTOCOLS (the protocols a
# schedule of (rate, wd) can drive): the registry's (`thermosgd.spec`)


def check_wd_protocol(protocol) -> str:
    """``protocol`` if it is one of `WD_PROTOCOLS` ("lr", "elr"), else ValueError."""
    if not isinstance(protocol, str) or protocol not in WD_PROTOCOLS:
        raise ValueError(f"protocol == {protocol!r}, must be one of {', '.join(WD_PROTOCOLS)}")
    return protocol


def constant(steps: int, value: float) -> np.ndarray:
    """value_t = value at every step."""
    n = check_int("steps", steps, min_val=1)
    return np.full(n, float(positive_array("value", value)))


def step_decay(steps: int, value: float, *, milestones: Sequence[int], gamma: float = 0.1
               ) -> np.ndarray:
    """value_t = value * gamma^k, k = number of milestones <= t (torch's MultiStepLR)."""
    n = check_int("steps", steps, min_val=1)
    v = float(positive_array("value", value))
    g = float(positive_array("gamma", gamma))
    m = np.asarray(sorted(int(s) for s in milestones), dtype=np.int64)
    if m.size and (m[0] < 1 or m[-1] >= n):
        raise ValueError(f"milestones == {m.tolist()}, must lie in [1, steps - 1] = "
                         f"[1, {n - 1}]")
    k = np.searchsorted(m, np.arange(n), side="right")
    return v * g ** k


def cosine(steps: int, value: float, *, final: float = 0.0) -> np.ndarray:
    """value_t = final + (value - final) (1 + cos(pi t / steps)) / 2 (torch's
    CosineAnnealingLR with T_max = steps; > final at every step t < steps)."""
    n = check_int("steps", steps, min_val=1)
    v = float(positive_array("value", value))
    f = check_number("final", float(finite_array("final", final)), min_val=0.0, max_val=v,
                     include_max=False)
    t = np.arange(n)
    return f + (v - f) * (1.0 + np.cos(np.pi * t / n)) / 2.0


def linear_warmup(values: Any, warmup: int, *, start: float = 0.0) -> np.ndarray:
    """A schedule with a linear warm-up composed in: values_t * (start + (1 - start)
    min(1, (t + 1) / warmup)) (last axis = steps; the first step is > 0 even for start = 0)."""
    v = positive_array("values", values)
    w = check_int("warmup", warmup, min_val=1)
    s = check_fraction("start", float(finite_array("start", start)), include_one=True)
    t = np.arange(v.shape[-1])
    return v * (s + (1.0 - s) * np.minimum(1.0, (t + 1.0) / w))


def make_schedule(kind: str, steps: int, value: float, *, milestones: Sequence[int] = (),
                  gamma: float = 0.1, final: float = 0.0, warmup: int = 0) -> np.ndarray:
    """One of `SCHEDULES` by name ("constant", "step", "cosine"), with an optional
    `linear_warmup` of ``warmup`` steps (0: none)."""
    check_choice("schedule", kind, SCHEDULES)
    if kind == "constant":
        v = constant(steps, value)
    elif kind == "step":
        if not milestones:
            raise ValueError("milestones == (), a step schedule needs at least one")
        v = step_decay(steps, value, milestones=milestones, gamma=gamma)
    else:
        v = cosine(steps, value, final=final)
    warmup = check_int("warmup", warmup, min_val=0)
    return linear_warmup(v, warmup) if warmup else v
