"""Speed of the isotropic-noise simulator vs the authors' notebook style, in one run.

Baseline: torch (float32, as in the notebook) with autograd on L.sum() and one Python step per
iteration, 289 chains (17x17 grid), d = 3, fixed-ELR protocol. Ours: `thermosgd.sim.isotropic`
(numba kernel, float64, per-chain random streams), same grid. Prints us/step and the ratio.

    python benchmarks/bench_isotropic.py [--baseline-steps 2000] [--steps 200000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from thermosgd.sim.isotropic import IsotropicConfig, simulate


def baseline_us_per_step(n_steps: int, dim: int = 3, sigma: float = 1.0) -> float:
    """The notebook's loop: autograd gradient, tangent noise, ELR step, one step per iteration."""
    torch.manual_seed(44)
    mu = torch.randn(dim)
    mu /= mu.norm()
    torch.manual_seed(42)
    elr = torch.logspace(-3, -1, 17).repeat_interleave(17)[:, None]
    wd = torch.logspace(-3, -1, 17).repeat(17)[:, None]
    x0 = torch.randn(dim)
    x = (x0 / x0.norm()).repeat(289, 1).clone()

    def loss_fn(w):
        return 1 + (w @ mu) / w.norm(dim=1)

    def step(x):
        x = x.detach().requires_grad_(True)
        loss = loss_fn(x)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        with torch.no_grad():
            norm = x.norm(dim=1, keepdim=True)
            eps = sigma * torch.randn_like(x) / norm
            eps = eps - (eps * x).sum(1, keepdim=True) * x / norm**2
            lr = elr * norm**2
            return x - lr * (grad + eps + wd * x), loss.detach()

    for _ in range(50):
        x, _ = step(x)
    t = time.perf_counter()
    for _ in range(n_steps):
        x, _ = step(x)
    return (time.perf_counter() - t) / n_steps * 1e6


def ours_us_per_step(n_steps: int, dim: int = 3) -> float:
    grid = tuple(np.logspace(-3, -1, 17))
    c = IsotropicConfig("elr", elr=grid, wd=grid, dim=dim, steps=n_steps, queue_size=1000)
    simulate(IsotropicConfig("elr", elr=grid, wd=grid, dim=dim, steps=5000, queue_size=100),
             progress=False)  # compile (cached on disk after the first run)
    sim = simulate(c, progress=False)
    return sim.seconds / n_steps * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline-steps", type=int, default=2000)
    p.add_argument("--steps", type=int, default=200_000)
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    base = baseline_us_per_step(a.baseline_steps)
    ours = ours_us_per_step(a.steps)
    print(f"chains=289 dim=3 protocol=elr cores={os.cpu_count()}")
    print(f"baseline (torch autograd, Python step/iteration): {base:8.1f} us/step")
    print(f"thermosgd (numba kernel, float64):                {ours:8.2f} us/step")
    print(f"speed-up: {base / ours:.1f}x  (target >= 20x)")
    print(f"paper preset estimate: 3 protocols x 2e6 steps = {3 * 2e6 * ours / 1e6:.0f} s")


if __name__ == "__main__":
    main()
