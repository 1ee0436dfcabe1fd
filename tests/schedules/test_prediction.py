"""Tests of thermosgd.schedules.prediction: predictions checked on rows the fit did not see,
standard errors against the analytic delta method, recommendations as round trips through
predict, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tests.schedules.curves import CURVE, D, curve_rows, merge
from thermosgd import schedules as S


def test_fit_recovers_a_synthetic_curve_and_predicts_the_other_protocol():
    elr = curve_rows(CURVE, "elr", np.geomspace(0.004, 0.04, 5), np.geomspace(0.003, 0.03, 5))
    lr = curve_rows(CURVE, "lr", np.geomspace(0.5, 1.5, 4), np.geomspace(0.005, 0.01, 4))
    fit = S.fit_noise_curve(merge(elr, lr), ("elr",))
    x = np.log(np.geomspace(0.004, 0.04, 7))
    want = np.polyval(CURVE.sigma2_coef[::-1], x - np.log(CURVE.u_ref))
    np.testing.assert_allclose(np.log(fit.sigma2(np.exp(x))), want, atol=1e-10)
    assert fit.points == 25 and fit.u_min == pytest.approx(0.004)
    v = S.validate_predictions(fit, merge(elr, lr), "lr")
    assert v["n"] == 16 and v["n_extrapolated"] == 0
    assert v["radius"]["max"] < 1e-9 and v["temperature"]["max"] < 1e-9


def test_fit_uncertainty_is_propagated():
    rng = np.random.default_rng(1)
    t = curve_rows(CURVE, "elr", np.geomspace(0.004, 0.04, 6), [0.003, 0.01, 0.03])
    noise = 1 + 0.02 * rng.standard_normal(len(t["protocol"]))
    t["trace_sigma"] = t["trace_sigma"] * noise
    t["trace_sigma_se"] = 0.02 * t["trace_sigma"]
    fit = S.fit_noise_curve(t)  # Q without standard errors, on the curve: OLS, zero residual
    p = S.predict(fit, "lr", lr=[1.0, 2.0], wd=[0.01, 0.01])
    assert np.all(p["temperature_se"] > 0) and np.all(p["temperature_se"] < 0.05 * p["temperature"])
    # the radius depends on Q only, whose fit is exact: rounding-level error
    assert np.all(p["radius_se"] < 1e-8 * p["radius"])
    assert not p["extrapolated"].any()


def test_prediction_standard_error_matches_the_delta_method():
    """ELR: log T = log(elr/2) + sum_k c_k x^k is linear in the sigma2 coefficients, so
    var(log T) = v^T C v with v = (1, x, x^2) exactly; the numerical delta method must agree.
    log r^2 (exact=False) = log(elr/2) + log q(elr) - log(lambda) + const: the same with Q's
    C."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 3)) * 0.02
    cov_s, cov_q = a @ a.T, (a @ a.T)[::-1, ::-1].copy()
    curve = S.NoiseCurve(dim=D, sigma2_coef=CURVE.sigma2_coef, total_coef=CURVE.total_coef,
                         u_ref=CURVE.u_ref, u_min=0.004, u_max=0.04, sigma2_cov=cov_s,
                         total_cov=cov_q)
    elr = np.array([0.005, 0.01, 0.03])
    p = S.predict(curve, "elr", elr=elr, wd=0.01, exact=False)
    v = np.vander(np.log(elr / CURVE.u_ref), 3, increasing=True)
    np.testing.assert_allclose(p["temperature_se"] / p["temperature"],
                               np.sqrt(np.einsum("ij,jk,ik->i", v, cov_s, v)), rtol=1e-6)
    np.testing.assert_allclose(p["radius_se"] / p["radius"],
                               np.sqrt(np.einsum("ij,jk,ik->i", v, cov_q, v)) / 2, rtol=1e-6)


