"""BatchedConvNet (grouped convolutions) + BatchedProtocol against G separate conv models.

The reference (tests/reference/batched_conv.py) trains G single ConvNets / ResNets one after
another, each with the single-config optimizer of its protocol / optimizer and, with per-config
batches, on its own batch; the batched model built from the same models must give, config by
config, the same logits, gradients, radii (sphere: pressures), weights, BN running statistics
and optimizer buffers. Plus construction / refusal checks and the single-model round trip.
"""

import pytest
import torch

from tests.reference import assert_matches_reference
from tests.reference.batched_conv import SeparateConvConfigs, batched_conv_state
from thermosgd.nn.batched import BatchedProtocol
from thermosgd.nn.batched_convnet import BatchedConvNet
from thermosgd.nn.conv_models import convnet, preact_resnet18
from thermosgd.nn.models import batched_cross_entropy
from thermosgd.nn.scale_invariance import batched_group_radius, set_group_radius

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

G = 3
MAKERS = {
    "convnet": lambda seed: convnet(2, 1, 10, input_size=8, init_seed=seed),
    "resnet": lambda seed: preact_resnet18(2, 1, 10, input_size=8, init_seed=seed),
}


def _t(*v):
    return torch.tensor(v, dtype=torch.float64)


#: (protocol, optimizer) -> per-config hyperparameters of G = 3 configs (all different); the
#: models start at radii 1, 2, 3, so lr = elr r^2 ~ 0.01-0.2 as in the lr grids
GRIDS = {
    ("lr", "sgd"): {"lr": _t(0.05, 0.1, 0.2), "wd": _t(1e-3, 1e-2, 1e-1)},
    ("elr", "sgd"): {"elr": _t(2e-2, 1e-2, 5e-3), "wd": _t(1e-3, 1e-2, 1e-1)},
    ("sphere", "sgd"): {"elr": _t(2e-2, 1e-2, 5e-3), "radius": _t(0.5, 1.0, 2.0)},
    ("lr", "momentum"): {"lr": _t(0.02, 0.05, 0.01), "wd": _t(1e-2, 3e-2, 0.1),
                         "momentum": _t(0.9, 0.5, 0.0)},
    ("lr", "adamw"): {"lr": _t(1e-3, 3e-3, 1e-2), "wd": _t(1e-2, 3e-2, 0.1),
                      "momentum": _t(0.9, 0.5, 0.0), "beta2": _t(0.999, 0.99, 0.9)},
}


def _models(arch, dtype=torch.float64):
    models = []
    for g in range(G):
        m = MAKERS[arch](1 + g).to(dtype)
        set_group_radius(m.si_parameters(), 1.0 + g)
        models.append(m)
    return models


def _batched_step(bm, bopt, x, y):
    """One step of the batched path, recorded with the keys of `SeparateConvConfigs.step`."""
    bopt.zero_grad()
    logits = bm(x)
    batched_cross_entropy(logits, y).sum().backward()
    out = {"logits": logits.detach()}
    out.update({f"grad:{n}": p.grad.clone() for n, p in bm.si_named_parameters()})
    bopt.step()
    out["radius_before"] = bopt.last_radius()
    out["preprojection_norm"] = bopt.last_preprojection_norm()
    if bopt.protocol == "sphere":
        out["pressure"] = bopt.last_pressure()
    return out


def _scaled(fast, ref, rtol, scale):
    """assert_matches_reference key by key with atol = scale * max|ref| of that key."""
    for k, r in ref.items():
        assert_matches_reference(fast[k], r, rtol=rtol, atol=scale * float(r.abs().max()),
                                 what=k)


