"""Tests of thermosgd.schedules.tracking: the comparison on synthetic records that follow the
predicted path exactly, a tiny real run, a ThermoMonitor of any loop, the relaxation fit,
bad configurations."""

from __future__ import annotations

import numpy as np
import pytest

from tests.schedules.curves import CURVE, D
from thermosgd import schedules as S


def test_analyze_track_is_consistent_on_synthetic_records():
    """Records that follow the predicted lagged path exactly have gap == gap_lag."""
    cfg = S.TrackConfig(schedule="step", lr=3.0, wd=0.01, steps=600, milestones=(200,),
                        burn_in=0, log_every=10, noise_every=50)
    proc = cfg.process()
    lag = S.lagged_path(proc, CURVE, init_radius=8.0)
    steps = np.arange(0, 600, 10)
    pst = np.arange(0, 600, 50)
    elr = proc.rate[pst] / lag["radius"][pst] ** 2
    records = {"step": steps.astype(float), "radius": lag["radius"][steps],
               "loss": np.ones(len(steps))}
    probes = {"step": pst.astype(float), "radius": lag["radius"][pst],
              "trace_sigma": CURVE.sigma2(elr) * (D - 1), "trace_sigma_se": np.zeros(len(pst)),
              "grad_norm2": np.zeros(len(pst)), "trace_total": CURVE.trace_total(elr),
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


def test_follow_a_thermo_monitor(tmp_path):
    """Any training loop: records and probes in a ThermoMonitor, followed against the
    schedule it ran (ELR step decay; synthetic records on the lagged path)."""
    from thermosgd.estimators.noise import NoiseEstimate
    from thermosgd.monitor import ThermoMonitor
    from thermosgd.workflows.schedules import write_track

    proc = S.Process("elr", S.step_decay(500, 0.04, milestones=[100], gamma=0.1), 0.01)
    lag = S.lagged_path(proc, CURVE, init_radius=3.0)
    mon = ThermoMonitor("elr", D, elr=0.04, wd=0.01)
    for t in range(0, 500, 10):
        if t % 50 == 0:
            elr = proc.rate[t]
            ts = float(CURVE.sigma2(elr)) * (D - 1)
            mon.record_noise(t, NoiseEstimate(
                trace_sigma=ts, trace_sigma_se=0.01 * ts, grad_norm2=float(
                    CURVE.trace_total(elr)) - ts, grad_norm2_se=1.0, n=64,
                radius=float(lag["radius"][t])))
        mon.record_step(t, radius=float(lag["radius"][t]), loss=1.0)
    res = S.follow(mon, proc, CURVE, milestone=100)
    np.testing.assert_allclose(res["records"]["gap"], res["records"]["gap_lag"], atol=1e-12)
    np.testing.assert_allclose(res["probes"]["entropy"], res["probes"]["entropy_lag"],
                               rtol=1e-12)
    assert res["summary"]["milestone"] == 100
    write_track(res, tmp_path / "f")
    assert (tmp_path / "f" / "schedule-volume.png").is_file()
    with pytest.raises(ValueError, match="beyond"):
        S.follow(mon, S.Process("elr", proc.rate[:100], 0.01), CURVE)


def test_fit_relaxation_recovers_an_exponential():
    t = np.arange(100, 400, 10.0)
    y = 2.0 + 3.0 * np.exp(-(t - 100) / 55.0)
    fit = S.fit_relaxation(t, y)
    assert fit["tau"] == pytest.approx(55.0, rel=1e-6)
    assert fit["y_0"] == pytest.approx(5.0, rel=1e-6)
    assert fit["y_inf"] == pytest.approx(2.0, rel=1e-6)
    assert S.fit_relaxation(t, np.ones_like(t)) is None  # no decay
    assert S.fit_relaxation(t[:3], y[:3]) is None  # too few points


def test_format_track_lines():
    s = {"max_abs_gap_measured": 0.1, "max_abs_gap_predicted": None,
         "volume_rms_rel_error_lagged": 0.02, "volume_rms_rel_error_equilibrium": 0.05,
         "volume_rms_rel_error_lagged_measured_q": 0.01,
         "temperature_rms_rel_error_lagged": 0.03,
         "temperature_rms_rel_error_equilibrium": 0.04, "max_quasi_static": 0.2,
         "tau_min": 10.0, "tau_max": 100.0}
    lines = S.format_track(s).splitlines()
    assert lines[0] == "max |V/V_eq - 1|: measured 10.0%, lagged path n/a"
    assert len(lines) == 4


@pytest.mark.parametrize("kw, match", [
    ({"protocol": "elr"}, "needs elr"),
    ({"lr": 1.0, "elr": 0.1}, "takes lr only"),
    ({"protocol": "sphere"}, r"protocol == 'sphere', must be one of lr, elr"),
    ({"schedule": "linear"}, r"schedule == 'linear', must be one of"),
    ({"wd_schedule": "linear"}, r"wd_schedule == 'linear'"),
    ({"noise_every": 15}, r"noise_every == 15, must be a multiple of log_every == 10"),
    ({"final": 1.5}, r"final == 1.5, must be < 1.0"),
    ({"schedule": "step"}, "milestones"),
    ({"burn_in": -1}, r"burn_in == -1, must be >= 0"),
    ({"noise_batches": 2}, r"noise_batches == 2, must be >= 3"),
    ({"steps": 0}, r"steps == 0, must be >= 1"),
    ({"wd": 0.0}, r"wd == 0.0, must be > 0"),
])
def test_bad_track_config(kw, match):
    with pytest.raises(ValueError, match=match):
        S.TrackConfig(**kw)


def test_track_runs_the_training_engine_wiring(tmp_path):
    """A constant schedule tracked = the engine's own run of `TrackConfig.train_config`: the
    records are its metrics rows after the burn-in, bit for bit (wiring: the same engine)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from thermosgd.io import read_csv
    from thermosgd.train import train

    cfg = S.TrackConfig(schedule="constant", lr=1.0, wd=0.01, steps=100, burn_in=40,
                        hidden=(8,), log_every=10, noise_every=20, noise_batches=4,
                        batch_size=32)
    res = S.track(cfg, run_dir=tmp_path / "track")
    train(cfg.train_config(), tmp_path / "plain", progress=False)
    rows = read_csv(tmp_path / "plain" / "metrics.csv")
    after = rows["step"] > cfg.burn_in
    np.testing.assert_array_equal(res["records"]["radius"], rows["radius"][after])
    np.testing.assert_array_equal(res["records"]["loss"], rows["loss"][after])
    np.testing.assert_array_equal(res["records"]["step"], rows["step"][after] - 50)
    assert (tmp_path / "track" / "stationary.json").is_file()


def test_track_follows_the_schedule():
    """The hook sets the scheduled lr before each update: after a step decay by gamma = 0.1
    the radius relaxes to the fixed-LR equilibrium of the new lr. The SDE equation of state
    lambda r^2 / 2 = (d-1) (eta / r^2) sigma^2 / 4 gives r_after / r_before =
    (gamma sigma2_after / sigma2_before)^(1/4) with sigma^2 measured by the run's own probes.
    Tolerance 15%: the sigma^2 ratio from 2 + 3 probes of 16 minibatches has a relative error of
    about sqrt(2 / (2 * 16) + 2 / (3 * 16)) = 32%, 8% after the fourth root, plus the
    O(eta lambda) = 0.09 finite-step correction before the drop (tau_before = 1 / (4 eta
    lambda) = 3 steps, tau_after = 28 steps: both windows are more than 3 tau after the
    change)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    cfg = S.TrackConfig(schedule="step", lr=3.0, wd=0.03, milestones=(200,), gamma=0.1,
                        steps=500, burn_in=200, hidden=(8,), log_every=10, noise_every=50,
                        noise_batches=16, batch_size=32)
    res = S.track(cfg)
    r, step = res["records"]["radius"], res["records"]["step"]
    p = res["probes"]
    before, after = (step >= 100) & (step < 200), step >= 350
    pb, pa = (p["step"] >= 100) & (p["step"] < 200), p["step"] >= 350
    measured = r[after].mean() / r[before].mean()
    predicted = (0.1 * p["sigma2"][pa].mean() / p["sigma2"][pb].mean()) ** 0.25
    assert measured == pytest.approx(predicted, rel=0.15)
    assert measured < 0.7  # the drop happened (without it the ratio is 1)
    with pytest.raises(ValueError, match="multiple of log_every"):
        S.TrackConfig(steps=405, log_every=10)
