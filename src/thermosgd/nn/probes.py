"""Gradient-noise probes of a network: n minibatch gradients of a scale-invariant group.

`minibatch_gradients` draws ``n_batches`` minibatches i.i.d. with replacement from the training
set and returns their flattened gradients w.r.t. the SI group (train-mode BatchNorm), leaving
the model exactly as it was (parameters, buffers, train/eval flags, ``.grad``, the global RNG);
`estimate_gradient_noise` passes them to `thermosgd.estimators.noise.noise_from_gradients`
(unbiased unit-sphere tr Sigma, ||grad L||^2 and Q with standard errors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from thermosgd._validate import check_int
from thermosgd.estimators.noise import NoiseEstimate, noise_from_gradients

__all__ = ["estimate_gradient_noise", "minibatch_gradients"]

LossFn = Callable[[Tensor, Tensor], Tensor]


def _make_generator(generator, device: torch.device) -> torch.Generator:
    """``generator`` itself, or a new generator on ``device`` seeded with it (None: seed 0)."""
    if generator is None:
        generator = 0
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, (int, np.integer)):
        raise ValueError(
            f"generator == {generator!r}, must be a torch.Generator, an int seed or None"
        )
    gen = torch.Generator(device=device)
    gen.manual_seed(int(generator))
    return gen


def estimate_gradient_noise(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    params: Sequence[Tensor],
    *,
    n_batches: int = 64,
    batch_size: int = 128,
    generator: torch.Generator | int | None = None,
) -> NoiseEstimate:
    """`noise_from_gradients` of ``n_batches`` minibatch gradients of the SI group ``params``
    (see `minibatch_gradients`): unbiased unit-sphere tr Sigma = r^2 sum_i ||g_i - gbar||^2 /
    (n - 1), ||grad L||^2 and Q with standard errors."""
    grads, radius = minibatch_gradients(
        model,
        loss_fn,
        x,
        y,
        params,
        n_batches=n_batches,
        batch_size=batch_size,
        generator=generator,
    )
    return noise_from_gradients(grads, radius)


def _check_probe_input(x, y, params) -> list[Tensor]:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise ValueError("x and y must be torch tensors")
    if x.dim() < 1 or x.shape[0] == 0 or y.shape[:1] != x.shape[:1]:
        raise ValueError(
            f"x and y must have the same, nonzero number of rows, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    params = [params] if isinstance(params, Tensor) else list(params)
    if not params or not all(isinstance(p, Tensor) for p in params):
        raise ValueError("params must be a non-empty sequence of tensors")
    if not all(p.requires_grad for p in params):
        raise ValueError("params must all have requires_grad=True")
    return params


def minibatch_gradients(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    params: Sequence[Tensor],
    *,
    n_batches: int = 64,
    batch_size: int = 128,
    generator: torch.Generator | int | None = None,
) -> tuple[Tensor, np.ndarray]:
    """``n_batches`` flattened minibatch gradients of the SI group ``params`` and its radius.

    Each minibatch is ``batch_size`` indices drawn i.i.d. with replacement from the rows of
    (x, y) (as the paper's training batches), evaluated in train mode (BatchNorm with batch
    statistics); the gradient g_i = d loss_fn(model(x[idx_i]), y[idx_i]) / d params is taken
    with ``torch.autograd.grad`` and flattened. A scalar loss gives grads (n, d) and a float
    radius r = sqrt(sum_p ||p||^2); a loss of shape (G,) (e.g.
    `thermosgd.nn.models.batched_cross_entropy` of a `BatchedBNMLP`) gives grads (G, n, d) and
    radii (G,), every parameter carrying a leading config axis G. Grads keep the parameters'
    dtype and device. Afterwards the model is as before: parameters, buffers (BN running
    statistics, num_batches_tracked), train/eval flags, ``.grad`` fields (never touched) and
    the global RNG. ``generator``: a ``torch.Generator`` (advanced by the draws), an int seed,
    or None (seed 0).
    """
    n_batches = check_int("n_batches", n_batches, min_val=3)
    batch_size = check_int("batch_size", batch_size, min_val=1)
    params = _check_probe_input(x, y, params)
    gen = _make_generator(generator, x.device)
    N = int(x.shape[0])

    modes = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    devices = [x.device] if x.device.type == "cuda" else []
    grads: list[Tensor] = []
    batched = None
    try:
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            model.train()
            for _ in range(n_batches):
                idx = torch.randint(0, N, (batch_size,), generator=gen, device=gen.device)
                idx = idx.to(x.device)
                loss = loss_fn(model(x[idx]), y[idx])
                if not isinstance(loss, Tensor) or loss.dim() > 1:
                    raise ValueError(
                        "loss_fn must return a scalar tensor or one loss per config (G,)"
                    )
                if batched is None:
                    batched = loss.dim() == 1
                    if batched and any(p.dim() == 0 or p.shape[0] != loss.shape[0] for p in params):
                        raise ValueError(
                            f"a per-config loss of shape {tuple(loss.shape)} needs params with "
                            f"a leading config axis of {loss.shape[0]}"
                        )
                gs = torch.autograd.grad(loss.sum(), params, allow_unused=True)
                gs = [
                    torch.zeros_like(p) if g is None else g for p, g in zip(params, gs, strict=True)
                ]
                if batched:
                    G = loss.shape[0]
                    grads.append(torch.cat([g.detach().reshape(G, -1) for g in gs], dim=1))
                else:
                    grads.append(torch.cat([g.detach().reshape(-1) for g in gs]))
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for m, mode in modes:
            m.training = mode
    with torch.no_grad():
        if batched:
            r2 = sum(p.detach().reshape(p.shape[0], -1).double().square().sum(1) for p in params)
        else:
            r2 = sum(p.detach().double().square().sum() for p in params)
        radius = r2.sqrt().cpu().numpy()
    return torch.stack(grads, dim=-2), radius
