"""Tests for thermosgd.monitor.ThermoMonitor: records, the measured stationary state, the
predictions' wiring to `thermosgd.theory.predict`, the verdict, and one independent check of
the whole chain (a simulated run against an independently iterated one-step map). The
estimators have their own tests (tests/estimators/), attach its own (tests/nn/test_attach.py).
"""

import math

import numpy as np
import pytest

from thermosgd.estimators.noise import NoiseEstimate, noise_from_gradients
from thermosgd.estimators.stationarity import StationarityCriteria
from thermosgd.monitor import ThermoMonitor
from thermosgd.theory.predict import predict

# --------------------------------------------------------------------------------------------
# synthetic records
# --------------------------------------------------------------------------------------------


def _ar1(rng, n, rho=0.9):
    e = rng.normal(size=n)
    out = np.empty(n)
    out[0] = e[0]
    for i in range(1, n):
        out[i] = rho * out[i - 1] + math.sqrt(1 - rho**2) * e[i]
    return out


def _noise(ts, g2=5.0, radius=1.0, n=64, rel_se=0.03):
    return NoiseEstimate(
        trace_sigma=ts,
        trace_sigma_se=rel_se * ts,
        grad_norm2=g2,
        grad_norm2_se=0.1 * g2,
        n=n,
        radius=radius,
        trace_total=ts + g2,
        trace_total_se=rel_se * (ts + g2),
    )


def _fill(
    mon,
    *,
    steps=4000,
    radius=lambda t: 2.0,
    loss=lambda t: 1.0,
    trace=lambda t: 50.0,
    prenorm=None,
    seed=0,
    every=200,
):
    """Steady records plus AR(1) noise (correlation ~10 steps): radius 0.1%, loss 5%."""
    rng = np.random.default_rng(seed)
    nr, nl = _ar1(rng, steps), _ar1(rng, steps)
    for t in range(steps):
        pn = None if prenorm is None else prenorm(t) * (1 + 1e-4 * nr[t])
        mon.record_step(
            t,
            radius=radius(t) * (1 + 1e-3 * nr[t]),
            loss=loss(t) * (1 + 0.05 * nl[t]),
            preprojection_norm=pn,
        )
        if t % every == 0:
            mon.record_noise(t, _noise(trace(t), radius=radius(t)))


def test_stationary_measurement():
    d, elr, wd = 101, 0.05, 0.02
    mon = ThermoMonitor("elr", d, elr=elr, wd=wd)
    _fill(mon)
    s = mon.stationary_state()
    assert s["stationary"] and s["reasons"] == [] and not s["diverged"]
    assert s["window_start"] == 2000 and s["window_end"] == 3999
    assert s["n_records"] == 2000 and s["n_noise"] == 10 and s["n_snapshots"] == 0
    assert s["sigma2"] == pytest.approx(50.0 / (d - 1))
    assert s["radius"] == pytest.approx(2.0, rel=1e-3)
    assert s["volume"] == pytest.approx(s["radius"] ** 2 / 2)
    assert s["energy"] == pytest.approx(1.0, rel=0.02)
    assert s["pressure"] == wd
    # the SE of the mean of 10 probes with equal values is the propagated one: 3% / sqrt(10)
    assert s["trace_sigma_se"] == pytest.approx(0.03 * 50 / math.sqrt(10))
    assert s["trace_total"] == pytest.approx(55.0)
    assert s["radius_se"] > 0 and s["energy_se"] > 0
    assert s["volume_se"] == pytest.approx(s["radius"] * s["radius_se"])
    assert math.isnan(s["entropy"])  # no snapshots pushed
    assert s["warnings"] == ["only 0 snapshots in the queue: no entropy"]
    assert "stationary: yes" in mon.summary()
    # the sphere: the pressure is measured from the pre-projection norm r'
    elr, r = 0.02, 3.0
    mon = ThermoMonitor("sphere", d, elr=elr, radius=r)
    _fill(mon, radius=lambda t: r, prenorm=lambda t: r * 1.001)
    s = mon.stationary_state()
    assert s["stationary"], s["reasons"]
    assert s["pressure"] == pytest.approx((r * 1.001 - r) / (elr * r**3), rel=1e-3)
    # r' fluctuates by 1e-4 relative = 10% of the excess r' - r, correlated over ~10 steps:
    # the SE of 2000 steps is ~1% of the pressure
    assert 0 < s["pressure_se"] < 0.03 * s["pressure"]
    assert math.isnan(s["radius_sde"]) and s["relaxation_time"] == 0
    assert "pressure" in mon.summary()


