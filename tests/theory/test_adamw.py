"""Closed forms of AdamW (thermosgd.theory.adamw) against the isotropic AdamW simulator
(thermosgd.sim.momentum)."""

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import ive

from tests.reference.momentum_paths import chains
from thermosgd.sim.momentum import simulate
from thermosgd.theory import adamw as aw


def test_adamw_closed_forms_consistency_wiring():
    """Identities between the closed forms (angular update from E||u||^2, the gas law with
    p = lambda sqrt(s), b1 = 0 discrete radius); the simulator tests below check the forms
    against dynamics."""
    lr, wd, b1, s2, d = 1e-3, 0.1, 0.9, 2.0, 20
    r = aw.adamw_radius(lr, wd, d)
    u2 = aw.adamw_update_norm2(b1, d)
    # eta sqrt(E||u||^2) / r* = rotational-equilibrium angular update
    assert lr * np.sqrt(u2) / r == pytest.approx(aw.adamw_angular_update(lr, wd, b1))
    t = aw.adamw_temperature(lr, wd, s2, d, b1, exact=False)
    p = aw.adamw_pressure(wd, r, s2, d)
    assert p * r**2 == pytest.approx((d - 1) * t, rel=1e-12)  # gas law with p = lambda sqrt(s)
    # all orders: the gas law at the all-orders radius (noise only) defines T
    rx = aw.adamw_radius_discrete(lr, wd, b1, d, (d - 1) * s2, 0.0, exact=True)
    tx = aw.adamw_temperature(lr, wd, s2, d, b1)
    assert aw.adamw_pressure(wd, rx, s2, d) * rx**2 == pytest.approx((d - 1) * tx, rel=1e-12)
    assert aw.adamw_radius_discrete(lr, wd, 0.0, d, 5.0, 0.3) == pytest.approx(r)


def test_elr_at_radius_is_the_preconditioned_step():
    # eta / (sqrt(s) r^2) with sqrt(s) = sigma sqrt((d-1)/d) / r
    lr, r, s2, d = 1e-3, 2.5, 0.8, 10
    sqrt_s = np.sqrt(s2 * (d - 1) / d) / r
    assert aw.adamw_elr_at_radius(lr, r, s2, d) == pytest.approx(lr / (sqrt_s * r**2),
                                                                  rel=1e-14)
    assert aw.adamw_maxwell_slope(10) == 9.0


