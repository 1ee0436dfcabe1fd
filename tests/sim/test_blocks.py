"""Block statistics of the simulators (thermosgd.sim.blocks) against direct sums and an AR(1)
process with a known variance."""

import numpy as np
import pytest
from scipy.signal import lfilter

from thermosgd.sim._kernels import COL_COUNT, SGD_COLUMNS
from thermosgd.sim.blocks import (
    block_process_variance,
    ou_adjacent_covariance,
    ou_mean_variance,
    pooled_mean_and_stderr,
)


def test_ou_mean_variance_matches_ar1_sum():
    """v(L) of an exp(-|t|/tau) process against the direct AR(1) double sum
    (1/L^2) sum_{s,t} rho^|s-t|, rho = e^{-1/tau}; the continuous form differs by O(1/tau)."""
    for tau, length in [(50.0, 200), (500.0, 100), (20.0, 5000)]:
        rho = np.exp(-1.0 / tau)
        k = np.arange(1, length)
        direct = (length + 2.0 * np.sum((length - k) * rho**k)) / length**2
        assert ou_mean_variance(length, tau) == pytest.approx(direct, rel=2.0 / tau)
    assert ou_mean_variance(1e-6, 1.0) == pytest.approx(1.0, rel=1e-6)
    assert ou_mean_variance(1e6, 1.0) == pytest.approx(2e-6, rel=1e-5)


def test_ou_adjacent_covariance_matches_ar1_cross_sum():
    """Cov of the means of two adjacent windows of L steps: (1/L^2) sum_{s<L<=t<2L} rho^(t-s)
    = (1/L^2) (rho (1 - rho^L) / (1 - rho))^2 for the AR(1) process; continuous form O(1/tau)."""
    for tau, length in [(50.0, 200), (500.0, 100), (20.0, 5000)]:
        rho = np.exp(-1.0 / tau)
        direct = (rho * (1.0 - rho**length) / (1.0 - rho)) ** 2 / length**2
        assert ou_adjacent_covariance(length, tau) == pytest.approx(direct, rel=2.0 / tau)


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


def test_block_process_variance_recovers_the_ar1_variance():
    """400 stationary AR(1) chains with unit variance and tau = 100 steps, 20 blocks of 100
    steps (blocks as long as tau, where plain batch means fail). The implied process variance
    averages to 1 within 4 standard errors (its spread over chains / sqrt(400) ~ 2%); the
    standard error of a chain's window mean (with tau) matches the spread of the 400 window
    means: ratio of variances in [0.8, 1.25] (the sample variance of 400 values scatters by
    sqrt(2/400) = 7%, so the bounds sit ~3 of those away), while plain batch means report
    about 1/3 of it (E[s^2]/n_b = (v(B) - v(W))/(n_b - 1) = 0.034 against v(W) = 0.095)."""
    rng = np.random.default_rng(5)
    n, window, n_b, tau = 400, 2000, 20, 100.0
    rho = np.exp(-1.0 / tau)
    e = rng.standard_normal((n, window)) * np.sqrt(1.0 - rho**2)
    x0 = rng.standard_normal(n)
    x = lfilter([1.0], [1.0, -rho], e, axis=1, zi=(rho * x0)[:, None])[0]
    means = x.reshape(n, n_b, -1).mean(2)
    v = block_process_variance(means, window, np.full(n, tau))
    assert abs(v.mean() - 1.0) < 4 * v.std(ddof=1) / np.sqrt(n)
    bs = np.zeros((n, n_b, SGD_COLUMNS))
    bs[..., COL_COUNT] = window // n_b
    bs[..., 1] = x.reshape(n, n_b, -1).sum(2)
    chain_means, se = pooled_mean_and_stderr(bs, 1, 1, tau=np.full(n, tau), window=window)
    np.testing.assert_allclose(chain_means, x.mean(1), rtol=1e-12, atol=1e-15)
    spread = chain_means.var(ddof=1)
    assert 0.8 < np.mean(se**2) / spread < 1.25
    _, se_plain = pooled_mean_and_stderr(bs, 1, 1)
    assert np.mean(se_plain**2) / spread < 0.5
