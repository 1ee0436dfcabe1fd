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
        (torch.optim.AdamW(si, lr=1e-3, betas=(0.8, 0.99), weight_decay=0.1), "lr",
         {"lr": 1e-3, "wd": 0.1}, {"optimizer": "adamw", "momentum": 0.8, "beta2": 0.99},
         "adamw"),
        (torch.optim.Adam(si, lr=1e-3, weight_decay=0.1, decoupled_weight_decay=True), "lr",
         {"lr": 1e-3, "wd": 0.1}, {"optimizer": "adamw", "momentum": 0.9, "beta2": 0.999},
         "adamw"),
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
    # radius 1 towards r* ~ 7: not stationary, and the summary says why (the radius-drift test
    # models the exp(-|t|/tau) correlation of the block means since 995b7d2: over one tau the
    # drift is within its SE, so the verdict rests on the burn-in test)
    assert not s["stationary"]
    msg = " | ".join(s["reasons"])
    assert "window starts too early" in msg
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
    with pytest.raises(ValueError, match=r"observe must follow optimizer\.step"):
        am.observe(0, 1.0)
    radii = []  # the radius before each step, as the protocol optimizers record it
    for step, idx in enumerate(iid_batches(x.shape[0], 128, gen, num_batches=5)):
        radii.append(math.sqrt(sum(float(p.detach().double().square().sum())
                                   for p in si_parameters(model))))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        am.observe(step, loss.item())
    assert am.monitor.history()["radius"] == pytest.approx(radii, rel=1e-12)
    with pytest.raises(ValueError, match="probe_noise needs"):
        am.probe_noise(5)


def test_attach_bad_input():
    model = bn_mlp()
    with pytest.raises(ValueError, match="optimizer must be"):
        ThermoMonitor.attach(model, torch.optim.Adam(si_parameters(model)))
    with pytest.raises(ValueError, match=r"nesterov == True, must be False.*heavy-ball"):
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


def test_refusals_name_what_is_accepted():
    model = bn_mlp()
    si = si_parameters(model)
    accepted = (r"FixedLR, FixedELR, FixedSphere, MomentumLR, AdamWLR\), torch\.optim\.SGD "
                r"\(plain, or heavy-ball momentum with dampening=0 and nesterov=False\) or "
                r"torch\.optim\.AdamW \(amsgrad=False\)")
    with pytest.raises(ValueError, match=accepted + ".*got RMSprop"):
        ThermoMonitor.attach(model, torch.optim.RMSprop(si, weight_decay=0.1))
    with pytest.raises(ValueError, match=accepted + r".*got Adam; torch\.optim\.Adam's "
                                                    r"weight_decay is an L2 term.*AdamW"):
        ThermoMonitor.attach(model, torch.optim.Adam(si, weight_decay=0.1))
    with pytest.raises(ValueError, match=r"nesterov == True.*accepted: a thermosgd protocol"):
        ThermoMonitor.attach(model, torch.optim.SGD(si, lr=0.1, momentum=0.9, nesterov=True,
                                                    weight_decay=0.1))
    with pytest.raises(ValueError, match=r"dampening == 0\.5, must be 0"):
        ThermoMonitor.attach(model, torch.optim.SGD(si, lr=0.1, momentum=0.9, dampening=0.5,
                                                    weight_decay=0.1))
    with pytest.raises(ValueError, match="amsgrad == True, must be False"):
        ThermoMonitor.attach(model, torch.optim.AdamW(si, amsgrad=True))
    with pytest.raises(ValueError, match=r"weight_decay == 0, must be > 0 .*AdamW"):
        ThermoMonitor.attach(model, torch.optim.AdamW(si, weight_decay=0))
    with pytest.raises(ValueError, match="maximize == True, must be False"):
        ThermoMonitor.attach(model, torch.optim.SGD(si, lr=0.1, weight_decay=0.1, maximize=True))
    own = torch.nn.Sequential(torch.nn.Linear(64, 8, bias=False), torch.nn.BatchNorm1d(8))
    with pytest.raises(ValueError, match=r"does not declare its scale-invariant parameters.*"
                                         r"find_scale_invariant_groups.*params=groups\[0\]"
                                         r"\.params"):
        ThermoMonitor.attach(own, torch.optim.SGD(own.parameters(), lr=0.1, weight_decay=0.1))


