"""estimators.window_state.measure_window: the window's means against numpy on the same
records, the probe reasons, the sphere's pre-projection norms."""

import numpy as np
import pytest

from thermosgd.estimators.stationarity import StationarityCriteria
from thermosgd.estimators.window_state import measure_window

D = 11


def _records(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    steps = np.arange(n)
    return {"step": steps, "radius": 2.0 + 0.01 * rng.standard_normal(n),
            "loss": 0.5 + 0.1 * rng.standard_normal(n), "preprojection_norm": np.full(n, np.nan)}


def _probes(steps):
    k = len(steps)
    return {"step": np.asarray(steps), "trace_sigma": np.full(k, 3.0),
            "trace_sigma_se": np.full(k, 0.1), "grad_norm2": np.full(k, 0.2),
            "grad_norm2_se": np.full(k, 0.01), "trace_total": np.full(k, 3.2),
            "trace_total_se": np.full(k, 0.1), "radius": np.full(k, 2.0), "n": np.full(k, 64)}


def test_window_means_are_the_records_second_half():
    h = _records()
    out, w = measure_window(h, _probes([1000, 2500, 3000, 3900]), protocol="elr",
                            optimizer="sgd", dim=D, hyper={"elr": 0.5, "wd": 0.01},
                            momentum=None, beta2=None, criteria=StationarityCriteria())
    half = h["step"] >= 2000
    assert out["window_start"] == 2000 and out["n_records"] == 2000 and out["n_noise"] == 3
    assert out["radius"] == pytest.approx(h["radius"][half].mean(), rel=1e-15)
    assert out["energy"] == pytest.approx(h["loss"][half].mean(), rel=1e-15)
    assert out["volume"] == pytest.approx(out["radius"] ** 2 / 2, rel=1e-15)
    assert out["sigma2"] == pytest.approx(3.0 / (D - 1), rel=1e-15)
    # independent radius samples and a predicted relaxation time 1 / (elr^2 Q) = 1.25 steps,
    # far below the blocks: the error is std / sqrt(n) up to the block-means scatter (20
    # blocks: +-16% at 1 sigma, so 50% is > 3 sigma)
    assert out["radius_se"] == pytest.approx(0.01 / np.sqrt(2000), rel=0.5)
    assert w["prediction"].relaxation_time > 0 and not w["reasons"]


def test_no_probe_in_the_window_is_a_reason():
    out, w = measure_window(_records(), _probes([100]), protocol="lr", optimizer="sgd", dim=D,
                            hyper={"lr": 0.1, "wd": 0.01}, momentum=None, beta2=None,
                            criteria=StationarityCriteria())
    assert np.isnan(out["trace_sigma"])
    assert any("no gradient-noise probe in the window (T is unknown)" in r for r in w["reasons"])


def test_sphere_without_preprojection_norms_warns():
    _, w = measure_window(_records(), _probes([3000]), protocol="sphere", optimizer="sgd",
                            dim=D, hyper={"elr": 0.01, "radius": 2.0}, momentum=None,
                            beta2=None, criteria=StationarityCriteria())
    assert any("pressure is unknown" in m for m in w["warnings"])
