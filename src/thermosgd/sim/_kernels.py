"""The numba kernels of the isotropic-noise simulators and the pieces they share.

Both kernels advance a float64 state (chains, d) of the model L(w) = 1 + <mu, w/||w||> with the
stochastic gradient g(w) = (mu - <mu, wbar> wbar)/||w|| + (sigma/||w||) P_perp(w) xi,
xi ~ N(0, I_d), in parallel over chains, each chain drawing from its own xoshiro256** stream
(`thermosgd._rng`), so results do not depend on the number of threads:

* `sgd_kernel`: the three protocols of plain SGD (``MODE``: lr, elr, sphere);
* `momentum_kernel`: heavy-ball momentum and AdamW at a fixed learning rate (``MOMENTUM_MODE``).

Over the stationary window both accumulate per-chain block sums ``block_sum[b, k, col]`` (the
k-th of n_blocks equal blocks: batch means; the whole-window sums are their total) in ONE
column layout, defined here and read by `thermosgd.sim.blocks` and the drivers: the shared
columns ``COL_RADIUS`` (r = ||w||), ``COL_LOSS`` (L), ``COL_GRAD_NORM2``
(||grad_S L(wbar)||^2 = 1 - <mu, wbar>^2) and ``COL_COUNT`` (steps in the block), then each
kernel's own columns (``SGD_COLUMNS``, ``MOMENTUM_COLUMNS`` wide).

Why the two kernels live in this one file: numba's ``cache=True`` keys a cached kernel on the
file that defines it, so a change to an inlined helper defined in another file would leave the
kernel's cache stale. Keeping the kernels, their helpers and the column constants (compile-time
constants inside the kernels) together makes every edit recompile what it affects. (The
ziggurat normals of `thermosgd._rng` are the one exception; that module changes rarely.)
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from thermosgd._rng import normal

__all__ = [
    "COL_ANGLE2",
    "COL_COUNT",
    "COL_GRAD_NORM2",
    "COL_INV_RADIUS2",
    "COL_LOSS",
    "COL_NORM_AFTER",
    "COL_RADIUS",
    "COL_RADIUS2",
    "COL_STEP2",
    "MODE",
    "MOMENTUM_COLUMNS",
    "MOMENTUM_MODE",
    "RADIUS_LIMIT",
    "SGD_COLUMNS",
    "momentum_kernel",
    "sgd_kernel",
]

# --------------------------------------------------------------------------------------------
# the block-sum layout (one definition for both kernels)

#: columns both kernels fill, at the pre-step point of every window step
COL_RADIUS = 0  # r = ||w||
COL_LOSS = 1  # L = 1 + <mu, wbar>
COL_GRAD_NORM2 = 2  # ||grad_S L(wbar)||^2 = 1 - <mu, wbar>^2
COL_COUNT = 3  # number of steps summed in the block
#: the SGD kernel's own column: the norm r' after the step, before the sphere's projection
COL_NORM_AFTER = 4
SGD_COLUMNS = 5
#: the momentum/AdamW kernel's own columns: squared angle between successive iterates,
#: r^2, 1/r^2 and the squared step ||w_{t+1} - w_t||^2
COL_ANGLE2 = 4
COL_RADIUS2 = 5
COL_INV_RADIUS2 = 6
COL_STEP2 = 7
MOMENTUM_COLUMNS = 8

#: a chain whose radius leaves (0, RADIUS_LIMIT) or turns NaN is diverged and frozen at NaN
RADIUS_LIMIT = 1e150

# the kernels' encodings of the protocol / optimizer (also part of the chains' seeds)
_LR, _ELR, _SPHERE = 0, 1, 2
MODE = {"lr": _LR, "elr": _ELR, "sphere": _SPHERE}
_MOMENTUM, _ADAMW = 0, 1
MOMENTUM_MODE = {"momentum": _MOMENTUM, "adamw": _ADAMW}


# --------------------------------------------------------------------------------------------
# shared per-step pieces (inlined)


@nb.njit(cache=True, inline="always")
def _norm2_overlap(wb, mu):  # pragma: no cover - compiled
    """(||w||^2, <mu, w>) of one chain's state, summed in index order."""
    r2 = 0.0
    mw = 0.0
    for i in range(wb.shape[0]):
        r2 += wb[i] * wb[i]
        mw += mu[i] * wb[i]
    return r2, mw


