"""Tests of thermosgd.schedules.paths: equilibrium states against closed forms of
thermosgd.theory and written-out formulas, the vectorized paths against the plain loops of
tests/reference/schedule_paths.py and an isotropic simulation, processes against what they
hold fixed, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.reference import assert_matches_reference
from tests.reference.schedule_paths import radial_map, radial_map_relaxing_noise, sde_elr, sde_lr
from tests.schedules.curves import CURVE, D
from thermosgd import schedules as S
from thermosgd.schedules._roots import monotone_segment, smallest_root
from thermosgd.theory import sgd as theory

# ----------------------------------------------------------------------------- root finding


def test_smallest_root_picks_the_lowest_crossing():
    """f(x) = (x - 1)^2 on [0, 3]: targets 0.25 and 1 are crossed twice (x = 1 -+ sqrt(t)),
    the smallest root is returned; 9 is out of reach (NaN)."""
    x = smallest_root(lambda x: (x - 1.0) ** 2, [0.25, 1.0, 9.0], 0.0, 3.0)
    np.testing.assert_allclose(x[:2], [0.5, 0.0], rtol=1e-12, atol=1e-12)
    assert np.isnan(x[2])
    lo, hi = monotone_segment(lambda x: (x - 1.0) ** 2, 2.0, 0.0, 3.0)
    assert lo == pytest.approx(1.0, abs=3 / 1024) and hi == 3.0


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
    # S = (d-1)/2 log(2 pi e T) + (d-1) log r, written out (not through theory)
    s = (D - 1) / 2 * np.log(2 * np.pi * np.e * eq["temperature"]) + (D - 1) * np.log(r)
    np.testing.assert_allclose(eq["entropy"], s, rtol=1e-12)
    np.testing.assert_allclose(eq["tau"], theory.relaxation_time("lr", lr=lr, wd=wd))
    elr = np.array([0.004, 0.01, 0.04])
    eq = S.equilibrium(S.Process("elr", elr, wd), curve, exact=exact)
    if exact:  # the fixed point of the mean radial map, written out: c = elr^2 Q,
        # r^2 = (1 - sqrt(1 - c)) / (elr wd) (theory refuses it as the *stationary* radius: it
        # ignores the multiplicative noise of ||g||^2, a -5 c v / 16 shift, v = 2 / (d-1))
        c = elr**2 * q
        r = np.sqrt((1 - np.sqrt(1 - c)) / (elr * wd))
    else:
        r = theory.radius_discrete("elr", trace_sigma=(D - 1) * sigma2, grad_norm2=gn2,
                                   elr=elr, wd=wd)
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
    for k, r0 in enumerate((5.0, 6.0)):
        r2 = radial_map("lr", rates[k], np.full(n, wd[k, 0]), r0**2, CURVE.trace_total)
        # the same operations in the same order, vectorized: round-off of the float loop
        assert_matches_reference(path["volume"][k], r2 / 2, rtol=1e-12, what=f"lr {k}")
    # elr: eta_t = elr_t r_t^2, Q from the schedule alone
    elr = S.cosine(n, 0.04, final=0.004)
    path = S.lagged_path(S.Process("elr", elr, 0.01), CURVE, init_radius=3.0)
    r2 = radial_map("elr", elr, np.full(n, 0.01), 9.0, CURVE.trace_total)
    assert_matches_reference(path["volume"], r2 / 2, rtol=1e-12, what="elr")


def test_lagged_path_with_relaxing_noise():
    n = 600
    rate = S.step_decay(n, 3.0, milestones=[200], gamma=0.1)
    proc = S.Process("lr", rate, 0.01)
    h = 0.2
    path = S.lagged_path(proc, CURVE, init_radius=8.0, angular_rate=h)
    ref = radial_map_relaxing_noise(rate, 0.01, 64.0, h, CURVE.trace_total, CURVE.sigma2)
    # same operations, vectorized: round-off of the float loop
    assert_matches_reference({"volume": path["volume"], "temperature": path["temperature"]},
                             {"volume": ref["r2"] / 2, "temperature": ref["temperature"]},
                             rtol=1e-12)
    # h -> 0: Q frozen at its initial value, the same as driving the map with that constant
    frozen = S.lagged_path(proc, CURVE, init_radius=8.0, angular_rate=1e-300)
    q0 = float(CURVE.trace_total(3.0 / 64.0))
    fixed = S.lagged_path(proc, CURVE, init_radius=8.0, trace_total=q0)
    np.testing.assert_allclose(frozen["volume"], fixed["volume"], rtol=1e-12)
    # fast relaxation on a smooth schedule: the instantaneous path, except that Q_t is
    # Q(elr_{t-1}); the delay shifts V by ~ tau |dlog Q/dt| <~ 1% (tau ~ 30 steps here)
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
    x = sde_lr(lr, wd, 499 * 0.05, path["radius"][0] ** 4)
    np.testing.assert_allclose(path["radius"] ** 4, x, rtol=2e-3)
    eq = S.equilibrium(S.Process("lr", lr, wd), curve, exact=False)
    assert path["volume"][1100] / eq["volume"][1100] - 1 > 0.1  # visibly lagging


def test_sde_path_is_the_exact_per_step_solution():
    """Vectorized over steps (blocks of the linear recurrence) against a step loop of the
    exact per-step solution; with a long schedule that forces several blocks."""
    n = 20000
    lr = np.stack([S.step_decay(n, 1.0, milestones=[5000], gamma=0.2),
                   S.cosine(n, 2.0, final=0.1)])
    curve = S.NoiseCurve.constant(0.05, 500, trace_total=30.0)
    proc = S.Process("lr", lr, 0.01)
    path = S.sde_path(proc, curve, init_radius=[2.0, 9.0])
    for k, r0 in enumerate((2.0, 9.0)):
        # cumulative sums of exp(+-L) in blocks of -L <= 600 vs the step loop: 1e-10
        assert_matches_reference(path["radius"][k] ** 4, sde_lr(lr[k], 0.01, 30.0, r0**4),
                                 rtol=1e-10, what=f"lr {k}")
    elr = S.cosine(n, 0.04, final=0.004)
    path = S.sde_path(S.Process("elr", elr, 0.02), CURVE, init_radius=1.0)
    assert_matches_reference(1 / path["radius"] ** 2, sde_elr(elr, 0.02, CURVE.trace_total, 1.0),
                             rtol=1e-10, what="elr")
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
    temps = np.linspace(1.0e-4, 1.3e-4, 20)  # T(elr) of CURVE peaks at 1.39e-4
    proc = S.isobaric(protocol, temps, 0.01, CURVE)
    eq = S.equilibrium(proc, CURVE)
    np.testing.assert_allclose(eq["temperature"], temps, rtol=1e-10)
    np.testing.assert_array_equal(proc.wd, 0.01)


@pytest.mark.parametrize("protocol, rate0", [("lr", 1.0), ("elr", 0.01)])
@pytest.mark.parametrize("exact", [False, True])
def test_adiabatic_keeps_entropy(protocol, rate0, exact):
    # S = A(elr) - (d-1)/2 log(lambda), and A(elr) of CURVE peaks at elr ~ 0.022 just above
    # the starting elr: lowering lambda 2.5x lowers elr along the branch (raising it is out of
    # reach)
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


@pytest.mark.parametrize("call, match", [
    (lambda: S.Process("sphere", 1.0, 1.0), r"protocol == 'sphere', must be one of lr, elr"),
    (lambda: S.Process("lr", [1.0, np.nan], 1.0), "finite"),
    (lambda: S.Process("lr", np.ones(3), np.ones(2)), "broadcast"),
    (lambda: S.Process("lr", 1.0, -0.1), r"wd == -0.1, must be > 0"),
    (lambda: S.equilibrium(S.Process("lr", 1.0, 0.01), CURVE, dim=10), "differs"),
    (lambda: S.equilibrium(S.Process("lr", 1.0, 0.01), 0.05), "needs dim"),
    (lambda: S.state_at("lr", -0.01, 0.01, CURVE), r"elr == -0.01, must be > 0"),
    (lambda: S.isothermal("lr", [0.01], rate0=0.0), r"rate0 == 0.0, must be > 0"),
    (lambda: S.isobaric("lr", [1.0], 0.01, CURVE), "out of reach"),
    (lambda: S.lagged_path(S.Process("lr", 1.0, 0.01), CURVE, init_radius=0.0),
     r"init_radius == 0.0, must be > 0"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_state_at_keeps_math_of_the_module_docstring():
    """elr fixed: r^2 = phi / (elr lambda) with phi = 1 - sqrt(1 - elr^2 Q) (exact) written
    out; T = elr sigma2 / 2."""
    elr, wd = 0.02, 0.01
    st = S.state_at("elr", elr, wd, CURVE)
    psi = elr**2 * float(CURVE.trace_total(elr))
    r2 = (1 - math.sqrt(1 - psi)) / (elr * wd)
    assert float(st["radius"]) ** 2 == pytest.approx(r2, rel=1e-12)
    assert float(st["temperature"]) == pytest.approx(elr * float(CURVE.sigma2(elr)) / 2,
                                                     rel=1e-15)
