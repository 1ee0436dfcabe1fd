"""The protocol optimizers (thermosgd.nn.optim): exact update rules, groups, resume, errors.

Brute-force references: `FixedLR` against torch.optim.SGD (bit-identical on CPU), the ELR and
sphere rules against the formulas of reference-implementation 3.4 written out in float64,
`MomentumLR` / `AdamWLR` against torch's SGD(momentum) / AdamW bit for bit. The batched form
is compared with these optimizers in tests/nn/test_batched.py.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thermosgd.nn.models import bn_mlp
from thermosgd.nn.optim import (
    FixedELR,
    FixedLR,
    FixedSphere,
    MomentumLR,
    check_optimizer_args,
    make_optimizer,
    sphere_pressure,
)
from thermosgd.nn.scale_invariance import group_radius, set_group_radius

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


_g = torch.Generator().manual_seed(0)
X = torch.randn(256, 64, generator=_g)
Y = torch.randint(0, 10, (256,), generator=_g)


def _train(model, opt, steps, seed, batch=64):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(X), (batch,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(X[idx]), Y[idx]).backward()
        opt.step()


def _model(radius=1.0, seed=1):
    m = bn_mlp(init_seed=seed)
    set_group_radius(m.si_parameters(), radius)
    return m


def _grads(model, seed):
    """One minibatch gradient of the SI parameters (does not touch .grad)."""
    idx = torch.randint(0, len(X), (64,), generator=torch.Generator().manual_seed(seed))
    loss = F.cross_entropy(model(X[idx]), Y[idx])
    return torch.autograd.grad(loss, model.si_parameters())


# ------------------------------------------------------------------ exact update rules


def test_fixed_lr_is_torch_sgd_bit_for_bit():
    a = _model()
    b = copy.deepcopy(a)
    opt_a = FixedLR(a.si_parameters(), lr=0.3, wd=1e-2)
    opt_b = torch.optim.SGD(b.si_parameters(), lr=0.3, weight_decay=1e-2)
    _train(a, opt_a, 15, seed=3)
    _train(b, opt_b, 15, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert opt_a.last_preprojection_norm() == pytest.approx(group_radius(a.si_parameters()))


def _float64_step(ws, gs, lr, wd):
    return [w.double() - lr * (g.double() + wd * w.double()) for w, g in zip(ws, gs, strict=True)]


def test_fixed_elr_rule():
    """w <- w - elr r_t^2 (g + wd w) with r_t the radius before the step; r_t changes."""
    m = _model(radius=2.0)
    opt = FixedELR(m.si_parameters(), elr=0.01, wd=0.05)
    for step in range(3):
        ws = [p.detach().clone() for p in m.si_parameters()]
        gs = _grads(m, seed=step)
        r = group_radius(ws)
        expected = _float64_step(ws, gs, 0.01 * r * r, 0.05)
        for p, g in zip(m.si_parameters(), gs, strict=True):
            p.grad = g.clone()
        opt.step()
        assert opt.last_radius() == pytest.approx(r, rel=1e-12)
        for p, e in zip(m.si_parameters(), expected, strict=True):
            # float32 update vs float64 formula: |error| <= a few ulp of |w| (~1e-7 relative)
            torch.testing.assert_close(p.double(), e, rtol=0, atol=1e-6)
        assert opt.last_preprojection_norm() == pytest.approx(group_radius(m.si_parameters()))


@pytest.mark.parametrize("radius", [0.5, 2.0])
def test_sphere_rule_and_pressure(radius):
    m = _model(radius=1.0)
    opt = FixedSphere(m.si_parameters(), elr=0.02, radius=radius)
    assert group_radius(m.si_parameters()) == pytest.approx(radius, rel=1e-6)  # projected
    for step in range(3):
        ws = [p.detach().clone() for p in m.si_parameters()]
        gs = _grads(m, seed=step)
        w1 = [w.double() - 0.02 * radius**2 * g.double() for w, g in zip(ws, gs, strict=True)]
        norm = math.sqrt(sum(float((w * w).sum()) for w in w1))
        for p, g in zip(m.si_parameters(), gs, strict=True):
            p.grad = g.clone()
        opt.step()
        assert opt.last_preprojection_norm() == pytest.approx(norm, rel=1e-6)
        assert group_radius(m.si_parameters()) == pytest.approx(radius, rel=1e-6)
        for p, w in zip(m.si_parameters(), w1, strict=True):
            torch.testing.assert_close(p.double(), w * (radius / norm), rtol=0, atol=1e-6)
        # The step is tangent up to O(elr^2): r' > r, and the pressure formula.
        assert norm > radius
        lam = (norm - radius) / (0.02 * radius**3)
        assert opt.last_pressure() == pytest.approx(lam, rel=1e-5)
        assert sphere_pressure(norm, radius, 0.02) == pytest.approx(lam)


def test_sphere_direction_does_not_depend_on_radius():
    """Reference 3.4: on the sphere, w / r follows the same path for every r (same seeds),
    exactly so without BN's eps: scaling by 8 = 2^3 is exact in floating point."""
    a, b = _model(), _model()
    for m in (*a.modules(), *b.modules()):  # BN eps breaks exact SI at small radius
        if isinstance(m, nn.BatchNorm1d):
            m.eps = 1e-12
    opt_a = FixedSphere(a.si_parameters(), elr=0.01, radius=0.5)
    opt_b = FixedSphere(b.si_parameters(), elr=0.01, radius=4.0)
    _train(a, opt_a, 20, seed=7)
    _train(b, opt_b, 20, seed=7)
    for p, q in zip(a.si_parameters(), b.si_parameters(), strict=True):
        # float32 chaos over 20 steps stays ~1e-6 relative to entries of size ~0.02
        torch.testing.assert_close(p / 0.5, q / 4.0, rtol=1e-3, atol=1e-5)