_COMBOS = {
    "sgd-elr": ("elr", {"elr": 0.05, "wd": 0.02}, {}),
    "sgd-lr": ("lr", {"lr": 0.1, "wd": 0.5}, {}),  # tau = 1 / (4 lr wd) = 5 steps
    "sgd-sphere": ("sphere", {"elr": 0.02, "radius": 3.0}, {}),
    "momentum": ("lr", {"lr": 0.01, "wd": 0.5}, {"optimizer": "momentum", "momentum": 0.9}),
    # beta2 = 0.9: the AdamW relaxation time 1/(2 lr wd) + 2/(1 - beta2) = 120 steps fits the
    # 4000 filled steps (at torch's 0.999 it is 2100)
    "adamw": ("lr", {"lr": 0.01, "wd": 0.5}, {"optimizer": "adamw", "beta2": 0.9}),
}


@pytest.mark.parametrize("combo", list(_COMBOS))
def test_predictions_wiring(combo):
    """Wiring, not physics: the state's predictions are `theory.predict` of the measured
    window (its tests check the closed forms), and the optimizer and betas are recorded."""
    protocol, hyper, opt = _COMBOS[combo]
    d = 51
    mon = ThermoMonitor(protocol, d, **hyper, **opt)
    r = hyper.get("radius", math.sqrt(0.01 * d / (2 * 0.5)) if combo == "adamw" else 1.5)
    _fill(mon, radius=lambda t: r, prenorm=(lambda t: r * 1.001) if protocol == "sphere" else None)
    s = mon.stationary_state()
    assert s["stationary"], s["reasons"]
    pn = mon.history()["preprojection_norm"][2000:]
    pred = predict(protocol, opt.get("optimizer", "sgd"), dim=d, **hyper,
                   momentum=opt.get("momentum"), beta2=opt.get("beta2"),
                   trace_sigma=s["trace_sigma"],
                   trace_sigma_se=s["trace_sigma_se"], grad_norm2=s["grad_norm2"],
                   trace_total=s["trace_total"], trace_total_se=s["trace_total_se"],
                   radius_measured=s["radius"],
                   preprojection_norm=pn.mean() if protocol == "sphere" else None,
                   preprojection_norm_se=s["pressure_se"] * hyper.get("elr", 1) * r**3)
    fields = pred.as_dict()
    for k in ("maxwell_slope", "maxwell_relation"):
        del fields[k]  # not part of the stationary state
    for k, v in fields.items():
        assert s[k] == pytest.approx(v, rel=1e-12, nan_ok=True), k
    expected = {"sgd": (None, None), "momentum": (0.9, None), "adamw": (0.9, 0.9)}
    optimizer = opt.get("optimizer", "sgd")
    assert (s["optimizer"], s["momentum"], s["beta2"]) == (optimizer, *expected[optimizer])
    # a few values written out, so that a wrong argument (lr for elr, d for d-1) shows
    sigma2 = 50.0 / (d - 1)
    if combo == "sgd-lr":
        assert s["temperature"] == pytest.approx(math.sqrt(0.1 * 0.5 * sigma2 / (2 * (d - 1))))
        assert s["relaxation_time"] == pytest.approx(1 / (4 * 0.1 * 0.5))
    if combo == "momentum":
        assert s["elr_measured"] == pytest.approx(0.01 / ((1 - 0.9) * s["radius"] ** 2))
        assert s["relaxation_time"] == pytest.approx(0.1 / (4 * 0.01 * 0.5))
        assert "momentum, lr=0.01, wd=0.5, beta=0.9" in mon.summary()
    if combo == "adamw":
        assert s["pressure"] == pytest.approx(0.5 * math.sqrt(sigma2 * (d - 1) / d) / s["radius"])


