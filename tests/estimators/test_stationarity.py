"""Tests for thermosgd.estimators.stationarity: batch means, the exp(-|t|/tau) (OU) block
statistics against AR(1) sums and chains, their coverage on an independent SI simulation fed
through `ThermoMonitor`, window selection, the verdict."""

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from thermosgd.estimators.stationarity import (
    Blocks,
    StationarityCriteria,
    _batch_means,
    _combine_probes,
    _halves,
    _mean_se,
    _slope,
    block_process_variance,
    divergence,
    even_blocks,
    halves_difference,
    ou_adjacent_covariance,
    ou_mean_variance,
    select_window,
    step_blocks,
    verdict,
    window_mean_se,
)
from thermosgd.monitor import ThermoMonitor

C = StationarityCriteria()


def _ar1(rng, n, rho=0.9):
    e = rng.normal(size=n)
    out = np.empty(n)
    out[0] = e[0]
    for i in range(1, n):
        out[i] = rho * out[i - 1] + math.sqrt(1 - rho**2) * e[i]
    return out


def test_series_statistics_against_textbook_formulas():
    rng = np.random.default_rng(0)
    v, t = rng.normal(size=103), np.arange(103.0)
    vb, tb = _batch_means(v, t, 4)
    # np.array_split: sizes 26, 26, 26, 25
    np.testing.assert_allclose(vb, [v[:26].mean(), v[26:52].mean(), v[52:78].mean(),
                                    v[78:].mean()], rtol=1e-14)
    assert tb[-1] == pytest.approx(t[78:].mean())
    assert _mean_se(vb) == pytest.approx(np.std(vb, ddof=1) / 2)
    assert math.isnan(_mean_se(vb[:1]))
    m1, m2, se = _halves(vb)
    assert (m1, m2) == pytest.approx((vb[:2].mean(), vb[2:].mean()))
    assert se == pytest.approx(math.hypot(np.std(vb[:2], ddof=1), np.std(vb[2:], ddof=1))
                               / math.sqrt(2))
    # OLS slope and its SE: numpy's weighted polyfit covariance (unscaled residual variance)
    y = 0.3 * t + rng.normal(size=t.size)
    slope, sse = _slope(y, t)
    coef, cov = np.polyfit(t, y, 1, cov="unscaled")
    resid = y - np.polyval(coef, t)
    s2 = float(resid @ resid) / (t.size - 2)
    assert slope == pytest.approx(coef[0], rel=1e-10)
    assert sse == pytest.approx(math.sqrt(cov[0, 0] * s2), rel=1e-8)
    assert all(map(math.isnan, _slope(y[:2], t[:2])))
    # probes: the larger of the propagated SE and the spread
    mean, se = _combine_probes(np.array([1.0, 1.0, 1.0, 1.0]), np.full(4, 0.2))
    assert (mean, se) == pytest.approx((1.0, 0.1))
    mean, se = _combine_probes(np.array([0.0, 2.0, 4.0]), np.zeros(3))
    assert se == pytest.approx(2.0 / math.sqrt(3))


def test_batch_means_se_covers_an_autocorrelated_mean():
    """AR(1) with rho = 0.9 (integrated correlation time 19 steps) in 20 blocks of 200 steps:
    the SE of the mean from batch means matches the spread of the mean over 300 repeats
    (the naive SD / sqrt(N) would be sqrt(19) = 4.4x too small)."""
    rng = np.random.default_rng(1)
    means, ses = [], []
    t = np.arange(4000.0)
    for _ in range(300):
        x = _ar1(rng, 4000)
        b, _ = _batch_means(x, t, 20)
        means.append(x.mean())
        ses.append(_mean_se(b))
    ratio = float(np.sqrt(np.mean(np.square(ses))) / np.std(means))
    # the spread's own sampling error over 300 repeats is 1/sqrt(600) = 4%; blocks of ~10
    # correlation times bias the SE low by ~5%: [0.8, 1.15]
    assert 0.8 < ratio < 1.15, ratio


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


