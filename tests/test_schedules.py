"""Tests of thermosgd.schedules: closed forms against theory.py, the vectorized paths against
brute-force loops and an isotropic simulation, solvers against round trips, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thermosgd import schedules as S
from thermosgd import theory

D = 3072
# A curve shaped like the cpu preset's BN-MLP fit: log sigma2 and log q quadratic in log u.
CURVE = S.NoiseCurve(dim=D, sigma2_coef=np.array([-3.84, -0.85, -0.16]),
                     total_coef=np.array([-3.58, -0.81, -0.14]), u_ref=0.0125,
                     u_min=0.004, u_max=0.04)


def _curve_rows(curve: S.NoiseCurve, protocol: str, rate, wd, exact=True) -> dict:
    """A synthetic results table whose rows sit exactly on ``curve``."""
    rate, wd = (np.asarray(a, float).ravel() for a in np.meshgrid(rate, wd))
    kw = {"lr": rate} if protocol == "lr" else {"elr": rate}
    st = S.predict(curve, protocol, wd=wd, exact=exact, **kw)
    u = st["elr"]
    n = len(u)
    nan = np.full(n, np.nan)
    return {"protocol": np.full(n, protocol), "lr": rate if protocol == "lr" else nan,
            "elr": rate if protocol == "elr" else nan, "wd": wd,
            "radius": st["radius"], "elr_effective": u, "dim": np.full(n, float(curve.dim)),
            "trace_sigma": curve.sigma2(u) * (curve.dim - 1),
            "trace_total": curve.trace_total(u), "stationary": np.full(n, True)}


def _merge(*tables):
    keys = set().union(*tables)
    n = [len(t["protocol"]) for t in tables]
    return {k: np.concatenate([t.get(k, np.full(m, np.nan))
                               for t, m in zip(tables, n, strict=True)]) for k in keys}


# ----------------------------------------------------------------------------- schedules


def test_common_schedules():
    np.testing.assert_array_equal(S.constant(3, 0.5), [0.5, 0.5, 0.5])
    # MultiStepLR: value * gamma^(number of milestones <= t)
    np.testing.assert_allclose(S.step_decay(6, 1.0, milestones=[2, 4], gamma=0.5),
                               [1, 1, 0.5, 0.5, 0.25, 0.25])
    c = S.cosine(4, 1.0, final=0.2)
    np.testing.assert_allclose(c, 0.2 + 0.8 * (1 + np.cos(np.pi * np.arange(4) / 4)) / 2)
    assert c[0] == 1.0 and np.all(c > 0.2)
    w = S.linear_warmup(np.ones(5), 4)
    np.testing.assert_allclose(w, [0.25, 0.5, 0.75, 1, 1])
    np.testing.assert_allclose(S.make_schedule("step", 6, 2.0, milestones=[3], warmup=2),
                               [1.0, 2.0, 2.0, 0.2, 0.2, 0.2])


@pytest.mark.parametrize("call, match", [
    (lambda: S.constant(0, 1.0), "steps"),
    (lambda: S.constant(3, -1.0), "value"),
    (lambda: S.step_decay(5, 1.0, milestones=[5]), "milestones"),
    (lambda: S.cosine(5, 1.0, final=1.0), "final"),
    (lambda: S.linear_warmup(np.ones(3), 2, start=2.0), "start"),
    (lambda: S.make_schedule("linear", 5, 1.0), "schedule"),
    (lambda: S.make_schedule("step", 5, 1.0), "milestones"),
    (lambda: S.Process("sphere", 1.0, 1.0), "protocol"),
    (lambda: S.Process("lr", [1.0, np.nan], 1.0), "finite"),
    (lambda: S.Process("lr", np.ones(3), np.ones(2)), "broadcast"),
])
def test_bad_schedules(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- equilibrium


@pytest.mark.parametrize("exact", [False, True])
def test_equilibrium_matches_theory_constant_noise(exact):
    sigma2, gn2 = 0.05, 40.0
    q = (D - 1) * sigma2 + gn2
    curve = S.NoiseCurve.constant(sigma2, D, trace_total=q)
    lr, wd = np.array([0.3, 1.0, 3.0]), np.array([0.003, 0.01, 0.03])
    eq = S.equilibrium(S.Process("lr", lr, wd), curve, exact=exact)
    r = theory.radius_discrete("lr", trace_sigma=(D - 1) * sigma2, grad_norm2=gn2, lr=lr, wd=wd,
                               exact=exact)
    np.testing.assert_allclose(eq["radius"], r, rtol=1e-12)
    np.testing.assert_allclose(eq["elr"], lr / r**2, rtol=1e-12)
    np.testing.assert_allclose(eq["temperature"], lr / r**2 * sigma2 / 2, rtol=1e-12)
    s = theory.full_entropy(theory.equipartition_entropy(eq["temperature"], D), r, D)
    np.testing.assert_allclose(eq["entropy"], s, rtol=1e-12)
    np.testing.assert_allclose(eq["tau"], theory.relaxation_time("lr", lr=lr, wd=wd))
    elr = np.array([0.004, 0.01, 0.04])
    eq = S.equilibrium(S.Process("elr", elr, wd), curve, exact=exact)
    r = theory.radius_discrete("elr", trace_sigma=(D - 1) * sigma2, grad_norm2=gn2, elr=elr,
                               wd=wd, exact=exact)
    np.testing.assert_allclose(eq["radius"], r, rtol=1e-12)
    np.testing.assert_allclose(eq["temperature"], theory.temperature_elr(elr, sigma2))
    np.testing.assert_allclose(eq["tau"], theory.relaxation_time("elr", elr=elr,
                                                                  trace_total=q))


def test_sde_equilibrium_is_the_ideal_gas():
    """No gradient term, exact=False: the paper's table (T_lr, r_sde, pV = (d-1)T/2)."""
    curve = S.NoiseCurve.constant(0.02, 100)
    lr, wd = np.array([0.1, 0.5]), np.array([0.01, 0.002])
    eq = S.equilibrium(S.Process("lr", lr, wd), curve, exact=False)
    np.testing.assert_allclose(eq["temperature"], theory.temperature_lr(lr, wd, 0.02, 100),
                               rtol=1e-12)
    np.testing.assert_allclose(eq["radius"], theory.radius_sde("lr", sigma2=0.02, dim=100,
                                                               lr=lr, wd=wd), rtol=1e-12)
    np.testing.assert_allclose(eq["pressure"] * eq["volume"], 99 * eq["temperature"] / 2,
                               rtol=1e-12)


