"""Tests for thermosgd.theory.vmf against mpmath (arbitrary precision), closed forms, finite
differences, scipy.stats.vonmises_fisher and sampling statistics."""

from __future__ import annotations

import tracemalloc
import warnings

import mpmath as mp
import numpy as np
import pytest
from scipy import special, stats

from thermosgd.theory import vmf

mp.mp.dps = 50

# ----------------------------------------------------------------------------- mpmath oracle


def _mp_log_i_integral(nu, x):
    """log I_nu(x) from the Poisson integral (nu > 1/2, x > 0), positive integrand:
    I_nu(x) = (x/2)^nu / (sqrt(pi) Gamma(nu + 1/2)) int_{-1}^{1} (1 - t^2)^{nu - 1/2} e^{x t} dt.
    Integrated by mp.quad around the peak t* (split at t* + k sigma); used where
    mpmath.besseli's hypergeometric series does not converge (nu >= 1e3 and x >= 1e4)."""
    nu, x = mp.mpf(nu), mp.mpf(x)
    a = nu - mp.mpf(1) / 2
    ts = x / (a + mp.sqrt(a * a + x * x))  # argmax of a log(1 - t^2) + x t

    def f(t):
        return a * mp.log1p(-t * t) + x * t

    fmax = f(ts)
    sig = 1 / mp.sqrt(2 * a * (1 + ts * ts) / (1 - ts * ts) ** 2)
    pts = [mp.mpf(-1)]
    for k in (-60, -30, -15, -8, -4, -2, -1, 0, 1, 2, 4, 8, 15, 30, 60):
        p = ts + k * sig
        if -1 < p < 1 and p > pts[-1]:
            pts.append(p)
    pts.append(mp.mpf(1))
    val = mp.quad(lambda t: mp.exp(f(t) - fmax), pts)
    return (nu * mp.log(x / 2) - mp.log(mp.sqrt(mp.pi)) - mp.loggamma(nu + mp.mpf(1) / 2)
            + fmax + mp.log(val))


def mp_log_i(nu, x):
    """Reference log I_nu(x) (mpf), mp.dps = 50."""
    if nu >= 1000 and x >= 1e4:
        return _mp_log_i_integral(nu, x)
    return mp.log(mp.besseli(mp.mpf(nu), mp.mpf(x)))


def mp_vmf(dim, kappa):
    """Reference (A, 1 - A, A', -k^2 A', S, log C) at 50 digits. 1 - A = -expm1 of a log
    difference (no cancellation); A' = 1 - A^2 - (d-1) A/k loses at most ~2 log10(k) + 5 of the
    50 digits, leaving > 30."""
    nu, k = mp.mpf(dim) / 2 - 1, mp.mpf(kappa)
    l0, l1 = mp_log_i(nu, k), mp_log_i(nu + 1, k)
    a = mp.exp(l1 - l0)
    u = -mp.expm1(l1 - l0)
    ap = 1 - a * a - (2 * nu + 1) * a / k
    log_c = nu * mp.log(k) - mp.mpf(dim) / 2 * mp.log(2 * mp.pi) - l0
    return dict(A=a, U=u, V=ap, slope=-k * k * ap, S=-log_c - k * a, logC=log_c)


def rel_err(got, ref):
    """|got - ref| / max(1, |ref|): relative error of a log, absolute where it is O(1)."""
    return abs(float(got) - float(ref)) / max(1.0, abs(float(ref)))


# ----------------------------------------------------------------------------- log I_nu

NUS = (0.0, 0.5, 1.0, 1.5, 10.0, 499.0, 1000.5, 1e4, 1e5)
XS = (1e-8, 1e-3, 1.0, 50.0, 1e3, 1e5, 1e7)


def test_integral_oracle_matches_besseli():
    # The fallback oracle agrees with mpmath.besseli wherever the latter converges.
    for nu, x in ((1.0, 1e-8), (20.0, 50.0), (499.0, 1e5), (1e5, 1e3), (12203.0, 1e7)):
        ref = mp.log(mp.besseli(nu, x))
        assert abs(_mp_log_i_integral(nu, x) - ref) <= mp.mpf(10) ** -35 * max(1, abs(ref))


