"""The batched steps (thermosgd.nn.batched) against G separate single-config optimizers.

The reference (tests/reference/batched.py) trains G `BNMLP`s one after another, each with the
single-config optimizer of its protocol / optimizer (`make_optimizer`); `BatchedProtocol` on a
`BatchedBNMLP` built from the same models must give, config by config, the same outputs,
gradients, radii (and sphere pressures), weights and optimizer buffers. Plus the functional
steps' own checks, the errors, state_dict round trips and AdamW bit for bit at G = 1.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.nn.test_optim import OPTIMIZER_ERRORS, X, Y, _model
from tests.reference import assert_matches_reference
from tests.reference.batched import SeparateConfigs, batched_state
from thermosgd.nn.batched import BatchedProtocol, batched_step_, fixed_elr_step_, sphere_step_
from thermosgd.nn.models import BatchedBNMLP, batched_cross_entropy
from thermosgd.nn.scale_invariance import batched_group_radius

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

G = 3


def _t(*v):
    return torch.tensor(v, dtype=torch.float64)


#: (protocol, optimizer) -> per-config hyperparameters of G = 3 configs (all different)
GRIDS = {
    ("lr", "sgd"): {"lr": _t(0.05, 0.1, 0.2), "wd": _t(1e-3, 1e-2, 1e-1)},
    ("elr", "sgd"): {"elr": _t(2e-3, 1e-2, 2e-2), "wd": _t(1e-3, 1e-2, 1e-1)},
    ("sphere", "sgd"): {"elr": _t(2e-3, 1e-2, 2e-2), "radius": _t(0.5, 1.0, 2.0)},
    ("lr", "momentum"): {"lr": _t(0.02, 0.05, 0.01), "wd": _t(1e-2, 3e-2, 0.1),
                         "momentum": _t(0.9, 0.5, 0.0)},
    ("lr", "adamw"): {"lr": _t(1e-3, 3e-3, 1e-2), "wd": _t(1e-2, 3e-2, 0.1),
                      "momentum": _t(0.9, 0.5, 0.0), "beta2": _t(0.999, 0.99, 0.9)},
}
CASES = list(GRIDS)


def _batched_step(bm, bopt, x, y):
    """One step of the batched path, recorded with the keys of `SeparateConfigs.step`."""
    bopt.zero_grad()
    logits = bm(x)
    batched_cross_entropy(logits, y).sum().backward()
    out = {"logits": logits.detach()}
    out.update({f"grad_{i}": w.grad.clone() for i, w in enumerate(bm.weights)})
    bopt.step()
    out["radius_before"] = bopt.last_radius()
    out["preprojection_norm"] = bopt.last_preprojection_norm()
    if bopt.protocol == "sphere":
        out["pressure"] = bopt.last_pressure()
    return out


def _setup(protocol, optimizer, dtype):
    # float32 models with radii 1, 2, 3, cast afterwards: both paths start from the same weights
    models = [_model(radius=1.0 + s, seed=s).to(dtype) for s in range(G)]
    bm = BatchedBNMLP.from_models(models)
    hyper = GRIDS[protocol, optimizer]
    bopt = BatchedProtocol(bm.si_parameters(), protocol, optimizer=optimizer, **hyper)
    return bm, bopt, SeparateConfigs(models, protocol, optimizer=optimizer, **hyper)


def _scaled(fast, ref, rtol, scale):
    """assert_matches_reference key by key with atol = scale * max|ref| of that key."""
    for k, r in ref.items():
        assert_matches_reference(fast[k], r, rtol=rtol, atol=scale * float(r.abs().max()),
                                 what=k)


@pytest.mark.parametrize(("protocol", "optimizer"), CASES)
def test_batched_equals_separate_configs(protocol, optimizer):
    """float64, 10 free-running steps (no resynchronization), every protocol and optimizer.

    Tolerances: the two paths differ only in summation order (one GEMM / bmm over all configs
    against G mm's; one batch_norm over the (B, G h) layout against G), i.e. float64 round-off,
    eps = 1.1e-16 per operation, over reductions of 32-64 terms and 10 steps; measured
    <= 4e-15 of each array's largest entry (up to 2e-10 relative for entries near zero, hence
    the atol relative to the array's scale). 1e-12 leaves a margin of > 100x and still catches
    any difference in the rules (a config with another lr or wd differs by >= 1e-3). The sphere
    pressure (r' - r) / (elr r^3) cancels r' - r ~ 1e-3 r: its round-off is ~1e3 larger
    (measured 4e-13): rtol 1e-10."""
    bm, bopt, ref = _setup(protocol, optimizer, torch.float64)
    gen = torch.Generator().manual_seed(4)
    x = X.double()
    for _ in range(10):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        fast = _batched_step(bm, bopt, x[idx], Y[idx])
        slow = ref.step(x[idx], Y[idx])
        pressure = (fast.pop("pressure", None), slow.pop("pressure", None))
        _scaled(fast, slow, rtol=1e-12, scale=1e-12)
        if protocol == "sphere":
            assert_matches_reference(*pressure, rtol=1e-10, what="pressure")
    _scaled(batched_state(bm.weights, bopt.state, optimizer), ref.state(), rtol=1e-12,
            scale=1e-12)
    if protocol == "sphere":
        assert_matches_reference(batched_group_radius(bm.si_parameters()),
                                 GRIDS[protocol, optimizer]["radius"], rtol=1e-14)


@pytest.mark.parametrize("protocol", ["lr", "elr", "sphere"])
def test_batched_float32_step_equals_separate_step(protocol):
    """float32 (as trained): one batched step == G single steps, step by step from synchronized
    weights (so that float32 round-off cannot be amplified by the chaotic dynamics, e.g. a
    ReLU flipping sign). One float32 step with different summation orders: ~1e-7 relative;
    weights rtol 1e-4 / atol 1e-7 (entries ~1e-2), radii 1e-6; the sphere pressure cancels
    r' - r ~ 1e-3 r, so the 1e-7 of r' becomes ~1e-4 there: rtol 1e-3."""
    bm, bopt, ref = _setup(protocol, "sgd", torch.float32)
    gen = torch.Generator().manual_seed(4)
    for _ in range(8):
        ref.sync_from(bm.weights)
        idx = torch.randint(0, len(X), (64,), generator=gen)
        fast = _batched_step(bm, bopt, X[idx], Y[idx])
        slow = ref.step(X[idx], Y[idx])
        for k in ("radius_before", "preprojection_norm"):
            assert_matches_reference(fast[k], slow[k], rtol=1e-6, what=k)
        if protocol == "sphere":
            assert_matches_reference(fast["pressure"], slow["pressure"], rtol=1e-3)
        state = ref.state()
        for i in range(2):
            assert_matches_reference(bm.weights[i], state[f"weight_{i}"], rtol=1e-4, atol=1e-7,
                                     what=f"weight_{i}")
    if protocol == "sphere":  # every config stays on its own sphere (float32 norms: 1e-7)
        assert_matches_reference(batched_group_radius(bm.si_parameters()),
                                 GRIDS[protocol, "sgd"]["radius"], rtol=1e-6)


@pytest.mark.parametrize(("protocol", "optimizer"), CASES)
def test_batched_state_dict_round_trip_is_bit_identical(protocol, optimizer):
    """state_dict carries the hyperparameters, buffers and step count: a restored copy
    continues exactly as the original."""
    bm, bopt, _ = _setup(protocol, optimizer, torch.float32)
    for seed in range(3):
        idx = torch.randint(0, len(X), (64,), generator=torch.Generator().manual_seed(seed))
        _batched_step(bm, bopt, X[idx], Y[idx])
    bm2 = copy.deepcopy(bm)
    bopt2 = BatchedProtocol(bm2.si_parameters(), protocol, optimizer=optimizer,
                            **GRIDS[protocol, optimizer])
    # as a resume does: the model's state after building the optimizer (the sphere's
    # constructor projects the weights onto the sphere, which rounds)
    bm2.load_state_dict(copy.deepcopy(bm.state_dict()))
    bopt2.load_state_dict(copy.deepcopy(bopt.state_dict()))
    for model, opt in ((bm, bopt), (bm2, bopt2)):
        _batched_step(model, opt, X[:64], Y[:64])
    assert all(torch.equal(p, q) for p, q in zip(bm.weights, bm2.weights, strict=True))
    assert torch.equal(bopt.last_radius(), bopt2.last_radius())


def test_batched_adamw_single_config_is_torch_adamw_bit_for_bit():
    """G = 1 in float32: the batched AdamW step does torch's operations in torch's order."""
    m = _model()
    bm = BatchedBNMLP.from_models([m])
    ref = copy.deepcopy(m)
    bopt = BatchedProtocol(bm.si_parameters(), "lr", lr=3e-3, wd=0.1, optimizer="adamw")
    topt = torch.optim.AdamW(ref.si_parameters(), lr=3e-3, weight_decay=0.1, foreach=False)
    gen = torch.Generator().manual_seed(2)
    for _ in range(6):
        idx = torch.randint(0, len(X), (64,), generator=gen)
        bopt.zero_grad()
        batched_cross_entropy(bm(X[idx]), Y[idx]).sum().backward()
        bopt.step()
        topt.zero_grad()
        F.cross_entropy(ref(X[idx]), Y[idx]).backward()
        topt.step()
    for i in range(2):
        assert torch.equal(bm.weights[i][0], ref.layers[3 * i].weight.T)


def test_functional_batched_steps():
    """The functional steps against the rules written out in float64 (no model)."""
    w = [torch.randn(G, 5, 4), torch.randn(G, 2)]
    g = [torch.randn(G, 5, 4), torch.randn(G, 2)]
    elr, wd = torch.tensor([0.1, 0.2, 0.3]), 0.05
    r0 = batched_group_radius(w)
    expected = [
        p.double()
        - (elr.double() * r0**2).view(-1, *[1] * (p.dim() - 1)) * (q.double() + wd * p.double())
        for p, q in zip(w, g, strict=True)
    ]
    stats = fixed_elr_step_(w, g, elr, wd)
    # the radius is the same float64 computation; one float32 step: ~1e-7 relative
    assert_matches_reference(stats.radius_before, r0, rtol=0)
    for p, e in zip(w, expected, strict=True):
        assert_matches_reference(p, e, rtol=1e-6, atol=1e-6)
    stats = sphere_step_(w, g, 0.01, torch.tensor([1.0, 2.0, 3.0]))
    assert_matches_reference(batched_group_radius(w), [1.0, 2.0, 3.0], rtol=1e-6)
    assert stats.norm_after.shape == (G,)
    with pytest.raises(ValueError, match=r"elr\.shape == \(2,\), must be \(\) or \(3,\)"):
        fixed_elr_step_(w, g, torch.ones(2), 0.1)
    with pytest.raises(ValueError, match=r"elr == \[.*0\.0.*\], must be > 0"):
        fixed_elr_step_(w, g, torch.tensor([0.1, 0.0, 0.1]), 0.1)
    with pytest.raises(ValueError, match=r"momentum == 1\.0, must be < 1"):
        BatchedProtocol([nn.Parameter(p) for p in w], "lr", lr=0.1, wd=0.1,
                        optimizer="momentum", momentum=torch.tensor([0.5, 1.0, 0.9]))
    with pytest.raises(ValueError, match="exactly"):
        batched_step_("sphere", w, g, elr=0.1, wd=0.1)
    with pytest.raises(ValueError, match=r"protocol == 'adam', must be one of"):
        batched_step_("adam", w, g, lr=0.1, wd=0.1)
    with pytest.raises(ValueError, match="grad"):
        fixed_elr_step_(w, [*g[:1], torch.randn(G, 3)], 0.1, 0.1)
    with pytest.raises(ValueError, match="takes exactly"):
        BatchedProtocol(w, "elr", elr=0.1)
    with pytest.raises(ValueError, match="sphere"):
        BatchedProtocol([nn.Parameter(p) for p in w], "elr", elr=0.1, wd=0.1).last_pressure()


@pytest.mark.parametrize(
    ("kw", "match"),
    # the cases that a batched "lr" grid with lr and wd can hit (not the make_optimizer-only
    # signature errors)
    [(kw, m) for kw, m in OPTIMIZER_ERRORS
     if kw.get("optimizer") not in (None, "adam") and kw["protocol"] == "lr" and "wd" in kw],
)
def test_batched_optimizer_errors(kw, match):
    """The batched optimizer refuses what `make_optimizer` refuses, with the same message."""
    bm = BatchedBNMLP(2, 64, (32, 32), 10)
    with pytest.raises(ValueError, match=match):
        BatchedProtocol(bm.si_parameters(), **kw)
