"""GroupMonitor against an independent plain-numpy simulation of SI groups under torch's SGD,
heavy ball and AdamW, and its bad-input handling.

The harness: each group is a float64 parameter of d weights whose gradient is isotropic noise
on the tangent plane, g = P(w) xi / r, xi ~ N(0, I_d) (an exactly scale-invariant group:
<g, w> = 0, ||g|| ~ 1/r, Q = r^2 E||g||^2 = d - 1). The same xi stream drives a plain numpy
re-implementation of torch's update rules, which computes its own norms and updates: the
monitor's measurements must equal it (float64 sums in another order: rel 1e-10). The physics
check compares the numpy run with the closed forms (`norm_predicted`,
`angular_update_predicted`); tolerances below are from the run's statistics.
"""

import math

import numpy as np
import pytest
import torch

from thermosgd.group_monitor import GroupMonitor

D = 200


def _tangent_noise(rng, w):
    xi = rng.standard_normal(w.shape)
    r = np.linalg.norm(w)
    u = w / r
    return (xi - (xi @ u) * u) / r


def _numpy_run(kind, lr, wd, beta, w0, steps, seed):
    """Plain numpy SGD / heavy ball (torch: v = beta v + g + wd w, w -= lr v) or AdamW (torch:
    w *= 1 - lr wd; m, v EMAs with bias correction; eps 1e-8) on one SI group; returns per-step
    ||w||^2, r^2 ||g||^2 and ||w_{t+1} - w_t||^2 and the xi stream's seed."""
    rng = np.random.default_rng(seed)
    w = w0.copy()
    buf = m = v = None
    out = {"norm2": [], "grad2": [], "update2": []}
    for t in range(1, steps + 1):
        g = _tangent_noise(rng, w)
        w_old = w.copy()
        out["norm2"].append(w @ w)
        out["grad2"].append((g @ g) * (w @ w))
        if kind == "adamw":
            b1, b2 = beta
            w = w * (1 - lr * wd)
            m = (1 - b1) * g if m is None else b1 * m + (1 - b1) * g
            v = (1 - b2) * g * g if v is None else b2 * v + (1 - b2) * g * g
            mh, vh = m / (1 - b1**t), v / (1 - b2**t)
            w = w - lr * mh / (np.sqrt(vh) + 1e-8)
        else:
            d_p = g + wd * w
            if beta:
                buf = d_p.copy() if buf is None else beta * buf + d_p
                d_p = buf
            w = w - lr * d_p
        out["update2"].append((w - w_old) @ (w - w_old))
    return {k: np.array(x) for k, x in out.items()}


def _torch_run(kind, lr, wd, beta, w0, steps, seed):
    rng = np.random.default_rng(seed)
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    model = torch.nn.Module()
    model.w = p
    if kind == "adamw":
        opt = torch.optim.AdamW([p], lr=lr, weight_decay=wd, betas=beta)
    else:
        opt = torch.optim.SGD([p], lr=lr, weight_decay=wd, momentum=beta)
    gm = GroupMonitor(model, opt)
    for _ in range(steps):
        p.grad = torch.from_numpy(_tangent_noise(rng, p.detach().numpy()))
        opt.step()
    return gm


