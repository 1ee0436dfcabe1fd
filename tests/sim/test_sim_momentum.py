"""The momentum/AdamW isotropic simulator: its kernel against a plain numpy reference,
direction snapshots, the stationary table and the energy temperature (the radius and angle
closed forms are tested in tests/theory/)."""

import numpy as np
import pytest

from tests.reference import assert_matches_reference
from tests.reference.isotropic_momentum import momentum_chains
from thermosgd.sim.momentum import simulate, stationary_table, temperature_from_energy
from thermosgd.theory import vmf

_FIELDS = ("radius", "radius_se", "energy", "energy_se", "grad_norm2", "angular_update",
           "radius2", "inv_radius2", "step_ratio", "directions")


@pytest.mark.parametrize("optimizer,beta1,mu,dim", [
    ("momentum", 0.9, None, 3), ("momentum", 0.0, None, 5),
    ("adamw", 0.9, "diagonal", 3), ("adamw", 0.5, None, 4),
])
def test_kernel_matches_numpy_reference(optimizer, beta1, mu, dim):
    """Every window statistic and direction snapshot of `simulate` against the numpy chains of
    `tests.reference.isotropic_momentum` (same normal streams; 2 points x 2 replicas, 400
    steps, 100 of burn-in, chains started at radii 0.7 and 1.3 with zero buffers, so the
    bias correction of AdamW's first steps is exercised). Tolerance: only float64 round-off
    separates them (numpy's summation order, numba's b^(t+1) by repeated products vs pow,
    the angle from 2 asin(chord/2) vs arccos(cos)), ~1e-16 per operation over 400 steps of a
    contracting map: measured <= 2e-14 relative, except the RMS angle (2e-13: arccos near 1
    has the conditioning 1/theta^2 ~ 5e4 in eps at theta ~ 4e-3). rtol = 1e-9 leaves a
    margin of > 5000."""
    kw = dict(dim=dim, lr=[0.02, 0.05] if optimizer == "momentum" else [0.003, 0.01],
              wd=[0.05, 0.1], beta1=beta1, beta2=0.99, sigma=0.8, steps=400, burn_in=100,
              replicas=2, seed=4, init_radius=np.array([0.7, 1.3, 0.7, 1.3]), mu=mu,
              n_blocks=4, queue_size=3)
    run = simulate(optimizer, **kw)
    ref = momentum_chains(optimizer, **kw)
    assert np.isfinite(run.radius).all() and np.isfinite(run.directions).all()
    fast = {k: getattr(run, k) for k in _FIELDS}
    assert_matches_reference(fast, ref, rtol=1e-9, atol=1e-15, what=optimizer)


def test_snapshots_do_not_change_the_trajectory_and_are_unit_directions():
    kw = dict(dim=4, lr=[0.05, 0.02], wd=0.01, beta1=0.9, steps=6000, burn_in=2000,
              replicas=2, seed=3)
    a = simulate("momentum", **kw)
    b = simulate("momentum", **kw, queue_size=50)
    np.testing.assert_array_equal(a.radius, b.radius)
    np.testing.assert_array_equal(a.energy, b.energy)
    assert a.directions is None and b.directions.shape == (2, 100, 4)
    np.testing.assert_allclose(np.linalg.norm(b.directions, axis=2), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="queue_size"):
        simulate("momentum", **kw, queue_size=5000)


def test_temperature_from_energy_inverts_the_vmf_energy():
    for d in (3, 10, 1000):
        T = np.array([1e-3, 0.03, 0.5, 3.0])
        U = vmf.mean_energy(d, 1.0 / T)
        np.testing.assert_allclose(temperature_from_energy(d, U), T, rtol=1e-8)
    assert np.isnan(temperature_from_energy(3, [0.0, 1.2])).all()


@pytest.mark.parametrize("opt,mu", [("momentum", None), ("adamw", "diagonal")])
def test_stationary_table_measures_temperature_and_entropy(opt, mu):
    """One low-temperature point, 4000 snapshots: the energy temperature T_U agrees with the
    closed form and the k-NN entropy of the directions with the exact vMF entropy at T_U within
    5 standard errors (the closed forms hold to ~2% here; the energy's batch-means error is
    ~1%), the ideal-gas law p r^2 = (d-1) T_U within 5%."""
    lr, wd = (0.05, 0.01) if opt == "momentum" else (0.01, 0.1)
    run = simulate(opt, dim=3, lr=lr, wd=wd, beta1=0.9, steps=200_000, replicas=2, seed=1,
                   queue_size=2000, mu=mu)
    t = stationary_table(run)
    assert t["optimizer"][0] == opt and t["protocol"][0] == "lr" and t["stationary"][0]
    assert t["temperature_energy"][0] == pytest.approx(t["temperature"][0], rel=0.05)
    s_vmf = vmf.entropy(3, 1.0 / t["temperature_energy"][0])
    assert abs(t["entropy_dir"][0] - s_vmf) < 5 * t["entropy_dir_se"][0]
    assert t["entropy"][0] == pytest.approx(t["entropy_dir"][0] + 2 * np.log(t["radius"][0]))
    gas = t["pressure"][0] * t["radius"][0] ** 2 / (2 * t["temperature_energy"][0])
    assert gas == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("kw,msg", [
    ({"optimizer": "lion"}, "optimizer == 'lion', must be one of momentum, adamw"),
    ({"dim": 1}, "dim == 1, must be >= 2"),
    ({"lr": [0.1, -0.1]}, "lr == .*, must be > 0"),
    ({"beta1": 1.0}, "beta1 == 1.0, must be < 1.0"),
    ({"optimizer": "adamw", "beta2": -0.1}, "beta2 == -0.1, must be >= 0.0"),
    ({"sigma": float("inf")}, "sigma == inf, must be finite"),
    ({"burn_in": 990}, "burn_in == 990, must be <= 980"),
    ({"replicas": 0}, "replicas == 0, must be >= 1"),
    ({"mu": [1.0, 0.0]}, r"mu == \[1.0, 0.0\], must be 'diagonal' or a nonzero vector of length 3"),
])
def test_bad_input_is_one_line_in_the_validate_style(kw, msg):
    args = {"optimizer": "momentum", "dim": 3, "lr": 0.1, "wd": 0.1, "beta1": 0.9,
            "steps": 1000, "burn_in": 100, **kw}
    with pytest.raises(ValueError, match=msg):
        simulate(args.pop("optimizer"), **args)
