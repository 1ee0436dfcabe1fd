"""BatchedConvModel: G conv configs under vmap equal G separate models."""

import pytest
import torch
import torch.nn.functional as F

from thermosgd.nn.batched import BatchedProtocol
from thermosgd.nn.batched_conv import BatchedConvModel
from thermosgd.nn.conv_models import convnet, preact_resnet18
from thermosgd.nn.models import batched_cross_entropy
from thermosgd.nn.optim import FixedELR

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

# vmap runs config g's convolutions as one grouped convolution over all configs: the same
# float32 products summed in another order, round-off ~ eps * sqrt(fan_in) per layer (measured
# 1.6e-6 of the largest entry for the ConvNet). Over 3 training steps the two trajectories
# drift apart by that round-off amplified by the training map: measured <= 3e-5 of the largest
# entry for the ResNet (logits after the steps, gradients of step 3). TOL = 2e-4 of the largest
# entry leaves a ~7x margin, while a config mix-up (another config's weights, hyperparameters
# or BN statistics) changes values at the 1e-1 level.
TOL = 2e-4

MAKERS = {
    "convnet": lambda seed: convnet(2, 1, 10, input_size=8, init_seed=seed),
    "resnet": lambda seed: preact_resnet18(2, 1, 10, input_size=8, init_seed=seed),
}


def _close(a, b):
    a, b = a.detach(), b.detach()
    err, scale = float((a - b).abs().max()), float(b.abs().max())
    assert err <= TOL * max(scale, 1e-12), (err, scale)


def _batch(gen, B=16):
    return torch.randn(B, 1, 8, 8, generator=gen), torch.randint(0, 10, (B,), generator=gen)


@pytest.mark.parametrize("arch", list(MAKERS))
def test_batched_equals_separate_models(arch):
    """Outputs, per-config gradients, BN running statistics and (eval) outputs after 3
    fixed-ELR steps of each config (its own elr, wd) equal those of G single models stepped by
    `FixedELR` on the same batches."""
    G = 3
    models = [MAKERS[arch](seed) for seed in (1, 2, 3)]
    bm = BatchedConvModel.from_models(models)
    assert bm.num_configs == G
    elr, wd = [1e-3, 3e-3, 1e-2], [1e-3, 5e-3, 1e-2]  # lr = elr r^2 ~ 0.01-0.3 here
    bopt = BatchedProtocol(bm.si_parameters(), "elr", elr=torch.tensor(elr, dtype=torch.float64),
                           wd=torch.tensor(wd, dtype=torch.float64))
    opts = [FixedELR(m.si_parameters(), elr=e, wd=w) for m, e, w in zip(models, elr, wd,
                                                                         strict=True)]
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        x, y = _batch(gen)
        bopt.zero_grad(set_to_none=True)
        out = bm(x)
        assert out.shape == (G, 16, 10)
        losses = batched_cross_entropy(out, y)
        losses.sum().backward()
        for g, (m, opt) in enumerate(zip(models, opts, strict=True)):
            opt.zero_grad(set_to_none=True)
            og = m(x)
            _close(out[g], og)
            F.cross_entropy(og, y).backward()
            # the config's whole gradient vector (one tensor's own scale can be tiny: a
            # residual branch's gradient is a difference of larger terms)
            names = [n for n, p in m.named_parameters() if p.requires_grad]
            _close(torch.cat([bm.stacked(n).grad[g].reshape(-1) for n in names]),
                   torch.cat([p.grad.reshape(-1) for p in m.parameters() if p.requires_grad]))
            opt.step()
        bopt.step()
    for g, m in enumerate(models):
        _close(bopt.last_radius()[g], torch.tensor(opts[g].last_radius(), dtype=torch.float64))
        for n, b in m.named_buffers():
            _close(bm.stacked(n)[g].double(), b.double())
        single = bm.to_model(g)
        for (n, p), (n2, q) in zip(single.state_dict().items(), m.state_dict().items(),
                                   strict=True):
            assert n == n2
            _close(p.double(), q.double())
    bm.eval()
    x, _ = _batch(gen, 8)
    out = bm(x)
    for g, m in enumerate(models):
        m.eval()
        _close(out[g], m(x))


def test_replicate_and_frozen_head_shared():
    m = MAKERS["convnet"](1)
    bm = BatchedConvModel.replicate(m, 4)
    assert bm.num_configs == 4
    for n, p in m.named_parameters():
        if p.requires_grad:
            assert bm.stacked(n).shape == (4, *p.shape)
            assert all(torch.equal(bm.stacked(n)[g], p) for g in range(4))
        else:
            assert torch.equal(bm.stacked(n), p)  # the frozen head: one copy, not stacked
    assert [t.shape[1:] for t in bm.si_parameters()] == [p.shape for p in m.si_parameters()]
    assert sum(p.numel() for p in bm.parameters()) == 4 * m.dim


def test_bad_batches():
    with pytest.raises(ValueError, match="same architecture"):
        BatchedConvModel.from_models([MAKERS["convnet"](1), convnet(4, 1, 10, input_size=8)])
    with pytest.raises(ValueError, match="same architecture"):
        BatchedConvModel.from_models([MAKERS["convnet"](1), MAKERS["resnet"](1)])
    with pytest.raises(ValueError, match="memory_format 'contiguous'"):
        BatchedConvModel.replicate(convnet(2, 1, 10, input_size=8,
                                           memory_format="channels_last"), 2)
    with pytest.raises(ValueError, match="num_configs == 0, must be >= 1"):
        BatchedConvModel.replicate(MAKERS["convnet"](1), 0)
    with pytest.raises(ValueError, match="models must not be empty"):
        BatchedConvModel.from_models([])