def _simulate(protocol, *, d=101, sigma2=0.04, lr=0.1, elr=0.05, wd=0.05, steps=4000, seed=0):
    """SGD on a scale-invariant quadratic-free model in plain numpy: the gradient is isotropic
    tangent noise g = sqrt(sigma2) P z / r (P the projector orthogonal to w), so that
    tr Sigma = Q = (d-1) sigma2 on the unit sphere; w' = (1 - eta wd) w - eta g with eta = lr
    ("lr") or elr r^2 ("elr"). The monitor gets the radius and a white loss every step, and a
    probe of 32 such gradients every 100 steps."""
    rng = np.random.default_rng(seed)
    hyper = {"lr": lr, "wd": wd} if protocol == "lr" else {"elr": elr, "wd": wd}
    mon = ThermoMonitor(protocol, d, **hyper)
    w = rng.normal(size=d)
    w /= np.linalg.norm(w)

    def gradients(n):
        r = np.linalg.norm(w)
        z = rng.normal(size=(n, d))
        z -= np.outer(z @ w, w) / r**2
        return math.sqrt(sigma2) * z / r

    for t in range(steps):
        r = float(np.linalg.norm(w))
        mon.record_step(t, radius=r, loss=1.0 + 0.01 * rng.normal())
        if t % 100 == 0:
            mon.record_noise(t, noise_from_gradients(gradients(32), r))
        eta = lr if protocol == "lr" else elr * r**2
        w = (1 - eta * wd) * w - eta * gradients(1)[0]
    return mon, hyper, (d - 1) * sigma2


@pytest.mark.parametrize("protocol", ["lr", "elr"])
def test_radius_matches_the_iterated_one_step_map(protocol):
    """Independent check of the chain records -> window means -> predict: the one-step map of
    the squared radius, r'^2 = (1 - eta wd)^2 r^2 + eta^2 Q / r^2 (the noise is tangent, so
    E<w, g> = 0), iterated to its fixed point, against the monitor's measured mean radius and
    its radius_discrete (the leading order in eta wd of that map)."""
    mon, hp, Q = _simulate(protocol)
    u = 1.0  # r^2
    for _ in range(20000):
        eta = hp["lr"] if protocol == "lr" else hp["elr"] * u
        u = (1 - eta * hp["wd"]) ** 2 * u + eta**2 * Q / u
    r_map = math.sqrt(u)
    s = mon.stationary_state()
    assert s["stationary"], s["reasons"]
    # measured: the window mean within 5 batch-means SEs (~0.1%) of the map's fixed point
    # (Jensen's bias of E[1/r^2] is ~1e-5, negligible). Blocks of 100 steps are only 1-2
    # relaxation times, so the batch-means SE is too small: the z-scores over 16 seeds spread
    # by 1.25 (lr) and 1.65 (elr) instead of 1; 5 SE is 3 of those spreads.
    assert abs(s["radius"] - r_map) < 5 * s["radius_se"], (s["radius"], r_map, s["radius_se"])
    # predicted from the probes' Q: radius_discrete drops O(eta wd) terms of the map
    # (lr: r^4 = lr Q / (wd (2 - lr wd)) vs lr Q / (2 wd), 0.06% in r at lr wd = 0.005; elr:
    # 0.1% at elr^2 Q = 0.01), and Q from 40 probes of 32 gradients has a 0.4% SE (0.1% in
    # r^4 and 0.2% in r^2): 0.5%
    assert s["radius_discrete"] == pytest.approx(r_map, rel=5e-3)
    assert s["trace_total"] == pytest.approx(Q, rel=4 * s["trace_total_se"] / Q)


def test_nonstationary_series_give_reasons():
    def reasons(**kw):
        mon = ThermoMonitor("elr", 101, elr=0.05, wd=0.02)
        _fill(mon, **kw)
        s = mon.stationary_state()
        assert not s["stationary"]
        return " | ".join(s["reasons"])

    # radius grows 5% over the window (batch-means noise ~0.03%)
    assert "radius drifting" in reasons(radius=lambda t: 2.0 * (1 + 0.05 * t / 4000))
    # loss falls 20%
    assert "loss trending" in reasons(loss=lambda t: 1.2 - 0.2 * t / 4000)
    # interpolation: loss ~ 1e-5
    assert "temperature collapsing (interpolation)" in reasons(loss=lambda t: 1e-5)
    # tr Sigma decays 10x over the run
    assert "temperature collapsing: tr Sigma fell" in reasons(
        trace=lambda t: 50 * 10 ** (-t / 4000)
    )
    # a pressure drift on the sphere
    mon = ThermoMonitor("sphere", 101, elr=0.02, radius=3.0)
    _fill(mon, radius=lambda t: 3.0, prenorm=lambda t: 3.0 * (1.001 + 0.001 * t / 4000))
    assert any("pressure drifting" in m for m in mon.stationary_state()["reasons"])