def test_radius_drifts_as_the_protocols_say():
    """Weight decay shrinks the radius in 'lr'; the sphere keeps it fixed."""
    m = _model(radius=3.0)
    opt = make_optimizer("lr", m.si_parameters(), lr=0.05, wd=0.5)
    _train(m, opt, 10, seed=1)
    assert group_radius(m.si_parameters()) < 3.0
    m = _model(radius=3.0)
    opt = make_optimizer("sphere", m.si_parameters(), elr=0.05, radius=3.0)
    _train(m, opt, 10, seed=1)
    assert group_radius(m.si_parameters()) == pytest.approx(3.0, rel=1e-6)


# ------------------------------------------------------------------ groups


def test_several_si_groups_each_with_its_own_radius():
    m = _model()
    w1, w2 = m.si_parameters()
    opt = FixedSphere(
        [{"params": [w1], "radius": 1.0}, {"params": [w2], "radius": 2.0}], elr=0.01, radius=5.0
    )
    _train(m, opt, 5, seed=2)
    assert group_radius([w1]) == pytest.approx(1.0, rel=1e-6)
    assert group_radius([w2]) == pytest.approx(2.0, rel=1e-6)
    assert opt.si_groups == [0, 1]
    # ELR: each group's step uses its own radius.
    m = _model()
    w1, w2 = m.si_parameters()
    set_group_radius([w1], 1.0)
    set_group_radius([w2], 3.0)
    opt = FixedELR([{"params": [w1]}, {"params": [w2], "elr": 0.02}], elr=0.01, wd=0.1)
    g1, g2 = _grads(m, seed=0)
    w1.grad, w2.grad = g1.clone(), g2.clone()
    e1 = w1.detach().double() - 0.01 * 1.0 * (g1.double() + 0.1 * w1.detach().double())
    e2 = w2.detach().double() - 0.02 * 9.0 * (g2.double() + 0.1 * w2.detach().double())
    opt.step()
    torch.testing.assert_close(w1.double(), e1, rtol=0, atol=1e-6)
    torch.testing.assert_close(w2.double(), e2, rtol=0, atol=1e-6)
    assert opt.last_radius(1) == pytest.approx(3.0, rel=1e-6)