CASES = {  # eta lambda = 5e-4 each; start at the predicted norm
    "sgd": ("sgd", 0.5, 1e-3, 0.0, (0.5 * (D - 1) / 2e-3) ** 0.25),
    "momentum": ("sgd", 0.05, 1e-2, 0.9, (0.05 * (D - 1) / (2e-2 * 0.1)) ** 0.25),
    "adamw": ("adamw", 1e-2, 5e-2, (0.9, 0.999), (1e-2 * D / 0.1) ** 0.5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_measurements_equal_an_independent_numpy_run(case):
    kind, lr, wd, beta, r0 = CASES[case]
    w0 = np.random.default_rng(1).standard_normal(D)
    w0 *= r0 / np.linalg.norm(w0)
    ref = _numpy_run(kind, lr, wd, beta, w0, 300, seed=7)
    gm = _torch_run(kind, lr, wd, beta, w0, 300, seed=7)
    rec = gm.group_records("w")
    assert np.array_equal(rec["step"], np.arange(300))
    for k in ("norm2", "grad2", "update2"):
        np.testing.assert_allclose(rec[k], ref[k], rtol=1e-10, err_msg=k)
    assert np.abs(rec["radial"]).max() < 1e-12  # tangent noise: <g, w> = 0 to rounding


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_norm_and_angular_update_match_the_closed_forms(case):
    # 4 groups x 8000 steps (16 relaxation times of 1/(4 eta lambda) = 500, AdamW's 1/(2 eta
    # lambda) = 1000 plus the beta2 lag) from the predicted norm. The window (last 4000 steps)
    # mean of a norm whose relative fluctuation is ~ sqrt(eta lambda) has an SE of 0.07-0.28%
    # (the monitor's norm_ratio_se; measured: ratios 0.998-1.001), the mean of 4 groups half
    # that; the closed forms drop O(eta lambda / (1-beta)) = 0.5% (heavy ball; AdamW ~ 8.5 eta
    # lambda = 0.4% in the angle; measured angle ratios 0.998-1.001, SE 0.05%): 1% holds
    # 4 SE plus that bias, 10x finer than the 10%.
    kind, lr, wd, beta, r0 = CASES[case]
    rng = np.random.default_rng(3)
    ps = [torch.nn.Parameter(torch.tensor(r0 * (z := rng.standard_normal(D)) / np.linalg.norm(z)))
          for _ in range(4)]
    model = torch.nn.Module()
    model.ws = torch.nn.ParameterList(ps)
    opt = (torch.optim.AdamW(ps, lr=lr, weight_decay=wd, betas=beta) if kind == "adamw"
           else torch.optim.SGD(ps, lr=lr, weight_decay=wd, momentum=beta))
    gm = GroupMonitor(model, opt)
    for _ in range(8000):
        for p in ps:
            p.grad = torch.from_numpy(_tangent_noise(rng, p.detach().numpy()))
        opt.step()
    t = gm.table()
    assert t["group"] == [f"ws.{i}" for i in range(4)]
    assert all(t["equilibrated"]), t["reasons"]
    assert all(se < 0.003 * n for se, n in zip(t["norm_se"], t["norm"], strict=True))
    ratio = np.mean(t["norm_ratio"])
    angle = np.mean(t["angular_ratio"])
    assert abs(ratio - 1) < 0.01, ratio
    assert abs(angle - 1) < 0.01, angle
    assert t["noise_source"] == ["steps"] * 4
    tau = {"sgd": 500.0, "momentum": 0.1 / (4 * 5e-4)}.get(case)
    if tau is not None:
        assert t["relaxation_time"] == [pytest.approx(tau)] * 4
    # the SGD temperature from the measured Q = d - 1: sqrt(eta lambda sigma^2 / (2 (d-1)))
    if case == "sgd":
        q = np.mean(t["trace_sigma"])
        assert q == pytest.approx(D - 1, rel=0.01)  # Q has SD sqrt(2/(d-1)) per step
        assert t["temperature"][0] == pytest.approx(
            math.sqrt(5e-4 * (t["trace_sigma"][0] / (D - 1)) / (2 * (D - 1))), rel=1e-12)


def test_a_relaxing_group_is_not_called_equilibrated_and_its_time_is_predicted():
    # SGD from 3x the equilibrium norm: r^4 - r*^4 decays with tau = 500 steps; after 600
    # steps the norm is still falling
    kind, lr, wd, beta, r0 = CASES["sgd"]
    w0 = np.random.default_rng(2).standard_normal(D)
    w0 *= 3 * r0 / np.linalg.norm(w0)
    gm = _torch_run(kind, lr, wd, beta, w0, 600, seed=4)
    t = gm.table()
    assert not t["equilibrated"][0]
    assert "600 steps at constant hyperparameters < 3 relaxation times (1500)" in t["reasons"][0]
    assert "norm drifting" in t["reasons"][0]
    # far above r*, r^2 shrinks by (1 - eta lambda)^2 per step: r^4 / r*^4 ~ 81 e^{-4 eta lambda t}
    assert t["time_to_equilibrium"][0] > 500


def test_schedulers_and_changes_are_followed():
    p = torch.nn.Parameter(torch.randn(D, dtype=torch.float64))
    model = torch.nn.Module()
    model.w = p
    opt = torch.optim.SGD([p], lr=0.3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, 100, 0.1)
    gm = GroupMonitor(model, opt)
    rng = np.random.default_rng(0)
    for _ in range(250):
        p.grad = torch.from_numpy(_tangent_noise(rng, p.detach().numpy()))
        opt.step()
        sched.step()
    t = gm.table()
    assert t["lr"] == [pytest.approx(0.003)]
    assert t["since"] == [200]
    assert [c[0] for c in gm.changes] == [100, 200]
    assert "lr 0.3 -> 0.03" in gm.changes[0][2].replace("0.030000000000000002", "0.03")


def test_groups_it_cannot_place_are_listed_and_skipped():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8),
                                torch.nn.Linear(8, 2))
    model[2].weight.requires_grad_(False)
    decay = [model[0].weight]
    no_decay = [model[0].bias, model[1].weight, model[1].bias]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    gm = GroupMonitor(model, opt)
    assert gm.names == ["0.weight"]
    assert gm.skipped == {"0.bias": "no weight decay (its norm has no equilibrium)",
                          "1.weight": "no weight decay (its norm has no equilibrium)",
                          "1.bias": "no weight decay (its norm has no equilibrium)",
                          "2.weight": "frozen (requires_grad=False)",
                          "2.bias": "not trained by the optimizer"}
    x = torch.randn(16, 4)
    for _ in range(8):
        model(x).square().mean().backward()
        opt.step()
        opt.zero_grad()
    s = gm.summary()
    assert "skipped 2.weight: frozen" in s and "0.weight" in s
    assert set(gm.scalars()) == {f"{k}/0.weight" for k in
                                 ("norm", "angular_update", "radial_gradient", "lr", "wd")}