def test_window_against_relaxation_time():
    # lr protocol, tau = 1 / (4 lr wd) = 2500 steps: a 4000-step run is too short
    mon = ThermoMonitor("lr", 101, lr=0.01, wd=0.01)
    _fill(mon)
    s = mon.stationary_state()
    assert s["relaxation_time"] == pytest.approx(2500)
    assert s["burn_in_tau"] == pytest.approx(0.8)
    msg = " | ".join(s["reasons"])
    assert "window starts too early" in msg and "window too short" in msg
    # an explicit late window start is honoured
    assert mon.stationary_state(window_start=3900)["n_records"] == 100


def test_divergence_missing_noise_and_too_few_records():
    mon = ThermoMonitor("elr", 101, elr=0.05, wd=0.02)
    _fill(mon)
    mon.record_step(4000, radius=float("inf"), loss=float("nan"))
    s = mon.stationary_state()
    assert s["diverged"] and not s["stationary"]
    assert s["reasons"][0].startswith("diverged")
    assert "NO" in mon.summary()

    mon = ThermoMonitor("elr", 101, elr=0.05, wd=0.02)
    for t in range(10):
        mon.record_step(t, radius=1.0, loss=1.0)
    msg = " | ".join(mon.stationary_state()["reasons"])
    assert "too few step records" in msg and "no gradient-noise probe" in msg


def test_monitor_state_dict_round_trip():
    mon = ThermoMonitor("elr", 101, elr=0.05, wd=0.02, queue_capacity=10)
    _fill(mon, steps=400)
    rng = np.random.default_rng(0)
    for _ in range(12):
        mon.push_snapshot(rng.normal(size=101))
    other = ThermoMonitor("elr", 101, elr=0.05, wd=0.02, queue_capacity=10)
    other.load_state_dict(mon.state_dict())
    a, b = mon.stationary_state(), other.stationary_state()
    for k in ("radius", "energy", "trace_sigma", "stationary"):
        assert a[k] == b[k], k
    # the restored queue recomputes the norms from the float32 snapshots
    assert a["entropy"] == pytest.approx(b["entropy"], rel=1e-7)
    assert np.isfinite(a["entropy"])
    with pytest.raises(ValueError, match="different"):
        ThermoMonitor("elr", 101, elr=0.05, wd=0.03).load_state_dict(mon.state_dict())


def test_monitor_bad_input():
    with pytest.raises(ValueError, match="protocol == 'adam', must be one of"):
        ThermoMonitor("adam", 10, lr=0.1, wd=0.1)
    with pytest.raises(ValueError, match="wd == None, must be given"):
        ThermoMonitor("elr", 10, elr=0.1)
    with pytest.raises(ValueError, match=r"wd == 0\.1, must not be given"):
        ThermoMonitor("sphere", 10, elr=0.1, radius=1.0, wd=0.1)
    with pytest.raises(ValueError, match=r"wd == -0\.1, must be > 0"):
        ThermoMonitor("lr", 10, lr=0.1, wd=-0.1)
    with pytest.raises(ValueError, match="dim == 1, must be >= 2"):
        ThermoMonitor("lr", 1, lr=0.1, wd=0.1)
    with pytest.raises(ValueError, match="criteria"):
        ThermoMonitor("lr", 10, lr=0.1, wd=0.1, criteria={"z": 3})
    assert StationarityCriteria().z == 3.0
    mon = ThermoMonitor("elr", 10, elr=0.1, wd=0.1)
    with pytest.raises(ValueError, match="no steps"):
        mon.stationary_state()
    mon.record_step(0, radius=1.0, loss=1.0)
    with pytest.raises(ValueError, match=r"radius == -1\.0, must be > 0"):
        mon.record_step(1, radius=-1.0, loss=1.0)
    with pytest.raises(ValueError, match=r"preprojection_norm == -2\.0, must be > 0"):
        mon.record_step(1, radius=1.0, loss=1.0, preprojection_norm=-2.0)
    with pytest.raises(ValueError, match="step == 0, must be > 0"):
        mon.record_step(0, radius=1.0, loss=1.0)
    with pytest.raises(ValueError, match="step == -1, must be >= 0"):
        mon.record_si_distance(-1, 0.0, 0.0)
    with pytest.raises(ValueError, match="scalar"):
        mon.record_step(1, radius=np.ones(2), loss=1.0)
    with pytest.raises(ValueError, match="loss == 'x', must be a real number"):
        mon.record_step(1, radius=1.0, loss="x")
    with pytest.raises(ValueError, match="batched"):
        mon.record_noise(0, noise_from_gradients(np.ones((2, 4, 3)), 1.0))
    with pytest.raises(ValueError, match="NoiseEstimate"):
        mon.record_noise(0, {"trace_sigma": 1.0})
    with pytest.raises(ValueError, match="window_start == 5, must be <= 0"):
        mon.stationary_state(window_start=5)
    with pytest.raises(ValueError, match="shape"):
        mon.push_snapshot(np.ones(3))