def test_log_bessel_i_vs_mpmath_grid():
    # Measured worst error on this grid ~1e-14 (and ~3e-14 on a dense grid around the
    # regime boundary nu = 20, where scipy's ive is used just below); the asserted 1e-12 keeps
    # two orders of margin and is 100x tighter than the required 1e-10.
    nu, x = np.meshgrid((*NUS, 1e6), XS, indexing="ij")
    got = vmf.log_bessel_i(nu, x)
    assert got.shape == nu.shape
    for i, j in np.ndindex(nu.shape):
        ref = mp_log_i(nu[i, j], x[i, j])
        assert rel_err(got[i, j], ref) <= 1e-12, (nu[i, j], x[i, j], got[i, j], ref)


@pytest.mark.parametrize(
    ("nu", "x"),
    [(19.5, 15.0), (19.99, 15.0), (20.0, 15.0), (20.5, 2.0), (0.25, 5.0), (3.0, 1.999),
     (3.0, 2.001), (3.0, 9999.0), (3.0, 1e4), (19.9, 1e4), (30.0, 1e-300), (2.0, 1e-300),
     (0.0, 1e9), (50.0, 1e9), (0.0, 1e12), (19.5, 1e15)],
)
def test_log_bessel_i_regime_boundaries(nu, x):
    # Around the switches: Debye (nu >= 20) / power series (x <= 2) / scipy ive / large-x
    # Hankel expansion (x >= 1e4; scipy's ive returns nan from x ~ 1e10); extremes of x.
    ref = mp_log_i(nu, x)
    assert rel_err(vmf.log_bessel_i(nu, x), ref) <= 1e-12


def test_log_bessel_i_where_scipy_fails():
    # scipy's ive underflows to 0 (log -> -inf) for large orders, e.g. dim = 1000, kappa = 50
    # (nu = 499), and scipy.stats.vonmises_fisher.entropy() returns nan there.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for nu, x in ((499.0, 50.0), (1e4, 1e3), (1e5, 1e5), (1e5, 1.0)):
            assert not np.isfinite(np.log(special.ive(nu, x)) + x)
            ours = vmf.log_bessel_i(nu, x)
            assert np.isfinite(ours)
            assert rel_err(ours, mp_log_i(nu, x)) <= 1e-12
        mu = np.zeros(1000)
        mu[0] = 1.0
        assert not np.isfinite(stats.vonmises_fisher(mu, 50.0).entropy())
    assert np.isfinite(vmf.entropy(1000, 50.0))
    assert vmf.log_bessel_i(499.0, 50.0) == pytest.approx(-997.64836798051046, rel=1e-14)


def test_log_bessel_i_special_values():
    assert vmf.log_bessel_i(0.0, 0.0) == 0.0
    assert vmf.log_bessel_i(2.5, 0.0) == -np.inf
    assert vmf.log_bessel_i(1e5, 0.0) == -np.inf
    assert vmf.log_bessel_i(3.0, np.inf) == np.inf
    # I_{1/2}(x) = sqrt(2 / (pi x)) sinh x
    x = np.array([1e-6, 0.3, 7.0, 300.0])
    closed = 0.5 * np.log(2 / (np.pi * x)) + x + np.log(-np.expm1(-2 * x)) - np.log(2)
    np.testing.assert_allclose(vmf.log_bessel_i(0.5, x), closed, rtol=1e-13, atol=1e-13)
    # log I_0(x) ~ x^2/4 as x -> 0 (absolute accuracy where the log is ~0)
    assert vmf.log_bessel_i(0.0, 1e-8) == pytest.approx(2.5e-17, rel=1e-10)


# ----------------------------------------------------------------------------- vMF quantities

