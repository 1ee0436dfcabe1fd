"""Tests of thermosgd.theory.predict: the one prediction for any protocol and optimizer.

(a) Wiring checks: `predict` reproduces, bit for bit, what the network monitor's stationary
state and the training's per-run predictions computed before they were switched to it (a
frozen copy of those expressions, as of the commit that introduced `predict`), and what the
live `ThermoMonitor` writes.
(b) Physics checks that do not re-call the closed forms: the discretized SGD radius against
the fixed point of the iterated one-step map, the radius relaxation time against an
integrated ODE, the Maxwell slopes against finite differences of S(T, r).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tests.reference import assert_matches_reference
from thermosgd import theory
from thermosgd.theory import Prediction, predict, sgd
from thermosgd.theory import adamw as aw
from thermosgd.theory import momentum as hb

nan = float("nan")

# (protocol, optimizer, hyperparameters, momentum)
CASES = [
    ("lr", "sgd", {"lr": 0.1, "wd": 5e-3}, None),
    ("elr", "sgd", {"elr": 3e-3, "wd": 2e-2}, None),
    ("sphere", "sgd", {"elr": 1e-2, "radius": 1.7}, None),
    ("lr", "momentum", {"lr": 0.05, "wd": 1e-3}, 0.9),
    ("lr", "adamw", {"lr": 1e-3, "wd": 0.05}, 0.9),
]
# measured window: trace_sigma, its SE, grad_norm2, trace_total, its SE, mean radius,
# mean pre-projection norm and its SE (sphere)
STATES = [
    (12.5, 0.4, 0.7, 13.2, 0.45, 2.3, 1.7002, 1e-5),
    (12.5, 0.4, -0.3, 12.2, 0.45, 0.8, 1.7002, nan),  # unbiased grad_norm2 < 0
    (12.5, 0.4, nan, nan, nan, 2.3, nan, nan),        # no grad_norm2 / Q
    (nan, nan, nan, nan, nan, 2.3, 1.7002, 1e-5),     # no noise probe in the window
    (12.5, 0.4, 0.7, 13.2, 0.45, nan, 1.7002, 1e-5),  # diverged: mean radius NaN
    (12.5, 0.4, 0.7, -1.0, 0.45, 2.3, 1.7002, 1e-5),  # Q <= 0
]
DIM = 40


def _monitor_reference(protocol, optimizer, d, hyper, momentum, ts, ts_se, g2, tt, tt_se,
                       rbar, pn_mean, pn_se) -> dict:
    """Frozen copy of ThermoMonitor._stationary_state's block "# temperature, pressure"
    through "# radius predictions, relaxation time" (monitor.py before the switch to predict),
    with its `optimizers.lr_*` dispatchers expanded to the closed forms they called."""
    lr, elr, wd, radius = (hyper.get(k) for k in ("lr", "elr", "wd", "radius"))
    out = {}
    sigma2 = ts / (d - 1)
    rel_ts = ts_se / ts if ts > 0 else nan
    rel_tt = tt_se / tt if tt > 0 else nan
    ok_noise = bool(np.isfinite(ts) and ts > 0 and np.isfinite(rbar) and rbar > 0)

    def elr_effective(r, s2):
        if protocol != "lr":
            return elr
        if optimizer == "adamw" and not (np.isfinite(s2) and s2 > 0):
            return float("nan")
        if optimizer == "adamw":
            return float(lr / (np.sqrt(np.float64(s2) * (d - 1.0) / d) * np.float64(r)))
        b = 0.0 if optimizer == "sgd" else float(momentum)
        r = np.float64(r)
        return float(np.float64(lr) / ((1.0 - np.float64(b)) * r * r))

    elr_eff = elr_effective(rbar, sigma2) if np.isfinite(rbar) and rbar > 0 else nan
    out["elr_measured"] = elr_eff
    if ok_noise:
        hp = {k_: v for k_, v in hyper.items() if k_ != "radius"}
        if optimizer == "momentum":
            T = float(hb.momentum_temperature(lr, wd, float(momentum), sigma2, d))
        elif optimizer == "adamw":
            T = float(aw.adamw_temperature(lr, wd, sigma2, d, float(momentum)))
        else:
            T = float(sgd.temperature(protocol, sigma2=sigma2, dim=d, **hp))
        Tm = elr_eff * sigma2 / 2
        out["temperature"] = T
        out["temperature_se"] = T * rel_ts / (2 if protocol == "lr" else 1)
        out["temperature_measured"], out["temperature_measured_se"] = Tm, Tm * rel_ts
    else:
        for key in ("temperature", "temperature_se", "temperature_measured",
                    "temperature_measured_se"):
            out[key] = nan
    out["pressure"], out["pressure_se"] = (wd, 0.0) if protocol != "sphere" else (nan, nan)
    if protocol == "sphere" and np.isfinite(pn_mean):
        out["pressure"] = float(sgd.sphere_pressure_from_norm(pn_mean, radius, elr))
        out["pressure_se"] = pn_se / (elr * radius**3)
    if optimizer == "adamw" and ok_noise:
        out["pressure"] = float(aw.adamw_pressure(wd, rbar, sigma2, d))
        out["pressure_se"] = out["pressure"] * rel_ts / 2
    elif optimizer == "adamw":
        out["pressure"] = out["pressure_se"] = nan
    if ok_noise:
        out["pressure_sde"] = elr_eff * ts / (2 * rbar**2)
        out["pressure_sde_se"] = out["pressure_sde"] * rel_ts
        q_eff = tt
        if optimizer != "sgd" and np.isfinite(g2):
            w_ = (1 - momentum) / (1 + momentum)
            g2p = max(g2, 0.0)
            q_eff = ts + g2p * w_
            if optimizer == "adamw":
                q_eff = ts * q_eff / (ts + g2p)
        out["pressure_discrete"] = elr_eff * q_eff / (2 * rbar**2)
        out["pressure_discrete_se"] = out["pressure_discrete"] * rel_tt
    else:
        for key in ("pressure_sde", "pressure_sde_se", "pressure_discrete",
                    "pressure_discrete_se"):
            out[key] = nan
    out["radius_sde"] = out["radius_sde_se"] = nan
    out["radius_discrete"] = out["radius_discrete_se"] = nan
    out["relaxation_time"] = nan
    if optimizer != "sgd" and ok_noise:
        power = 2 if optimizer == "adamw" else 4
        b = float(momentum)
        if optimizer == "adamw":
            out["radius_sde"] = float(aw.adamw_radius(lr, wd, d))
        else:
            out["radius_sde"] = float(hb.momentum_radius(lr, wd, b, sigma2, d))
        out["radius_sde_se"] = out["radius_sde"] * rel_ts / power if power == 4 else 0.0
        if np.isfinite(g2):
            if optimizer == "adamw":
                rd = aw.adamw_radius_discrete(lr, wd, b, d, ts, max(g2, 0.0), exact=True)
            else:
                rd = hb.momentum_radius_discrete(lr, wd, b, ts, max(g2, 0.0), exact=True)
            out["radius_discrete"] = float(rd)
            out["radius_discrete_se"] = out["radius_discrete"] * rel_tt / power
            if optimizer == "adamw":
                ratio = (out["radius_discrete"] / rbar) ** 2
                out["pressure_discrete"] = out["pressure"] * ratio
                out["pressure_discrete_se"] = out["pressure_discrete"] * rel_tt
    elif protocol != "sphere" and ok_noise:
        hp = dict(hyper)
        power = 4 if protocol == "lr" else 2
        out["radius_sde"] = float(sgd.radius_sde(protocol, sigma2=sigma2, dim=d, **hp))
        out["radius_sde_se"] = out["radius_sde"] * rel_ts / power
        if np.isfinite(tt) and tt > 0:
            out["radius_discrete"] = float(
                sgd.radius_discrete(protocol, trace_sigma=tt, grad_norm2=0.0, **hp))
            out["radius_discrete_se"] = out["radius_discrete"] * rel_tt / power
    if protocol == "lr":
        b = 0.0 if optimizer == "sgd" else float(momentum)
        out["relaxation_time"] = float(
            aw.adamw_relaxation_time(lr, wd, 0.999) if optimizer == "adamw"
            else hb.momentum_relaxation_time(lr, wd, b))
    elif protocol == "elr" and np.isfinite(tt) and tt > 0:
        out["relaxation_time"] = float(sgd.relaxation_time("elr", elr=elr, trace_total=tt))
    elif protocol == "sphere":
        out["relaxation_time"] = 0.0
    return out


def _call(protocol, optimizer, hyper, momentum, state, **extra) -> Prediction:
    ts, ts_se, g2, tt, tt_se, rbar, pn, pn_se = state
    return predict(protocol, optimizer, dim=DIM, **hyper, momentum=momentum, trace_sigma=ts,
                   trace_sigma_se=ts_se, grad_norm2=g2, trace_total=tt, trace_total_se=tt_se,
                   radius_measured=rbar,
                   preprojection_norm=pn if protocol == "sphere" else None,
                   preprojection_norm_se=pn_se if protocol == "sphere" else None, **extra)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize(("protocol", "optimizer", "hyper", "momentum"), CASES)
def test_predict_reproduces_the_monitor_block_wiring(protocol, optimizer, hyper, momentum,
                                                     state):
    got = _call(protocol, optimizer, hyper, momentum, state).as_dict()
    ref = _monitor_reference(protocol, optimizer, DIM, hyper, momentum, *state)
    got = {k: got[k] for k in ref}
    # bit for bit (rtol = atol = 0, NaN at the same places): the same operations in order
    assert_matches_reference(got, ref, rtol=0.0, atol=0.0, what=f"{protocol}/{optimizer}")


def _training_reference(protocol, optimizer, d, hyper, momentum, radius, Q, Q_se):
    """Frozen copy of training._steps_noise's predictions from the steps' own Q (training.py
    before the switch to predict): Q alone, grad_norm2 counted as noise."""
    out = {}
    rel = Q_se / Q
    if protocol == "sphere":
        p = float(sgd.sphere_pressure_discrete(hyper["elr"], radius, Q, 0.0)) if Q > 0 else nan
        out["pressure_discrete"], out["pressure_discrete_se"] = p, p * rel
        return out
    r = nan
    if Q > 0 and optimizer == "adamw":
        r = aw.adamw_radius_discrete(hyper["lr"], hyper["wd"], momentum, d, Q, 0.0, exact=True)
    elif Q > 0 and optimizer == "momentum":
        r = hb.momentum_radius_discrete(hyper["lr"], hyper["wd"], momentum, Q, 0.0, exact=True)
    elif Q > 0:
        r = sgd.radius_discrete(protocol, trace_sigma=Q, grad_norm2=0.0, **hyper)
    r = float(r)
    power = (2 if optimizer == "adamw" else 4) if protocol == "lr" else 2
    out["radius_discrete"], out["radius_discrete_se"] = r, r * rel / power
    return out


@pytest.mark.parametrize("Q", [13.2, 0.37, nan])
@pytest.mark.parametrize(("protocol", "optimizer", "hyper", "momentum"), CASES)
def test_predict_reproduces_the_training_steps_noise_wiring(protocol, optimizer, hyper,
                                                            momentum, Q):
    Q_se = 0.02
    radius = hyper.get("radius")
    ref = _training_reference(protocol, optimizer, DIM, hyper, momentum, radius, Q, Q_se)
    p = predict(protocol, optimizer, dim=DIM, **hyper, momentum=momentum, trace_sigma=Q,
                grad_norm2=0.0, trace_total=Q, trace_total_se=Q_se,
                radius_measured=radius).as_dict()
    assert_matches_reference({k: p[k] for k in ref}, ref, rtol=0.0, atol=0.0)


@pytest.mark.parametrize("ts", [12.5, 1e-3, 0.0, nan])
@pytest.mark.parametrize(("protocol", "optimizer", "hyper", "momentum"), CASES)
def test_predict_reproduces_the_training_probe_temperature_wiring(protocol, optimizer, hyper,
                                                                  momentum, ts):
    """training._Engine._probe's row temperature (written only where sigma2 > 0)."""
    sigma2 = float(np.asarray(ts) / (DIM - 1))
    t = predict(protocol, optimizer, dim=DIM, **hyper, momentum=momentum,
                trace_sigma=ts).temperature
    if not sigma2 > 0:
        assert math.isnan(t)
        return
    if optimizer == "momentum":
        ref = hb.momentum_temperature(hyper["lr"], hyper["wd"], momentum, sigma2, DIM)
    elif optimizer == "adamw":
        ref = aw.adamw_temperature(hyper["lr"], hyper["wd"], sigma2, DIM, momentum)
    else:
        h = ({"lr": hyper["lr"], "wd": hyper["wd"]} if protocol == "lr"
             else {"elr": hyper["elr"]})
        ref = sgd.temperature(protocol, sigma2=sigma2, dim=DIM, **h)
    assert t == float(ref)