def test_non_si_parameters_untouched_unless_asked():
    m = _model()
    si = m.si_parameters()
    m.head.requires_grad_(True)  # pretend the user wants it in the loop
    head_w = m.head.weight.detach().clone()
    opt = FixedELR([{"params": si}, {"params": [m.head.weight], "si": False}], elr=0.01, wd=0.1)
    _train(m, opt, 3, seed=0)
    assert torch.equal(m.head.weight, head_w)  # lr defaults to 0 for non-SI groups
    opt.param_groups[1]["lr"] = 0.1
    g = m.head.weight.grad.clone()
    opt.step()
    torch.testing.assert_close(m.head.weight, head_w - 0.1 * g)  # plain SGD when asked
    assert opt.si_groups == [0]


def test_frozen_parameters_in_si_group_refused():
    m = _model()
    with pytest.raises(ValueError, match="requires_grad=False"):
        FixedLR(list(m.parameters()), lr=0.1, wd=0.1)  # includes the frozen head


# ------------------------------------------------------------------ state_dict / resume


@pytest.mark.parametrize(
    "protocol,kw",
    [
        ("lr", {"lr": 0.2, "wd": 0.01}),
        ("elr", {"elr": 0.01, "wd": 0.01}),
        ("sphere", {"elr": 0.01, "radius": 1.5}),
    ],
)
def test_resume_is_bit_identical(protocol, kw):
    m = _model()
    opt = make_optimizer(protocol, m.si_parameters(), **kw)
    _train(m, opt, 5, seed=1)
    ckpt = {"model": copy.deepcopy(m.state_dict()), "opt": copy.deepcopy(opt.state_dict())}
    ckpt_radius = opt.last_radius()
    _train(m, opt, 5, seed=2)
    # "Interrupted" run: a fresh model and optimizer restored from the checkpoint.
    m2 = _model(radius=0.3, seed=9)
    opt2 = make_optimizer(protocol, m2.si_parameters(), **kw)
    m2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["opt"])
    assert opt2.last_radius() == ckpt_radius  # monitors' values travel in the state_dict
    _train(m2, opt2, 5, seed=2)
    assert all(
        torch.equal(a, b)
        for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True)
    )
    assert opt2.last_radius() == opt.last_radius()
    assert opt2.last_preprojection_norm() == opt.last_preprojection_norm()


def test_load_state_dict_of_other_protocol_refused():
    m = _model()
    sd = FixedLR(m.si_parameters(), lr=0.1, wd=0.1).state_dict()
    with pytest.raises(ValueError, match="protocol"):
        FixedELR(m.si_parameters(), elr=0.1, wd=0.1).load_state_dict(sd)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda ps: FixedLR(ps, lr=0.0, wd=0.1), r"lr == 0\.0, must be > 0"),
        (lambda ps: FixedLR(ps, lr=0.1, wd=-1.0), r"wd == -1\.0, must be > 0"),
        (lambda ps: FixedLR(ps, lr=True, wd=0.1), "lr == True, must be a real number"),
        (lambda ps: FixedELR(ps, elr=float("nan"), wd=0.1), "elr == nan, must be finite"),
        (lambda ps: FixedELR(ps, elr=0.1, wd=0.0), r"wd == 0\.0, must be > 0"),
        (lambda ps: FixedSphere(ps, elr=0.1, radius=0.0), r"radius == 0\.0, must be > 0"),
        (lambda ps: FixedSphere(ps, elr=-0.1, radius=1.0), r"elr == -0\.1, must be > 0"),
        (lambda ps: make_optimizer("sphere", ps, elr=0.1, radius=1.0, wd=0.1), "no weight decay"),
        (lambda ps: make_optimizer("elr", ps, lr=0.1, wd=0.1), "does not take"),
        (lambda ps: make_optimizer("lr", ps, lr=0.1), "needs"),
        (lambda ps: make_optimizer("adam", ps, lr=0.1), r"protocol == 'adam', must be one of"),
        (lambda ps: FixedELR([{"params": ps, "lr": 0.1}], elr=0.1, wd=0.1), "not used"),
        (lambda ps: FixedLR([{"params": ps, "si": False, "lr": -1.0}], lr=0.1, wd=0.1),
         r"lr \(non-SI group\) == -1\.0, must be >= 0"),
        (lambda ps: FixedLR([{"params": ps, "si": "yes"}], lr=0.1, wd=0.1),
         "si == 'yes', must be True or False"),
        (
            lambda ps: FixedSphere([torch.zeros(3, requires_grad=True)], elr=0.1, radius=1.0),
            "radius 0",
        ),
    ],
)
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make(_model().si_parameters())