DIMS = (2, 3, 10, 50, 200, 1000, 24408)
KAPPAS = (1e-6, 1e-3, 0.1, 1.0, 10.0, 50.0, 1e3, 1e5, 1e7)


@pytest.mark.parametrize("dim", DIMS)
def test_vmf_quantities_vs_mpmath(dim):
    # Measured worst relative errors over this grid and a 400-point random (dim, kappa) grid:
    # A 7e-16, 1 - A 8e-14, A' and slope 2e-13 (d = 2: the backward recurrence from order 20
    # amplifies rounding by <= (2 nu_top + 1)/(2 nu + 1) ~ 41), S and log C 1e-14 (relative, or
    # absolute when O(1)). Asserted: 1e-11 for all (>= 50x margin; required: 1e-10).
    k = np.array(KAPPAS)
    got = dict(
        A=vmf.mean_resultant_length(dim, k),
        U=vmf.mean_energy(dim, k),
        V=vmf.energy_variance(dim, k),
        slope=vmf.entropy_slope(dim, k),
        S=vmf.entropy(dim, k),
        logC=vmf.log_normalizer(dim, k),
    )
    for i, kappa in enumerate(KAPPAS):
        ref = mp_vmf(dim, kappa)
        for key, val in got.items():
            r = float(ref[key])
            err = rel_err(val[i], r) if key in ("S", "logC") else abs(val[i] - r) / abs(r)
            assert err <= 1e-11, (key, dim, kappa, val[i], r)


def test_vmf_quantities_random_real_dims():
    # 60 random (dim, kappa), dim real in [2, 3e4], kappa log-uniform in [1e-7, 1e7]; same
    # tolerance and justification as the grid test above (a 400-point version measured 1.5e-13).
    rng = np.random.default_rng(7)
    dims = np.exp(rng.uniform(np.log(2.0), np.log(3e4), 60))
    kappas = np.exp(rng.uniform(np.log(1e-7), np.log(1e7), 60))
    got = dict(A=vmf.mean_resultant_length(dims, kappas), U=vmf.mean_energy(dims, kappas),
               V=vmf.energy_variance(dims, kappas), slope=vmf.entropy_slope(dims, kappas),
               S=vmf.entropy(dims, kappas), logC=vmf.log_normalizer(dims, kappas))
    for i, (dim, kappa) in enumerate(zip(dims, kappas, strict=True)):
        ref = mp_vmf(dim, kappa)
        for key, val in got.items():
            r = float(ref[key])
            err = rel_err(val[i], r) if key in ("S", "logC") else abs(val[i] - r) / abs(r)
            assert err <= 1e-11, (key, dim, kappa, val[i], r)


def test_vmf_mean_energy_dim3_closed_form():
    # d = 3: A = coth k - 1/k, U = 1 - coth k + 1/k, S = log(4 pi sinh k / k) - k (coth k - 1/k),
    # evaluated with mpmath (independent of any Bessel function).
    kappas = (1e-6, 1e-3, 0.5, 3.0, 30.0, 1e3, 1e6, 1e7)
    u = vmf.mean_energy(3, np.array(kappas))
    s = vmf.entropy(3, np.array(kappas))
    for i, kappa in enumerate(kappas):
        k = mp.mpf(kappa)
        u_ref = 1 - mp.coth(k) + 1 / k
        s_ref = mp.log(4 * mp.pi * mp.sinh(k) / k) - k * (mp.coth(k) - 1 / k)
        assert abs(u[i] - u_ref) <= 1e-13 * u_ref
        assert rel_err(s[i], s_ref) <= 1e-13


