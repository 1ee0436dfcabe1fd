"""Tests for thermosgd.estimators.stationarity: batch means, window selection, the verdict."""

import math

import numpy as np
import pytest

from thermosgd.estimators.stationarity import (
    Blocks,
    StationarityCriteria,
    _batch_means,
    _combine_probes,
    _halves,
    _mean_se,
    _slope,
    divergence,
    even_blocks,
    select_window,
    step_blocks,
    verdict,
)

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