def test_torch_adamw_is_monitored_as_adamwlr(digits):  # noqa: F811
    """torch.optim.AdamW and our AdamWLR make the same updates (tests/nn/test_optim.py, bit
    for bit with foreach=False): attached to each, the monitors get the same records and so
    the same state, with AdamW's closed forms (optimizer "adamw", beta1 -> momentum)."""
    x, y = digits
    states = []
    for make in (
        lambda p: torch.optim.AdamW(p, lr=3e-3, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.1,
                                    foreach=False),
        lambda p: make_optimizer("lr", p, lr=3e-3, wd=0.1, optimizer="adamw", momentum=0.8,
                                 beta2=0.99),
    ):
        model = bn_mlp()
        opt = make(si_parameters(model))
        am = ThermoMonitor.attach(model, opt, loss_fn=F.cross_entropy, x=x, y=y, n_batches=8,
                                  probe_every=20, snapshot_every=5)
        train(model, opt, x, y, 100, monitor=am)
        assert (am.monitor.optimizer, am.monitor.momentum, am.monitor.beta2) == (
            "adamw", 0.8, 0.99)
        states.append(am.stationary_state(entropy=False))
    torch_s, ours = states
    for k in ("radius", "temperature", "pressure", "radius_sde", "radius_discrete",
              "relaxation_time", "trace_sigma", "energy"):
        # the same float32 updates: identical but for the radius' summation order (float64
        # over float32 squares here, float32 in AdamWLR: ~1e-7 relative)
        assert torch_s[k] == pytest.approx(ours[k], rel=1e-6), k
    assert (torch_s["optimizer"], torch_s["momentum"], torch_s["beta2"]) == ("adamw", 0.8, 0.99)


def test_betas_are_read_from_the_param_group_each_step(digits):  # noqa: F811
    """A manual change of the heavy-ball beta (MomentumLR) and of AdamW's beta2 (torch) starts
    a new state whose predictions use the new betas: the heavy-ball relaxation time is
    (1 - beta) / (4 eta lambda), computed here at the new beta."""
    x, y = digits
    model = bn_mlp()
    opt = make_optimizer("lr", si_parameters(model), lr=0.1, wd=0.01, optimizer="momentum",
                         momentum=0.9)
    am = ThermoMonitor.attach(model, opt)
    train(model, opt, x, y, 10, monitor=am)
    opt.param_groups[0]["momentum"] = 0.5
    gen = torch.Generator().manual_seed(2)
    for step, idx in enumerate(iid_batches(x.shape[0], 128, gen, num_batches=40), start=10):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        am.observe(step, loss.detach())
    assert am.monitor.momentum == 0.5 and am.monitor.state_dict()["changes"] == [
        (10, {"lr": 0.1, "wd": 0.01, "momentum": 0.5})]
    s = am.stationary_state(entropy=False)
    assert s["momentum"] == 0.5 and s["window_start"] >= 10
    assert s["relaxation_time"] == pytest.approx((1 - 0.5) / (4 * 0.1 * 0.01), rel=1e-12)
    assert am.hyperparameters() == {"lr": 0.1, "wd": 0.01, "momentum": 0.5}

    model = bn_mlp()
    adamw = torch.optim.AdamW(si_parameters(model), lr=1e-3, weight_decay=0.1)
    am = ThermoMonitor.attach(model, adamw)
    train(model, adamw, x, y, 3, monitor=am)
    adamw.param_groups[0]["betas"] = (0.9, 0.99)
    am.observe(3, 1.0)
    assert (am.monitor.momentum, am.monitor.beta2) == (0.9, 0.99)
    assert am.monitor.state_dict()["changes"][-1][1]["beta2"] == 0.99

    model = bn_mlp()
    sgd = torch.optim.SGD(si_parameters(model), lr=0.1, weight_decay=0.01)
    am = ThermoMonitor.attach(model, sgd)
    train(model, sgd, x, y, 2, monitor=am)
    sgd.param_groups[0]["momentum"] = 0.9
    with pytest.raises(ValueError, match=r"momentum == 0\.9, must stay 0: .*plain SGD"):
        am.observe(2, 1.0)


def _own_net(si: bool) -> torch.nn.Module:
    """A user's BN-MLP: scale-invariant (no biases, BatchNorm without affine, head frozen) or
    not (biases, affine BatchNorm, a trainable head: the model of issue 12)."""
    torch.manual_seed(0)
    nn = torch.nn
    m = nn.Sequential(nn.Linear(64, 32, bias=not si), nn.BatchNorm1d(32, affine=not si),
                      nn.ReLU(), nn.Linear(32, 32, bias=not si),
                      nn.BatchNorm1d(32, affine=not si), nn.ReLU(), nn.Linear(32, 10))
    if si:
        m[-1].requires_grad_(False)
    return m