def test_relaxation_time_with_noise_slope_linearizes_the_ode():
    """tau = 1 / (4 eta lambda (1 + s/2)) against a finite-difference linearization of
    d r^4/dt = -4 eta lambda r^4 + 2 eta^2 Q(eta / r^2) at its zero."""
    lr, wd = 1.0, 0.01
    eq = S.equilibrium(S.Process("lr", lr, wd), CURVE, exact=False)
    x = float(eq["radius"][0]) ** 4

    def f(x):
        return -4 * lr * wd * x + 2 * lr**2 * CURVE.trace_total(lr / np.sqrt(x))

    assert abs(f(x)) < 1e-9 * 4 * lr * wd * x  # the equilibrium is a zero
    h = 1e-4 * x
    rate = -(f(x + h) - f(x - h)) / (2 * h)
    np.testing.assert_allclose(eq["tau"][0], 1 / rate, rtol=1e-6)  # O(h^2) difference
    assert eq["tau"][0] > theory.relaxation_time("lr", lr=lr, wd=wd)  # s < 0 slows it down


# ----------------------------------------------------------------------------- lagged path


def test_lagged_path_matches_a_brute_force_loop():
    n = 400
    rates = np.stack([S.step_decay(n, 3.0, milestones=[100], gamma=0.1),
                      S.cosine(n, 2.0, final=0.2)])
    wd = np.array([[0.01], [0.02]])
    proc = S.Process("lr", rates, wd)
    path = S.lagged_path(proc, CURVE, init_radius=[5.0, 6.0])
    for k in range(2):
        r2 = [[5.0, 6.0][k] ** 2]
        lam = float(wd[k, 0])
        for t in range(n - 1):
            eta = float(rates[k, t])
            q = float(CURVE.trace_total(eta / r2[-1]))
            r2.append((1 - eta * lam) ** 2 * r2[-1] + eta**2 * q / r2[-1])
        np.testing.assert_allclose(path["volume"][k], np.array(r2) / 2, rtol=1e-12)
    # elr: eta_t = elr_t r_t^2, Q from the schedule alone
    elr = S.cosine(n, 0.04, final=0.004)
    path = S.lagged_path(S.Process("elr", elr, 0.01), CURVE, init_radius=3.0)
    r2 = 9.0
    for t in range(n - 1):
        eta = elr[t] * r2
        r2 = (1 - eta * 0.01) ** 2 * r2 + eta**2 * float(CURVE.trace_total(elr[t])) / r2
    np.testing.assert_allclose(path["volume"][-1], r2 / 2, rtol=1e-12)