def test_vmf_large_kappa_limits():
    # S -> (d-1)/2 log(2 pi e / k) with correction O(d^2/k) (exact up to e^{-2k} for d = 3);
    # U ~ (d-1)/(2k) with relative correction -(d-3)/(4k) + O(d^2/k^2); slope -> -(d-1)/2 as O(d/k).
    for dim in (2, 3, 10, 50, 1000):
        for kappa in (1e6, 1e7, 1e12):
            asym = 0.5 * (dim - 1) * np.log(2 * np.pi * np.e / kappa)
            s = vmf.entropy(dim, kappa)
            tol = 1e-12 * abs(asym) if dim == 3 else dim**2 / kappa
            assert abs(s - asym) <= tol
            u = vmf.mean_energy(dim, kappa)
            lead = (dim - 1) / (2 * kappa)
            assert u == pytest.approx(lead * (1 - (dim - 3) / (4 * kappa)), rel=dim**2 / kappa**2)
            assert vmf.entropy_slope(dim, kappa) == pytest.approx(-(dim - 1) / 2, rel=dim / kappa)
            assert vmf.energy_variance(dim, kappa) == pytest.approx(
                (dim - 1) / (2 * kappa**2), rel=dim / kappa)


def test_vmf_small_kappa_limits():
    # A ~ k/d, U ~ 1, A' -> 1/d, slope ~ -k^2/d, S -> log|S^{d-1}|; relative corrections O(k^2).
    for dim in (2, 3, 10, 1000, 24408):
        log_area = np.log(2) + dim / 2 * np.log(np.pi) - special.gammaln(dim / 2)
        for kappa in (0.0, 1e-300, 1e-8):
            assert vmf.mean_resultant_length(dim, kappa) == pytest.approx(kappa / dim, rel=1e-14)
            assert vmf.mean_energy(dim, kappa) == pytest.approx(1 - kappa / dim, rel=1e-15)
            assert vmf.energy_variance(dim, kappa) == pytest.approx(1 / dim, rel=1e-14)
            assert vmf.entropy_slope(dim, kappa) == pytest.approx(-(kappa**2) / dim, rel=1e-14)
            assert vmf.entropy(dim, kappa) == pytest.approx(log_area, rel=1e-14, abs=1e-13)
            assert vmf.log_normalizer(dim, kappa) == pytest.approx(-log_area, rel=1e-14,
                                                                   abs=1e-13)
    assert vmf.entropy(3, 0.0) == pytest.approx(np.log(4 * np.pi), rel=1e-15)


def test_vmf_infinite_kappa():
    d = np.array([2, 3, 100])
    np.testing.assert_array_equal(vmf.mean_resultant_length(d, np.inf), 1.0)
    np.testing.assert_array_equal(vmf.mean_energy(d, np.inf), 0.0)
    np.testing.assert_array_equal(vmf.energy_variance(d, np.inf), 0.0)
    np.testing.assert_array_equal(vmf.entropy_slope(d, np.inf), -(d - 1) / 2)
    np.testing.assert_array_equal(vmf.entropy(d, np.inf), -np.inf)
    np.testing.assert_array_equal(vmf.log_normalizer(d, np.inf), np.inf)


def _d5(f, x, h):
    """Five-point central derivative: error h^4 f^(5)/30 + rounding ~ 1.5 eps |f| / h."""
    return (f(x - 2 * h) - 8 * f(x - h) + 8 * f(x + h) - f(x + 2 * h)) / (12 * h)


@pytest.mark.parametrize("dim", (2, 3, 7.5, 10, 41, 200, 1000))
def test_entropy_slope_and_variance_vs_finite_differences(dim):
    # In log k with h = 1e-3: truncation ~h^4 * O(d) ~ 1e-12 d, rounding ~1.5 eps |S| / h ~
    # 3e-13 |S|. Tolerance 1e-8 * max(1, |S|) for the slope; for A' the difference is taken on
    # 1 - A (accurate to ~1e-13 relative, unlike A near 1): dU/dlog k = -k A'.
    h = 1e-3
    for kappa in (1e-3, 0.7, 5.0, 60.0, 3e3, 1e6):
        lk = np.log(kappa)
        s = vmf.entropy(dim, kappa)
        fd = _d5(lambda t: vmf.entropy(dim, np.exp(t)), lk, h)
        assert abs(fd - vmf.entropy_slope(dim, kappa)) <= 1e-8 * max(1.0, abs(s)), (dim, kappa)
        fd_u = _d5(lambda t: vmf.mean_energy(dim, np.exp(t)), lk, h)
        assert fd_u == pytest.approx(-kappa * vmf.energy_variance(dim, kappa), rel=1e-8)