def _noise(ts, ts_se, g2, g2_se):
    from thermosgd.estimators.noise import NoiseEstimate

    return NoiseEstimate(trace_sigma=ts, trace_sigma_se=ts_se, grad_norm2=g2,
                         grad_norm2_se=g2_se, n=8, radius=1.0)


@pytest.mark.parametrize("g2", [0.7, -0.2])
@pytest.mark.parametrize(("protocol", "optimizer", "hyper", "momentum"), CASES)
def test_predict_matches_the_live_monitor_wiring(protocol, optimizer, hyper, momentum, g2):
    """What ThermoMonitor.stationary_state writes equals predict on its window statistics."""
    from thermosgd.monitor import ThermoMonitor

    rng = np.random.default_rng(3)
    mon = ThermoMonitor(protocol, DIM, optimizer=optimizer, momentum=momentum, **hyper)
    r0 = hyper.get("radius", 2.0)
    for step in range(200):
        pn = r0 * (1 + 1e-4 * (1 + rng.random())) if protocol == "sphere" else None
        r = r0 if protocol == "sphere" else r0 * (1 + 1e-3 * rng.standard_normal())
        mon.record_step(step, radius=r, loss=0.5 + 0.01 * rng.standard_normal(),
                        preprojection_norm=pn)
        if step % 20 == 0:
            mon.record_noise(step, _noise(12.0 + rng.random(), 0.3, g2 + 0.1 * rng.random(),
                                          0.05))
    s = mon.stationary_state(entropy=False)
    pn_mean = pn_se = None
    if protocol == "sphere":  # the monitor's measurement of the sphere's pressure
        pn_mean = float(mon.history()["preprojection_norm"][100:].mean())
        pn_se = s["pressure_se"] * (hyper["elr"] * hyper["radius"] ** 3)
    p = predict(protocol, optimizer, dim=DIM, **hyper, momentum=mon.momentum,
                beta2=mon.beta2, trace_sigma=s["trace_sigma"],
                trace_sigma_se=s["trace_sigma_se"], grad_norm2=s["grad_norm2"],
                trace_total=s["trace_total"], trace_total_se=s["trace_total_se"],
                radius_measured=s["radius"], preprojection_norm=pn_mean,
                preprojection_norm_se=pn_se).as_dict()
    keys = [k for k in p if k in s]
    assert len(keys) == 16
    exact = [k for k in keys if not (protocol == "sphere" and k == "pressure_se")]
    assert_matches_reference({k: p[k] for k in exact}, {k: s[k] for k in exact}, rtol=0.0,
                             atol=0.0)
    if protocol == "sphere":  # pn_se recovered through a product and a quotient: 2 ulp
        assert p["pressure_se"] == pytest.approx(s["pressure_se"], rel=1e-15)