def test_lagged_path_with_relaxing_noise():
    n = 600
    proc = S.Process("lr", S.step_decay(n, 3.0, milestones=[200], gamma=0.1), 0.01)
    h = 0.2
    path = S.lagged_path(proc, CURVE, init_radius=8.0, angular_rate=h)
    r2, q, s2 = 64.0, None, None
    for t in range(n):  # brute force
        u = 3.0 * (0.1 if t >= 200 else 1.0) / r2
        if q is None:
            q, s2 = float(CURVE.trace_total(u)), float(CURVE.sigma2(u))
        assert path["volume"][t] == pytest.approx(r2 / 2, rel=1e-12)
        assert path["temperature"][t] == pytest.approx(u * s2 / 2, rel=1e-12)
        eta = 3.0 * (0.1 if t >= 200 else 1.0)
        k = min(1.0, h * u)
        r2, q, s2 = ((1 - eta * 0.01) ** 2 * r2 + eta**2 * q / r2,
                     q + k * (float(CURVE.trace_total(u)) - q),
                     s2 + k * (float(CURVE.sigma2(u)) - s2))
    # h -> 0: Q frozen at its initial value, the same as driving the map with that constant
    frozen = S.lagged_path(proc, CURVE, init_radius=8.0, angular_rate=1e-300)
    q0 = float(CURVE.trace_total(3.0 / 64.0))
    fixed = S.lagged_path(proc, CURVE, init_radius=8.0, trace_total=q0)
    np.testing.assert_allclose(frozen["volume"], fixed["volume"], rtol=1e-12)
    # fast relaxation on a smooth schedule: the instantaneous path, except that Q_t is
    # Q(u_{t-1}); the delay shifts V by ~ tau |dlog Q/dt| <~ 1% (tau ~ 30 steps here)
    smooth = S.Process("lr", S.cosine(n, 3.0, final=0.3), 0.01)
    fast = S.lagged_path(smooth, CURVE, angular_rate=1e6)
    inst = S.lagged_path(smooth, CURVE)
    np.testing.assert_allclose(fast["volume"], inst["volume"], rtol=1e-2)
    with pytest.raises(ValueError, match="not both"):
        S.lagged_path(proc, CURVE, trace_total=q0, angular_rate=h)


def test_lagged_path_follows_the_sde_solution():
    """Constant noise, small eta lambda: d r^4/dt = -4 eta lambda (r^4 - r*^4) solved exactly
    per step; the one-step map differs by O(eta lambda) = 1e-3 relative."""
    curve = S.NoiseCurve.constant(0.05, 500)
    n, wd = 3000, 0.001
    lr = S.step_decay(n, 1.0, milestones=[1000], gamma=0.2)
    path = S.lagged_path(S.Process("lr", lr, wd), curve, exact=False)
    x = np.empty(n)
    x[0] = path["radius"][0] ** 4
    for t in range(n - 1):
        xs = lr[t] * 499 * 0.05 / (2 * wd)
        x[t + 1] = xs + (x[t] - xs) * math.exp(-4 * lr[t] * wd)
    np.testing.assert_allclose(path["radius"] ** 4, x, rtol=2e-3)
    eq = S.equilibrium(S.Process("lr", lr, wd), curve, exact=False)
    assert path["volume"][1100] / eq["volume"][1100] - 1 > 0.1  # visibly lagging