def test_optimizer_monitor_errors_and_state():
    with pytest.raises(ValueError, match="optimizer 'momentum' runs the protocol"):
        ThermoMonitor("elr", 10, elr=0.1, wd=0.1, optimizer="momentum")
    with pytest.raises(ValueError, match=r"momentum == 1\.0, must be < 1\.0"):
        ThermoMonitor("lr", 10, lr=0.1, wd=0.1, optimizer="momentum", momentum=1.0)
    with pytest.raises(ValueError,
                       match=r"beta2 == 0\.9, must be None for optimizer 'momentum' \(it takes"):
        ThermoMonitor("lr", 10, lr=0.1, wd=0.1, optimizer="momentum", beta2=0.9)
    with pytest.raises(ValueError,
                       match=r"momentum == 0\.9, must be None for optimizer 'sgd' \(it takes"):
        ThermoMonitor("lr", 10, lr=0.1, wd=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="optimizer == 'adam', must be one of"):
        ThermoMonitor("lr", 10, lr=0.1, wd=0.1, optimizer="adam")
    mon = ThermoMonitor("lr", 10, lr=0.1, wd=0.1, optimizer="momentum", momentum=0.5)
    mon.record_step(0, radius=1.0, loss=1.0)
    other = ThermoMonitor("lr", 10, lr=0.1, wd=0.1, optimizer="momentum", momentum=0.9)
    with pytest.raises(ValueError, match="optimizer"):
        other.load_state_dict(mon.state_dict())
    same = ThermoMonitor("lr", 10, lr=0.1, wd=0.1, optimizer="momentum", momentum=0.5)
    same.load_state_dict(mon.state_dict())
    assert same.history()["radius"].tolist() == [1.0]


# --------------------------------------------------------------------------------------------
# distance from scale invariance (issue 6)


def test_si_distance_records_window_means_and_state_round_trip():
    m = ThermoMonitor("elr", 10, elr=0.01, wd=0.01, queue_capacity=5)
    for step in range(1, 11):
        m.record_step(step, radius=1.0 + 0.01 * step, loss=1.0)
    for step, (a, b) in zip((2, 4, 6, 8), ((0.1, 0.2), (0.3, 0.4), (0.5, 0.6), (0.7, 0.8)),
                            strict=True):
        m.record_si_distance(step, a, b)
    s = m.stationary_state(window_start=5, entropy=False)
    assert s["si_radial_gradient"] == pytest.approx(0.6)  # probes at 6 and 8
    assert s["si_radial_gradient_rms"] == pytest.approx(0.7)
    m2 = ThermoMonitor("elr", 10, elr=0.01, wd=0.01, queue_capacity=5)
    m2.load_state_dict(m.state_dict())
    assert m2.stationary_state(window_start=5, entropy=False)["si_radial_gradient"] == 0.6
    old = m.state_dict()
    del old["si_distance"]  # a state saved before the SI distance existed
    m2.load_state_dict(old)
    assert math.isnan(m2.stationary_state(entropy=False)["si_radial_gradient"])
    with pytest.raises(ValueError, match="step == 8, must be > 8"):
        m.record_si_distance(8, 0.1, 0.1)
    with pytest.raises(ValueError, match=r"radial == -0\.1, must be >= 0"):
        m.record_si_distance(9, -0.1, 0.1)


@pytest.mark.parametrize("protocol, hyper, says", [
    ("lr", {"lr": 0.1, "wd": 0.01}, "(T is unknown)"),
    ("elr", {"elr": 0.01, "wd": 0.01}, "(T and the relaxation time are unknown)"),
])
def test_without_probes_the_reason_names_only_what_is_unknown(protocol, hyper, says):
    """The fixed-LR relaxation time 1/(4 eta lambda) needs no noise probe (the summary shows
    it); the ELR one, 1/(eta-tilde^2 Q), does."""
    mon = ThermoMonitor(protocol, 10, **hyper)
    for t in range(1, 201):
        mon.record_step(t, radius=1.0 + 1e-3 * np.sin(t), loss=1.0 + 1e-3 * np.cos(t))
    s = mon.stationary_state()
    assert f"no gradient-noise probe in the window {says}" in s["reasons"]
    assert np.isfinite(s["relaxation_time"]) == (protocol == "lr")