def test_prediction_fields_and_as_dict():
    p = predict("elr", dim=DIM, elr=1e-2, wd=1e-2, trace_sigma=3.9, trace_total=4.0,
                radius_measured=1.0)
    d = p.as_dict()
    assert list(d)[:2] == ["temperature", "temperature_se"]
    assert d["maxwell_relation"] == "dS/dlog(wd) = -(d-1)/2"
    assert d["maxwell_slope"] == -(DIM - 1) / 2
    with pytest.raises(AttributeError):
        p.temperature = 1.0  # frozen


def test_predict_without_measurements_gives_nan_not_errors():
    p = predict("lr", "momentum", dim=DIM, lr=0.1, wd=1e-3)
    assert p.relaxation_time == pytest.approx(0.1 / (4 * 0.1 * 1e-3))
    assert p.pressure == 1e-3
    for k in ("temperature", "radius_sde", "radius_discrete", "elr_measured",
              "pressure_sde", "pressure_discrete"):
        assert math.isnan(getattr(p, k)), k
    s = predict("sphere", dim=DIM, elr=0.1, radius=2.0)
    assert math.isnan(s.pressure) and s.relaxation_time == 0.0 and math.isnan(s.radius_sde)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"protocol": "lrr", "lr": 0.1, "wd": 0.1}, "protocol == 'lrr'"),
    ({"protocol": "lr", "optimizer": "adam", "lr": 0.1, "wd": 0.1}, "optimizer == 'adam'"),
    ({"protocol": "elr", "optimizer": "adamw", "elr": 0.1, "wd": 0.1}, "runs the protocol"),
    ({"protocol": "lr", "lr": 0.1}, "wd == None, must be given"),
    ({"protocol": "lr", "lr": 0.1, "wd": -1.0}, "wd == -1.0, must be > 0"),
    ({"protocol": "sphere", "elr": 0.1, "radius": 1.0, "wd": 0.1}, "has no wd"),
    ({"protocol": "lr", "lr": 0.1, "wd": 0.1, "momentum": 0.9}, "has no momentum"),
    ({"protocol": "lr", "optimizer": "momentum", "lr": 0.1, "wd": 0.1, "momentum": 1.0},
     "momentum == 1.0, must be < 1"),
    ({"protocol": "lr", "optimizer": "momentum", "lr": 0.1, "wd": 0.1, "beta2": 0.9},
     "has no beta2"),
])
def test_predict_bad_input(kwargs, match):
    kwargs = dict(kwargs)
    with pytest.raises(ValueError, match=match):
        predict(kwargs.pop("protocol"), kwargs.pop("optimizer", "sgd"), dim=DIM, **kwargs)
    with pytest.raises(ValueError, match="dim == 1, must be >= 2"):
        predict("lr", dim=1, lr=0.1, wd=0.1)