def test_sde_path_is_the_exact_per_step_solution():
    """Vectorized over steps (blocks of the linear recurrence) against a step loop of the
    exact per-step solution, 1e-10; with a long schedule that forces several blocks."""
    n = 20000
    lr = np.stack([S.step_decay(n, 1.0, milestones=[5000], gamma=0.2),
                   S.cosine(n, 2.0, final=0.1)])
    curve = S.NoiseCurve.constant(0.05, 500, trace_total=30.0)
    proc = S.Process("lr", lr, 0.01)
    path = S.sde_path(proc, curve, init_radius=[2.0, 9.0])
    for k, r0 in enumerate((2.0, 9.0)):
        x = [r0**4]
        for t in range(n - 1):
            xs = lr[k, t] * 30.0 / (2 * 0.01)
            x.append(xs + (x[-1] - xs) * math.exp(-4 * lr[k, t] * 0.01))
        np.testing.assert_allclose(path["radius"][k] ** 4, x, rtol=1e-10)
    elr = S.cosine(n, 0.04, final=0.004)
    path = S.sde_path(S.Process("elr", elr, 0.02), CURVE, init_radius=1.0)
    v = [1.0]
    for t in range(n - 1):
        q = float(CURVE.trace_total(elr[t]))
        vs = 2 * 0.02 / (elr[t] * q)
        v.append(vs + (v[-1] - vs) * math.exp(-elr[t] ** 2 * q))
    np.testing.assert_allclose(1 / path["radius"] ** 2, v, rtol=1e-10)
    # the one-step map differs by O(eta lambda) (elr^2 Q <= 0.05 here): within 5%
    lag = S.lagged_path(S.Process("elr", elr, 0.02), CURVE, init_radius=1.0)
    np.testing.assert_allclose(lag["volume"], path["volume"], rtol=0.05)
    with pytest.raises(ValueError, match="nonlinear"):
        S.sde_path(proc, CURVE)


def test_lagged_path_on_the_isotropic_model():
    """Independent check: 64 chains of SGD with weight decay under pure isotropic tangent noise
    (per-direction std sigma / r, d = 400) through a step decay; the mean r^2 follows the
    radial map. Tolerance 1.5%: the relative sd of r^2 across chains is ~2%, of its mean over
    64 chains ~0.3%; the map neglects Jensen terms O(var(r^2)/r^4) ~ 4e-4."""
    rng = np.random.default_rng(0)
    d, sigma, chains, n = 400, 0.3, 64, 1500
    lr = S.step_decay(n, 0.5, milestones=[300], gamma=0.1)
    wd = 0.01
    curve = S.NoiseCurve.constant(sigma**2, d)
    path = S.lagged_path(S.Process("lr", lr, wd), curve, exact=True)
    w = rng.standard_normal((chains, d))
    w *= path["radius"][0] / np.linalg.norm(w, axis=1, keepdims=True)
    r2 = np.empty(n)
    for t in range(n):
        rr = np.sum(w * w, axis=1, keepdims=True)
        r2[t] = rr.mean()
        xi = rng.standard_normal((chains, d)) * sigma
        xi -= np.sum(xi * w, axis=1, keepdims=True) / rr * w  # tangent
        g = xi / np.sqrt(rr)
        w = w - lr[t] * (g + wd * w)
    np.testing.assert_allclose(r2[::50], 2 * path["volume"][::50], rtol=0.015)
    eq = S.equilibrium(S.Process("lr", lr, wd), curve)
    k = 400  # 100 steps after the drop: far from the equilibrium curve, on the lagged path
    assert abs(r2[k] / (2 * eq["volume"][k]) - 1) > 0.2


def test_lag_measures_against_analytic_derivative_and_first_order_gap():
    curve = S.NoiseCurve.constant(0.05, 1000)
    n, wd = 4000, 0.01
    lr = S.cosine(n, 1.0, final=0.1)
    proc = S.Process("lr", lr, wd)
    eq = S.equilibrium(proc, curve)  # exact: the fixed point of the one-step map
    path = S.lagged_path(proc, curve)
    m = S.lag_measures(path["volume"], eq["volume"], eq["tau"])
    t = np.arange(n)
    # V_eq ~ sqrt(eta / lambda) up to the factor (2 / (2 - eta lambda))^(1/4):
    # d log V_eq / dt = (d eta/dt) / (2 eta) + (d eta/dt) lambda / (2 (2 - eta lambda))
    deta = -(1.0 - 0.1) * np.pi / (2 * n) * np.sin(np.pi * t / n)
    exact = deta / (2 * lr) + deta * wd / (2 * (2 - lr * wd))
    # central differences: error ~ (pi/n)^2 / 6 relative inside, one-sided at the ends
    np.testing.assert_allclose(m["dlogV_eq_dt"][1:-1], exact[1:-1], rtol=1e-5, atol=1e-12)
    # first-order gap -tau dlogV_eq/dt: error O(eps^2) plus a floor O(eta lambda) ~ 1e-4
    # from linearizing the discrete map. It holds while the drive changes slowly; in the last
    # ~500 steps the cosine flattens within a few tau and the gap outlives its cause.
    k = slice(0, 3500)
    eps = m["quasi_static"][k]
    assert 0.05 < eps.max() < 0.2
    err = np.abs(m["gap"][k] - m["gap_first_order"][k])
    assert np.all(err <= 2 * eps**2 + 3e-4)
    assert m["gap"][3999] > 0.05 and abs(m["gap_first_order"][3999]) < 1e-3


