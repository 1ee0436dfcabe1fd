"""The per-chain ziggurat normal generator against scipy's normal distribution."""

import numpy as np
import pytest
from scipy import stats

from thermosgd._rng import chain_states, standard_normals

N_CHAINS, N_PER = 64, 20_000  # 1.28e6 variates


@pytest.fixture(scope="module")
def draws():
    return standard_normals(chain_states(N_CHAINS, 7), N_PER)


def test_moments(draws):
    x = draws.ravel()
    n = x.size
    # 5 standard errors: mean se = 1/sqrt(n); var se = sqrt(2/n); kurtosis se ~ sqrt(24/n)
    assert abs(x.mean()) < 5 / np.sqrt(n)
    assert abs(x.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(stats.skew(x)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(x)) < 5 * np.sqrt(24 / n)


def test_distribution_and_tails(draws):
    x = draws.ravel()
    assert stats.kstest(x, "norm").pvalue > 1e-3
    # the ziggurat's base strip (|x| > 3.4426) uses Marsaglia's exact tail method
    for t in (2.0, 3.0, 3.5, 4.0):
        p = 2 * stats.norm.sf(t)
        se = np.sqrt(p * (1 - p) / x.size)
        assert abs((np.abs(x) > t).mean() - p) < 5 * se + 1e-7


def test_chains_independent_and_reproducible(draws):
    again = standard_normals(chain_states(N_CHAINS, 7), N_PER)
    np.testing.assert_array_equal(draws, again)
    corr = np.corrcoef(draws[:8])
    off = corr[~np.eye(8, dtype=bool)]
    assert np.abs(off).max() < 5 / np.sqrt(N_PER)
    lag1 = np.corrcoef(draws[0, :-1], draws[0, 1:])[0, 1]
    assert abs(lag1) < 5 / np.sqrt(N_PER)
    other = standard_normals(chain_states(N_CHAINS, 8), 10)
    assert not np.allclose(other, draws[:, :10])
