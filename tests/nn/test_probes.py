"""Tests for thermosgd.nn.probes: minibatch gradients of a network's SI group and the noise
estimate from them (the estimator itself: tests/estimators/test_noise.py)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.reference import assert_matches_reference
from thermosgd.estimators.noise import noise_from_gradients
from thermosgd.nn.data import iid_batches, load_digits
from thermosgd.nn.models import BatchedBNMLP, batched_cross_entropy, bn_mlp, si_parameters
from thermosgd.nn.optim import FixedELR
from thermosgd.nn.probes import estimate_gradient_noise, minibatch_gradients

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    """The digits training set with 30% random labels (the network cannot interpolate)."""
    ds = load_digits(label_noise=0.3)
    return ds.x_train, ds.y_train


def train(model, opt, x, y, steps, seed=1, monitor=None):
    """``steps`` SGD steps on i.i.d. batches of 128; ``monitor.observe`` after each."""
    gen = torch.Generator().manual_seed(seed)
    for step, idx in enumerate(iid_batches(x.shape[0], 128, gen, num_batches=steps)):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if monitor is not None:
            monitor.observe(step, loss.detach())


def test_minibatch_gradients_match_backward_on_the_same_batches(digits):
    """Reference: the same index draws, one ``loss.backward()`` per batch on a copy of the
    model, gradients read from ``.grad`` (BN in train mode, running stats advancing on the
    copy only: they do not enter a train-mode forward)."""
    import copy

    x, y = digits
    model = bn_mlp()
    params = si_parameters(model)
    grads, radius = minibatch_gradients(model, F.cross_entropy, x, y, params, n_batches=4,
                                        batch_size=16, generator=5)
    twin = copy.deepcopy(model).train()
    gen = torch.Generator().manual_seed(5)
    ref = []
    for _ in range(4):
        idx = torch.randint(0, x.shape[0], (16,), generator=gen)
        twin.zero_grad()
        F.cross_entropy(twin(x[idx]), y[idx]).backward()
        ref.append(torch.cat([p.grad.reshape(-1) for p in si_parameters(twin)]))
    # identical float32 graphs on the same inputs: autograd.grad and backward agree exactly
    assert_matches_reference(grads, torch.stack(ref), rtol=0.0)
    r = math.sqrt(sum(float(p.detach().double().square().sum()) for p in params))
    assert float(radius) == pytest.approx(r, rel=1e-15)


def test_estimate_gradient_noise_restores_model_state(digits):
    x, y = digits
    model = bn_mlp()
    params = si_parameters(model)
    train(model, FixedELR(params, elr=1e-2, wd=1e-2), x, y, 20)
    model.eval()
    model.layers[1].train()  # mixed flags must survive
    for p in params:
        p.grad = torch.full_like(p, 0.25)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    est = estimate_gradient_noise(model, F.cross_entropy, x, y, params, n_batches=8, generator=3)
    assert torch.equal(torch.rand(3), expected_next)  # global RNG untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k  # weights, BN running stats, num_batches_tracked
    assert [m.training for m in model.modules()] == flags
    assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in params)
    # same seed, same estimate; the radius is the group's
    again = estimate_gradient_noise(model, F.cross_entropy, x, y, params, n_batches=8, generator=3)
    assert again.trace_sigma == est.trace_sigma
    r = math.sqrt(sum(float(p.detach().double().square().sum()) for p in params))
    assert est.radius == pytest.approx(r, rel=1e-12)
    assert est.trace_sigma > 0 and est.trace_sigma_se > 0


def test_batched_model_gives_per_config_estimates(digits):
    x, y = digits
    models = [bn_mlp(init_seed=s) for s in (1, 2, 3)]
    batched = BatchedBNMLP.from_models(models)
    est = estimate_gradient_noise(
        batched, batched_cross_entropy, x, y, si_parameters(batched), n_batches=6, generator=9
    )
    assert est.shape == (3,)
    for g, m in enumerate(models):
        one = estimate_gradient_noise(
            m, F.cross_entropy, x, y, si_parameters(m), n_batches=6, generator=9
        )
        # identical batches; float32 GEMM orderings differ between the layouts
        assert est[g].trace_sigma == pytest.approx(one.trace_sigma, rel=1e-4)
        assert est[g].grad_norm2 == pytest.approx(one.grad_norm2, rel=1e-3)
        assert est[g].radius == pytest.approx(one.radius, rel=1e-6)


def test_network_estimate_covers_a_large_reference(digits):
    """Cheap version of benchmarks/bench_noise_estimator.py: a BN-MLP on digits with 30% random
    labels after 300 fixed-ELR steps; 30 independent n = 32 estimates against one n = 2000
    reference (disjoint draws)."""
    x, y = digits
    model = bn_mlp()
    params = si_parameters(model)
    train(model, FixedELR(params, elr=1e-2, wd=1e-2), x, y, 300)
    g, r = minibatch_gradients(model, F.cross_entropy, x, y, params, n_batches=2960, generator=4)
    ref = noise_from_gradients(g[:2000], r)
    ours = noise_from_gradients(g[2000:].reshape(30, 32, -1), r)
    for name in ("trace_sigma", "grad_norm2"):
        lo, hi = ours.ci(name)
        v = getattr(ref, name)
        covered = int(np.sum((lo <= v) & (v <= hi)))
        # expected 95% of 30 = 28.5 (the reference's own SE is 13% of ours: negligible);
        # P(covered <= 24 | p = 0.95) = 0.016
        assert covered >= 25, (name, covered)
        # unbiased: the mean of the 30 estimates is within 4 SE of the reference
        m = getattr(ours, name).mean()
        se = math.hypot(getattr(ours, name).std() / math.sqrt(30), getattr(ref, name + "_se"))
        assert abs(m - v) < 4 * se, name


def test_estimate_gradient_noise_bad_input(digits):
    x, y = digits
    model = bn_mlp()
    params = si_parameters(model)
    with pytest.raises(ValueError, match="n_batches == 2, must be >= 3"):
        estimate_gradient_noise(model, F.cross_entropy, x, y, params, n_batches=2)
    with pytest.raises(ValueError, match="batch_size == 0, must be >= 1"):
        estimate_gradient_noise(model, F.cross_entropy, x, y, params, batch_size=0)
    with pytest.raises(ValueError, match="rows"):
        estimate_gradient_noise(model, F.cross_entropy, x, y[:10], params)
    with pytest.raises(ValueError, match="generator == 'seed'"):
        estimate_gradient_noise(model, F.cross_entropy, x, y, params, generator="seed")
    with pytest.raises(ValueError, match="requires_grad"):
        estimate_gradient_noise(model, F.cross_entropy, x, y, [model.head.weight])
    with pytest.raises(ValueError, match="non-empty"):
        estimate_gradient_noise(model, F.cross_entropy, x, y, [])