# ----------------------------------------------------------------------------- processes


@pytest.mark.parametrize("protocol, rate0", [("lr", 1.0), ("elr", 0.01)])
def test_isothermal_and_isobaric(protocol, rate0):
    wd = np.geomspace(0.003, 0.03, 50)
    proc = S.isothermal(protocol, wd, rate0=rate0)
    eq = S.equilibrium(proc, CURVE)
    np.testing.assert_allclose(eq["temperature"], eq["temperature"][0], rtol=1e-12)
    temps = np.linspace(1.0e-4, 1.3e-4, 20)  # T(u) of CURVE peaks at 1.39e-4
    proc = S.isobaric(protocol, temps, 0.01, CURVE)
    eq = S.equilibrium(proc, CURVE)
    np.testing.assert_allclose(eq["temperature"], temps, rtol=1e-10)
    np.testing.assert_array_equal(proc.wd, 0.01)


@pytest.mark.parametrize("protocol, rate0", [("lr", 1.0), ("elr", 0.01)])
@pytest.mark.parametrize("exact", [False, True])
def test_adiabatic_keeps_entropy(protocol, rate0, exact):
    # S = A(u) - (d-1)/2 log(lambda), and A(u) of CURVE peaks at u ~ 0.022 just above the
    # starting u: lowering lambda 2.5x lowers u along the branch (raising it is out of reach)
    wd = np.geomspace(0.01, 0.004, 64)
    proc = S.adiabatic(protocol, wd, rate0=rate0, noise=CURVE, exact=exact)
    s = S.equilibrium(proc, CURVE, exact=exact)["entropy"]
    np.testing.assert_allclose(s, s[0], rtol=1e-10, atol=0)
    assert proc.rate[0] == pytest.approx(rate0, rel=1e-12)


def test_adiabatic_closed_forms_for_constant_noise():
    curve = S.NoiseCurve.constant(0.05, 50)
    wd = np.geomspace(0.001, 0.1, 30)
    lr = S.adiabatic("lr", wd, rate0=0.7, noise=curve, exact=False)
    np.testing.assert_allclose(lr.rate, 0.7, rtol=1e-10)  # T V = eta sigma2 / 4
    elr = S.adiabatic("elr", wd, rate0=0.02, noise=curve, exact=False)
    np.testing.assert_allclose(elr.rate, 0.02 * np.sqrt(wd / wd[0]), rtol=1e-10)
    eq = S.equilibrium(elr, curve, exact=False)
    tv = eq["temperature"] * eq["volume"]
    np.testing.assert_allclose(tv, tv[0], rtol=1e-10)  # the adiabat is T V = const
    pv2 = eq["pressure"] * eq["volume"] ** 2
    np.testing.assert_allclose(pv2, pv2[0], rtol=1e-10)  # p V^2 = const


# ----------------------------------------------------------------------------- fit, predict


def test_fit_recovers_a_synthetic_curve_and_predicts_the_other_protocol():
    elr = _curve_rows(CURVE, "elr", np.geomspace(0.004, 0.04, 5), np.geomspace(0.003, 0.03, 5))
    lr = _curve_rows(CURVE, "lr", np.geomspace(0.5, 1.5, 4), np.geomspace(0.005, 0.01, 4))
    fit = S.fit_noise_curve(_merge(elr, lr), ("elr",))
    x = np.log(np.geomspace(0.004, 0.04, 7))
    want = np.polyval(CURVE.sigma2_coef[::-1], x - np.log(CURVE.u_ref))
    np.testing.assert_allclose(np.log(fit.sigma2(np.exp(x))), want, atol=1e-10)
    assert fit.points == 25 and fit.u_min == pytest.approx(0.004)
    v = S.validate_predictions(fit, _merge(elr, lr), "lr")
    assert v["n"] == 16 and v["n_extrapolated"] == 0
    assert v["radius"]["max"] < 1e-9 and v["temperature"]["max"] < 1e-9