def test_set_hyperparameters_starts_a_new_state_and_round_trips():
    mon = ThermoMonitor("elr", 10, elr=0.02, wd=0.01)
    for t in range(1, 101):
        mon.record_step(t, radius=1.0, loss=1.0)
    mon.set_hyperparameters(101, wd=0.01)  # no change: nothing recorded
    assert mon.state_dict()["changes"] == []
    mon.set_hyperparameters(101, elr=0.01)
    for t in range(101, 301):
        mon.record_step(t, radius=2.0, loss=0.5)
    s = mon.stationary_state(entropy=False)
    assert s["elr"] == 0.01 and s["window_start"] == (101 + 300 + 1) // 2
    assert s["radius"] == 2.0  # the records before the change are outside the window
    back = ThermoMonitor("elr", 10, elr=0.02, wd=0.01)
    back.load_state_dict(mon.state_dict())
    assert back.hyper == {"elr": 0.01, "wd": 0.01}
    assert back.stationary_state(entropy=False)["window_start"] == s["window_start"]
    with pytest.raises(ValueError, match=r"elr == -1.0, must be > 0"):
        mon.set_hyperparameters(400, elr=-1.0)
    with pytest.raises(ValueError, match=r"radius == 1.0, must not be given"):
        mon.set_hyperparameters(400, radius=1.0)


def test_set_hyperparameters_takes_the_betas_and_round_trips():
    """A heavy-ball beta change is a new state (predictions at the new beta: relaxation time
    (1 - beta) / (4 eta lambda), computed here); state_dict keeps the initial betas, so a
    fresh monitor built like the first one loads it; plain SGD refuses a beta."""
    mon = ThermoMonitor("lr", 10, lr=0.1, wd=0.01, optimizer="momentum", momentum=0.9)
    for t in range(1, 101):
        mon.record_step(t, radius=1.0, loss=1.0)
    mon.set_hyperparameters(101, momentum=0.9)  # no change: nothing recorded
    assert mon.state_dict()["changes"] == []
    mon.set_hyperparameters(101, momentum=0.5, lr=0.05)
    assert (mon.momentum, mon.hyper) == (0.5, {"lr": 0.05, "wd": 0.01})
    for t in range(101, 301):
        mon.record_step(t, radius=2.0, loss=0.5)
    s = mon.stationary_state(entropy=False)
    assert s["momentum"] == 0.5 and s["lr"] == 0.05
    assert s["relaxation_time"] == pytest.approx((1 - 0.5) / (4 * 0.05 * 0.01), rel=1e-12)
    spanning = mon.stationary_state(50, entropy=False)
    assert any("(lr 0.1 -> 0.05, momentum 0.9 -> 0.5)" in r for r in spanning["reasons"])
    back = ThermoMonitor("lr", 10, lr=0.1, wd=0.01, optimizer="momentum", momentum=0.9)
    back.load_state_dict(mon.state_dict())
    assert (back.momentum, back.hyper) == (0.5, {"lr": 0.05, "wd": 0.01})
    assert back.stationary_state(entropy=False)["relaxation_time"] == s["relaxation_time"]

    adamw = ThermoMonitor("lr", 10, lr=1e-3, wd=0.1, optimizer="adamw")
    adamw.set_hyperparameters(5, beta2=0.99)
    assert (adamw.momentum, adamw.beta2) == (0.9, 0.99)
    with pytest.raises(ValueError, match=r"beta2 == 1.5, must be"):
        adamw.set_hyperparameters(6, beta2=1.5)
    sgd = ThermoMonitor("lr", 10, lr=0.1, wd=0.01)
    with pytest.raises(ValueError, match=r"momentum == 0.9, must be None for optimizer 'sgd'"):
        sgd.set_hyperparameters(5, momentum=0.9)


