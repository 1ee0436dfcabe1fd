"""Closed forms of AdamW (thermosgd.theory.adamw) against the isotropic AdamW simulator
(thermosgd.sim.momentum)."""

import numpy as np
import pytest

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
    t = aw.adamw_temperature(lr, wd, s2, d)
    p = aw.adamw_pressure(wd, r, s2, d)
    assert p * r**2 == pytest.approx((d - 1) * t, rel=1e-12)  # gas law with p = lambda sqrt(s)
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
    (lambda: aw.adamw_temperature(0.1, 0.1, 1.0, 1), "dim == 1, must be an integer"),
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
    eta lambda -> 0 form misses by 27% (measured -1.9% vs -27%; 4% bound)."""
    small = aw.adamw_radius_discrete(1e-5, 1e-3, 0.9, 10, 1.0, 0.0, exact=True)
    assert small == pytest.approx(aw.adamw_radius(1e-5, 1e-3, 10), rel=1e-6)
    with pytest.raises(ValueError, match=r"lr \* wd == 2.0, must be < 1"):
        aw.adamw_radius_discrete(2.0, 1.0, 0.9, 10, 1.0, 0.0, exact=True)
    run = simulate("adamw", dim=10, lr=0.3, wd=0.3, beta1=0.9, steps=8000, replicas=2, seed=1,
                   mu="diagonal")
    exact = aw.adamw_radius_discrete(0.3, 0.3, 0.9, 10, 9.0, 0.0, exact=True)
    assert run.radius_balance[0] == pytest.approx(exact, rel=0.04)
    assert run.radius_balance[0] / aw.adamw_radius(0.3, 0.3, 10) - 1 < -0.2