def test_fit_uncertainty_is_propagated():
    rng = np.random.default_rng(1)
    t = _curve_rows(CURVE, "elr", np.geomspace(0.004, 0.04, 6), [0.003, 0.01, 0.03])
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
    """ELR: log T = log(u/2) + sum_k c_k x^k is linear in the sigma2 coefficients, so
    var(log T) = v^T C v with v = (1, x, x^2) exactly; the numerical delta method must agree.
    log r^2 (exact=False) = log(u/2) + log q(u) - log(lambda) + const: the same with Q's C."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 3)) * 0.02
    cov_s, cov_q = a @ a.T, (a @ a.T)[::-1, ::-1].copy()
    curve = S.NoiseCurve(dim=D, sigma2_coef=CURVE.sigma2_coef, total_coef=CURVE.total_coef,
                         u_ref=CURVE.u_ref, u_min=0.004, u_max=0.04, sigma2_cov=cov_s,
                         total_cov=cov_q)
    u = np.array([0.005, 0.01, 0.03])
    p = S.predict(curve, "elr", elr=u, wd=0.01, exact=False)
    v = np.vander(np.log(u / CURVE.u_ref), 3, increasing=True)
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


@pytest.mark.parametrize("call, match", [
    (lambda: S.predict(CURVE, "lr", elr=0.01, wd=0.01), "needs lr"),
    (lambda: S.predict(CURVE, "elr", elr=0.01, lr=1.0, wd=0.01), "takes elr"),
    (lambda: S.predict(CURVE, "lr", lr=-1.0, wd=0.01), "lr must be > 0"),
    (lambda: S.recommend(CURVE, "lr", target_temperature=1e-4), "exactly two"),
    (lambda: S.recommend(CURVE, "elr", target_temperature=1e-4, elr=0.01), "elr only"),
    (lambda: S.recommend(CURVE, "lr", lr=1.0, wd=0.01), "use predict"),
    (lambda: S.equilibrium(S.Process("lr", 1.0, 0.01), CURVE, dim=10), "differs"),
    (lambda: S.equilibrium(S.Process("lr", 1.0, 0.01), 0.05), "needs dim"),
    (lambda: S.fit_noise_curve({"protocol": np.array(["lr"])}), "usable row"),
    (lambda: S.fit_noise_curve({"x": 1}), "protocol"),
    (lambda: S.fit_noise_curve(_curve_rows(CURVE, "elr", [0.01, 0.02], [0.01]), degree=5),
     "degree"),
    (lambda: S.NoiseCurve(dim=1, sigma2_coef=[0.0], total_coef=[0.0]), "dim"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_noise_curve_dict_round_trip():
    c = S.NoiseCurve.from_dict(CURVE.to_dict())
    np.testing.assert_array_equal(c.sigma2([0.01, 0.02]), CURVE.sigma2([0.01, 0.02]))


# ----------------------------------------------------------------------------- tracking


def test_analyze_track_is_consistent_on_synthetic_records():
    """Records that follow the predicted lagged path exactly have gap == gap_lag."""
    cfg = S.TrackConfig(schedule="step", lr=3.0, wd=0.01, steps=600, milestones=(200,),
                        burn_in=0, log_every=10, noise_every=50)
    proc = cfg.process()
    lag = S.lagged_path(proc, CURVE, init_radius=8.0)
    steps = np.arange(0, 600, 10)
    pst = np.arange(0, 600, 50)
    u = proc.rate[pst] / lag["radius"][pst] ** 2
    records = {"step": steps.astype(float), "radius": lag["radius"][steps],
               "loss": np.ones(len(steps))}
    probes = {"step": pst.astype(float), "radius": lag["radius"][pst],
              "trace_sigma": CURVE.sigma2(u) * (D - 1), "trace_sigma_se": np.zeros(len(pst)),
              "grad_norm2": np.zeros(len(pst)), "trace_total": CURVE.trace_total(u),
              "trace_total_se": np.zeros(len(pst))}
    res = S.analyze_track(cfg, proc, records, probes, D, CURVE)
    r = res["records"]
    np.testing.assert_allclose(r["gap"], r["gap_lag"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res["probes"]["temperature"], res["probes"]["temperature_lag"],
                               rtol=1e-12)
    assert res["summary"]["volume_rms_rel_error_lagged"] < 1e-12
    assert res["summary"]["milestone"] == 200


def test_track_tiny_run():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    cfg = S.TrackConfig(schedule="cosine", lr=1.0, wd=0.01, steps=200, burn_in=50,
                        hidden=(8,), log_every=10, noise_every=40, noise_batches=4,
                        batch_size=32)
    res = S.track(cfg)  # noise curve fitted to the run's own probes
    r, p = res["records"], res["probes"]
    assert len(r["step"]) == 20 and len(p["step"]) == 5
    assert res["dim"] == 64 * 8
    assert np.all(r["radius"] > 0) and np.all(np.isfinite(r["volume_lag"]))
    assert np.all(np.isfinite(p["temperature"])) and np.all(p["temperature"] > 0)
    assert set(res["summary"]) >= {"max_abs_gap_measured", "volume_rms_rel_error_lagged"}


@pytest.mark.parametrize("kw, match", [
    ({"protocol": "elr"}, "needs elr"),
    ({"lr": 1.0, "elr": 0.1}, "takes lr only"),
    ({"schedule": "linear"}, "schedule"),
    ({"noise_every": 15}, "multiple"),
    ({"final": 1.5}, "final"),
    ({"schedule": "step"}, "milestones"),
])
def test_bad_track_config(kw, match):
    with pytest.raises(ValueError, match=match):
        S.TrackConfig(**kw)


# ----------------------------------------------------------------------------- CLI, report


def _write_table(path, table):
    from thermosgd.io import write_csv

    write_csv(path, table)
    return path


def test_cli_predict_recommend_validate(tmp_path, capsys):
    from thermosgd.cli import main

    elr = _curve_rows(CURVE, "elr", np.geomspace(0.004, 0.04, 5), np.geomspace(0.003, 0.03, 4))
    lr = _curve_rows(CURVE, "lr", np.geomspace(0.5, 1.5, 3), np.geomspace(0.005, 0.01, 3))
    table = _write_table(tmp_path / "results.csv", _merge(elr, lr))
    assert main(["schedule", "predict", "--table", str(table), "--protocol", "lr",
                 "--lr", "1.0", "--wd", "0.01", "--out", str(tmp_path / "p.csv")]) == 0
    out = capsys.readouterr().out
    want = S.predict(CURVE, "lr", lr=1.0, wd=0.01)
    assert f"{float(want['radius']):.4g}" in out
    assert main(["schedule", "predict", "--table", str(table), "--protocol", "elr",
                 "--target-temperature", "1.2e-4", "--wd", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "reachable temperatures" in out and "0.00012" in out
    assert main(["schedule", "validate", "--table", str(table)]) == 0
    assert "predict 9 lr runs" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--protocol", "lr", "--elr", "0.01", "--wd", "0.01"], "takes --lr"),
    (["--protocol", "lr", "--wd", "0.01"], "give --lr and --wd"),
    (["--protocol", "lr", "--target-temperature", "1e-4"], "exactly two"),
    (["--protocol", "lr", "--lr", "x"], "cannot parse|LIST|invalid"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv, match):
    from thermosgd.cli import main

    table = _write_table(tmp_path / "results.csv",
                         _curve_rows(CURVE, "elr", [0.004, 0.01, 0.04], [0.003, 0.03]))
    assert main(["schedule", "predict", "--table", str(table), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("thermosgd: error:")
    assert __import__("re").search(match, err)


def test_write_track_and_report(tmp_path):
    from thermosgd.report import find_sections, render_report

    cfg = S.TrackConfig(schedule="step", lr=3.0, wd=0.01, steps=300, milestones=(100,),
                        burn_in=0, log_every=10, noise_every=50)
    proc = cfg.process()
    lag = S.lagged_path(proc, CURVE, init_radius=8.0)
    steps, pst = np.arange(0, 300, 10), np.arange(0, 300, 50)
    u = proc.rate[pst] / lag["radius"][pst] ** 2
    records = {"step": steps.astype(float), "radius": lag["radius"][steps] * 1.01,
               "loss": np.ones(len(steps))}
    probes = {"step": pst.astype(float), "radius": lag["radius"][pst],
              "trace_sigma": CURVE.sigma2(u) * (D - 1),
              "trace_sigma_se": 0.01 * CURVE.sigma2(u) * (D - 1),
              "grad_norm2": np.zeros(len(pst)), "trace_total": CURVE.trace_total(u),
              "trace_total_se": np.zeros(len(pst))}
    res = S.analyze_track(cfg, proc, records, probes, D, CURVE, angular_rate=0.1)
    assert "volume_rms_rel_error_angular" in res["summary"]
    doc = S.write_track(res, tmp_path / "trk")
    assert sorted(doc["figures"]) == ["schedule-temperature.png", "schedule-tv.png",
                                      "schedule-volume.png"]
    for f in ("schedule.json", "records.csv", "probes.csv", *doc["figures"]):
        assert (tmp_path / "trk" / f).is_file()
    assert S.format_track(res["summary"]).count("\n") >= 4
    assert find_sections(tmp_path) == [("schedule", tmp_path / "trk")]
    html = render_report(tmp_path)
    assert "Scheduled run: trk" in html and "radial relaxation time" in html


def test_follow_a_thermo_monitor(tmp_path):
    """Any training loop: records and probes in a ThermoMonitor, followed against the
    schedule it ran (ELR step decay; synthetic records on the lagged path)."""
    from thermosgd.monitor import NoiseEstimate, ThermoMonitor

    proc = S.Process("elr", S.step_decay(500, 0.04, milestones=[100], gamma=0.1), 0.01)
    lag = S.lagged_path(proc, CURVE, init_radius=3.0)
    mon = ThermoMonitor("elr", D, elr=0.04, wd=0.01)
    for t in range(0, 500, 10):
        if t % 50 == 0:
            u = proc.rate[t]
            ts = float(CURVE.sigma2(u)) * (D - 1)
            mon.record_noise(t, NoiseEstimate(
                trace_sigma=ts, trace_sigma_se=0.01 * ts, grad_norm2=float(
                    CURVE.trace_total(u)) - ts, grad_norm2_se=1.0, n=64,
                radius=float(lag["radius"][t])))
        mon.record_step(t, radius=float(lag["radius"][t]), loss=1.0)
    res = S.follow(mon, proc, CURVE, milestone=100)
    np.testing.assert_allclose(res["records"]["gap"], res["records"]["gap_lag"], atol=1e-12)
    np.testing.assert_allclose(res["probes"]["entropy"], res["probes"]["entropy_lag"],
                               rtol=1e-12)
    assert res["summary"]["milestone"] == 100
    S.write_track(res, tmp_path / "f")
    assert (tmp_path / "f" / "schedule-volume.png").is_file()
    with pytest.raises(ValueError, match="beyond"):
        S.follow(mon, S.Process("elr", proc.rate[:100], 0.01), CURVE)


def test_cli_process(capsys):
    from thermosgd.cli import main

    assert main(["schedule", "process", "--kind", "adiabatic", "--protocol", "lr", "--lr",
                 "0.7", "--wd", "0.001,0.01,0.1", "--sigma2", "0.05", "--dim", "50",
                 "--no-exact"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["lr", "wd", "temperature"]
    assert [ln.split()[0] for ln in lines[1:]] == ["0.7", "0.7", "0.7"]  # eta fixed
    assert len({ln.split()[4] for ln in lines[1:]}) == 1  # entropy constant
    assert main(["schedule", "process", "--kind", "isobaric", "--protocol", "elr", "--wd",
                 "0.01", "--temperature", "0.001,0.002", "--sigma2", "0.05",
                 "--dim", "50"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [float(ln.split()[0]) for ln in out[1:]] == pytest.approx([0.04, 0.08])
    assert main(["schedule", "process", "--kind", "isobaric", "--protocol", "elr", "--wd",
                 "0.01,0.02", "--sigma2", "0.05", "--dim", "50"]) == 2


def test_write_validation_and_report(tmp_path):
    from thermosgd.report import find_sections, render_report

    table = _merge(_curve_rows(CURVE, "elr", np.geomspace(0.004, 0.04, 4), [0.003, 0.03]),
                   _curve_rows(CURVE, "lr", [0.5, 1.0], [0.005, 0.01]))
    fit = S.fit_noise_curve(table, ("elr",))
    v = S.validate_predictions(fit, table, "lr")
    doc = S.write_validation([{**v, "label": "fit elr -> predict lr",
                               "noise": fit.to_dict()}], tmp_path / "val")
    assert doc["figures"] == ["prediction.png"] and (tmp_path / "val" / "prediction.png").is_file()
    (tmp_path / "val" / "sub").mkdir()  # a prediction directory does not hide its children
    assert find_sections(tmp_path) == [("prediction", tmp_path / "val")]
    html = render_report(tmp_path)
    assert "Predicted stationary states: val" in html and "fit elr -&gt; predict lr" in html