def _ar1_chains(rng, n, length, tau):
    """n stationary AR(1) chains of unit variance with rho = e^{-1/tau} (started in the
    stationary law)."""
    rho = np.exp(-1.0 / tau)
    e = rng.standard_normal((n, length)) * np.sqrt(1.0 - rho**2)
    x0 = rng.standard_normal(n)
    return lfilter([1.0], [1.0, -rho], e, axis=1, zi=(rho * x0)[:, None])[0]


def test_block_process_variance_recovers_the_ar1_variance():
    """400 stationary AR(1) chains with unit variance and tau = 100 steps, 20 blocks of 100
    steps (blocks as long as tau). The implied process variance averages to 1 within 4
    standard errors (its spread over chains / sqrt(400) ~ 2%); one chain's 1-d block means
    give its entry of the (chains, blocks) result."""
    rng = np.random.default_rng(5)
    n, window, n_b, tau = 400, 2000, 20, 100.0
    means = _ar1_chains(rng, n, window, tau).reshape(n, n_b, -1).mean(2)
    v = block_process_variance(means, window, np.full(n, tau))
    assert abs(v.mean() - 1.0) < 4 * v.std(ddof=1) / np.sqrt(n)
    assert block_process_variance(means[7], window, tau) == pytest.approx(v[7], rel=1e-14)


def test_window_mean_se_and_halves_difference_reduce_to_batch_means():
    """Without a relaxation time (None, NaN, 0) both are the batch-means formulas exactly;
    with tau << the block (1 step against blocks of 500) they agree with them to O(tau/B):
    the window SE sqrt(s^2 (k-1) v(W) / (k (v(B) - v(W)))) with v(L) -> 2 tau/L (1 - tau/L)
    differs by ~ tau/B = 0.2%, checked to 1%."""
    b = np.random.default_rng(2).normal(size=20)
    for tau in (None, math.nan, 0.0):
        assert window_mean_se(b, 1e4, tau) == _mean_se(b)
        assert halves_difference(b, 1e4, tau) == _halves(b)
    assert window_mean_se(b, math.nan, 50.0) == _mean_se(b)  # the window unknown
    assert window_mean_se(b, 1e4, 1.0) == pytest.approx(_mean_se(b), rel=1e-2)
    m1, m2, se = halves_difference(b, 1e4, 1.0)
    assert (m1, m2) == _halves(b)[:2] and se == pytest.approx(_halves(b)[2], rel=1e-2)
    assert math.isnan(window_mean_se(b[:1], 1e4, 50.0))


def test_halves_difference_covers_ar1_half_means():
    """The SE of the difference between the window's half means, 400 AR(1) chains, tau = 300
    steps > the blocks of 100 (W = 2000, 20 blocks): the spread of m2 - m1 over the chains
    against the rms SE, ratio in [0.85, 1.15] (the sample SD of 400 values scatters by
    1/sqrt(800) = 3.5%, the rms SE by ~2-3% more: the bounds sit ~3.5 of those away); the
    batch-means hypot(SE1, SE2) reports less than half of it."""
    rng = np.random.default_rng(11)
    n, window, n_b, tau = 400, 2000, 20, 300.0
    means = _ar1_chains(rng, n, window, tau).reshape(n, n_b, -1).mean(2)
    diff, se, se_plain = [], [], []
    for b in means:
        m1, m2, e = halves_difference(b, window, tau)
        diff.append(m2 - m1)
        se.append(e)
        se_plain.append(_halves(b)[2])
    spread = np.std(diff, ddof=1)
    assert 0.85 < spread / np.sqrt(np.mean(np.square(se))) < 1.15
    assert spread / np.sqrt(np.mean(np.square(se_plain))) > 2.0


