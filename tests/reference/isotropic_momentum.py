"""Plain-numpy reference of the momentum/AdamW isotropic kernel
(`thermosgd.sim._kernels.momentum_kernel`).

Heavy-ball momentum (torch SGD semantics, coupled weight decay) and AdamW (torch semantics,
decoupled weight decay, bias-corrected moments) written directly in numpy, one Python step per
iteration (vectorized over chains only), on the isotropic model L(w) = 1 + <mu, w/|w|> with
g(w) = (mu - <mu, wbar> wbar)/|w| + (sigma/|w|) P_perp(w) xi, fed with the same per-chain normal
streams as the kernel (`thermosgd._rng`, seeded as `thermosgd.sim.momentum.simulate` seeds
them). The window statistics are recomputed from the per-step series: pooled window means over
the replicas of a point and batch-means standard errors over ``n_blocks`` equal blocks.
"""

from __future__ import annotations

import numpy as np

from thermosgd._rng import chain_states, standard_normals
from thermosgd.sim.isotropic import loss_direction

__all__ = ["momentum_chains"]

#: the kernel's encoding of the optimizer, part of the chains' seed
_SEED_CODE = {"momentum": 0, "adamw": 1}


def _window_stats(series: np.ndarray, R: int, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled window mean per point and its batch-means standard error from a (chains, window)
    series: block b holds the steps tw with floor(tw n_blocks / window) = b."""
    window = series.shape[1]
    block = np.minimum(np.arange(window) * n_blocks // window, n_blocks - 1)
    means = np.stack([series[:, block == b].mean(1) for b in range(n_blocks)], axis=1)
    chain_se2 = means.var(axis=1, ddof=1) / n_blocks
    return (series.mean(1).reshape(-1, R).mean(1),
            np.sqrt(chain_se2.reshape(-1, R).sum(1)) / R)


def momentum_chains(optimizer: str, *, dim: int, lr, wd, beta1, beta2=0.999, eps=1e-8,
                    sigma=1.0, steps: int, burn_in: int, replicas: int = 1, seed: int = 0,
                    init_radius=1.0, mu=None, n_blocks: int = 20,
                    queue_size: int = 0) -> dict[str, np.ndarray]:
    """The chains of `thermosgd.sim.momentum.simulate` (same arguments; ``init_radius`` per
    chain or one number), stepped in numpy. Returns per point: ``radius``, ``energy``
    (1 + <mu, wbar>), ``grad_norm2`` (1 - <mu, wbar>^2) with ``radius_se`` and ``energy_se``;
    ``angular_update`` (RMS angle between successive directions), ``radius2``,
    ``inv_radius2``, ``step_ratio`` (sqrt(E|w_{t+1} - w_t|^2 / E r^2)); and ``directions``
    (points, replicas * queue_size, d), the unit directions after the snapshot steps
    burn_in + k window / queue_size, k = 1..queue_size."""
    d, R = dim, replicas
    lr, wd, b1, b2 = (np.repeat(np.atleast_1d(np.asarray(x, dtype=float)).ravel(), R)[:, None]
                      for x in np.broadcast_arrays(lr, wd, beta1, beta2))
    n = lr.shape[0]
    states = chain_states(n, np.random.SeedSequence([seed, 7, _SEED_CODE[optimizer]]))
    xi = standard_normals(states, steps * d).reshape(n, steps, d)
    if mu is None:
        mu = loss_direction(d, seed)
    elif isinstance(mu, str):  # "diagonal"
        mu = np.full(d, 1.0 / np.sqrt(d))
    w0 = np.random.default_rng([seed, 42]).standard_normal(d)
    w0 /= np.linalg.norm(w0)
    w = w0[None] * np.broadcast_to(np.asarray(init_radius, dtype=float), (n,))[:, None]
    m = np.zeros_like(w)  # heavy-ball velocity or AdamW's first moment
    v = np.zeros_like(w)  # AdamW's second moment
    window = steps - burn_in
    snap = set((burn_in + np.arange(1, queue_size + 1) * window // max(queue_size, 1)).tolist())
    series = {k: np.empty((n, window)) for k in
              ("radius", "energy", "grad_norm2", "angle2", "radius2", "inv_radius2", "step2")}
    directions = []
    for t in range(steps):
        r = np.linalg.norm(w, axis=1, keepdims=True)
        wbar = w / r
        overlap = wbar @ mu
        e = xi[:, t]
        g = (mu - overlap[:, None] * wbar) / r + sigma / r * (
            e - np.sum(e * wbar, 1, keepdims=True) * wbar)
        w_old = w
        if optimizer == "momentum":
            m = b1 * m + g + wd * w
            w = w - lr * m
        else:
            m = b1 * m + (1.0 - b1) * g
            v = b2 * v + (1.0 - b2) * g * g
            m_hat = m / (1.0 - b1 ** (t + 1))
            v_hat = v / (1.0 - b2 ** (t + 1))
            w = w - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * w)
        if t >= burn_in:
            tw = t - burn_in
            cos = np.sum(w * w_old, 1) / (np.linalg.norm(w, axis=1) * r[:, 0])
            for k, val in (("radius", r[:, 0]), ("energy", 1.0 + overlap),
                           ("grad_norm2", 1.0 - overlap**2),
                           ("angle2", np.arccos(np.clip(cos, -1.0, 1.0)) ** 2),
                           ("radius2", r[:, 0] ** 2), ("inv_radius2", 1.0 / r[:, 0] ** 2),
                           ("step2", np.sum((w - w_old) ** 2, 1))):
                series[k][:, tw] = val
        if t + 1 in snap:
            directions.append(w / np.linalg.norm(w, axis=1, keepdims=True))
    out = {}
    for k in ("radius", "energy"):
        out[k], out[f"{k}_se"] = _window_stats(series[k], R, n_blocks)
    for k in ("grad_norm2", "angle2", "radius2", "inv_radius2", "step2"):
        out[k] = _window_stats(series[k], R, n_blocks)[0]
    out["angular_update"] = np.sqrt(out.pop("angle2"))
    out["step_ratio"] = np.sqrt(out.pop("step2") / out["radius2"])
    if queue_size:
        q = np.stack(directions, axis=1)  # (chains, queue_size, d)
        out["directions"] = q.reshape(n // R, R * queue_size, d)
    return out