def test_bad_input_is_a_clear_error():
    model = torch.nn.Linear(4, 4)
    with pytest.raises(ValueError, match=r"optimizer RMSprop is not supported.*torch.optim.SGD"):
        GroupMonitor(model, torch.optim.RMSprop(model.parameters(), weight_decay=0.1))
    with pytest.raises(ValueError, match=r"optimizer Adam is not supported"):
        GroupMonitor(model, torch.optim.Adam(model.parameters(), weight_decay=0.1))
    with pytest.raises(ValueError, match=r"no parameter group to monitor: weight: no weight"):
        GroupMonitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    opt = torch.optim.SGD([{"params": [model.weight], "weight_decay": 0.1},
                           {"params": [model.bias], "weight_decay": 0.1}], lr=0.1)
    with pytest.raises(ValueError, match=r"group 'all' spans param groups \[0, 1\]"):
        GroupMonitor(model, opt, {"all": ["weight", "bias"]})
    with pytest.raises(ValueError, match=r"group 'x': 'nope' is not a parameter"):
        GroupMonitor(model, opt, {"x": ["nope"]})
    with pytest.raises(ValueError, match=r"nesterov == True"):
        GroupMonitor(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                                            nesterov=True, weight_decay=0.1))
    gm = GroupMonitor(model, torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1))
    with pytest.raises(ValueError, match="no steps recorded"):
        gm.table()


def test_records_stay_bounded():
    p = torch.nn.Parameter(torch.randn(8, dtype=torch.float64))
    model = torch.nn.Module()
    model.w = p
    opt = torch.optim.SGD([p], lr=0.1, weight_decay=1e-2)
    gm = GroupMonitor(model, opt, max_records=100)
    rng = np.random.default_rng(0)
    for _ in range(1000):
        p.grad = torch.from_numpy(_tangent_noise(rng, p.detach().numpy()))
        opt.step()
    rec = gm.group_records(0)
    assert rec["step"].size <= 100 and gm.every == 16
    assert np.all(rec["step"] % 16 == 0)
