"""Tests of thermosgd.optimizers (closed forms) against thermosgd.isotropic_momentum."""

import math

import numpy as np
import pytest

from thermosgd import optimizers, theory
from thermosgd.isotropic_momentum import simulate


def test_beta_zero_reduces_to_plain_sgd():
    kw = dict(sigma2=1.3, dim=7)
    assert optimizers.momentum_radius(0.1, 1e-3, 0.0, 1.3, 7) == pytest.approx(
        theory.radius_sde("lr", lr=0.1, wd=1e-3, **kw), rel=1e-12)
    assert optimizers.momentum_temperature(0.1, 1e-3, 0.0, 1.3, 7) == pytest.approx(
        theory.temperature_lr(0.1, 1e-3, 1.3, 7), rel=1e-12)
    assert optimizers.momentum_radius_discrete(0.1, 1e-3, 0.0, 7.8, 0.2) == pytest.approx(
        theory.radius_discrete("lr", lr=0.1, wd=1e-3, trace_sigma=7.8, grad_norm2=0.2),
        rel=1e-12)


def test_heavy_ball_is_sgd_with_effective_lr_and_gas_law():
    lr, wd, b, s2, d = 0.03, 5e-3, 0.9, 0.7, 11
    eff = optimizers.momentum_effective_lr(lr, b)
    assert eff == pytest.approx(0.3)
    assert optimizers.momentum_radius(lr, wd, b, s2, d) == pytest.approx(
        theory.radius_sde("lr", lr=eff, wd=wd, sigma2=s2, dim=d), rel=1e-12)
    r = optimizers.momentum_radius(lr, wd, b, s2, d)
    t = optimizers.momentum_temperature(lr, wd, b, s2, d)
    assert wd * r**2 == pytest.approx((d - 1) * t, rel=1e-12)  # lambda r^2 = (d-1) T
    # angular update eta sqrt(E||v||^2)/r with E||v||^2 = (d-1) s2 / r^2 / (1 - b^2)
    ang = lr * np.sqrt((d - 1) * s2 / (1 - b * b)) / r**2
    assert optimizers.momentum_angular_update(lr, wd, b) == pytest.approx(ang, rel=1e-12)


def test_adamw_closed_forms_are_consistent():
    lr, wd, b1, s2, d = 1e-3, 0.1, 0.9, 2.0, 20
    r = optimizers.adamw_radius(lr, wd, d)
    u2 = optimizers.adamw_update_norm2(b1, d)
    # eta sqrt(E||u||^2) / r* = rotational-equilibrium angular update
    assert lr * np.sqrt(u2) / r == pytest.approx(optimizers.adamw_angular_update(lr, wd, b1))
    t = optimizers.adamw_temperature(lr, wd, s2, d)
    p = optimizers.adamw_pressure(wd, r, s2, d)
    assert p * r**2 == pytest.approx((d - 1) * t, rel=1e-12)  # gas law with p = lambda sqrt(s)
    assert optimizers.adamw_radius_discrete(lr, wd, 0.0, d, 5.0, 0.3) == pytest.approx(r)