# ----------------------------------------------------------------------------- physics


def _map_fixed_point(step, r2: float, rate: float) -> float:
    """Iterate r^2 <- step(r^2) 40 / rate times: a map contracting by (1 - rate) per step is
    then at its fixed point to round-off (offset e^-40 of the start's)."""
    for _ in range(math.ceil(40 / rate)):
        r2 = step(r2)
    return r2


@pytest.mark.parametrize(("elr", "wd", "Q"), [(1e-2, 1e-2, 50.0), (2e-2, 1e-1, 30.0)])
def test_elr_radius_discrete_is_the_one_step_map_fixed_point(elr, wd, Q):
    """E||w'||^2 = (1 - eta lambda)^2 r^2 + eta^2 Q / r^2 with eta = elr r^2, iterated: its
    fixed point is the exact discrete radius; predict's (the paper's "discr.", no eta^2
    lambda^2 term) is below it by the documented factor 1 + elr^2 Q / 4 in r^2."""
    def step(r2):
        eta = elr * r2
        return (1 - eta * wd) ** 2 * r2 + eta**2 * Q / r2

    r2_fp = _map_fixed_point(step, elr * Q / (2 * wd), rate=elr * elr * Q)
    p = predict("elr", dim=DIM, elr=elr, wd=wd, trace_sigma=Q, trace_total=Q,
                radius_measured=1.0)
    c = elr * elr * Q
    # 1 - sqrt(1 - c) over c / 2, expanded: 1 + c/4 + c^2/8 + ...; here c <= 0.012
    assert r2_fp / p.radius_discrete**2 == pytest.approx(1 + c / 4 + c * c / 8, rel=3 * c**3)
    with pytest.raises(ValueError, match="exact == True, must be False for protocol 'elr'"):
        theory.radius_discrete("elr", elr=elr, wd=wd, trace_sigma=Q, grad_norm2=0.0, exact=True)


