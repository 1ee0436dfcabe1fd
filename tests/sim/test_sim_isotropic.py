"""The SGD isotropic-noise simulator against a plain numpy reference and the closed forms."""

import json

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tests.reference import assert_matches_reference
from tests.reference.isotropic import sgd_chains
from thermosgd import theory
from thermosgd.sim import isotropic as iso
from thermosgd.sim._kernels import (
    COL_COUNT,
    COL_GRAD_NORM2,
    COL_LOSS,
    COL_NORM_AFTER,
    COL_RADIUS,
)
from thermosgd.sim.blocks import pooled_mean_and_stderr
from thermosgd.theory import vmf


@pytest.mark.parametrize("protocol,grid", [
    ("lr", {"lr": (0.05, 0.3), "wd": (0.01, 0.1)}),
    ("elr", {"elr": (0.05, 0.3), "wd": (0.01, 0.1)}),
    ("sphere", {"elr": (0.05, 0.3), "radius": (0.5, 3.0)}),
])
@pytest.mark.parametrize("dim", [3, 7])
def test_kernel_matches_numpy_reference(protocol, grid, dim):
    """Final state, every direction snapshot and the per-chain window means of the kernel's
    block sums against `tests.reference.isotropic.sgd_chains`. Tolerance: the two differ only
    in float64 round-off (numpy's summation order, w/|w| vs w/radius on the sphere), ~1e-16
    per operation over 50 steps of a non-chaotic map (the direction relaxes towards -mu):
    measured <= 3e-15 on quantities of order 1-3, so 1e-12 absolute leaves a margin of ~300."""
    c = iso.IsotropicConfig(protocol, **grid, dim=dim, sigma=0.7, steps=50, burn_in=10,
                            queue_size=5, replicas=2, seed=3, n_blocks=4)
    sim = iso.simulate(c, progress=False)
    ref = sgd_chains(c)
    assert np.isfinite(sim.queue).all()
    count = sim.block_sum[..., COL_COUNT].sum(1)
    fast = {"directions": sim.queue,
            **{k: sim.block_sum[..., col].sum(1) / count for k, col in (
                ("radius", COL_RADIUS), ("energy", COL_LOSS), ("grad_norm2", COL_GRAD_NORM2),
                ("norm_after", COL_NORM_AFTER))}}
    assert np.array_equal(count, np.full(count.shape, 40.0))  # the 40 window steps
    assert_matches_reference(fast, ref, rtol=0, atol=1e-12, what=f"{protocol}, d={dim}")


