"""Direction snapshots, the stationary table and the energy temperature of the momentum/AdamW
isotropic simulator (the radius and angle closed forms are tested in test_optimizers.py)."""

import numpy as np
import pytest

from thermosgd import vmf
from thermosgd.isotropic_momentum import simulate, stationary_table, temperature_from_energy


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


def test_cli_runs_an_optimizer_grid_and_analyzes_it(tmp_path, capsys):
    from thermosgd.cli import main

    out = tmp_path / "mom"
    assert main(["isotropic", "--optimizer", "momentum", "--momentum", "0.5", "--protocol", "lr",
                 "--lr", "log:0.01:0.1:3", "--wd", "log:0.01:0.1:3", "--steps", "20000",
                 "--queue-size", "100", "--no-figures", "--out", str(out)]) == 0
    assert "9/9 stationary runs" in capsys.readouterr().out
    for f in ("config.json", "results.csv", "analysis.json"):
        assert (out / f).is_file()
    assert main(["isotropic", "--optimizer", "adamw", "--protocol", "elr", "--elr", "0.1",
                 "--wd", "0.1", "--out", str(tmp_path / "x")]) == 2
    assert "runs the fixed-LR protocol" in capsys.readouterr().err