def _si_process(n, d, lr, wd, sigma, burn, steps, every, seed):
    """Radii of n chains of plain SGD with weight decay on an SI loss whose gradient is pure
    isotropic tangent noise of size sigma / r: w <- w - lr (sigma/r P_perp(w) xi + wd w), xi
    ~ N(0, I_d), started on the stationary radius r*^4 = lr sigma^2 (d-1) / (wd (2 - lr wd)),
    recorded every ``every`` steps after ``burn`` steps (an independent numpy simulation)."""
    rng = np.random.default_rng(seed)
    r4 = lr * sigma**2 * (d - 1) / (wd * (2.0 - lr * wd))
    w = rng.standard_normal((n, d))
    w *= r4**0.25 / np.linalg.norm(w, axis=1, keepdims=True)
    recs = []
    for t in range(burn + steps):
        r = np.linalg.norm(w, axis=1, keepdims=True)
        if t >= burn and (t - burn) % every == 0:
            recs.append(r[:, 0].copy())
        xi = rng.standard_normal((n, d))
        xi -= (xi * w).sum(1, keepdims=True) * w / r**2
        w = w - lr * (sigma / r * xi + wd * w)
    return np.array(recs).T


def test_monitor_radius_se_covers_the_window_mean_when_tau_exceeds_the_block():
    """Coverage of `ThermoMonitor`'s radius_se on 400 independent chains of an SI process
    (`_si_process`: d = 20, lr = 0.1, wd = 0.01, so the radius relaxation time 1/(4 eta
    lambda) = 250 steps) recorded every 5 steps over W = 2000 steps: the window's 20 blocks
    of 100 steps are shorter than tau. The spread of the 400 window means over the rms of the
    reported radius_se lies in [0.85, 1.15] (sampling: the SD of 400 values scatters by
    1/sqrt(800) = 3.5%, the rms SE by ~3% (8 seeds: 0.92 .. 1.08, SD 4.5%), so the bounds sit
    ~3.3 SDs away; the OU model's discretization error is O(1/tau) = 0.4%); plain batch
    means, the estimator before the exp(-|t|/tau) model, reports a 2.5x too small error
    (sqrt((k-1) v(W) / (v(B) - v(W)))), asserted > 2. The drift test's SE
    (`halves_difference` of the monitor's block means) covers the halves' difference the
    same way."""
    n, d, lr, wd, sigma = 400, 20, 0.1, 0.01, 1.0
    tau, every, window = 1.0 / (4 * lr * wd), 5, 2000
    radii = _si_process(n, d, lr, wd, sigma, int(8 * tau), window, every, seed=0)
    means, se, se_plain, diff, diff_se = [], [], [], [], []
    for chain in radii:
        mon = ThermoMonitor("lr", d, lr=lr, wd=wd)
        for i, r in enumerate(chain):
            mon.record_step(1 + i * every, radius=r, loss=1.0)
        s = mon.stationary_state(window_start=1, entropy=False)
        assert s["relaxation_time"] == pytest.approx(tau, rel=1e-12)
        means.append(s["radius"])
        se.append(s["radius_se"])
        blocks, _ = step_blocks(mon.history()["step"].astype(float), chain, chain, C)
        assert blocks.window == window  # 400 records 5 steps apart cover 2000 steps
        se_plain.append(_mean_se(blocks.radius))
        m1, m2, e = halves_difference(blocks.radius, blocks.window, tau)
        diff.append(m2 - m1)
        diff_se.append(e)
    spread = np.std(means, ddof=1)
    assert 0.85 < spread / np.sqrt(np.mean(np.square(se))) < 1.15
    assert spread / np.sqrt(np.mean(np.square(se_plain))) > 2.0
    assert 0.85 < np.std(diff, ddof=1) / np.sqrt(np.mean(np.square(diff_se))) < 1.15


