"""Block statistics of the simulators (thermosgd.sim.blocks) against direct sums and AR(1)
chains with a known variance (the OU helpers it uses are tested in
tests/estimators/test_stationarity.py)."""

import numpy as np
from scipy.signal import lfilter

from thermosgd.sim._kernels import COL_COUNT, SGD_COLUMNS
from thermosgd.sim.blocks import pooled_mean_and_stderr


def test_pooled_mean_and_stderr_by_hand():
    """Two points x two replicas, three blocks of unequal counts: the pooled mean is the mean of
    the chains' window means, the error sqrt(sum of the chains' se^2) / R with
    se^2 = var(block means, ddof=1) / n_blocks."""
    bs = np.zeros((4, 3, SGD_COLUMNS))
    bs[..., COL_COUNT] = [10.0, 10.0, 20.0]
    means = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [0.0, 4.0, 2.0], [1.0, 1.0, 4.0]])
    bs[..., 1] = means * bs[..., COL_COUNT]
    mean, se = pooled_mean_and_stderr(bs, 1, 2)
    chain_means = np.array([(10 + 20 + 60) / 40, 2.0, (0 + 40 + 40) / 40, (10 + 10 + 80) / 40])
    np.testing.assert_allclose(mean, [(chain_means[0] + chain_means[1]) / 2,
                                      (chain_means[2] + chain_means[3]) / 2], rtol=1e-15)
    se2 = np.array([1.0, 0.0, 4.0, 3.0]) / 3  # var(ddof=1) of each row of `means`, / 3
    np.testing.assert_allclose(se, [np.sqrt(se2[0] + se2[1]) / 2, np.sqrt(se2[2] + se2[3]) / 2],
                               rtol=1e-14)


def test_pooled_mean_and_stderr_with_tau_covers_ar1_window_means():
    """400 stationary AR(1) chains with unit variance and tau = 100 steps, 20 blocks of 100
    steps (blocks as long as tau, where plain batch means fail): the standard error of a
    chain's window mean (with tau) matches the spread of the 400 window means: ratio of
    variances in [0.8, 1.25] (the sample variance of 400 values scatters by sqrt(2/400) = 7%,
    so the bounds sit ~3 of those away), while plain batch means report about 1/3 of it
    (E[s^2]/n_b = (v(B) - v(W))/(n_b - 1) = 0.034 against v(W) = 0.095). The process variance
    itself (`block_process_variance`) is tested in tests/estimators/test_stationarity.py."""
    rng = np.random.default_rng(5)
    n, window, n_b, tau = 400, 2000, 20, 100.0
    rho = np.exp(-1.0 / tau)
    e = rng.standard_normal((n, window)) * np.sqrt(1.0 - rho**2)
    x0 = rng.standard_normal(n)
    x = lfilter([1.0], [1.0, -rho], e, axis=1, zi=(rho * x0)[:, None])[0]
    bs = np.zeros((n, n_b, SGD_COLUMNS))
    bs[..., COL_COUNT] = window // n_b
    bs[..., 1] = x.reshape(n, n_b, -1).sum(2)
    chain_means, se = pooled_mean_and_stderr(bs, 1, 1, tau=np.full(n, tau), window=window)
    np.testing.assert_allclose(chain_means, x.mean(1), rtol=1e-12, atol=1e-15)
    spread = chain_means.var(ddof=1)
    assert 0.8 < np.mean(se**2) / spread < 1.25
    _, se_plain = pooled_mean_and_stderr(bs, 1, 1)
    assert np.mean(se_plain**2) / spread < 0.5