@pytest.mark.parametrize("call", [
    lambda: optimizers.momentum_radius(0.1, 1e-3, 1.0, 1.0, 3),
    lambda: optimizers.momentum_radius(-0.1, 1e-3, 0.5, 1.0, 3),
    lambda: optimizers.adamw_radius(0.1, 0.0, 3),
    lambda: optimizers.adamw_angular_update(0.1, 0.1, -0.1),
    lambda: optimizers.adamw_temperature(0.1, 0.1, 1.0, 1),
    lambda: optimizers.adamw_radius_ratio_isotropic([0.0, 1.0, 0.0]),
    lambda: optimizers.adamw_radius_ratio_isotropic([0.0, 0.0]),
    lambda: simulate("lion", dim=3, lr=0.1, wd=0.1, beta1=0.9, steps=100),
    lambda: simulate("adamw", dim=3, lr=0.1, wd=0.1, beta1=0.9, steps=100, burn_in=100),
    lambda: simulate("adamw", dim=3, lr=0.1, wd=0.1, beta1=0.9, steps=100, mu=[1.0, 0.0]),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


def test_heavy_ball_radius_and_angular_update_on_isotropic_model():
    # 3 betas x 2 d, 2 replicas, 25k steps (burn-in 5000 + 6 relaxation times). At beta <= 0.9
    # the radius fluctuates by <= 8% (std) and its batch-means standard error is <= 0.5%
    # (checked), so 1.5% is > 3 standard errors plus the O(eta-tilde) terms (measured <= 0.7%).
    for d in (3, 10):
        run = simulate("momentum", dim=d, lr=0.05, wd=0.01, beta1=[0.0, 0.5, 0.9],
                       steps=25_000, replicas=2, seed=3)
        p = run.predictions()
        assert np.all(run.radius_se / run.radius < 5e-3)
        np.testing.assert_allclose(run.radius_balance, p["radius_sde"], rtol=0.015)
        np.testing.assert_allclose(run.radius_balance, p["radius_discrete"], rtol=0.015)
        np.testing.assert_allclose(run.radius, p["radius_sde"], rtol=0.02)
        # E||dw||^2 = 2 eta lambda E[r^2]/(1+beta) is exact at stationarity; the only error is
        # statistical (measured <= 0.1%)
        np.testing.assert_allclose(run.step_ratio, p["angular_update"], rtol=0.005)
        np.testing.assert_allclose(run.angular_update, p["angular_update"], rtol=0.02)
        # energy vs exact vMF at the predicted temperature: U ~ (d-1) T / 2 ~ 0.01-0.1 with
        # ~ 1e4 effectively independent samples per point, relative error ~ 5%; 15% bound.
        np.testing.assert_allclose(run.energy, p["energy"], rtol=0.15)


def test_heavy_ball_strong_momentum_radial_fluctuations():
    # beta = 0.99, d = 3: r fluctuates by ~30% (std); the balance radius (E r^2 / E r^-2)^(1/4)
    # and the step identity still hold, the mean radius lies > 3% above r* (measured +6%).
    # Radial correlation time ~ 1/(1-beta) = 100 steps: ~ 400 independent samples, standard
    # error of r_bal ~ 1.5%; 5% bound.
    run = simulate("momentum", dim=3, lr=0.05, wd=0.01, beta1=0.99, steps=25_000, replicas=2,
                   seed=4)
    p = run.predictions()
    assert run.radius_rel_std[0] > 0.2
    np.testing.assert_allclose(run.radius_balance, p["radius_sde"], rtol=0.05)
    np.testing.assert_allclose(run.step_ratio, p["angular_update"], rtol=0.01)
    assert run.radius[0] / p["radius_sde"][0] - 1 > 0.03


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
    assert optimizers.adamw_radius_ratio_isotropic([1.0, -1.0, 1.0, 1.0]) == pytest.approx(1.0)
    # the d=3 seed-1 direction of the failure test: predicted r^2 excess 27% (measured 18%,
    # see docs/theory.md); only the sign and rough size are claimed
    from thermosgd.isotropic import loss_direction

    ratio = optimizers.adamw_radius_ratio_isotropic(loss_direction(3, 1))
    assert 1.1 < ratio < 1.4


def test_simulation_is_reproducible():
    a = simulate("adamw", dim=4, lr=0.01, wd=0.1, beta1=0.9, steps=3000, burn_in=1000, seed=5)
    b = simulate("adamw", dim=4, lr=0.01, wd=0.1, beta1=0.9, steps=3000, burn_in=1000, seed=5)
    np.testing.assert_array_equal(a.radius, b.radius)


# ------------------------------------------------------------------ fixed-LR dispatch


def test_lr_dispatch_sgd_is_theory_lr():
    kw = {"lr": 0.1, "wd": 0.01}
    assert optimizers.lr_radius_sde("sgd", sigma2=2.0, dim=100, **kw) == pytest.approx(
        theory.radius_sde("lr", sigma2=2.0, dim=100, **kw), rel=1e-14)
    assert optimizers.lr_temperature("sgd", sigma2=2.0, dim=100, **kw) == pytest.approx(
        theory.temperature("lr", sigma2=2.0, dim=100, **kw), rel=1e-14)
    assert optimizers.lr_radius_discrete(
        "sgd", dim=100, trace_sigma=3.0, grad_norm2=1.0, **kw) == pytest.approx(
        theory.radius_discrete("lr", trace_sigma=3.0, grad_norm2=1.0, **kw), rel=1e-14)
    assert optimizers.lr_relaxation_time("sgd", **kw) == pytest.approx(
        theory.relaxation_time("lr", **kw))
    assert optimizers.lr_maxwell_slope("sgd", 101) == theory.maxwell_slope("lr", 101)


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adamw"])
def test_lr_dispatch_gas_law_and_maxwell_slope(opt):
    """At the predicted radius: p r*^2 = (d-1) T and T = eta-tilde sigma2 / 2 (eta-tilde from
    `lr_effective_step`); the Maxwell slope by finite differences of S = S_dir(eta lambda)
    + (d-1) log r* (any S_dir of eta lambda; here the isotropic (d-1)/2 log T)."""
    d, s2, beta = 50, 1.7, 0.9
    m = None if opt == "sgd" else beta

    def state(lr, wd):
        r = float(optimizers.lr_radius_sde(opt, lr=lr, wd=wd, sigma2=s2, dim=d, momentum=m))
        T = float(optimizers.lr_temperature(opt, lr=lr, wd=wd, sigma2=s2, dim=d, momentum=m))
        return r, T

    lr, wd = 0.03, 0.02
    r, T = state(lr, wd)
    p = optimizers.lr_pressure(opt, wd=wd, radius=r, sigma2=s2, dim=d)
    assert p * r**2 == pytest.approx((d - 1) * T, rel=1e-12)
    step = optimizers.lr_effective_step(opt, lr=lr, radius=r, sigma2=s2, dim=d, momentum=m)
    assert step * s2 / 2 == pytest.approx(T, rel=1e-12)

    def S(a, b):
        r_, T_ = state(math.exp(a), math.exp(b))
        return (d - 1) / 2 * math.log(T_) + math.sin(T_) + (d - 1) * math.log(r_)

    h, a, b = 1e-5, math.log(lr), math.log(wd)
    slope = (S(a + h, b) - S(a - h, b)) / (2 * h) - (S(a, b + h) - S(a, b - h)) / (2 * h)
    assert slope == pytest.approx(optimizers.lr_maxwell_slope(opt, d), rel=1e-6)


def test_lr_dispatch_errors():
    with pytest.raises(ValueError, match="optimizer must be"):
        optimizers.lr_temperature("adam", lr=0.1, wd=0.1, sigma2=1.0, dim=10)
    with pytest.raises(ValueError, match="needs momentum"):
        optimizers.lr_radius_sde("momentum", lr=0.1, wd=0.1, sigma2=1.0, dim=10)


def test_adamw_exact_radius_at_finite_eta_lambda():
    """The all-orders AdamW radius (decoupled decay weakens the momentum correlation, b1 ->
    (1 - eta lambda) b1): it reduces to eta d / (2 lambda) as eta lambda -> 0, and on the
    isotropic model with equal second moments at eta lambda = 0.09 it holds where the
    eta lambda -> 0 form misses by 27% (measured -1.9% vs -27%; 4% bound)."""
    small = optimizers.adamw_radius_discrete(1e-5, 1e-3, 0.9, 10, 1.0, 0.0, exact=True)
    assert small == pytest.approx(optimizers.adamw_radius(1e-5, 1e-3, 10), rel=1e-6)
    with pytest.raises(ValueError, match="lr \\* wd < 1"):
        optimizers.adamw_radius_discrete(2.0, 1.0, 0.9, 10, 1.0, 0.0, exact=True)
    run = simulate("adamw", dim=10, lr=0.3, wd=0.3, beta1=0.9, steps=8000, replicas=2, seed=1,
                   mu="diagonal")
    exact = optimizers.adamw_radius_discrete(0.3, 0.3, 0.9, 10, 9.0, 0.0, exact=True)
    assert run.radius_balance[0] == pytest.approx(exact, rel=0.04)
    assert run.radius_balance[0] / optimizers.adamw_radius(0.3, 0.3, 10) - 1 < -0.2
