"""Block statistics of the simulators: window means and their error bars from block sums.

The kernels (`thermosgd.sim._kernels`) sum each quantity per chain over n_b equal blocks of the
stationary window of W steps (``block_sum[chain, block, column]``, the column layout defined
there, ``COL_COUNT`` counting the steps). Error bars are batch means, optionally corrected for
an exp(-|t|/tau) autocorrelation when the relaxation time tau exceeds the block length
(Ornstein-Uhlenbeck variance of a window mean, `ou_mean_variance`).
"""

from __future__ import annotations

import numpy as np

from thermosgd.sim._kernels import COL_COUNT

__all__ = [
    "block_process_variance",
    "ou_adjacent_covariance",
    "ou_mean_variance",
    "pooled_mean_and_stderr",
]


def ou_mean_variance(length, tau) -> np.ndarray:
    """Variance of the mean over ``length`` steps of a stationary process with autocorrelation
    exp(-|t|/tau), in units of the process variance: v = 2 (y - 1 + e^{-y}) / y^2, y = L/tau
    (-> 2 tau/L for L >> tau, -> 1 - y/3 for L << tau; Taylor form below y = 1e-3)."""
    y = np.asarray(length, dtype=float) / np.asarray(tau, dtype=float)
    small = y < 1e-3
    ys = np.where(small, 1.0, y)
    with np.errstate(over="ignore", invalid="ignore"):
        big = 2.0 * (ys + np.expm1(-ys)) / ys**2
    return np.where(small, 1.0 - y / 3.0 + y * y / 12.0, big)


def ou_adjacent_covariance(length, tau) -> np.ndarray:
    """Covariance of the means over two adjacent windows of ``length`` steps of the same process,
    in units of its variance: (tau/L)^2 (1 - e^{-L/tau})^2."""
    y = np.asarray(length, dtype=float) / np.asarray(tau, dtype=float)
    return (np.expm1(-y) / y) ** 2


def block_process_variance(means: np.ndarray, window: int, tau) -> np.ndarray:
    """Process variance sigma^2 per chain implied by its n_b block means over ``window`` steps
    when the autocorrelation is exp(-|t|/tau): E[s^2] = n_b/(n_b - 1) sigma^2 (v(B) - v(W)),
    B = W/n_b, exact for a stationary process (the blocks' mutual correlation included)."""
    n_b = means.shape[1]
    tau = np.maximum(np.asarray(tau, dtype=float), 1e-12)
    gap = ou_mean_variance(window / n_b, tau) - ou_mean_variance(window, tau)
    return means.var(axis=1, ddof=1) * (n_b - 1) / (n_b * gap)


def pooled_mean_and_stderr(block_sum: np.ndarray, j: int, R: int, tau=None,
                           window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Window mean of column j per point (pooled over R consecutive replica chains) and its
    standard error.

    Without ``tau``: batch means, std over the n_blocks block means / sqrt(n_blocks) (right when
    the blocks are much longer than the autocorrelation time). With ``tau`` (per chain, steps;
    the radius relaxation time) the blocks' correlation is modelled as exp(-|t|/tau): the
    process variance from `block_process_variance` times v(W) (`ou_mean_variance`), which
    equals batch means when tau << W/n_blocks and is larger (5x at W = 2 tau, 20 blocks) when
    the relaxation time exceeds the block length. Replicas are independent: se^2 adds."""
    counts = block_sum[..., COL_COUNT]
    means = block_sum[..., j] / np.maximum(counts, 1)  # (chains, blocks)
    chain_mean = block_sum[..., j].sum(1) / np.maximum(counts.sum(1), 1)
    n_blocks = block_sum.shape[1]
    if tau is None:
        chain_se2 = means.var(axis=1, ddof=1) / n_blocks
    else:
        chain_se2 = block_process_variance(means, window, tau) * ou_mean_variance(window, tau)
    mean = chain_mean.reshape(-1, R).mean(1)
    se = np.sqrt(chain_se2.reshape(-1, R).sum(1)) / R
    return mean, se