def test_monitor_radius_se_without_a_relaxation_time_is_batch_means_wiring():
    """An elr monitor without noise probes has no relaxation time (1/(eta-tilde^2 Q) needs Q):
    its radius_se is the batch-means SE of the radius block means; with the lr protocol's
    tau it is `window_mean_se` with tau and the records' window."""
    rng = np.random.default_rng(3)
    r = 1.0 + 0.01 * rng.standard_normal(200)
    t = np.arange(1, 201, dtype=float)
    blocks, _ = step_blocks(t, r, r, C)
    for protocol, hyper, tau in (("elr", {"elr": 0.01, "wd": 0.01}, None),
                                 ("lr", {"lr": 0.1, "wd": 0.1}, 25.0)):
        mon = ThermoMonitor(protocol, 10, **hyper)
        for step, ri in zip(t, r, strict=True):
            mon.record_step(int(step), radius=ri, loss=1.0)
        s = mon.stationary_state(window_start=1, entropy=False)
        if tau is None:
            assert math.isnan(s["relaxation_time"])
        else:  # 1 / (4 eta lambda), to round-off
            assert s["relaxation_time"] == pytest.approx(tau, rel=1e-14)
            tau = s["relaxation_time"]
        assert s["radius_se"] == window_mean_se(blocks.radius, blocks.window, tau)
        assert s["volume_se"] == s["radius"] * s["radius_se"]
    assert s["radius_se"] > _mean_se(blocks.radius)  # tau = 25 steps > the blocks of 10


def test_window_selection_and_blocks():
    steps = np.arange(10, 4000)
    assert select_window(steps) == (10 + 3999 + 1) // 2
    assert select_window(steps, 3999) == 3999
    with pytest.raises(ValueError, match="window_start == 4000, must be <= 3999"):
        select_window(steps, 4000)
    with pytest.raises(ValueError, match=r"window_start == 1\.5, must be an integer"):
        select_window(steps, 1.5)
    with pytest.raises(ValueError, match="no steps"):
        select_window(np.zeros(0, np.int64))
    assert even_blocks(7, 20) == 6 and even_blocks(100, 20) == 20 and even_blocks(3, 20) == 2
    t = np.arange(30.0)
    blocks, why = step_blocks(t, np.ones(30), np.ones(30), C)
    assert why == [] and blocks.step.size == 20
    blocks, why = step_blocks(t[:10], np.ones(10), np.ones(10), C)
    assert blocks is None and why == ["too few step records in the window (10 < 20)"]


def test_divergence_names_the_first_bad_step():
    steps = np.arange(5)
    ok = np.ones(5)
    assert divergence(steps, ok, ok, np.zeros(0), np.zeros(0), np.zeros(0)) == (False, [])
    loss = ok.copy()
    loss[3] = np.nan
    diverged, why = divergence(steps, ok, loss, np.array([1]), np.array([np.inf]), np.ones(1))
    assert diverged and why == ["diverged: non-finite loss, radius or noise from step 1"]
    # the sphere: an infinite pre-projection norm counts, a NaN one is "not recorded"
    pn = np.full(5, np.nan)
    assert not divergence(steps, ok, ok, np.zeros(0), np.zeros(0), np.zeros(0), pn)[0]
    pn[4] = np.inf
    assert divergence(steps, ok, ok, np.zeros(0), np.zeros(0), np.zeros(0), pn)[0]


def _window(radius, loss, *, n=2000, start=2000, probes=None, **kw):
    """The verdict of a window of n steps from ``start`` with radius(t), loss(t) (AR(1)
    fluctuations of 0.1% and 5%) and tr Sigma probes every 200 steps."""
    rng = np.random.default_rng(0)
    t = np.arange(start, start + n, dtype=np.float64)
    r = radius(t) * (1 + 1e-3 * _ar1(rng, n))
    lo = loss(t) * (1 + 0.05 * _ar1(rng, n))
    blocks, _ = step_blocks(t, r, lo, C)
    ns = t[::200]
    ts = np.full(ns.size, 50.0) if probes is None else probes(ns)
    kw.setdefault("relaxation_time", 100.0)
    return verdict(start, int(t[-1]), blocks=blocks, radius=float(r.mean()),
                   energy=float(lo.mean()), noise_steps=ns, trace_sigma=ts,
                   trace_sigma_se=0.03 * ts, **kw)