@pytest.mark.parametrize("arch", list(MAKERS))
@pytest.mark.parametrize(("protocol", "optimizer"), list(GRIDS))
def test_batched_conv_equals_separate_models(arch, protocol, optimizer):
    """float64, 4 free-running steps, one batch per config (then one shared batch): logits,
    gradients, radii, pressures, then weights, BN running statistics and optimizer buffers.

    Tolerance: the grouped kernels sum each output in another order than the single model's
    convolution: float64 round-off ~ eps sqrt(fan_in) ~ 1e-15 relative per layer; the
    training map amplifies it over 4 steps, seen <= 5e-13 of each key's largest entry (the
    ResNet's weights and gradients). rtol = 1e-9 and atol = 1e-9 max|ref| leave 1000x,
    while a config mix-up (another config's weights, hyperparameters, batch or BN
    statistics) changes values by 1e-2 or more."""
    models = _models(arch)
    bm = BatchedConvNet.from_models(models)
    hyper = GRIDS[protocol, optimizer]
    bopt = BatchedProtocol(bm.si_parameters(), protocol, optimizer=optimizer, **hyper)
    ref = SeparateConvConfigs(models, protocol, optimizer=optimizer, **hyper)
    gen = torch.Generator().manual_seed(0)
    for k in range(4):
        shape = (G, 16) if k < 3 else (16,)  # per-config batches, then one shared batch
        x = torch.randn(*shape, 1, 8, 8, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 10, shape, generator=gen)
        _scaled(_batched_step(bm, bopt, x, y), ref.step(x, y), rtol=1e-9, scale=1e-9)
    _scaled(batched_conv_state(bm, bopt), ref.state(), rtol=1e-9, scale=1e-9)
    assert_matches_reference(batched_group_radius(bm.si_parameters()),
                             [_radius(m) for m in models], rtol=1e-9, what="radius")
    # eval mode: the running statistics of every config, on one shared batch
    bm.eval()
    x = torch.randn(16, 1, 8, 8, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        fast, slow = bm(x), torch.stack([m.eval()(x) for m in models])
    assert_matches_reference(fast, slow, rtol=1e-9, atol=1e-9 * float(slow.abs().max()),
                             what="eval logits")


def _radius(m):
    return float(sum(p.detach().double().square().sum() for p in m.si_parameters()).sqrt())


@pytest.mark.parametrize("arch", list(MAKERS))
def test_float32_step_and_single_model_round_trip(arch):
    """float32 (the engine's dtype): 3 elr steps from the same weights stay within the
    grouped kernels' round-off (float32 eps 6e-8 x sqrt(fan_in) ~ 1e-6 per layer, amplified
    over 3 steps: seen <= 3e-5 of the largest entry for the ResNet; 2e-4 allowed); to_model(g)
    and config_state(g) are config g's model exactly (bit for bit, same dtype)."""
    models = _models(arch, torch.float32)
    bm = BatchedConvNet.from_models(models)
    for g, m in enumerate(models):
        sd, mine = m.state_dict(), bm.to_model(g).state_dict()
        assert sd.keys() == mine.keys()
        assert all(torch.equal(sd[k], mine[k]) for k in sd)
    hyper = GRIDS["elr", "sgd"]
    bopt = BatchedProtocol(bm.si_parameters(), "elr", **hyper)
    ref = SeparateConvConfigs(models, "elr", **hyper)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(G, 16, 1, 8, 8, generator=gen)
        y = torch.randint(0, 10, (G, 16), generator=gen)
        fast, slow = _batched_step(bm, bopt, x, y), ref.step(x, y)
        _scaled({k: fast[k] for k in ("logits", "radius_before")},
                {k: slow[k] for k in ("logits", "radius_before")}, rtol=2e-4, scale=2e-4)
        # the whole gradient vector of a config (one tensor's own scale can be tiny: a
        # residual branch's gradient is a difference of larger terms)
        names = [n for n, _ in bm.si_named_parameters()]
        for g in range(G):
            flat_b = torch.cat([_batched_grad(bm, n)[g].reshape(-1) for n in names])
            flat_s = torch.cat([slow[f"grad:{n}"][g].reshape(-1) for n in names])
            assert_matches_reference(flat_b, flat_s, rtol=0,
                                     atol=2e-4 * float(flat_s.abs().max()), what="gradient")


def _batched_grad(bm, name):
    return dict(bm.si_named_parameters())[name].grad


def test_replicate_and_per_config_init_seeds():
    """replicate(m, G) is G copies of m; from_models keeps each model's own init."""
    m = MAKERS["convnet"](1)
    bm = BatchedConvNet.replicate(m, 2)
    assert bm.num_configs == 2 and bm.dim == m.dim
    w = bm.si_parameters()[0]
    assert torch.equal(w[0], w[1]) and torch.equal(w[0], m.si_parameters()[0])
    bm2 = BatchedConvNet.from_models([m, MAKERS["convnet"](2)])
    w2 = bm2.si_parameters()[0]
    assert not torch.equal(w2[0], w2[1])


@pytest.mark.parametrize(
    ("models", "match"),
    [
        (lambda: [convnet(2, 1, 10, input_size=8, variant="bn-affine")], "affine-free"),
        (lambda: [convnet(2, 1, 10, input_size=8, variant="head")], "trained Linear"),
        (lambda: [convnet(2, 1, 10, input_size=8, variant="bias")], "does not batch"),
        (lambda: [convnet(2, 1, 10, input_size=8), convnet(3, 1, 10, input_size=8)],
         "same architecture"),
        (lambda: [convnet(2, 1, 10, input_size=8),
                  convnet(2, 1, 10, input_size=8, head_seed=5)], "differs between configs"),
        (lambda: [], "must not be empty"),
    ],
)
def test_models_that_cannot_batch_are_refused(models, match):
    with pytest.raises(ValueError, match=match):
        BatchedConvNet.from_models(models())


def test_bad_input_shapes_are_refused():
    bm = BatchedConvNet.replicate(MAKERS["convnet"](1), 2)
    for x in (torch.zeros(4, 3, 8, 8), torch.zeros(3, 4, 1, 8, 8), torch.zeros(4, 64)):
        with pytest.raises(ValueError, match=r"x must have shape \(B, 1, H, W\)"):
            bm(x)
    with pytest.raises(ValueError, match="g == 2"):
        bm.to_model(2)