# ------------------------------------------------------------------ momentum and AdamW


def _train64(model, opt, steps, seed, closure=None):
    gen = torch.Generator().manual_seed(seed)
    x, y = X.double(), Y
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        if closure is not None:
            closure()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_momentum_is_torch_sgd_with_momentum(dtype):
    """Heavy ball with coupled WD == torch SGD(momentum, weight_decay, dampening 0): bit for bit
    (same operations in the same order), in float32 and float64."""
    a = _model().to(dtype)
    b = copy.deepcopy(a)
    opt_a = make_optimizer("lr", a.si_parameters(), lr=0.05, wd=1e-2, optimizer="momentum",
                           momentum=0.9)
    opt_b = torch.optim.SGD(b.si_parameters(), lr=0.05, momentum=0.9, weight_decay=1e-2,
                            dampening=0, nesterov=False, foreach=False)
    radii = []
    if dtype == torch.float64:
        _train64(a, opt_a, 12, 3, closure=lambda: radii.append(opt_a.last_radius()))
        _train64(b, opt_b, 12, 3)
    else:
        _train(a, opt_a, 12, seed=3)
        _train(b, opt_b, 12, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    for p, q in zip(a.si_parameters(), b.si_parameters(), strict=True):
        assert torch.equal(opt_a.state[p]["momentum_buffer"], opt_b.state[q]["momentum_buffer"])
    if radii:  # the radius recorded is the one before each step: it changes every step
        assert len(set(radii)) == len(radii)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adamw_is_torch_adamw(dtype):
    """AdamW with decoupled WD, bias correction and eps == torch.optim.AdamW bit for bit."""
    a = _model().to(dtype)
    b = copy.deepcopy(a)
    opt_a = make_optimizer("lr", a.si_parameters(), lr=3e-3, wd=0.1, optimizer="adamw",
                           momentum=0.8, beta2=0.99)
    opt_b = torch.optim.AdamW(b.si_parameters(), lr=3e-3, betas=(0.8, 0.99), eps=1e-8,
                              weight_decay=0.1, foreach=False)
    if dtype == torch.float64:
        _train64(a, opt_a, 12, 5)
        _train64(b, opt_b, 12, 5)
    else:
        _train(a, opt_a, 12, seed=5)
        _train(b, opt_b, 12, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    for p, q in zip(a.si_parameters(), b.si_parameters(), strict=True):
        for k in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_a.state[p][k], opt_b.state[q][k])
        assert float(opt_a.state[p]["step"]) == float(opt_b.state[q]["step"]) == 12


def test_adamw_first_step_formula():
    """Independent float64 check of one AdamW step: m_hat = g, s_hat = g^2, so
    w1 = (1 - lr wd) w0 - lr g / (|g| + eps)."""
    m = _model().double()
    w0 = [p.detach().clone() for p in m.si_parameters()]
    opt = make_optimizer("lr", m.si_parameters(), lr=1e-2, wd=0.5, optimizer="adamw")
    idx = torch.arange(64)
    F.cross_entropy(m(X.double()[idx]), Y[idx]).backward()
    gs = [p.grad.clone() for p in m.si_parameters()]
    opt.step()
    for p, w, g in zip(m.si_parameters(), w0, gs, strict=True):
        want = (1 - 1e-2 * 0.5) * w - 1e-2 * g / (g.abs() + 1e-8)
        torch.testing.assert_close(p.detach(), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("optimizer", ["momentum", "adamw"])
def test_momentum_adamw_resume_bit_identical(optimizer):
    """state_dict carries the buffers: a round trip continues exactly as without it."""
    a = _model()
    opt_a = make_optimizer("lr", a.si_parameters(), lr=0.02, wd=0.05, optimizer=optimizer)
    _train(a, opt_a, 5, seed=7)
    b = copy.deepcopy(a)
    opt_b = make_optimizer("lr", b.si_parameters(), lr=0.02, wd=0.05, optimizer=optimizer)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    _train(a, opt_a, 5, seed=8)
    _train(b, opt_b, 5, seed=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert opt_a.last_radius() == opt_b.last_radius()
    sgd = make_optimizer("lr", copy.deepcopy(a).si_parameters(), lr=0.02, wd=0.05)
    with pytest.raises(ValueError, match="optimizer"):
        sgd.load_state_dict(opt_a.state_dict())


def test_momentum_non_si_group_uses_the_rule():
    """A non-SI group with a rate follows the optimizer's rule too (own buffer)."""
    m = _model()
    extra = nn.Parameter(torch.ones(3))
    opt = MomentumLR([{"params": m.si_parameters()},
                      {"params": [extra], "si": False, "lr": 0.1}], lr=0.05, wd=1e-2)
    ref = torch.optim.SGD([extra.detach().clone().requires_grad_()], lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        ref.zero_grad()
        (F.cross_entropy(m(X[:64]), Y[:64]) + extra.square().sum()).backward()
        q = ref.param_groups[0]["params"][0]
        q.square().sum().backward()
        opt.step()
        ref.step()
    torch.testing.assert_close(extra.detach(), q.detach(), rtol=0, atol=0)
    assert opt.si_groups == [0] and opt.param_groups[1]["optimizer"] == "momentum"


#: bad optimizer settings and their messages (also refused by the batched optimizer:
#: tests/nn/test_batched.py)
OPTIMIZER_ERRORS = [
    ({"protocol": "elr", "elr": 0.01, "wd": 0.01, "optimizer": "momentum"},
     "optimizer 'momentum' runs the protocol"),
    ({"protocol": "lr", "lr": 0.1, "wd": 0.01, "optimizer": "adam"},
     "optimizer == 'adam', must be one of sgd, momentum, adamw"),
    ({"protocol": "lr", "lr": 0.1, "wd": 0.01, "optimizer": "momentum", "momentum": 1.0},
     r"momentum == 1\.0, must be < 1"),
    ({"protocol": "lr", "lr": 0.1, "wd": 0.01, "optimizer": "adamw", "momentum": -0.1},
     r"momentum == -0\.1, must be >= 0"),
    ({"protocol": "lr", "lr": 0.1, "wd": 0.01, "optimizer": "adamw", "beta2": 1.5},
     r"beta2 == 1\.5, must be < 1"),
    ({"protocol": "lr", "lr": 0.1, "wd": 0.01, "momentum": 0.9},
     r"momentum == 0\.9, must be None for optimizer 'sgd' \(it takes neither"),
    ({"protocol": "lr", "lr": 0.1, "wd": 0.01, "optimizer": "momentum", "beta2": 0.9},
     r"beta2 == 0\.9, must be None for optimizer 'momentum' \(it takes momentum of"),
    ({"protocol": "lr", "lr": 0.1, "optimizer": "adamw"}, "exactly lr and wd"),
]


@pytest.mark.parametrize(("kw", "match"), OPTIMIZER_ERRORS)
def test_optimizer_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        make_optimizer(params=_model().si_parameters(), **kw)


def test_check_optimizer_args_accepts_the_valid_combinations():
    for protocol in ("lr", "elr", "sphere"):
        check_optimizer_args(protocol, "sgd")
    check_optimizer_args("lr", "momentum", 0.0)
    check_optimizer_args("lr", "adamw", 0.5, 0.999)