def test_si_tolerance_reports_a_non_si_group():
    """Without si_tolerance (a monitor built directly, e.g. the trainer's non-SI variants) the
    distance from SI is only measured; with it, a value above the tolerance is a reason, a
    warning with the measured values and a summary line."""
    mon = ThermoMonitor("elr", 101, elr=0.05, wd=0.02)
    _fill(mon)
    for t in range(2000, 4000, 500):
        mon.record_si_distance(t, 0.3, 0.4)
    mon.record_si_check("attach", 0.02)
    s = mon.stationary_state(entropy=False)
    assert s["stationary"] and s["si_radial_gradient"] == pytest.approx(0.3)
    assert not any("scale-invariant" in m for m in s["warnings"])
    mon.si_tolerance = 1e-3
    s = mon.stationary_state(entropy=False)
    assert s["reasons"] == ["not scale-invariant (relative radial gradient 0.3 > 0.001)"]
    (w,) = [m for m in s["warnings"] if "scale-invariant" in m]
    assert "is 0.02 (attach check), 0.3 (window probes), above 0.001" in w
    assert f"  WARNING: {w}" in mon.summary()
    back = ThermoMonitor("elr", 101, elr=0.05, wd=0.02)
    back.load_state_dict(mon.state_dict())
    assert back.state_dict()["si_checks"] == {"attach": 0.02}
    with pytest.raises(ValueError, match=r"radial == -1.0, must be >= 0"):
        mon.record_si_check("final", -1.0)


@pytest.mark.parametrize("protocol, hyper, optimizer, betas", [
    ("lr", {"lr": 0.1, "wd": 0.01}, "sgd", {}),
    ("elr", {"elr": 0.05, "wd": 0.02}, "sgd", {}),
    ("lr", {"lr": 0.1, "wd": 0.01}, "momentum", {"momentum": 0.8}),
    ("sphere", {"elr": 0.05, "radius": 2.0}, "sgd", {}),
])
def test_scalars_are_the_latest_records(protocol, hyper, optimizer, betas):
    """scalars(): the last record and the last probe, T by the closed forms computed here
    (lr, SGD: sqrt(eta lambda sigma2 / (2 (d-1))); heavy ball: eta / (1 - beta) for eta;
    elr and sphere: elr sigma2 / 2), without touching the snapshot queue (no entropy)."""
    d = 101
    mon = ThermoMonitor(protocol, d, **hyper, optimizer=optimizer, **betas)
    with pytest.raises(ValueError, match=r"scalars\(\) needs a step"):
        mon.scalars()
    mon.record_step(1, radius=2.0, loss=0.7, preprojection_norm=2.01 if protocol == "sphere"
                    else None)
    first = mon.scalars()
    assert np.isnan(first["temperature"]) and np.isnan(first["noise_step"])
    mon.record_noise(1, _noise(40.0, radius=2.0))
    mon.record_noise(5, _noise(50.0, radius=2.0))
    mon.record_si_distance(5, 1e-6, 2e-6)
    r = 2.0 if protocol == "sphere" else 3.0  # the sphere's radius is its set one
    mon.record_step(7, radius=r, loss=0.5, preprojection_norm=2.02 if protocol == "sphere"
                    else None)
    mon.queue.entropy = mon.queue.full_entropy = None  # calling either would raise
    sc = mon.scalars()
    assert all(isinstance(v, float) for v in sc.values())
    assert sc["step"] == 7.0 and sc["radius"] == r and sc["volume"] == r**2 / 2
    assert sc["energy"] == 0.5 and sc["noise_step"] == 5.0 and sc["trace_sigma"] == 50.0
    assert sc["si_radial_gradient"] == 1e-6
    sigma2 = 50.0 / (d - 1)
    if protocol == "lr":
        eta = hyper["lr"] / (1 - betas.get("momentum", 0.0))
        t = math.sqrt(eta * hyper["wd"] * sigma2 / (2 * (d - 1)))
        assert sc["lr"] == hyper["lr"] and sc["pressure"] == hyper["wd"]
    else:
        t = hyper["elr"] * sigma2 / 2
    assert sc["temperature"] == pytest.approx(t, rel=1e-12)
    if protocol == "sphere":  # the set radius and the measured one are both there
        assert sc["radius_set"] == 2.0 and sc["preprojection_norm"] == 2.02
        # sphere pressure (r' - r) / (elr r^3) of the last record
        assert sc["pressure"] == pytest.approx((2.02 - 2.0) / (0.05 * 2.0**3), rel=1e-9)
    assert ("momentum" in sc) == (optimizer == "momentum") and "beta2" not in sc
