"""Brute-force reference of `thermosgd.estimators.noise.noise_from_gradients`.

Per-sample Python loops over pairs of gradients, written from the definitions rather than
from the estimator's centred closed forms:

* tr Sigma = r^2 sum_{i != j} ||g_i - g_j||^2 / (2 n (n-1)) (the U-statistic with kernel
  ||g_i - g_j||^2 / 2, unbiased for E||g - E g||^2);
* ||grad L||^2 = r^2 sum_{i != j} <g_i, g_j> / (n (n-1)) (kernel <g_i, g_j>, unbiased for
  ||E g||^2);
* Q = r^2 mean_i ||g_i||^2;
* jackknife SEs: each statistic recomputed on the n delete-one samples,
  SE^2 = (n-1)/n sum_i (theta_(-i) - mean theta_(-.))^2 (O(n^3 d));
* unbiased SEs: Hoeffding's Var(U) = (4 (n-2) (A3 - A4) + 2 (A2 - A4)) / (n (n-1)) with A2,
  A3, A4 averaged over explicit distinct pairs, triples and quadruples (O(n^4)); where it is
  <= 0, the jackknife (as the estimator documents). The SE of Q is the SD of r^2 ||g_i||^2 over
  sqrt(n) in both modes (the jackknife of a mean is exactly that).

Only for small n (the loops are O(n^4)).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = ["noise_reference"]

_NAMES = ("trace_sigma", "grad_norm2", "trace_total")


def _pair_kernels(g: np.ndarray):
    def half_sq_dist(i, j):
        diff = g[i] - g[j]
        return float(diff @ diff) / 2

    def inner(i, j):
        return float(g[i] @ g[j])

    return half_sq_dist, inner


def _statistics(g: np.ndarray) -> np.ndarray:
    """(tr Sigma, ||grad||^2, Q) of the rows of g (unit radius), by explicit pair sums."""
    n = g.shape[0]
    half_sq_dist, inner = _pair_kernels(g)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    ts = sum(half_sq_dist(i, j) for i, j in pairs) / (n * (n - 1))
    g2 = sum(inner(i, j) for i, j in pairs) / (n * (n - 1))
    tot = sum(float(gi @ gi) for gi in g) / n
    return np.array([ts, g2, tot])


def _hoeffding_var(kernel, n: int) -> float:
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    a2 = np.mean([kernel(i, j) ** 2 for i, j in pairs])
    a3 = np.mean([kernel(i, j) * kernel(i, k) for i, j in pairs for k in range(n)
                  if k not in (i, j)])
    a4 = np.mean([kernel(i, j) * kernel(k, m)
                  for i, j, k, m in itertools.permutations(range(n), 4)])
    return (4 * (n - 2) * (a3 - a4) + 2 * (a2 - a4)) / (n * (n - 1))


def _one_group(g: np.ndarray, r: float, se: str) -> dict[str, float]:
    n = g.shape[0]
    full = _statistics(g)
    loo = np.array([_statistics(np.delete(g, i, axis=0)) for i in range(n)])
    jack = np.sqrt((n - 1) / n * ((loo - loo.mean(axis=0)) ** 2).sum(axis=0))
    norms2 = np.array([float(gi @ gi) for gi in g])
    ses = [jack[0], jack[1], float(np.std(norms2, ddof=1)) / math.sqrt(n)]
    if se == "unbiased":
        for k, kernel in enumerate(_pair_kernels(g)):
            v = _hoeffding_var(kernel, n)
            if v > 0:
                ses[k] = math.sqrt(v)
    out = {name: r**2 * v for name, v in zip(_NAMES, full, strict=True)}
    out.update({name + "_se": r**2 * s for name, s in zip(_NAMES, ses, strict=True)})
    return out


def noise_reference(grads, radius, *, se: str = "jackknife") -> dict[str, np.ndarray]:
    """The six estimates (trace_sigma, grad_norm2, trace_total and their ``_se``) of
    gradients (..., n, d) at radii broadcastable to ``...``, each an array of the batch shape."""
    g = np.asarray(grads, dtype=np.float64)
    batch = g.shape[:-2]
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), batch)
    out = {k: np.empty(batch) for n in _NAMES for k in (n, n + "_se")}
    for idx in np.ndindex(*batch):
        for k, v in _one_group(g[idx], float(r[idx]), se).items():
            out[k][idx] = v
    return out