def test_sde_radius_trajectory_matches_ode():
    for protocol, grid in (("lr", {"lr": (0.1,), "wd": (0.01,)}),
                           ("elr", {"elr": (0.02,), "wd": (0.003,)})):
        c = iso.IsotropicConfig(protocol, **grid, dim=5, sigma=0.8, steps=10_000,
                                init_radius=0.3)
        q = 4 * 0.64
        if protocol == "lr":
            def f(t, u, eta=0.1, lam=0.01, q=q):
                return -2 * eta * lam * u + eta**2 * q / u
        else:
            def f(t, u, e=0.02, lam=0.003, q=q):
                return u * (-2 * e * lam * u + e**2 * q)
        ts = np.array([0.0, 500.0, 3000.0, 20_000.0])
        sol = solve_ivp(f, (0, ts[-1]), [0.09], t_eval=ts, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(iso.sde_radius_trajectory(c, ts)[0, 0], np.sqrt(sol.y[0]),
                                   rtol=1e-6)


def _run(protocol, grid, **kw):
    c = iso.IsotropicConfig(protocol, **grid, **kw)
    sim = iso.simulate(c, progress=False)
    return c, iso.stationary_table(sim)


def test_equation_of_state_all_protocols_d3_and_d10():
    # windows of ~1e5 steps at eta-tilde >= 0.01 hold >= 1e3 angular mixing times: the radius
    # batch-means error is < 0.3%, so 1.5% bounds the discretization-corrected prediction.
    for dim in (3, 10):
        sig = 1.0 if dim == 3 else 0.5
        for protocol, grid in (("lr", {"lr": (0.03, 0.1), "wd": (0.01, 0.05)}),
                               ("elr", {"elr": (0.02, 0.08), "wd": (0.01, 0.05)}),
                               ("sphere", {"elr": (0.02, 0.08), "radius": (0.3, 2.0)})):
            _, t = _run(protocol, grid, dim=dim, sigma=sig, steps=200_000, queue_size=200,
                        replicas=2)
            assert t["stationary"].all()
            key = "pressure" if protocol == "sphere" else "radius"
            rel = t[key] / t[f"{key}_discrete"] - 1
            assert np.abs(rel).max() < 0.015, (dim, protocol, rel)
            # pV = (d-1)T/2 with the SDE form, up to the discretization terms (< 6% here)
            resid = theory.ideal_gas_residual(t["pressure"], t["volume"], t["temperature"], dim)
            assert np.abs(resid).max() < 0.06


def test_energy_matches_exact_vmf_after_leading_discretization_correction():
    # sphere protocol, d=3: U/U_exact - 1 = eta-tilde/2 + O(eta-tilde^2). At eta-tilde <= 0.02
    # the correction is <= 1% and the second-order term (~ -1.5 eta^2, measured) < 0.06%;
    # 48 replicas x 1.6e5-step windows give a relative standard error ~0.25%.
    _, t = _run("sphere", {"elr": (0.01, 0.02), "radius": (1.0,)}, steps=200_000,
                replicas=48, queue_size=50)
    z_exact = (t["energy"] - t["energy_theory"]) / t["energy_se"]
    z_disc = (t["energy"] - t["energy_discrete"]) / t["energy_se"]
    assert np.all(np.abs(z_disc) < 4), z_disc
    assert z_exact[-1] > 2.5  # the uncorrected exact value is visibly below the simulation


def test_not_relaxed_points_are_flagged():
    # eta-tilde = 1e-3 from r0 = 1 towards r* = 0.1: relaxation needs ~3e6 steps
    _, t = _run("elr", {"elr": (1e-3, 0.05), "wd": (0.1,)}, steps=100_000, queue_size=100)
    assert not t["relaxed"][0] and not t["stationary"][0]
    assert t["stationary"][1] and not t["drifting"][0] and not t["diverged"][0]


def test_divergence_is_recorded_and_others_continue():
    # lr = 1e4 with wd = 1: the radius factor |1 - eta lambda| = 9999 overflows within ~80 steps
    _, t = _run("lr", {"lr": (0.1, 1e4), "wd": (1.0,)}, steps=20_000, queue_size=100)
    assert t["diverged"].tolist() == [False, True]
    assert np.isfinite(t["radius"][0]) and np.isnan(t["radius"][1])
    assert not t["stationary"][1]


@pytest.mark.parametrize("kw,msg", [
    ({"protocol": "adam", "lr": (0.1,), "wd": (0.1,)},
     "protocol == 'adam', must be one of lr, elr, sphere"),
    ({"protocol": "lr", "lr": (0.1,)}, "needs --wd"),
    ({"protocol": "lr", "lr": (0.1,), "wd": (0.1,), "radius": (1.0,)}, "takes no --radius"),
    ({"protocol": "elr", "elr": (-0.1,), "wd": (0.1,)}, r"elr == \(-0.1,\), must be > 0"),
    ({"protocol": "sphere", "elr": (0.1,), "radius": (0.0,)}, r"radius == \(0.0,\), must be > 0"),
    ({"protocol": "elr", "elr": (0.1,), "wd": (0.1,), "dim": 1}, "dim == 1, must be >= 2"),
    ({"protocol": "elr", "elr": (0.1,), "wd": (0.1,), "dim": 3.0}, "dim == 3.0, must be an int"),
    ({"protocol": "elr", "elr": (0.1,), "wd": (0.1,), "steps": 500}, "steps too short"),
    ({"protocol": "elr", "elr": (0.1,), "wd": (0.1,), "sigma": 0.0}, "sigma == 0.0, must be > 0"),
    ({"protocol": "elr", "elr": (0.1,), "wd": (0.1,), "queue_size": 2},
     "queue_size == 2, must be >= 3"),
    ({"protocol": "elr", "elr": (0.1,), "wd": (0.1,), "steps": 1000, "burn_in": 1000},
     "burn_in == 1000, must be <= 999"),
])
def test_bad_config(kw, msg):
    with pytest.raises(ValueError, match=msg):
        iso.IsotropicConfig(**kw)


def test_config_json_round_trip():
    c = iso.IsotropicConfig("sphere", elr=(0.1, 0.2), radius=(1.0,), steps=5000, queue_size=10,
                            dim=np.int64(4))
    assert type(c.dim) is int  # numpy integers are stored as int: the config stays JSON
    assert iso.IsotropicConfig.from_dict(json.loads(c.to_json())) == c


@pytest.mark.slow
def test_radius_stderr_covers_the_spread_over_seeds_when_relaxation_exceeds_blocks():
    """512 independent chains at elr = wd = 0.01 (radius relaxation time tau = 1/(elr^2 Q) =
    5000 steps, 20 blocks of 4000 steps: tau > block length). The spread of the chains' window
    means must match their reported radius_se: ratio std(means) / rms(se) in [0.8, 1.25]
    (measured 0.92-1.07 over 4 seeds; a chain holds only ~8 independent radius samples, so the
    ratio scatters ~6% between seeds, and the bounds sit ~3.5 of those away). Plain batch means
    (the estimator before the fix) gives 1.69-1.97 there."""
    R, window = 512, 80_000
    c = iso.IsotropicConfig("elr", elr=(0.01,), wd=(0.01,), steps=100_000, burn_in=20_000,
                            replicas=R, queue_size=10, seed=0)
    sim = iso.simulate(c, progress=False)
    tau = iso.radius_correlation_time(c)
    assert tau[0] > window / c.n_blocks
    means, se = pooled_mean_and_stderr(sim.block_sum, COL_RADIUS, 1, tau=np.repeat(tau, R),
                                       window=window)
    ratio = means.std(ddof=1) / np.sqrt(np.mean(se**2))
    assert 0.8 < ratio < 1.25
    _, se_plain = pooled_mean_and_stderr(sim.block_sum, COL_RADIUS, 1)
    assert means.std(ddof=1) / np.sqrt(np.mean(se_plain**2)) > 1.5
    # the table's pooled error is the same estimator: se of the mean over R chains
    table = iso.stationary_table(sim)
    assert table["radius_se"][0] == pytest.approx(np.sqrt(np.sum(se**2)) / R, rel=1e-12)


def _numpy_lr_energy(lr, wd, dim, n_chains, steps, burn, seed):
    """Independent plain-numpy fixed-LR chains (own RNG, own loop): window mean of L and its
    standard error (50 batch means over the pooled chains; relaxation 1/(4 lr wd) = 25 steps
    and mixing ~10 steps are far below the 100-step batches)."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal(dim)
    mu /= np.linalg.norm(mu)
    w = rng.standard_normal((n_chains, dim))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    losses = []
    for t in range(steps):
        r = np.linalg.norm(w, axis=1, keepdims=True)
        wb = w / r
        c = wb @ mu
        if t >= burn:
            losses.append((1.0 + c).mean())
        xi = rng.standard_normal(w.shape)
        noise = (xi - np.sum(xi * wb, 1, keepdims=True) * wb) / r
        w = w - lr * ((mu - c[:, None] * wb) / r + noise + wd * w)
    losses = np.array(losses)
    return losses.mean(), losses.reshape(50, -1).mean(1).std(ddof=1) / np.sqrt(50)


def test_lr_finite_step_energy_matches_independent_simulation_at_high_temperature():
    """(lr, wd) = (0.1, 0.1), d = 3: T ~ 0.05. The prediction at the step eta / r_disc^2 must
    match an independent numpy simulation (2000 chains x 5000 window steps, stderr ~0.1%)
    within 0.6% (the leftover higher-order finite-step term measured +0.2%); the old step
    sqrt-form (eta / r_SDE^2 = 0.1) predicted 0.05250, 2.3% high."""
    u_ind, u_se = _numpy_lr_energy(0.1, 0.1, 3, 2000, 6000, 1000, seed=11)
    _, t = _run("lr", {"lr": (0.1,), "wd": (0.1,)}, steps=60_000, replicas=4, queue_size=100)
    assert u_se / u_ind < 2e-3
    assert t["energy_discrete"][0] == pytest.approx(u_ind, rel=6e-3)
    # the simulator's own measurement agrees with the independent one (4 combined stderr)
    assert abs(t["energy"][0] - u_ind) < 4 * np.hypot(u_se, t["energy_se"][0])
    h_sde = float(theory.stationary_elr_lr(0.1, 0.1, 1.0, 3))
    old = float(theory.discrete_energy(vmf.mean_energy(3, 2.0 / h_sde), h_sde))
    assert old / u_ind - 1 > 0.015


def test_predicted_initial_radius_starts_slow_points_in_equilibrium():
    """elr = wd = 1e-3 relaxes in ~5e5 steps from r = 1 (r* = 1 here, but elr = 1e-3 with
    wd = 1e-2 has r* = 0.32, tau = 5e5): started at the predicted radius, a 6e4-step run is
    flagged relaxed and its mean radius sits within 1% of radius_discrete (radial spread ~1%
    over ~0.1 tau windows of 4 replicas), while the r = 1 start is far off and flagged."""
    grid = {"elr": (1e-3,), "wd": (1e-2, 1e-3)}
    kw = dict(steps=60_000, replicas=4, queue_size=50)
    _, cold = _run("elr", grid, **kw)
    c, warm = _run("elr", grid, init_radius="predicted", **kw)
    r0 = iso.initial_radius(c).ravel()
    assert np.allclose(r0, iso.predicted_radius(c).ravel())
    assert np.all(warm["relaxed"]) and not cold["relaxed"][0]
    assert np.abs(warm["radius"] / warm["radius_discrete"] - 1).max() < 0.01
    assert abs(cold["radius"][0] / cold["radius_discrete"][0] - 1) > 0.5


def test_predicted_radius_is_the_fixed_point_of_the_lr_balance():
    """lr: r^4 = eta (Q + g2(T(r))) / (2 lambda) with T = sigma^2 eta/(2 r^2) and the vMF
    g2 = (d-1) A_d(1/T) T, re-derived here with scipy's brentq on the balance residual."""
    from scipy.optimize import brentq

    c = iso.IsotropicConfig("lr", lr=(0.1, 0.01), wd=(0.1,), dim=3, steps=10_000)
    r = iso.predicted_radius(c).ravel()
    for lr, rr in zip((0.1, 0.01), r, strict=True):
        def balance(x, lr=lr):
            t = 0.5 * lr / x**2
            g2 = 2.0 * float(vmf.mean_resultant_length(3, 1.0 / t)) * t
            return x**4 - lr * (2.0 + g2) / (2 * 0.1)
        assert rr == pytest.approx(brentq(balance, 0.1, 10.0), rel=1e-10)


@pytest.mark.parametrize("r0, msg", [
    ("cold", "init_radius == 'cold', must be one of predicted"), ((1.0, 2.0), "one per point"),
    ((1.0, -1.0, 1.0, 1.0), r"init_radius == \(1.0, -1.0, 1.0, 1.0\), must be > 0"),
    (float("nan"), "init_radius == nan, must be finite")])
def test_bad_init_radius(r0, msg):
    with pytest.raises(ValueError, match=msg):
        iso.IsotropicConfig("elr", elr=(0.01, 0.1), wd=(0.01, 0.1), init_radius=r0)


def test_per_point_initial_radius_round_trips_and_reaches_the_kernel():
    c = iso.IsotropicConfig("elr", elr=(0.01, 0.1), wd=(0.01, 0.1), steps=3000,
                            init_radius=[1.0, 2.0, 0.5, 3.0], queue_size=10)
    assert iso.IsotropicConfig.from_dict(json.loads(c.to_json())) == c
    sim = iso.simulate(c, progress=False)
    assert np.allclose(sim.trace_radius[:, 0], [1.0, 2.0, 0.5, 3.0])
