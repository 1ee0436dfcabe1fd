"""Tests for thermosgd.nn.attach: reading a torch optimizer and feeding a monitor from a
training loop (`ThermoMonitor.attach`)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.nn.test_probes import digits, train  # noqa: F401 (digits: a fixture)
from thermosgd.monitor import ThermoMonitor
from thermosgd.nn.attach import AttachedMonitor, bind_optimizer
from thermosgd.nn.data import iid_batches
from thermosgd.nn.models import bn_mlp, si_parameters, variant_mlp
from thermosgd.nn.optim import FixedELR, FixedLR, FixedSphere, make_optimizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bind_optimizer_reads_each_optimizer_class():
    model = bn_mlp()
    si = si_parameters(model)
    dim = sum(p.numel() for p in si)
    cases = [
        (FixedLR(si, lr=0.1, wd=0.01), "lr", {"lr": 0.1, "wd": 0.01}, {}, "protocol"),
        (FixedELR(si, elr=0.02, wd=0.01), "elr", {"elr": 0.02, "wd": 0.01}, {}, "protocol"),
        (FixedSphere(si, elr=0.02, radius=2.0), "sphere", {"elr": 0.02, "radius": 2.0}, {},
         "protocol"),
        (make_optimizer("lr", si, lr=0.1, wd=0.01, optimizer="momentum", momentum=0.8), "lr",
         {"lr": 0.1, "wd": 0.01}, {"optimizer": "momentum", "momentum": 0.8}, "protocol"),
        (make_optimizer("lr", si, lr=1e-3, wd=0.1, optimizer="adamw", beta2=0.99), "lr",
         {"lr": 1e-3, "wd": 0.1}, {"optimizer": "adamw", "momentum": 0.9, "beta2": 0.99},
         "protocol"),
        (torch.optim.SGD(si, lr=0.3, weight_decay=1e-3), "lr", {"lr": 0.3, "wd": 1e-3}, {},
         "sgd"),
        (torch.optim.SGD(si, lr=0.3, momentum=0.5, weight_decay=1e-3), "lr",
         {"lr": 0.3, "wd": 1e-3}, {"optimizer": "momentum", "momentum": 0.5}, "sgd"),
    ]
    for opt, protocol, hyper, betas, kind in cases:
        b = bind_optimizer(model, opt)
        assert (b.protocol, b.hyper, b.betas, b.kind) == (protocol, hyper, betas, kind), opt
        assert b.dim == dim and b.group == 0
        assert [id(p) for p in b.params] == [id(p) for p in si]


def test_attach_fixed_elr_does_not_perturb_training(digits):  # noqa: F811
    x, y = digits
    plain = bn_mlp()
    train(plain, FixedELR(si_parameters(plain), elr=1e-2, wd=1e-2), x, y, 300)

    model = bn_mlp()
    opt = FixedELR(si_parameters(model), elr=1e-2, wd=1e-2)
    am = ThermoMonitor.attach(
        model,
        opt,
        loss_fn=F.cross_entropy,
        x=x,
        y=y,
        queue_capacity=100,
        n_batches=16,
        snapshot_every=3,
        probe_every=50,
    )
    assert isinstance(am, AttachedMonitor) and isinstance(am.monitor, ThermoMonitor)
    train(model, opt, x, y, 300, monitor=am)
    # probes restore the model and use their own generator: bit-identical training
    for p, q in zip(si_parameters(plain), si_parameters(model), strict=True):
        assert torch.equal(p, q)
    h = am.monitor.history()
    assert h["step"].tolist() == list(range(300))
    assert am.monitor.noise_history()["step"].tolist() == [0, 50, 100, 150, 200, 250]
    assert len(am.monitor.queue) == 100
    s = am.stationary_state()
    assert s["protocol"] == "elr" and s["dim"] == 3072 and s["elr"] == 1e-2
    for k in ("temperature", "radius", "radius_sde", "radius_discrete", "entropy", "energy"):
        assert np.isfinite(s[k]), k
    # 300 steps at elr = 1e-2 are ~2 relaxation times (tau = 1 / (elr^2 Q) ~ 150 steps) from
    # radius 1 towards r* ~ 7: not stationary, and the summary says why
    assert not s["stationary"]
    msg = " | ".join(s["reasons"])
    assert "window starts too early" in msg and "radius drifting" in msg
    assert "stationary: NO (window starts too early" in am.summary()


def test_attach_sphere_and_plain_sgd(digits):  # noqa: F811
    x, y = digits
    model = bn_mlp()
    opt = FixedSphere(si_parameters(model), elr=1e-2, radius=2.0)
    am = ThermoMonitor.attach(model, opt, loss_fn=F.cross_entropy, x=x, y=y, n_batches=8)
    pressures = []
    gen = torch.Generator().manual_seed(0)
    for step, idx in enumerate(iid_batches(x.shape[0], 128, gen, num_batches=200)):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        am.observe(step, loss.item())
        pressures.append(opt.last_pressure())
        if step % 50 == 49:
            am.probe_noise(step)
            am.snapshot()
    s = am.stationary_state(window_start=100)
    assert s["radius"] == pytest.approx(2.0, rel=1e-6)
    # the pressure of the mean pre-projection norm = the mean of the optimizer's per-step
    # pressures (the estimator is linear in r')
    assert s["pressure"] == pytest.approx(np.mean(pressures[100:]), rel=1e-6)
    assert s["n_noise"] == 2 and np.isfinite(s["pressure_sde"])

    model = bn_mlp()
    sgd = torch.optim.SGD(si_parameters(model), lr=0.1, weight_decay=1e-3)
    am = ThermoMonitor.attach(model, sgd)
    assert am.monitor.protocol == "lr" and am.monitor.lr == 0.1 and am.monitor.wd == 1e-3
    train(model, sgd, x, y, 5, monitor=am)
    r = math.sqrt(sum(float(p.detach().double().square().sum()) for p in si_parameters(model)))
    assert am.monitor.history()["radius"][-1] == pytest.approx(r)
    with pytest.raises(ValueError, match="probe_noise needs"):
        am.probe_noise(5)


def test_attach_bad_input():
    model = bn_mlp()
    with pytest.raises(ValueError, match="optimizer must be"):
        ThermoMonitor.attach(model, torch.optim.Adam(si_parameters(model)))
    with pytest.raises(ValueError, match="nesterov"):
        ThermoMonitor.attach(
            model,
            torch.optim.SGD(
                si_parameters(model), lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1
            ),
        )
    with pytest.raises(ValueError, match="weight_decay == 0, must be > 0"):
        ThermoMonitor.attach(model, torch.optim.SGD(si_parameters(model), lr=0.1))
    opt = FixedLR(si_parameters(model), lr=0.1, wd=0.1)
    with pytest.raises(ValueError, match="group == 3, must be an SI param group"):
        ThermoMonitor.attach(model, opt, group=3)
    with pytest.raises(ValueError, match="exactly the optimizer's SI group"):
        ThermoMonitor.attach(model, opt, params=si_parameters(model)[:1])
    with pytest.raises(ValueError, match="together"):
        ThermoMonitor.attach(model, opt, x=torch.zeros(3, 64))
    with pytest.raises(ValueError, match="probe_every"):
        ThermoMonitor.attach(model, opt, probe_every=10)
    with pytest.raises(ValueError, match="snapshot_every == 0, must be >= 1"):
        ThermoMonitor.attach(model, opt, snapshot_every=0)
    am = ThermoMonitor.attach(model, opt)
    with pytest.raises(ValueError, match=r"optimizer\.step"):
        am.observe(0, 1.0)


def test_attach_momentum_and_adamw():
    model = bn_mlp()
    am = ThermoMonitor.attach(model, torch.optim.SGD(si_parameters(model), lr=0.1, momentum=0.8,
                                                     weight_decay=1e-3))
    assert (am.monitor.optimizer, am.monitor.momentum) == ("momentum", 0.8)
    opt = make_optimizer("lr", si_parameters(model), lr=1e-3, wd=0.1, optimizer="adamw",
                         beta2=0.99)
    am = ThermoMonitor.attach(model, opt, queue_capacity=7)
    assert (am.monitor.optimizer, am.monitor.momentum, am.monitor.beta2) == ("adamw", 0.9, 0.99)
    assert am.monitor.queue.capacity == 7


def test_attach_probe_records_the_si_distance(digits):  # noqa: F811
    """A trainable head breaks SI: the probes' radial component is ~1e-2 (measured); the SI
    BN-MLP's is float32 round-off plus BatchNorm's eps, ~1e-6 (asserted < 1e-4)."""
    x, y = digits
    out = {}
    for variant in ("si", "head"):
        model = variant_mlp(variant)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = FixedELR(params, elr=0.01, wd=0.01)
        am = ThermoMonitor.attach(model, opt, loss_fn=F.cross_entropy, x=x, y=y, n_batches=8)
        train(model, opt, x, y, 20, monitor=am)
        am.probe_noise(20)
        out[variant] = am.stationary_state(window_start=10, entropy=False)
    assert out["si"]["si_radial_gradient"] < 1e-4
    assert out["head"]["si_radial_gradient"] > 1e-3 and out["head"]["si_radial_gradient_rms"] > 1e-3


def test_torch_sgd_wrong_group_names_the_groups_that_hold_the_si_parameters():
    model = bn_mlp()
    si = si_parameters(model)
    head = [p for p in model.parameters() if all(p is not q for q in si)]
    groups = [{"params": si, "weight_decay": 1e-3}]
    if head:
        groups.append({"params": head, "weight_decay": 0.0})
    else:  # a model whose every trainable weight is SI: a second, empty-decay group
        groups.append({"params": [torch.nn.Parameter(torch.zeros(1))], "weight_decay": 0.0})
    sgd = torch.optim.SGD(groups, lr=0.1)
    with pytest.raises(ValueError, match=r"group == 1, must be a param group that holds the SI "
                                         r"parameters: 0 of the optimizer's 2"):
        bind_optimizer(model, sgd, group=1)
    mon = ThermoMonitor("lr", 10, lr=0.1, wd=0.01)
    with pytest.raises(ValueError, match=r"call record_step \(an attached monitor: observe\)"):
        mon.stationary_state()


def test_a_torch_scheduler_is_followed_and_t_uses_the_final_lr(digits):  # noqa: F811
    """StepLR on torch SGD: lr 0.3 -> 0.09 -> 0.027 at steps 200 and 400. The attached monitor
    reads the param group at every observe, so the state is that of the last constant stretch:
    its window lies after the last change, the reported lr is 0.027, and T is the fixed-LR
    temperature sqrt(eta lambda sigma^2 / (2 (d-1))) at eta = 0.027 with the window's measured
    sigma^2 (computed here from the formula, not by the code under test). A window that reaches
    back over the change is flagged."""
    x, y = digits
    torch.manual_seed(0)
    model = bn_mlp(64, (16, 16), 10)
    si = si_parameters(model)
    sgd = torch.optim.SGD(si, lr=0.3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(sgd, step_size=200, gamma=0.3)
    mon = ThermoMonitor.attach(model, sgd, loss_fn=F.cross_entropy, x=x, y=y, n_batches=8,
                               probe_every=25, snapshot_every=5)
    gen = torch.Generator().manual_seed(1)
    for step, idx in enumerate(iid_batches(x.shape[0], 128, gen, num_batches=600)):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        mon.observe(step, loss.detach())  # after optimizer.step(), before scheduler.step()
        sched.step()
    s = mon.stationary_state()
    assert s["lr"] == pytest.approx(0.3 * 0.3**2, rel=1e-12) and s["wd"] == 0.01
    assert s["window_start"] >= 400
    d = s["dim"]
    t_final = math.sqrt(s["lr"] * s["wd"] * s["sigma2"] / (2 * (d - 1)))
    assert s["temperature"] == pytest.approx(t_final, rel=1e-12)
    assert s["n_snapshots"] >= 3 and len(mon.monitor.queue) <= 40  # the queue restarted
    spanning = mon.stationary_state(window_start=300)
    assert any("hyperparameters changed at step 400 inside the window (lr 0.09 -> 0.027)" in r
               for r in spanning["reasons"])
