"""Tests of thermosgd.schedules.noise_curve: the points of a results table (column
fallbacks), the fit against a known synthetic curve, round trips, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tests.schedules.curves import CURVE, curve_rows, merge
from thermosgd import schedules as S


def test_fit_recovers_a_synthetic_curve():
    elr = curve_rows(CURVE, "elr", np.geomspace(0.004, 0.04, 5), np.geomspace(0.003, 0.03, 5))
    lr = curve_rows(CURVE, "lr", np.geomspace(0.5, 1.5, 4), np.geomspace(0.005, 0.01, 4))
    fit = S.fit_noise_curve(merge(elr, lr), ("elr",))
    x = np.log(np.geomspace(0.004, 0.04, 7))
    want = np.polyval(CURVE.sigma2_coef[::-1], x - np.log(CURVE.u_ref))
    np.testing.assert_allclose(np.log(fit.sigma2(np.exp(x))), want, atol=1e-10)
    want = np.polyval(CURVE.total_coef[::-1], x - np.log(CURVE.u_ref))
    np.testing.assert_allclose(np.log(fit.trace_total(np.exp(x)) / (CURVE.dim - 1)), want,
                               atol=1e-10)
    assert fit.points == 25 and fit.u_min == pytest.approx(0.004)


def test_noise_points_columns_and_fallbacks():
    """elr_measured from the elr_measured column, else elr_effective, else elr ("elr" rows)
    or lr / r^2 ("lr" rows); q from trace_total, else trace_sigma + grad_norm2; the
    temperature of the directions elr_measured sigma2 / 2; non-stationary rows dropped."""
    d = 11
    table = {"protocol": np.array(["lr", "lr", "elr", "elr", "sphere"]),
             "lr": np.array([1.0, 2.0, np.nan, np.nan, np.nan]),
             "elr": np.array([np.nan, np.nan, 0.03, 0.05, 0.1]),
             "radius": np.array([5.0, 4.0, 2.0, 3.0, 1.0]),
             "wd": np.full(5, 0.01), "dim": np.full(5, float(d)),
             "elr_effective": np.array([0.041, np.nan, 0.031, np.nan, 0.1]),
             "trace_sigma": np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
             "grad_norm2": np.array([0.5, 0.5, 0.5, 0.5, 0.5]),
             "trace_total": np.array([np.nan, 3.0, np.nan, 5.0, 6.0]),
             "stationary": np.array(["True", "true", "1", "False", "True"])}
    pts = S.noise_points(table, ("lr", "elr"))
    np.testing.assert_array_equal(pts["protocol"], ["lr", "lr", "elr"])
    np.testing.assert_array_equal(pts["elr_measured"], [0.041, 2.0 / 16.0, 0.031])
    np.testing.assert_array_equal(pts["sigma2"], np.array([1.0, 2.0, 3.0]) / (d - 1))
    np.testing.assert_array_equal(pts["q"], np.array([1.5, 3.0, 3.5]) / (d - 1))
    np.testing.assert_array_equal(pts["temperature"], pts["elr_measured"] * pts["sigma2"] / 2)
    # the spec's name of the measured column takes precedence over the older one
    renamed = {**table, "elr_measured": np.array([0.042, np.nan, 0.032, np.nan, 0.1])}
    pts = S.noise_points(renamed, ("lr", "elr"))
    np.testing.assert_array_equal(pts["elr_measured"], [0.042, 2.0 / 16.0, 0.032])
    assert len(S.noise_points(table, ("lr", "elr"), stationary_only=False)["q"]) == 4


def test_noise_curve_dict_round_trip():
    c = S.NoiseCurve.from_dict(CURVE.to_dict())
    np.testing.assert_array_equal(c.sigma2([0.01, 0.02]), CURVE.sigma2([0.01, 0.02]))
    # the keys of the written schedule.json / prediction.json "noise" documents
    assert {"u_ref", "u_min", "u_max", "sigma2_coef", "total_coef"} <= set(CURVE.to_dict())


def test_constant_curve_and_slopes():
    c = S.NoiseCurve.constant(0.05, 11, trace_total=2.0)
    np.testing.assert_allclose(c.sigma2([1e-3, 1.0]), 0.05, rtol=1e-15)
    np.testing.assert_allclose(c.trace_total([1e-3, 1.0]), 2.0, rtol=1e-15)
    assert np.all(c.slope_total([1e-3, 1.0]) == 0)
    # d log q / d log elr of CURVE by central differences
    e, h = 0.01, 1e-5
    fd = (np.log(CURVE.trace_total(e * np.exp(h))) - np.log(CURVE.trace_total(e * np.exp(-h))))
    assert float(CURVE.slope_total(e)) == pytest.approx(fd / (2 * h), rel=1e-8)


@pytest.mark.parametrize("call, match", [
    (lambda: S.fit_noise_curve({"protocol": np.array(["lr"])}), "usable row"),
    (lambda: S.fit_noise_curve({"x": 1}), "protocol"),
    (lambda: S.fit_noise_curve(curve_rows(CURVE, "elr", [0.01, 0.02], [0.01]), degree=5),
     r"degree == 5, must be <= 3"),
    (lambda: S.noise_points({"protocol": np.array(["lr"])}, ("sphere",)),
     r"protocol == 'sphere', must be one of lr, elr"),
    (lambda: S.NoiseCurve(dim=1, sigma2_coef=[0.0], total_coef=[0.0]),
     r"dim == 1, must be >= 2"),
    (lambda: S.NoiseCurve(dim=3, sigma2_coef=[], total_coef=[0.0]), "at least one"),
    (lambda: S.NoiseCurve(dim=3, sigma2_coef=[0.0], total_coef=[0.0], u_min=2.0, u_max=1.0),
     r"u_max == 1.0, must be >= 2.0"),
    (lambda: S.NoiseCurve(dim=3, sigma2_coef=[0.0], total_coef=[0.0], extrapolate=0.5),
     r"extrapolate == 0.5, must be >= 1.0"),
    (lambda: S.NoiseCurve(dim=3, sigma2_coef=[0.0], total_coef=[0.0],
                          sigma2_cov=np.zeros((2, 2))), "must be 1x1"),
    (lambda: CURVE.sigma2(-1.0), r"elr == -1.0, must be > 0"),
    (lambda: S.NoiseCurve.constant(0.0, 3), r"sigma2 == 0.0, must be > 0"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