@pytest.mark.parametrize(("lr", "wd", "Q"), [(0.1, 1e-3, 20.0), (0.5, 0.2, 5.0)])
def test_lr_radius_discrete_is_the_one_step_map_fixed_point(lr, wd, Q):
    """Fixed LR: r^2 <- (1 - eta lambda)^2 r^2 + eta^2 Q / r^2; r^4 of the fixed point is
    predict's eta Q / (2 lambda) times 2 / (2 - eta lambda)."""
    r2_fp = _map_fixed_point(lambda r2: (1 - lr * wd) ** 2 * r2 + lr**2 * Q / r2,
                             math.sqrt(lr * Q / (2 * wd)), rate=4 * lr * wd)
    p = predict("lr", dim=DIM, lr=lr, wd=wd, trace_sigma=Q, trace_total=Q, radius_measured=1.0)
    assert r2_fp**2 / p.radius_discrete**4 == pytest.approx(2 / (2 - lr * wd), rel=1e-12)


def test_radius_relaxation_time_from_the_integrated_ode():
    """SDE of the radius (no noise in r to first order): d r^2/dt = -2 eta lambda r^2 + eta^2 Q
    / r^2 with eta = lr (lr) or elr r^2 (elr). Integrated with solve_ivp from a small offset,
    the offset decays at 1 / relaxation_time."""
    def decay_rate(rhs, u_star):
        t_end = 2000.0
        sol = solve_ivp(rhs, (0.0, t_end), [u_star * (1 + 1e-4)], rtol=1e-12, atol=0.0,
                        dense_output=True)
        t0, t1 = 0.2 * t_end, 0.8 * t_end
        d0, d1 = sol.sol(t0)[0] - u_star, sol.sol(t1)[0] - u_star
        return math.log(d0 / d1) / (t1 - t0)

    lr, wd, Q = 0.1, 1e-2, 20.0
    p = predict("lr", dim=DIM, lr=lr, wd=wd)
    u_star = math.sqrt(lr * Q / (2 * wd))
    rate = decay_rate(lambda t, u: -2 * lr * wd * u + lr**2 * Q / u, u_star)
    # the linearized rate; the 1e-4 offset adds O(1e-4) of nonlinearity
    assert rate * p.relaxation_time == pytest.approx(1.0, rel=1e-3)

    elr, wd, Q = 1e-3, 1e-2, 40.0
    p = predict("elr", dim=DIM, elr=elr, wd=wd, trace_sigma=Q, trace_total=Q)
    u_star = elr * Q / (2 * wd)
    rate = decay_rate(lambda t, u: -2 * elr * wd * u**2 + elr**2 * Q * u, u_star)
    assert rate * p.relaxation_time == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize(("protocol", "optimizer", "hyper", "momentum"), CASES)
