"""Plain-numpy heavy ball and AdamW on the isotropic model, for the finite-eta-lambda closed forms.

Independent of `thermosgd.sim` (no numba kernel, no `thermosgd._rng` streams: numpy's own
generator): L(w) = 1 + <mu, w/|w|>, g(w) = (mu - <mu, wbar> wbar)/|w| + (sigma/|w|) P_perp(w) xi,
xi ~ N(0, I_d), stepped one iteration at a time, vectorized over chains, with exactly the update
of ``torch.optim.SGD(momentum=beta, weight_decay=lambda)`` (heavy ball, coupled decay:
v <- beta v + g + lambda w; w <- w - eta v; first step v = g + lambda w) or
``torch.optim.AdamW(betas=(b1, b2), eps, weight_decay=lambda)`` (w <- (1 - eta lambda) w;
m <- b1 m + (1-b1) g; s <- b2 s + (1-b2) g^2; w <- w - eta m_hat / (sqrt(s_hat) + eps) with
m_hat = m / (1-b1^t), sqrt(s_hat) = sqrt(s) / sqrt(1-b2^t)).

`chains` returns the chain-mean path of r^2 (for relaxation) and window statistics with
batch-means standard errors (for stationary states).
"""

from __future__ import annotations

import numpy as np

__all__ = ["chains"]


def _step_adamw(w, g, state, lr, wd, b1, b2, eps, t):
    m, s = state
    w = w * (1.0 - lr * wd)
    m = b1 * m + (1.0 - b1) * g
    s = b2 * s + (1.0 - b2) * g * g
    denom = np.sqrt(s) / np.sqrt(1.0 - b2 ** (t + 1)) + eps
    w = w - lr / (1.0 - b1 ** (t + 1)) * m / denom
    return w, (m, s)


def _step_momentum(w, g, state, lr, wd, b1, b2, eps, t):
    (v,) = state
    d_p = g + wd * w
    v = d_p if t == 0 else b1 * v + d_p
    return w - lr * v, (v,)


def chains(optimizer: str, *, dim: int, lr, wd, beta1, beta2=0.999, eps=1e-8, sigma=1.0,
           steps: int, init_radius, n_chains: int, seed: int, burn_in: int | None = None,
           n_blocks: int = 20, mu: str = "diagonal") -> dict[str, np.ndarray]:
    """``n_chains`` chains per point of the broadcast (lr, wd, beta1, init_radius), each started
    at ``init_radius`` along its own random direction with zero optimizer buffers.

    Returns ``r2_path`` (points, steps): the mean over chains of r^2 after each step; with
    ``burn_in``: window (steps after burn_in) means per point of ``radius2`` (r^2),
    ``inv_radius2`` (1/r^2), ``energy`` (1 + <mu, wbar>) and ``grad_norm2`` (1 - <mu, wbar>^2),
    each with ``*_se``: batch means over ``n_blocks`` blocks per chain, chains independent."""
    d = dim
    lr, wd, b1, r0 = (np.repeat(np.atleast_1d(np.asarray(x, dtype=float)).ravel(),
                                n_chains)[:, None]
                      for x in np.broadcast_arrays(lr, wd, beta1, init_radius))
    n = lr.shape[0]
    rng = np.random.default_rng(seed)
    mu_v = np.full(d, 1.0 / np.sqrt(d)) if mu == "diagonal" else rng.standard_normal(d)
    mu_v = mu_v / np.linalg.norm(mu_v)
    w = rng.standard_normal((n, d))
    w *= r0 / np.linalg.norm(w, axis=1, keepdims=True)
    step = _step_adamw if optimizer == "adamw" else _step_momentum
    state = (np.zeros_like(w), np.zeros_like(w)) if optimizer == "adamw" else (np.zeros_like(w),)
    path = np.empty((n, steps))
    window = 0 if burn_in is None else steps - burn_in
    names = ("radius2", "inv_radius2", "energy", "grad_norm2")
    series = {k: np.empty((n, window)) for k in names}
    for t in range(steps):
        r = np.linalg.norm(w, axis=1, keepdims=True)
        wbar = w / r
        ov = wbar @ mu_v
        xi = rng.standard_normal((n, d))
        g = ((mu_v - ov[:, None] * wbar) + sigma * (xi - np.sum(xi * wbar, 1, keepdims=True)
                                                     * wbar)) / r
        if burn_in is not None and t >= burn_in:
            tw = t - burn_in
            series["radius2"][:, tw] = r[:, 0] ** 2
            series["inv_radius2"][:, tw] = 1.0 / r[:, 0] ** 2
            series["energy"][:, tw] = 1.0 + ov
            series["grad_norm2"][:, tw] = 1.0 - ov**2
        w, state = step(w, g, state, lr, wd, b1, beta2, eps, t)
        path[:, t] = np.sum(w * w, 1)
    out = {"r2_path": path.reshape(-1, n_chains, steps).mean(1)}
    if burn_in is not None:
        for k in names:
            blocks = np.stack(np.array_split(series[k], n_blocks, axis=1), 0).mean(2)  # (B, n)
            per_chain = blocks.mean(0)
            se2 = blocks.var(0, ddof=1) / n_blocks
            out[k] = per_chain.reshape(-1, n_chains).mean(1)
            out[f"{k}_se"] = np.sqrt(se2.reshape(-1, n_chains).sum(1)) / n_chains
    return out