def test_a_non_si_group_is_reported_and_an_si_one_is_not(digits):  # noqa: F811
    """The SI check at attach, in the probes and at the end: the non-SI model measures a
    relative radial gradient of ~3e-2 (attach), 5e-3 (end), 3e-2 (probes), all above the
    tolerance 1e-3 (`SI_RADIAL_TOLERANCE`), and is reported in the warnings, the verdict and
    the summary; the SI model (its group from find_scale_invariant_groups) measures <= 1e-4
    (float32 round-off and BatchNorm's eps) and is not."""
    from thermosgd.nn.scale_invariance import (
        SI_RADIAL_TOLERANCE,
        find_scale_invariant_groups,
        si_distance,
    )

    x, y = digits
    out = {}
    for si in (True, False):
        model = _own_net(si)
        params = (find_scale_invariant_groups(model, F.cross_entropy, (x[:256], y[:256]))[0]
                  .params if si else list(model.parameters()))
        sgd = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
        am = ThermoMonitor.attach(model, sgd, params=params, loss_fn=F.cross_entropy, x=x, y=y,
                                  n_batches=8, probe_every=100, snapshot_every=10)
        train(model, sgd, x, y, 400, monitor=am)
        s = am.stationary_state(entropy=False)
        checks = am.monitor.state_dict()["si_checks"]
        assert set(checks) == {"attach", "final"}
        # the final check is si_distance at the end on the monitor's fixed batch (wiring)
        gen = torch.Generator().manual_seed(0)
        idx = torch.randint(0, x.shape[0], (128,), generator=gen)
        d = si_distance(model, F.cross_entropy, (x[idx], y[idx]), params)
        assert checks["final"] == d.radial
        out[si] = (s, checks, am.summary())
    s, checks, text = out[True]
    assert max(*checks.values(), s["si_radial_gradient"]) < SI_RADIAL_TOLERANCE / 10
    assert not any("scale-invariant" in m for m in s["reasons"] + s["warnings"])
    assert "WARNING" not in text
    s, checks, text = out[False]
    assert min(*checks.values(), s["si_radial_gradient"]) > SI_RADIAL_TOLERANCE
    assert not s["stationary"]
    assert any(r.startswith("not scale-invariant (relative radial gradient") for r in s["reasons"])
    (warning,) = [m for m in s["warnings"] if m.startswith("not scale-invariant")]
    assert f"{checks['attach']:.2g} (attach check)" in warning
    assert f"{s['si_radial_gradient']:.2g} (window probes)" in warning
    assert "params=groups[0].params" in warning
    assert f"  WARNING: {warning}" in text and "stationary: NO (not scale-invariant" in text
    # si_tolerance=None: no check (the trainer's non-SI variants are measured on purpose)
    model = _own_net(False)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=5e-4)
    am = ThermoMonitor.attach(model, sgd, params=list(model.parameters()),
                              loss_fn=F.cross_entropy, x=x, y=y, si_tolerance=None)
    train(model, sgd, x, y, 20, monitor=am)
    s = am.stationary_state(entropy=False)
    assert am.monitor.state_dict()["si_checks"] == {}
    assert not any("scale-invariant" in m for m in s["reasons"] + s["warnings"])


def test_scalars_of_an_attached_run(digits):  # noqa: F811
    """scalars() after a StepLR change: the lr in force, the latest radius (computed here
    from the weights) and T from the latest probe by the fixed-LR formula."""
    x, y = digits
    model = bn_mlp(64, (16, 16), 10)
    si = si_parameters(model)
    sgd = torch.optim.SGD(si, lr=0.3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(sgd, step_size=30, gamma=0.5)
    am = ThermoMonitor.attach(model, sgd, loss_fn=F.cross_entropy, x=x, y=y, n_batches=8,
                              probe_every=20)
    gen = torch.Generator().manual_seed(1)
    for step, idx in enumerate(iid_batches(x.shape[0], 128, gen, num_batches=50)):
        r = math.sqrt(sum(float(p.detach().double().square().sum()) for p in si))  # before
        loss = F.cross_entropy(model(x[idx]), y[idx])
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        am.observe(step, loss.detach())
        sched.step()
    sc = am.scalars()
    assert all(isinstance(v, float) for v in sc.values())
    assert sc["lr"] == 0.15 and sc["wd"] == 0.01 and sc["step"] == 49.0
    assert sc["radius"] == pytest.approx(r, rel=1e-12)  # the radius before the last step
    assert sc["volume"] == pytest.approx(r**2 / 2, rel=1e-12)
    nz = am.monitor.noise_history()
    assert sc["noise_step"] == 40.0 and sc["trace_sigma"] == nz["trace_sigma"][-1]
    sigma2 = nz["trace_sigma"][-1] / (am.monitor.dim - 1)
    t = math.sqrt(0.15 * 0.01 * sigma2 / (2 * (am.monitor.dim - 1)))
    assert sc["temperature"] == pytest.approx(t, rel=1e-12) and sc["pressure"] == 0.01