def test_maxwell_slope_by_finite_differences(protocol, optimizer, hyper, momentum):
    """S = S_dir(T) + (d-1) log r with predict's T and SDE radius (equipartition S_dir; the
    Maxwell slope does not depend on it), differentiated numerically in log hyperparameters:
    lr: dS/dlog lr - dS/dlog wd; elr: dS/dlog wd; sphere: dS/dlog r."""
    ts = 12.5

    def entropy(**h):
        p = predict(protocol, optimizer, dim=DIM, **h, momentum=momentum, trace_sigma=ts)
        r = h["radius"] if protocol == "sphere" else p.radius_sde
        return float(sgd.equipartition_entropy(p.temperature, DIM)) + (DIM - 1) * math.log(r)

    def dlog(name, eps=1e-4):
        up = {**hyper, name: hyper[name] * math.exp(eps)}
        down = {**hyper, name: hyper[name] * math.exp(-eps)}
        return (entropy(**up) - entropy(**down)) / (2 * eps)

    fd = {"lr": lambda: dlog("lr") - dlog("wd"), "elr": lambda: dlog("wd"),
          "sphere": lambda: dlog("radius")}[protocol]()
    slope, relation = theory.maxwell_relation(protocol, optimizer, DIM)
    p = predict(protocol, optimizer, dim=DIM, **hyper, momentum=momentum)
    assert p.maxwell_slope == slope and p.maxwell_relation == relation
    # central differences of a function linear in the log hyperparameters: round-off only
    assert fd == pytest.approx(slope, rel=1e-6)


