"""Vectorized scalar root finding for the schedule solvers (pure numpy float64).

`smallest_root` brackets the first sign change of f - target on a grid and bisects it to
float precision, for many targets at once; `monotone_segment` finds the branch of a
non-monotone f that holds a given point.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BISECT_ITERS", "monotone_segment", "smallest_root"]

#: the most bisection steps `smallest_root` takes (it stops once the bracket is at round-off)
BISECT_ITERS = 200


def smallest_root(f, target, lo: float, hi: float, grid: int = 257,
                  chunk: int = 8192) -> np.ndarray:
    """The smallest x in [lo, hi] with f(x) = target, vectorized over target.

    f maps an array of x to an array of the same shape (it must not depend on which target
    is being solved). A scan of f on ``grid`` points brackets the first sign change of
    f - target, then bisection refines it to float precision; targets are processed in
    chunks (memory grid x chunk). NaN where f - target does not change sign on the grid
    (out of reach, or two roots closer than a grid step). Where f is not monotone this picks
    the lowest x (the lowest effective learning rate) that reaches the target.
    """
    target = np.asarray(target, dtype=np.float64)
    flat = target.reshape(-1)
    out = np.full(flat.shape, np.nan)
    xs = np.linspace(lo, hi, grid)
    step = (hi - lo) / (grid - 1)
    with np.errstate(invalid="ignore", over="ignore"):
        fx = f(xs)
        for start in range(0, flat.size, chunk):
            tg = flat[start:start + chunk]
            diff = fx[:, None] - tg[None, :]
            cross = (np.sign(diff[:-1]) * np.sign(diff[1:]) <= 0) & np.isfinite(diff[:-1]) \
                & np.isfinite(diff[1:])
            found = cross.any(axis=0)
            k = np.argmax(cross, axis=0)
            a, fa = xs[k], diff[k, np.arange(tg.size)]
            b = a + step
            for _ in range(BISECT_ITERS):
                m = 0.5 * (a + b)
                fm = f(m) - tg
                same = np.sign(fm) == np.sign(fa)
                a, fa, b = np.where(same, m, a), np.where(same, fm, fa), np.where(same, b, m)
                if np.all(b - a <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(a))):
                    break
            out[start:start + chunk] = np.where(found, 0.5 * (a + b), np.nan)
    return out.reshape(target.shape)


def monotone_segment(f, x0: float, lo: float, hi: float, grid: int = 1025
                     ) -> tuple[float, float]:
    """The sub-interval of [lo, hi] around x0 on which f (sampled on ``grid`` points) is
    monotone in the direction it has at x0."""
    xs = np.linspace(lo, hi, grid)
    with np.errstate(invalid="ignore"):
        sign = np.sign(np.diff(f(xs)))
    k = int(np.clip(np.searchsorted(xs, x0) - 1, 0, grid - 2))
    left = right = k
    while left > 0 and sign[left - 1] == sign[k]:
        left -= 1
    while right < grid - 2 and sign[right + 1] == sign[k]:
        right += 1
    return float(xs[left]), float(xs[right + 1])
