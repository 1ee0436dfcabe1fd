"""Plain-numpy reference of the SGD isotropic kernel (`thermosgd.sim._kernels.sgd_kernel`).

The paper's update rules written directly in numpy, one Python step per iteration (vectorized
over chains only), fed with the same per-chain normal streams as the kernel
(`thermosgd._rng.chain_states` / `standard_normals`, seeded as `thermosgd.sim.isotropic.simulate`
seeds them). The setup (grid, initial radius, loss direction) is the simulator's own; what is
checked is the dynamics and the window bookkeeping.
"""

from __future__ import annotations

import numpy as np

from thermosgd._rng import chain_states, standard_normals
from thermosgd.sim import isotropic as iso

__all__ = ["sgd_chains"]


def sgd_chains(c: iso.IsotropicConfig) -> dict[str, np.ndarray]:
    """Run every chain of ``c`` for ``c.steps`` steps (``c.burn_in`` must be set).

    Returns per chain: the direction snapshots
    ``directions`` (chains, queue_size, d): the direction after window step tw for
    tw = 0, s, 2 s, ... (s = window // queue_size); and the window means (steps t >= burn_in,
    at the pre-step point) of ``radius`` r, ``energy`` 1 + <mu, wbar>, ``grad_norm2``
    1 - <mu, wbar>^2 and ``norm_after`` (|w| after the step, before the sphere's projection).
    """
    R, d, burn_in = c.replicas, c.dim, c.burn_in
    g = {k: np.repeat(v.ravel(), R) for k, v in iso.grid_values(c).items()}
    n = g["wd"].size
    states = chain_states(n, np.random.SeedSequence([c.seed, iso.MODE[c.protocol]]))
    xi = standard_normals(states, c.steps * d).reshape(n, c.steps, d)
    mu = iso.loss_direction(d, c.seed)
    w0 = np.random.default_rng([c.seed, 42]).standard_normal(d)
    w0 /= np.linalg.norm(w0)
    w = w0[None] * np.repeat(iso.initial_radius(c).ravel(), R)[:, None]
    window = c.steps - burn_in
    spacing = max(1, window // c.queue_size)
    directions = np.full((n, c.queue_size, d), np.nan)
    sums = {k: np.zeros(n) for k in ("radius", "energy", "grad_norm2", "norm_after")}
    for t in range(c.steps):
        r = np.linalg.norm(w, axis=1, keepdims=True)
        wbar = w / r
        overlap = wbar @ mu
        grad = (mu - overlap[:, None] * wbar) / r
        e = xi[:, t]
        noise = c.sigma / r * (e - np.sum(e * wbar, 1, keepdims=True) * wbar)
        if c.protocol == "lr":
            eta, lam = g["lr"][:, None], g["wd"][:, None]
        elif c.protocol == "elr":
            eta, lam = g["elr"][:, None] * r**2, g["wd"][:, None]
        else:
            eta, lam = g["elr"][:, None] * g["radius"][:, None] ** 2, 0.0
        w = w - eta * (grad + noise + lam * w)
        r_after = np.linalg.norm(w, axis=1)
        if c.protocol == "sphere":
            w = g["radius"][:, None] * w / r_after[:, None]
        if t >= burn_in:
            for k, v in (("radius", r[:, 0]), ("energy", 1.0 + overlap),
                         ("grad_norm2", 1.0 - overlap**2), ("norm_after", r_after)):
                sums[k] += v
            tw = t - burn_in
            if tw % spacing == 0 and tw // spacing < c.queue_size:
                directions[:, tw // spacing] = w / np.linalg.norm(w, axis=1, keepdims=True)
    return {"directions": directions, **{k: v / window for k, v in sums.items()}}