@nb.njit(cache=True, inline="always")
def _draw_noise(xi, wb, inv_r, s, kn, wn, fn):  # pragma: no cover - compiled
    """Fill xi with d standard normals of the chain's stream s; return <xi, wbar> (the radial
    part the caller projects out: P_perp xi = xi - <xi, wbar> wbar)."""
    xi_w = 0.0
    for i in range(wb.shape[0]):
        xi[i] = normal(s, kn, wn, fn)
        xi_w += xi[i] * wb[i]
    return xi_w * inv_r


@nb.njit(cache=True, inline="always")
def _block_index(t, burn_in, n_blocks, window):  # pragma: no cover - compiled
    """The block of window step t: floor((t - burn_in) n_blocks / window), the last block
    taking the remainder."""
    return min((t - burn_in) * n_blocks // window, n_blocks - 1)


@nb.njit(cache=True, inline="always")
def _add_shared(block_sum, b, blk, r, c):  # pragma: no cover - compiled
    """Add the shared columns of one window step at radius r and overlap c = <mu, wbar>."""
    block_sum[b, blk, COL_RADIUS] += r
    block_sum[b, blk, COL_LOSS] += 1.0 + c
    block_sum[b, blk, COL_GRAD_NORM2] += 1.0 - c * c
    block_sum[b, blk, COL_COUNT] += 1.0


# --------------------------------------------------------------------------------------------
# SGD: the paper's three protocols


@nb.njit(parallel=True, cache=True)
def sgd_kernel(
    w, mu, rate, wd, radius, mode, sigma, states, kn, wn, fn, t_start, t_stop, burn_in,
    window, spacing, queue, trace_every, trace_r, trace_loss, block_sum, diverged,
):  # pragma: no cover - compiled
    """Advance every chain from step t_start to t_stop (exclusive), in place.

    One step of chain b (``mode`` = ``MODE[protocol]``; eta = rate (lr), rate ||w||^2 (elr),
    rate radius^2 (sphere); lambda = wd, 0 on the sphere):

    1. r = ||w||, c = <mu, wbar>; a radius outside (0, RADIUS_LIMIT) marks the chain diverged;
    2. xi ~ N(0, I_d) from the chain's stream, projected on the tangent space of wbar;
    3. w <- w - eta ((mu - c wbar)/r + (sigma/r) P_perp xi + lambda w); r' = ||w|| after it;
    4. sphere: w <- radius w / r';
    5. every trace_every steps (r, L) go into the traces; over the window the shared columns
       and ``COL_NORM_AFTER`` (r') are added to block ``_block_index``, and every spacing[b]
       window steps the direction after the step is pushed into queue[b].

    A diverged chain is frozen (state set to NaN) and skipped by later calls.
    """
    n_chains, d = w.shape
    n_queue = queue.shape[1]
    n_blocks = block_sum.shape[1]
    n_trace = trace_r.shape[1]
    for b in nb.prange(n_chains):
        if diverged[b]:
            continue
        s = states[b]
        wb = w[b]
        xi = np.empty(d)
        for t in range(t_start, t_stop):
            r2, mw = _norm2_overlap(wb, mu)
            r = math.sqrt(r2)
            if not (r > 0.0 and r < RADIUS_LIMIT):
                diverged[b] = True
                break
            inv_r = 1.0 / r
            c = mw * inv_r  # <mu, wbar>
            xi_w = _draw_noise(xi, wb, inv_r, s, kn, wn, fn)
            if mode == _LR:
                eta = rate[b]
            elif mode == _ELR:
                eta = rate[b] * r2
            else:
                eta = rate[b] * radius[b] * radius[b]
            lam = wd[b]
            sn = sigma * inv_r
            rp2 = 0.0
            for i in range(d):
                wbar_i = wb[i] * inv_r
                grad = (mu[i] - c * wbar_i) * inv_r
                noise = sn * (xi[i] - xi_w * wbar_i)
                wb[i] -= eta * (grad + noise + lam * wb[i])
                rp2 += wb[i] * wb[i]
            rp = math.sqrt(rp2)
            if mode == _SPHERE:
                scale = radius[b] / rp
                for i in range(d):
                    wb[i] *= scale
            if t % trace_every == 0 and t // trace_every < n_trace:
                trace_r[b, t // trace_every] = r
                trace_loss[b, t // trace_every] = 1.0 + c
            if t >= burn_in:
                tw = t - burn_in
                blk = _block_index(t, burn_in, n_blocks, window)
                _add_shared(block_sum, b, blk, r, c)
                block_sum[b, blk, COL_NORM_AFTER] += rp
                if tw % spacing[b] == 0 and tw // spacing[b] < n_queue:
                    q = tw // spacing[b]
                    inv = 1.0 / radius[b] if mode == _SPHERE else 1.0 / rp
                    for i in range(d):
                        queue[b, q, i] = wb[i] * inv
        if diverged[b]:
            for i in range(d):
                wb[i] = np.nan


# --------------------------------------------------------------------------------------------
# heavy-ball momentum and AdamW (fixed learning rate)


@nb.njit(parallel=True, cache=True)
def momentum_kernel(
    w, buf1, buf2, mu, lr, wd, beta1, beta2, eps, mode, sigma, states, kn, wn, fn, t_start,
    t_stop, burn_in, window, block_sum,
):  # pragma: no cover - compiled
    """Advance every chain from step t_start to t_stop (exclusive), in place.

    buf1 = momentum v (heavy ball) or first moment m (AdamW); buf2 = second moment s (AdamW).
    One step of chain b at step t (``mode`` = ``MOMENTUM_MODE[optimizer]``), with g the
    stochastic gradient at w (steps 1-2 of `sgd_kernel`; a diverged chain is set to NaN):

    * heavy ball (torch SGD, coupled WD): v <- beta1 v + g + lambda w; w <- w - eta v;
    * AdamW (torch, decoupled WD): m <- b1 m + (1 - b1) g; s <- b2 s + (1 - b2) g^2;
      w <- w - eta ((m / (1 - b1^(t+1))) / (sqrt(s / (1 - b2^(t+1))) + eps) + lambda w).

    Over the window the shared columns (at the pre-step point) and ``COL_ANGLE2`` (the squared
    angle 2 asin(|wbar_{t+1} - wbar_t| / 2) between successive iterates), ``COL_RADIUS2``,
    ``COL_INV_RADIUS2`` and ``COL_STEP2`` (||w_{t+1} - w_t||^2) are added to block
    ``_block_index``.
    """
    n_chains, d = w.shape
    n_blocks = block_sum.shape[1]
    for b in nb.prange(n_chains):
        s = states[b]
        wb = w[b]
        m = buf1[b]
        v = buf2[b]
        xi = np.empty(d)
        w_old = np.empty(d)
        for t in range(t_start, t_stop):
            r2, mw = _norm2_overlap(wb, mu)
            r = math.sqrt(r2)
            if not (r > 0.0 and r < RADIUS_LIMIT):
                for i in range(d):
                    wb[i] = np.nan
                break
            inv_r = 1.0 / r
            c = mw * inv_r
            xi_w = _draw_noise(xi, wb, inv_r, s, kn, wn, fn)
            sn = sigma * inv_r
            eta = lr[b]
            lam = wd[b]
            b1 = beta1[b]
            b2 = beta2[b]
            bc1 = 1.0
            bc2 = 1.0
            if mode == _ADAMW:
                bc1 = 1.0 - b1 ** (t + 1)
                bc2 = 1.0 - b2 ** (t + 1)
            rp2 = 0.0
            for i in range(d):
                w_old[i] = wb[i]
                wbar_i = wb[i] * inv_r
                g = (mu[i] - c * wbar_i) * inv_r + sn * (xi[i] - xi_w * wbar_i)
                if mode == _MOMENTUM:
                    m[i] = b1 * m[i] + g + lam * wb[i]
                    wb[i] -= eta * m[i]
                else:
                    m[i] = b1 * m[i] + (1.0 - b1) * g
                    v[i] = b2 * v[i] + (1.0 - b2) * g * g
                    u = (m[i] / bc1) / (math.sqrt(v[i] / bc2) + eps[b])
                    wb[i] -= eta * (u + lam * wb[i])
                rp2 += wb[i] * wb[i]
            if t >= burn_in:
                inv_rp = 1.0 / math.sqrt(rp2)
                chord2 = 0.0
                step2 = 0.0
                for i in range(d):
                    dlt = wb[i] * inv_rp - w_old[i] * inv_r
                    chord2 += dlt * dlt
                    step2 += (wb[i] - w_old[i]) * (wb[i] - w_old[i])
                ang = 2.0 * math.asin(min(1.0, 0.5 * math.sqrt(chord2)))
                blk = _block_index(t, burn_in, n_blocks, window)
                _add_shared(block_sum, b, blk, r, c)
                block_sum[b, blk, COL_ANGLE2] += ang * ang
                block_sum[b, blk, COL_RADIUS2] += r2
                block_sum[b, blk, COL_INV_RADIUS2] += inv_r * inv_r
                block_sum[b, blk, COL_STEP2] += step2