def test_verdict_passes_a_stationary_window_and_names_each_failure():
    flat = _window(lambda t: 2.0 + 0 * t, lambda t: 1.0 + 0 * t)
    assert flat["reasons"] == [] and flat["warnings"] == []
    assert flat["window_tau"] == pytest.approx(1999 / 100) and flat["burn_in_tau"] == 20
    assert abs(flat["radius_drift"]) < 1e-3 and math.isnan(flat["pressure_drift"])

    def why(**kw):
        return " | ".join(_window(**{"radius": lambda t: 2.0 + 0 * t,
                                     "loss": lambda t: 1.0 + 0 * t, **kw})["reasons"])

    # halves' means 1000 steps apart: +0.05 / mean 2.15 = +2.3%
    assert "radius drifting: +2.3%" in why(radius=lambda t: 2.0 * (1 + 0.1 * t / 4000))
    # -0.1 over the window / mean 1.05 = -9.5%; the slope's SE is ~1.8% of the loss here
    trend = _window(lambda t: 2.0 + 0 * t, lambda t: 1.2 - 0.2 * t / 4000)
    assert trend["reasons"][0].startswith("loss trending: -")
    assert -0.15 < trend["loss_change"] < -0.04
    assert "temperature collapsing (interpolation)" in why(loss=lambda t: 1e-5 + 0 * t)
    assert "tr Sigma fell" in why(probes=lambda s: 50 * 10 ** (-s / 2000))
    msg = why(relaxation_time=2500.0)
    assert "window starts too early: 0.8" in msg and "window too short" in msg
    # the sphere: no window-vs-tau test, the pressure's excess r' - r is tested instead
    pb = 3.0 + np.linspace(0.003, 0.006, 20)
    sph = _window(lambda t: 3.0 + 0 * t, lambda t: 1.0 + 0 * t, radius_set=3.0,
                  pressure_blocks=pb, relaxation_time=1e6)
    assert sph["pressure_drift"] == pytest.approx(
        (pb[10:].mean() - pb[:10].mean()) / (pb - 3).mean())
    assert math.isnan(sph["radius_drift"])
    assert [m[:18] for m in sph["reasons"]] == ["pressure drifting:"]


def test_verdict_without_blocks_or_probes_and_when_diverged():
    few = verdict(10, 19, relaxation_time=1.0, blocks=None, radius=1.0, energy=1.0,
                  noise_steps=np.array([12.0]), trace_sigma=np.ones(1),
                  trace_sigma_se=np.ones(1))
    assert math.isnan(few["radius_drift"]) and math.isnan(few["noise_change"])
    assert few["warnings"] == ["fewer than 2 noise probes in the window: no noise-trend test"]
    one_half = verdict(10, 19, relaxation_time=1.0, blocks=None, radius=1.0, energy=1.0,
                       noise_steps=np.array([11.0, 12.0]), trace_sigma=np.ones(2),
                       trace_sigma_se=np.ones(2))
    assert one_half["warnings"][0].startswith("noise probes in only one half")
    blocks = Blocks(step=np.arange(4.0), radius=np.ones(4), loss=np.full(4, 1e-9))
    dead = verdict(0, 3, relaxation_time=np.nan, blocks=blocks, radius=1.0, energy=1e-9,
                   noise_steps=np.zeros(0), trace_sigma=np.zeros(0),
                   trace_sigma_se=np.zeros(0), diverged=True)
    assert dead["reasons"] == [] and dead["warnings"] == []
    assert math.isnan(dead["window_tau"]) and math.isnan(dead["loss_change"])