def test_broadcasting():
    d = np.array([[2], [3], [1000]])
    k = np.array([0.0, 0.5, 50.0, 1e6])
    for f in (vmf.mean_resultant_length, vmf.mean_energy, vmf.energy_variance,
              vmf.entropy_slope, vmf.entropy, vmf.log_normalizer):
        out = f(d, k)
        assert out.shape == (3, 4) and out.dtype == np.float64
        for i, j in np.ndindex(out.shape):
            assert out[i, j] == f(int(d[i, 0]), float(k[j]))
    assert np.ndim(vmf.entropy(3, 1.0)) == 0
    assert vmf.log_bessel_i(np.array([0.5, 600.0]), np.array([[1.0], [2.0]])).shape == (2, 2)


# ----------------------------------------------------------------------------- sampler


def _unit(dim, seed):
    mu = np.random.default_rng(seed).standard_normal(dim)
    return mu / np.linalg.norm(mu)


@pytest.mark.parametrize(
    ("dim", "kappa", "n"),
    [(2, 0.0, 20000), (2, 1.0, 20000), (3, 5.0, 20000), (10, 0.5, 20000), (3, 1e6, 20000),
     (50, 1e7, 5000), (1000, 50.0, 3000), (24408, 50.0, 300), (24408, 1e6, 300)],
)
def test_sample_mean_and_norm(dim, kappa, n):
    # <mu, x> has mean A_d and variance A'; the sample mean is within 5 standard errors
    # sqrt(A'/n) except with probability ~6e-7 (CLT; n >= 300 and w is bounded). The mean of
    # 1 - <mu, x> is compared with U directly (no 1 - A subtraction at large kappa).
    mu = _unit(dim, 0)
    x = vmf.sample(n, 3.0 * mu, kappa, seed=1)
    assert x.shape == (n, dim) and x.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-13)
    w = x @ mu
    se = np.sqrt(vmf.energy_variance(dim, kappa) / n)
    assert abs(w.mean() - vmf.mean_resultant_length(dim, kappa)) <= 5 * se
    assert abs((1.0 - w).mean() - vmf.mean_energy(dim, kappa)) <= 5 * se
    # the tangent part is isotropic around mu: mean of x minus its mu-component ~ 0
    if dim <= 10:
        tangent = x - w[:, None] * mu[None, :]
        t_se = np.sqrt((1 - (w**2).mean()) / (dim - 1) / n)
        assert np.all(np.abs(tangent.mean(axis=0)) <= 5 * t_se + 1e-15)


@pytest.mark.parametrize(("dim", "kappa"), [(3, 2.0), (5, 10.0), (10, 3.0), (2, 0.7)])
def test_sample_vs_scipy_vonmises_fisher(dim, kappa):
    # Two-sample KS on w = <mu, x> against scipy's sampler (fine for small dim); with fixed seeds
    # the test is deterministic, and a correct sampler fails p > 1e-3 with probability 1e-3.
    mu = _unit(dim, 5)
    ours = vmf.sample(4000, mu, kappa, seed=11) @ mu
    theirs = stats.vonmises_fisher(mu, kappa).rvs(4000, random_state=12) @ mu
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-3


@pytest.mark.parametrize("kappa", [0.0, 0.3, 4.0, 200.0])
def test_sample_dim3_exact_cdf(kappa):
    # d = 3: w = <mu, x> has density prop. to e^{k w} on [-1, 1] (uniform for k = 0), CDF
    # F(w) = expm1(k (w + 1)) / expm1(2 k). One-sample KS, p > 1e-3 (as above).
    mu = np.array([0.0, 0.0, -1.0])
    w = vmf.sample(5000, mu, kappa, seed=21) @ mu
    if kappa == 0:
        cdf = lambda v: (v + 1) / 2  # noqa: E731
    else:
        cdf = lambda v: np.expm1(kappa * (v + 1)) / np.expm1(2 * kappa)  # noqa: E731
    assert stats.kstest(w, cdf).pvalue > 1e-3