@pytest.mark.parametrize(("protocol", "optimizer", "hyper", "momentum"),
                         [c for c in CASES if c[0] != "sphere"])
def test_predicted_pressure_holds_the_predicted_radius(protocol, optimizer, hyper, momentum):
    """At the SDE radius, the ideal-gas pressure of the measured state (pressure_sde,
    from elr_measured and trace_sigma) equals the pressure in force (wd; AdamW lambda
    sqrt(s), from the per-coordinate second moment), and the measured temperature (from the
    step at that radius) equals the predicted one: three formulas meeting at one state."""
    ts = 12.5
    p0 = predict(protocol, optimizer, dim=DIM, **hyper, momentum=momentum, trace_sigma=ts)
    p = predict(protocol, optimizer, dim=DIM, **hyper, momentum=momentum, trace_sigma=ts,
                radius_measured=p0.radius_sde)
    if optimizer == "adamw":  # AdamW's gas law holds with (d-1)/d: equal moments s, at the
        # all-orders radius (noise only); the Langevin temperature_measured is leading order
        f = float(aw.adamw_finite_step_factor(hyper["lr"], hyper["wd"], momentum))
        rx = p0.radius_sde * math.sqrt(f)
        px = predict(protocol, optimizer, dim=DIM, **hyper, momentum=momentum, trace_sigma=ts,
                     radius_measured=rx)
        assert px.pressure * rx**2 == pytest.approx((DIM - 1) * px.temperature, rel=1e-12)
        assert px.temperature_measured == pytest.approx(px.temperature / f, rel=1e-12)
        return
    assert p.pressure_sde == pytest.approx(p.pressure, rel=1e-12)
    assert p.temperature_measured == pytest.approx(p.temperature, rel=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adamw"])
def test_fixed_lr_forms_over_a_grid_are_predict_per_point_wiring(optimizer):
    """The vectorized table and the scalar predict read the same closed forms."""
    m = None if optimizer == "sgd" else 0.9
    f = theory.fixed_lr_forms(optimizer)
    lr, wd = np.array([[1e-3], [0.05]]), np.array([1e-3, 2e-2, 0.1])
    ts, g2 = 12.5, 0.7
    grid = {
        "temperature": f.temperature(lr, wd, ts / (DIM - 1), DIM, m),
        "radius_sde": f.radius_sde(lr, wd, ts / (DIM - 1), DIM, m),
        "radius_discrete": f.radius_discrete(lr, wd, DIM, ts, g2, m),
        "relaxation_time": f.relaxation_time(lr, wd, m),
    }
    for (i, j), _ in np.ndenumerate(grid["temperature"]):
        p = predict("lr", optimizer, dim=DIM, lr=float(lr[i, 0]), wd=float(wd[j]), momentum=m,
                    trace_sigma=ts, grad_norm2=g2,
                    trace_total=ts + g2 if optimizer == "sgd" else None)
        for k, v in grid.items():
            if optimizer == "sgd" and k == "radius_discrete":
                continue  # SGD's predict uses Q = trace_total with grad_norm2 = 0: same value
            # numpy's vectorized pow/sqrt on arrays (SIMD) may differ from the scalar path
            # by an ulp: 1e-15 relative
            assert getattr(p, k) == pytest.approx(v[i, j], rel=1e-15, abs=0.0), k
    assert f.maxwell_slope(DIM) == p.maxwell_slope
    with pytest.raises(ValueError, match="optimizer == 'lion'"):
        theory.fixed_lr_forms("lion")
