"""Block statistics of the simulators: window means and their error bars from block sums.

The kernels (`thermosgd.sim._kernels`) sum each quantity per chain over n_b equal blocks of the
stationary window of W steps (``block_sum[chain, block, column]``, the column layout defined
there, ``COL_COUNT`` counting the steps). Error bars are batch means, optionally corrected for
an exp(-|t|/tau) autocorrelation when the relaxation time tau exceeds the block length
(Ornstein-Uhlenbeck variance of a window mean, `thermosgd.estimators.stationarity`'s
`ou_mean_variance` and `block_process_variance`, shared with the training monitor).
"""

from __future__ import annotations

import numpy as np

from thermosgd.estimators.stationarity import block_process_variance, ou_mean_variance
from thermosgd.sim._kernels import COL_COUNT

__all__ = ["pooled_mean_and_stderr"]


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