def test_sample_mu_is_e1_and_minus_e1():
    for sign in (1.0, -1.0):
        mu = np.zeros(4)
        mu[0] = sign
        w = vmf.sample(4000, mu, 8.0, seed=3) @ mu
        se = np.sqrt(vmf.energy_variance(4, 8.0) / 4000)
        assert abs(w.mean() - vmf.mean_resultant_length(4, 8.0)) <= 5 * se


def test_sample_reproducible():
    mu = _unit(7, 1)
    a = vmf.sample(100, mu, 3.0, seed=42)
    np.testing.assert_array_equal(a, vmf.sample(100, mu, 3.0, seed=42))
    np.testing.assert_array_equal(a, vmf.sample(100, mu, 3.0, seed=np.random.default_rng(42)))
    assert not np.array_equal(a, vmf.sample(100, mu, 3.0, seed=43))
    rng = np.random.default_rng(0)
    b1, b2 = vmf.sample(10, mu, 3.0, seed=rng), vmf.sample(10, mu, 3.0, seed=rng)
    assert not np.array_equal(b1, b2)  # a Generator is advanced, not reseeded


def test_sample_linear_memory_large_dim():
    # O(n d) memory: peak numpy allocation is a few n*d*8 bytes (measured ~3x), whereas one
    # dim x dim matrix at dim = 20000 would be 3.2 GB (= 400 n d 8 bytes here).
    n, dim = 50, 20000
    mu = np.ones(dim)
    tracemalloc.start()
    try:
        x = vmf.sample(n, mu, 100.0, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 10 * n * dim * 8
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-13)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: vmf.entropy(1, 1.0), "dim"),
        (lambda: vmf.mean_energy(np.array([3, 1.5]), 1.0), "dim"),
        (lambda: vmf.mean_resultant_length(np.nan, 1.0), "dim"),
        (lambda: vmf.entropy_slope(3, -1.0), "kappa"),
        (lambda: vmf.energy_variance(3, np.nan), "kappa"),
        (lambda: vmf.log_normalizer([2, 3], [1.0, 2.0, 3.0]), "broadcast"),
        (lambda: vmf.log_bessel_i(-0.5, 1.0), "nu"),
        (lambda: vmf.log_bessel_i(1.0, -1.0), "x"),
        (lambda: vmf.log_bessel_i(np.nan, 1.0), "nu"),
        (lambda: vmf.log_bessel_i(1.0, np.nan), "x"),
        (lambda: vmf.log_bessel_i([1.0, 2.0], [1.0, 2.0, 3.0]), "broadcast"),
        (lambda: vmf.sample(0, [1.0, 0.0], 1.0, seed=0), "n"),
        (lambda: vmf.sample(2.5, [1.0, 0.0], 1.0, seed=0), "n"),
        (lambda: vmf.sample(5, [0.0, 0.0], 1.0, seed=0), "mu"),
        (lambda: vmf.sample(5, [1.0, np.nan], 1.0, seed=0), "mu"),
        (lambda: vmf.sample(5, [[1.0, 0.0]], 1.0, seed=0), "mu"),
        (lambda: vmf.sample(5, [1.0], 1.0, seed=0), "mu"),
        (lambda: vmf.sample(5, [1.0, 0.0], -1.0, seed=0), "kappa"),
        (lambda: vmf.sample(5, [1.0, 0.0], np.nan, seed=0), "kappa"),
        (lambda: vmf.sample(5, [1.0, 0.0], [1.0, 2.0], seed=0), "kappa"),
        (lambda: vmf.sample(5, [1.0, 0.0], 1.0, seed=None), "seed"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
