"""group_state on synthetic records: window, time to equilibrium against an iterated norm map,
the verdict's reasons."""

import numpy as np
import pytest

from thermosgd.estimators.group_gas import group_state


def _records(norm2, grad2, update2=None, radial=0.0, start=0):
    n = len(norm2)
    return {"step": np.arange(start, start + n), "norm2": np.asarray(norm2, float),
            "grad2": np.asarray(grad2, float),
            "update2": np.full(n, 1e-4) if update2 is None else np.asarray(update2, float),
            "radial": np.full(n, radial)}


def test_time_to_equilibrium_matches_the_iterated_mean_norm_map():
    # SGD, Q = 100, eta = 0.2, lambda = 1e-3: r*^4 = eta Q / (2 lambda) = 1e4; the exact mean
    # map r^2 <- (1 - eta lambda)^2 r^2 + eta^2 Q / r^2 iterated from r = 2 r* counts the steps
    # to within 1% of its fixed point; group_state's tau ln(delta / delta_tol) (tau = 1/(4 eta
    # lambda) = 1250) is the linearized count: equal within 5% (the map's r^4 decays faster
    # than exp(-t / tau) while far from r*, and its fixed point differs by O(eta lambda))
    lr, wd, q = 0.2, 1e-3, 100.0
    rstar = (lr * q / (2 * wd)) ** 0.25
    r2 = (2 * rstar) ** 2
    rec = _records([r2] * 64, [q] * 64)
    st = group_state(rec, dim=50, optimizer="sgd", lr=lr, wd=wd)
    fixed = (lr**2 * q / (1 - (1 - lr * wd) ** 2)) ** 0.5
    steps = 0
    while abs(np.sqrt(r2 / fixed) - 1) > 0.01:
        r2 = (1 - lr * wd) ** 2 * r2 + lr**2 * q / r2
        steps += 1
    assert st["norm_predicted"] == pytest.approx(rstar, rel=1e-12)
    assert st["time_to_equilibrium"] == pytest.approx(steps, rel=0.05)
    assert st["relaxation_time"] == pytest.approx(1250)


def test_window_is_the_second_half_since_the_last_change():
    norm2 = np.r_[np.full(100, 4.0), np.full(100, 9.0)]
    st = group_state(_records(norm2, np.full(200, 10.0)), dim=20, optimizer="sgd", lr=0.1,
                     wd=1e-2, since=100)
    assert st["window_start"] == 150 and st["records"] == 50
    assert st["norm"] == pytest.approx(3.0)
    assert st["steps_constant"] == 100


def test_reasons():
    st = group_state(_records(np.linspace(4.0, 2.0, 400), np.full(400, 10.0), radial=0.2),
                     dim=20, optimizer="sgd", lr=0.1, wd=1e-2)
    assert not st["equilibrated"]
    text = "; ".join(st["reasons"])
    assert "not scale-invariant: mean |radial gradient| 0.2 > 0.001" in text
    assert "norm drifting: window halves differ by" in text
    assert "400 steps at constant hyperparameters < 3 relaxation times (750)" in text
    one = group_state(_records([4.0], [10.0]), dim=20, optimizer="sgd", lr=0.1, wd=1e-2,
                      since=0)
    assert "too few records in the window (1 < 4)" in "; ".join(one["reasons"])
