"""Stationary entropy / temperature against generalization, across the runs of a grid.

Each stationary run of a sweep records (``thermosgd.train``, ``test_evals``) its window
means of the whole-set train and test loss and accuracy, and the generalization gaps
gap_loss = test loss - train loss and gap_acc = train accuracy - test accuracy. Across the runs
of a grid, `relate` measures how monotonically each outcome follows the thermodynamic state
(entropy S, directional entropy S_dir, temperature T) with Spearman's rank correlation

    rho = Pearson(rank(x), rank(y))            (average ranks for ties)

and a percentile bootstrap interval over runs (resample the runs with replacement, recompute
rho; vectorized over the resamples). Ranks, not values: the relation need not be linear, and
one extreme run cannot make it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from thermosgd._validate import check_fraction, check_int

__all__ = [
    "OUTCOMES",
    "STATE_VARIABLES",
    "bootstrap_rank_correlation",
    "rank_correlation",
    "relate",
]

#: thermodynamic state variables (x) and generalization outcomes (y) that `relate` pairs
STATE_VARIABLES = ("entropy", "entropy_dir", "temperature")
OUTCOMES = ("gap_loss", "gap_acc", "eval_test_loss", "eval_test_acc")


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-d of equal length, got shapes {x.shape}, {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite (drop the runs without a value first)")
    if x.size < 3:
        raise ValueError(f"a rank correlation needs at least 3 runs, got {x.size}")
    return x, y


def _rho_rows(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of rank arrays (NaN where a row is constant)."""
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=-1) / den, np.nan)


def rank_correlation(x, y) -> float:
    """Spearman's rho = Pearson(rank x, rank y), average ranks for ties (NaN if x or y is
    constant)."""
    x, y = _pair(x, y)
    return float(_rho_rows(stats.rankdata(x), stats.rankdata(y)))


def bootstrap_rank_correlation(
    x, y, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, float | int]:
    """Spearman's rho with a percentile bootstrap interval over runs.

    Returns {"rho", "ci_low", "ci_high", "n", "p_value", "n_boot"}: ``p_value`` is the two-sided
    p-value of rho = 0 from the t approximation t = rho sqrt((n-2)/(1-rho^2)) (scipy's
    ``spearmanr``); resamples in which x or y is constant are dropped (their rho is undefined).
    """
    x, y = _pair(x, y)
    n_boot = check_int("n_boot", n_boot, min_val=100)
    level = check_fraction("level", level, include_zero=False)
    n = x.size
    rho = rank_correlation(x, y)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = _rho_rows(stats.rankdata(x[idx], axis=1), stats.rankdata(y[idx], axis=1))
    boot = boot[np.isfinite(boot)]
    a = (1.0 - level) / 2.0
    lo, hi = (np.quantile(boot, [a, 1.0 - a]) if boot.size else (math.nan, math.nan))
    p = float(stats.spearmanr(x, y).pvalue) if math.isfinite(rho) else math.nan
    return {"rho": rho, "ci_low": float(lo), "ci_high": float(hi), "n": int(n),
            "p_value": p, "n_boot": int(boot.size)}


def relate(cols: dict, rows: np.ndarray, *, state: Sequence[str] = STATE_VARIABLES,
           outcomes: Sequence[str] = OUTCOMES, n_boot: int = 2000, level: float = 0.95,
           seed: int = 0) -> list[dict]:
    """Rank correlation (with bootstrap interval) of every state variable with every outcome
    over the runs ``rows`` of the table ``cols`` (a dict of numpy columns). Pairs with fewer
    than 4 runs where both are finite, or a missing column, are skipped."""
    out = []
    for xn in state:
        for yn in outcomes:
            if xn not in cols or yn not in cols:
                continue
            x = np.asarray(cols[xn][rows], dtype=np.float64)
            y = np.asarray(cols[yn][rows], dtype=np.float64)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < 4:
                continue
            r = bootstrap_rank_correlation(x[ok], y[ok], n_boot=n_boot, level=level, seed=seed)
            out.append({"x": xn, "y": yn, **r})
    return out