@pytest.mark.parametrize("protocol", ["lr", "elr"])
@pytest.mark.parametrize("exact", [False, True])
def test_recommend_round_trips(protocol, exact):
    rate = {"lr": "lr", "elr": "elr"}[protocol]
    base = S.predict(CURVE, protocol, wd=0.01, exact=exact, **{rate: 1.0 if protocol == "lr"
                                                                 else 0.01})
    t, r = float(base["temperature"]), float(base["radius"])
    combos = [{"target_temperature": t, "target_radius": r},
              {"target_temperature": t, "wd": 0.01},
              {"target_radius": r, "wd": 0.01},
              {"target_radius": r, rate: float(base[rate])}]
    if protocol == "lr":
        combos.append({"target_temperature": t, "lr": 1.0})
    for kw in combos:
        rec = S.recommend(CURVE, protocol, exact=exact, **kw)
        back = S.predict(CURVE, protocol, wd=rec["wd"], exact=exact, **{rate: rec[rate]})
        np.testing.assert_allclose(back["temperature"], t, rtol=1e-9, err_msg=str(kw))
        np.testing.assert_allclose(back["radius"], r, rtol=1e-9, err_msg=str(kw))


def test_recommend_unreachable_is_nan():
    rec = S.recommend(CURVE, "lr", target_temperature=[1.3e-4, 1.0], wd=0.01)
    assert np.isfinite(rec["lr"][0]) and np.isnan(rec["lr"][1])


def test_temperature_range_brackets_the_curve():
    tr = S.temperature_range(CURVE)
    elr = np.geomspace(*CURVE.domain, 4097)
    t = elr * CURVE.sigma2(elr) / 2
    assert tr["t_min"] == pytest.approx(t.min(), rel=1e-12)
    assert tr["t_max"] == pytest.approx(t.max(), rel=1e-5)  # grid 1025 vs 4097 at the peak
    assert CURVE.domain[0] < tr["elr_at_t_max"] < CURVE.domain[1]


def test_prediction_columns_keep_their_written_names():
    p = S.predict(CURVE, "lr", lr=[1.0, 2.0], wd=0.01)
    cols = S.prediction_columns(p, "lr")
    assert list(cols) == ["lr", "wd", "elr_predicted", "radius", "radius_se", "temperature",
                          "temperature_se", "tau", "extrapolated"]
    np.testing.assert_array_equal(cols["elr_predicted"], p["elr"])
    p = S.predict(CURVE, "elr", elr=0.01, wd=0.01)
    assert list(S.prediction_columns(p, "elr"))[:3] == ["elr", "wd", "lr_predicted"]
    text = S.format_columns({"a": np.array([1.0, np.nan]), "b": np.array([True, False])})
    assert text.splitlines() == ["  a    b", "  1  yes", "n/a   no"]


@pytest.mark.parametrize("call, match", [
    (lambda: S.predict(CURVE, "lr", elr=0.01, wd=0.01), "needs lr"),
    (lambda: S.predict(CURVE, "elr", elr=0.01, lr=1.0, wd=0.01), "takes elr"),
    (lambda: S.predict(CURVE, "lr", lr=-1.0, wd=0.01), r"lr == -1.0, must be > 0"),
    (lambda: S.predict(CURVE, "sphere", elr=0.01, wd=0.01), r"protocol == 'sphere'"),
    (lambda: S.recommend(CURVE, "lr", target_temperature=1e-4), "exactly two"),
    (lambda: S.recommend(CURVE, "elr", target_temperature=1e-4, elr=0.01), "elr only"),
    (lambda: S.recommend(CURVE, "lr", lr=1.0, wd=0.01), "use predict"),
    (lambda: S.recommend(CURVE, "lr", elr=1.0, wd=0.01), "takes lr, not elr"),
    (lambda: S.recommend(CURVE, "lr", target_radius=-1.0, wd=0.01),
     r"target_radius == -1.0, must be > 0"),
    (lambda: S.validate_predictions(CURVE, curve_rows(CURVE, "elr", [0.01], [0.01]), "lr"),
     "no stationary 'lr' rows"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