@pytest.mark.parametrize(("call", "match"), [
    (lambda: aw.adamw_radius(0.1, 0.0, 3), "wd == 0.0, must be > 0"),
    (lambda: aw.adamw_angular_update(0.1, 0.1, -0.1), "beta1 == -0.1, must be in"),
    (lambda: aw.adamw_temperature(0.1, 0.1, 1.0, 1, 0.9), "dim == 1, must be an integer"),
    (lambda: aw.adamw_temperature(2.0, 1.0, 1.0, 3, 0.9), r"lr \* wd == 2.0, must be < 1"),
    (lambda: aw.adamw_relaxation_time(0.1, 0.1, 1.0), "beta2 == 1.0, must be in"),
    (lambda: aw.adamw_radius2_path(0.1, 0.1, 0.999, 0.0, 10), "start == 0.0, must be > 0"),
    (lambda: aw.adamw_radius_ratio_isotropic([0.0, 1.0, 0.0]), "coordinate axis"),
    (lambda: aw.adamw_radius_ratio_isotropic([0.0, 0.0]), "nonzero vector"),
    (lambda: aw.adamw_elr_at_radius(0.1, 1.0, -1.0, 3), "sigma2 == -1.0, must be > 0"),
    (lambda: simulate("adamw", dim=3, lr=0.1, wd=0.1, beta1=0.9, steps=100, burn_in=100),
     "burn_in"),
    (lambda: simulate("adamw", dim=3, lr=0.1, wd=0.1, beta1=0.9, steps=100, mu=[1.0, 0.0]),
     "mu"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_adamw_radius_and_angular_update_with_equal_second_moments():
    # mu = (1,...,1)/sqrt(d): the minimum has equal |coordinates|, so AdamW's second moments are
    # equal and the preconditioner is proportional to I (the closed forms' assumption).
    # Measured errors <= 2.7% (d=3, b1=0.9: the O(T) terms); 4% bound.
    run = simulate("adamw", dim=3, lr=0.01, wd=0.05, beta1=[0.0, 0.9], steps=25_000,
                   replicas=2, seed=1, mu="diagonal")
    p = run.predictions()
    np.testing.assert_allclose(run.radius, p["radius_sde"], rtol=0.04)
    np.testing.assert_allclose(run.radius_balance, p["radius_sde"], rtol=0.04)
    np.testing.assert_allclose(run.angular_update, p["angular_update"], rtol=0.04)
    np.testing.assert_allclose(run.step_ratio, p["angular_update"], rtol=0.04)


def test_adamw_unequal_second_moments_break_the_closed_form_in_low_dim():
    # Documented failure: a random mu in d=3 gives unequal per-coordinate second moments and the
    # radius misses eta d/(2 lambda) by more than 5% (8.7% for this seed); in d=100 it is < 1%.
    lo = simulate("adamw", dim=3, lr=0.01, wd=0.05, beta1=0.0, steps=25_000, replicas=2, seed=1)
    assert abs(lo.radius[0] / lo.predictions()["radius_sde"][0] - 1) > 0.05
    hi = simulate("adamw", dim=100, lr=0.01, wd=0.05, beta1=0.0, steps=20_000, seed=1)
    assert abs(hi.radius[0] / hi.predictions()["radius_sde"][0] - 1) < 0.01


def test_adamw_linear_response_ratio():
    # equal |mu_i| (any signs): K = 0 exactly
    assert aw.adamw_radius_ratio_isotropic([1.0, -1.0, 1.0, 1.0]) == pytest.approx(1.0)
    # the d=3 seed-1 direction of the failure test: predicted r^2 excess 27% (measured 18%,
    # see docs/sgd.md); only the sign and rough size are claimed
    from thermosgd.sim.isotropic import loss_direction

    ratio = aw.adamw_radius_ratio_isotropic(loss_direction(3, 1))
    assert 1.1 < ratio < 1.4


def test_simulation_is_reproducible():
    a = simulate("adamw", dim=4, lr=0.01, wd=0.1, beta1=0.9, steps=3000, burn_in=1000, seed=5)
    b = simulate("adamw", dim=4, lr=0.01, wd=0.1, beta1=0.9, steps=3000, burn_in=1000, seed=5)
    np.testing.assert_array_equal(a.radius, b.radius)


def test_adamw_exact_radius_at_finite_eta_lambda():
    """The all-orders AdamW radius (decoupled decay weakens the momentum correlation, b1 ->
    (1 - eta lambda) b1): it reduces to eta d / (2 lambda) as eta lambda -> 0, and on the
    isotropic model with equal second moments at eta lambda = 0.09 it holds where the
    eta lambda -> 0 form misses by 27% (measured -1.8% vs -27%, the rest is the grad_norm2
    term; 4% bound)."""
    small = aw.adamw_radius_discrete(1e-5, 1e-3, 0.9, 10, 1.0, 0.0, exact=True)
    assert small == pytest.approx(aw.adamw_radius(1e-5, 1e-3, 10), rel=1e-6)
    with pytest.raises(ValueError, match=r"lr \* wd == 2.0, must be < 1"):
        aw.adamw_radius_discrete(2.0, 1.0, 0.9, 10, 1.0, 0.0, exact=True)
    run = simulate("adamw", dim=10, lr=0.3, wd=0.3, beta1=0.9, steps=20_000, replicas=2, seed=1,
                   mu="diagonal")
    exact = aw.adamw_radius_discrete(0.3, 0.3, 0.9, 10, 9.0, 0.0, exact=True)
    assert run.radius_balance[0] == pytest.approx(exact, rel=0.04)
    assert run.radius_balance[0] / aw.adamw_radius(0.3, 0.3, 10) - 1 < -0.2


# ----------------------------------------------------------------------------- issue 11
# Independent plain-numpy AdamW (torch.optim.AdamW semantics, tests/reference/momentum_paths.py)
# on the isotropic model with mu = (1,...,1)/sqrt(d) (equal second moments), d = 10, b1 = 0.9.


def _vmf_temperature(d: int, energy: float) -> float:
    """T = 1/kappa with E_vMF[1 + <mu, wbar>] = 1 - I_(d/2)(kappa) / I_(d/2-1)(kappa) = energy
    (scipy's Bessel functions, not thermosgd.theory.vmf)."""
    f = lambda lk: 1.0 - ive(d / 2, np.exp(lk)) / ive(d / 2 - 1, np.exp(lk)) - energy  # noqa: E731
    return float(np.exp(-brentq(f, -10.0, 20.0, xtol=1e-13)))


def test_finite_step_factor_is_the_all_orders_balance():
    """F against the balance solved numerically: (1 - a^2) x = eta^2 U2 (1 + 2 a C), with
    C = b1 / (1 - a b1) summed term by term (sum_k a^(k-1) b1^k ... as a series)."""
    lr, wd, b1, d = 0.3, 0.2, 0.9, 10
    a = 1 - lr * wd
    u2 = d * (1 - b1) / (1 + b1)
    corr = sum(a ** (k - 1) * b1**k for k in range(1, 2000))  # E<w,u> = -eta U2 corr
    x = lr**2 * u2 * (1 + 2 * a * corr) / (1 - a * a)
    assert aw.adamw_finite_step_factor(lr, wd, b1) == pytest.approx(x / (lr * d / (2 * wd)),
                                                                    rel=1e-12)
    assert aw.adamw_finite_step_factor(1e-7, 1.0, b1) == pytest.approx(1.0, abs=1e-5)


def test_adamw_relaxation_time_is_the_slow_mode_of_the_map():
    """The slow eigenvalue of the (x, y) map's Jacobian by central finite differences (the map
    written here), and the two limits: 1 / (2 eta lambda) when s follows r (b2 -> 0),
    2 / (1 - b2) when eta lambda >> 1 - b2."""
    lr, wd, b2 = 0.05, 0.1, 0.999
    k, c = 1 - (1 - lr * wd) ** 2, 1 - b2

    def step(z):  # z = (x_t, y_t) -> (x_(t+1), y_(t+1)), stationary bias correction
        x, y = z
        x1 = (1 - k) * x + k / (x * y)
        return np.array([x1, b2 * y + c / x1])

    h = 1e-6
    jac = np.column_stack([(step(np.array([1.0, 1.0]) + h * e) - step(np.array([1.0, 1.0])
                                                                      - h * e)) / (2 * h)
                           for e in np.eye(2)])
    mu = max(abs(np.linalg.eigvals(jac)))
    assert aw.adamw_relaxation_time(lr, wd, b2) == pytest.approx(-1 / np.log(mu), rel=1e-6)
    # the continuous-time form (2k + c + sqrt(4k^2 + c^2)) / (2 k c) with k = 2 eta lambda
    kk = 2 * lr * wd
    assert aw.adamw_relaxation_time(lr, wd, b2) == pytest.approx(
        (2 * kk + c + np.sqrt(4 * kk * kk + c * c)) / (2 * kk * c), rel=0.01)
    assert aw.adamw_relaxation_time(1e-3, 1e-3, 0.0) == pytest.approx(1 / 2e-6, rel=1e-5)
    assert aw.adamw_relaxation_time(0.3, 0.3, 0.9999) == pytest.approx(2e4, rel=0.01)


def test_adamw_relaxation_includes_the_second_moment_lag():
    """Issue 11: at eta lambda = 0.005 (1 / (2 eta lambda) = 100 steps) the radius is far from
    equilibrium after 3 and 10 of those "relaxation times"; the slow mode of r^2 coupled to
    the second-moment average (`adamw_relaxation_time`, ~2050 steps) is the one to wait for.

    200 chains from 2 r* and r*/2 (r*^2 = eta d / (2 lambda), zero buffers): the chain mean of
    r^2 has a standard error ~0.3% (r^2 fluctuates ~4% per chain). From above the mean-field
    path `adamw_radius2_path` matched it to 5.2% (t = 300) and <= 1.2% from t = 1000 on
    (bounds 8% and 3%); from below the chains relax faster than the mean field (-7.1% vs
    -12.5% at t = 1000), which therefore bounds the deviation (+1% for the statistics). After
    3 relaxation times both are within 3% of equilibrium (measured +0.4% and -1.2%)."""
    d, lr, wd, b1 = 10, 0.05, 0.1, 0.9
    tau = float(aw.adamw_relaxation_time(lr, wd))
    assert 2000 < tau < 2100
    steps = int(3 * tau) + 1
    x_sde = lr * d / (2 * wd)
    sim = chains("adamw", dim=d, lr=lr, wd=wd, beta1=b1, steps=steps,
                 init_radius=[2 * np.sqrt(x_sde), np.sqrt(x_sde) / 2], n_chains=200, seed=11,
                 burn_in=steps - 1000)
    path = sim["r2_path"] / x_sde - 1
    # the numbers (+42% at 300 steps, +15% at 1000 from 2 r*; -11% at 1000 from r*/2)
    assert path[0, 299] > 0.3 and path[0, 999] > 0.1 and path[1, 999] < -0.08
    # stationary level: all orders in eta lambda with the measured grad_norm2 term
    g2 = float(sim["grad_norm2"].mean())
    x_st = float(aw.adamw_radius_discrete(lr, wd, b1, d, d - 1.0, g2, exact=True)) ** 2
    dev = sim["r2_path"] / x_st - 1
    mf = aw.adamw_radius2_path(lr, wd, 0.999, 4 * x_sde / x_st, steps) - 1
    assert abs(dev[0, 299] - mf[299]) < 0.08
    for t in (1000, 2000, 4000, steps - 1):
        assert abs(dev[0, t - 1] - mf[t - 1]) < 0.03, t
    mf = aw.adamw_radius2_path(lr, wd, 0.999, x_sde / 4 / x_st, steps) - 1
    for t in (300, 1000, 2000, 4000):
        assert mf[t - 1] - 0.01 < dev[1, t - 1] < 0, t
    assert np.all(np.abs(dev[:, steps - 1]) < 0.03)  # three relaxation times


def test_adamw_temperature_at_finite_eta_lambda():
    """Issue 11: the eta lambda -> 0 temperature misses the one read off the energy (T_U,
    exact vMF mean loss = measured loss) by -3.9% at eta lambda = 0.009 and -25.5% at 0.09;
    the all-orders form (gas law at the all-orders radius) holds, and the gas law
    p r^2 = (d-1) T_U with p = lambda sqrt(s) at the measured radius holds to the grad_norm2
    term of the radius (~1-2%).

    64 chains per point, 24000 steps after 6000 of burn-in (>= 3 relaxation times: chains start
    at the all-orders radius); the standard error of T_U is that of the energy (asserted below
    0.3%); the measured T_U / T - 1 was +0.57% and +0.29% (SE 0.20%, 0.14%; the library's
    simulator, 8 x 40000 steps: -0.2%), bound 1.5% (that residual + 4 SE); gas law bound 3%
    (measured -1.5%, -2.1%)."""
    d, b1, lr = 10, 0.9, 0.3
    el = np.array([0.009, 0.09])
    wd = el / lr
    r_all = aw.adamw_radius_discrete(lr, wd, b1, d, d - 1.0, 0.0, exact=True)
    sim = chains("adamw", dim=d, lr=lr, wd=wd, beta1=b1, steps=30_000, burn_in=6000,
                 init_radius=r_all, n_chains=64, seed=5)
    for k in range(2):
        e, e_se = sim["energy"][k], sim["energy_se"][k]
        t_u = _vmf_temperature(d, e)
        t_u_se = abs(_vmf_temperature(d, e + e_se) - t_u)
        assert t_u_se / t_u < 0.003
        t_new = float(aw.adamw_temperature(lr, wd[k], 1.0, d, b1))
        t_old = float(aw.adamw_temperature(lr, wd[k], 1.0, d, b1, exact=False))
        assert abs(t_u / t_new - 1) < 0.015, (el[k], t_u / t_new - 1)
        r = np.sqrt(sim["radius2"][k])
        gas = float(aw.adamw_pressure(wd[k], r, 1.0, d)) * r * r / ((d - 1) * t_u) - 1
        assert abs(gas) < 0.03, (el[k], gas)
    assert t_u / t_old - 1 < -0.2  # the leading-order form at eta lambda = 0.09
