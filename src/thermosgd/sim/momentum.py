"""The isotropic-noise model under heavy-ball momentum SGD and AdamW (fixed learning rate).

Same model as `thermosgd.isotropic`: L(w) = 1 + <mu, w/||w||>, stochastic gradient
g(w) = (mu - <mu, wbar> wbar)/||w|| + (sigma/||w||) P_perp(w) xi, xi ~ N(0, I_d). Optimizers:

* ``"momentum"`` (heavy ball, coupled WD, PyTorch SGD): v <- beta v + g + lambda w;
  w <- w - eta v.
* ``"adamw"`` (decoupled WD, PyTorch AdamW): m <- b1 m + (1-b1) g; s <- b2 s + (1-b2) g*g;
  w <- w - eta (m_hat / (sqrt(s_hat) + eps) + lambda w), bias-corrected m_hat, s_hat.

Every point of a list of hyperparameters (lr, wd, beta1[, beta2, eps]) times replicas is one
chain of a float64 state (chains, d), advanced by a numba kernel in parallel over chains, each
with its own random stream (`thermosgd._rng`). Stationary statistics are accumulated over the
window after ``burn_in`` in batch means: radius r, loss L, ||grad_S L||^2 = 1 - <mu, wbar>^2 and
the squared angle between successive iterates.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numba as nb
import numpy as np

from thermosgd import optimizers, theory, vmf
from thermosgd._rng import chain_states, ziggurat_tables
from thermosgd.entropy import sphere_entropy
from thermosgd.sim.isotropic import (
    _draw_noise,
    _norm2_overlap,
    _pooled_mean_and_stderr,
    loss_direction,
)

OPTIMIZERS = {"momentum": 0, "adamw": 1}
# block_sum columns: r, loss, grad_norm2, angle^2, count, r^2, 1/r^2, ||w_{t+1} - w_t||^2
# (count stays at index 4, where isotropic._pooled_mean_and_stderr reads it)
_N_COLS = 8


@nb.njit(parallel=True, cache=True)
def _kernel(
    w, buf1, buf2, mu, lr, wd, beta1, beta2, eps, mode, sigma, states, kn, wn, fn, t_start,
    t_stop, burn_in, window, block_sum,
):  # pragma: no cover - compiled
    """Advance every chain from step t_start to t_stop (exclusive), in place.

    buf1 = momentum v (heavy ball) or first moment m (AdamW); buf2 = second moment s (AdamW).
    block_sum[b, k, j] sums (r, L, 1 - <mu,wbar>^2, angle^2) of step t over the k-th block of
    the window (j = 0..3), r^2, 1/r^2 and the squared step ||w_{t+1} - w_t||^2 (j = 5, 6, 7);
    block_sum[b, k, 4] counts the steps. A
    diverging chain is frozen at NaN.
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
            if not (r > 0.0 and r < 1e150):
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
            if mode == 1:
                bc1 = 1.0 - b1 ** (t + 1)
                bc2 = 1.0 - b2 ** (t + 1)
            rp2 = 0.0
            for i in range(d):
                w_old[i] = wb[i]
                wbar_i = wb[i] * inv_r
                g = (mu[i] - c * wbar_i) * inv_r + sn * (xi[i] - xi_w * wbar_i)
                if mode == 0:
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
                blk = min((t - burn_in) * n_blocks // window, n_blocks - 1)
                block_sum[b, blk, 0] += r
                block_sum[b, blk, 1] += 1.0 + c
                block_sum[b, blk, 2] += 1.0 - c * c
                block_sum[b, blk, 3] += ang * ang
                block_sum[b, blk, 4] += 1.0
                block_sum[b, blk, 5] += r2
                block_sum[b, blk, 6] += inv_r * inv_r
                block_sum[b, blk, 7] += step2


@dataclass
class MomentumRun:
    """Stationary measurements per point (pooled over replicas) and the predictions.

    Arrays have one entry per point of the broadcast hyperparameters, in their order.
    """

    optimizer: str
    dim: int
    sigma: float
    lr: np.ndarray
    wd: np.ndarray
    beta1: np.ndarray
    beta2: np.ndarray
    steps: int
    burn_in: int
    radius: np.ndarray
    radius_se: np.ndarray
    energy: np.ndarray
    energy_se: np.ndarray
    grad_norm2: np.ndarray
    angular_update: np.ndarray  # RMS angle between successive iterates (radians)
    seconds: float
    mu: np.ndarray | None = None  # (dim,) loss direction
    radius2: np.ndarray | None = None  # window mean of r^2
    inv_radius2: np.ndarray | None = None  # window mean of 1/r^2
    step_ratio: np.ndarray | None = None  # sqrt(E||w_{t+1} - w_t||^2 / E[r^2])
    replicas: int = 1
    directions: np.ndarray | None = None  # (points, replicas * queue_size, dim) snapshots

    @property
    def radius_balance(self) -> np.ndarray:
        """The radius the one-step balance fixes: (E[r^2] / E[1/r^2])^(1/4) for heavy ball
        (lambda E[r^2] = eta (d-1) sigma^2 E[1/r^2] / (2 (1-beta))), sqrt(E[r^2]) for AdamW
        (2 lambda E[r^2] = eta d). Equal to the mean radius when r hardly fluctuates."""
        if self.optimizer == "momentum":
            return (self.radius2 / self.inv_radius2) ** 0.25
        return np.sqrt(self.radius2)

    @property
    def radius_rel_std(self) -> np.ndarray:
        """Relative standard deviation of the radius over the window (all chains of a point)."""
        return np.sqrt(np.maximum(self.radius2 - self.radius**2, 0.0)) / self.radius

    def predictions(self) -> dict[str, np.ndarray]:
        """Theory at every point: radius (SDE and with the measured mean-gradient term; for
        AdamW also all orders in eta lambda, as the network monitor), RMS angular update,
        temperature and the exact vMF energy at that temperature."""
        d, s2 = self.dim, self.sigma**2
        ts = (d - 1) * s2
        if self.optimizer == "momentum":
            b = self.beta1
            out = {
                "radius_sde": optimizers.momentum_radius(self.lr, self.wd, b, s2, d),
                "radius_discrete": optimizers.momentum_radius_discrete(
                    self.lr, self.wd, b, ts, self.grad_norm2),
                "angular_update": optimizers.momentum_angular_update(self.lr, self.wd, b),
                "temperature": optimizers.momentum_temperature(self.lr, self.wd, b, s2, d),
            }
        else:
            out = {
                "radius_sde": optimizers.adamw_radius(self.lr, self.wd, d) + 0.0 * self.beta1,
                "radius_discrete": optimizers.adamw_radius_discrete(
                    self.lr, self.wd, self.beta1, d, ts, self.grad_norm2, exact=True),
                "angular_update": optimizers.adamw_angular_update(self.lr, self.wd, self.beta1),
                "temperature": optimizers.adamw_temperature(self.lr, self.wd, s2, d)
                + 0.0 * self.beta1,
            }
        out["energy"] = vmf.mean_energy(d, 1.0 / out["temperature"])
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def default_burn_in(optimizer: str, lr, wd, beta1) -> int:
    """Six radius relaxation times of the slowest point (the chains start at the SDE radius,
    a few percent off at most, so this leaves < 0.1%), plus 5000 steps for the momentum
    buffers and AdamW's second moment (b2 = 0.999) to settle."""
    if optimizer == "momentum":
        tau = optimizers.momentum_relaxation_time(lr, wd, beta1)
    else:
        tau = optimizers.adamw_relaxation_time(lr, wd)
    return int(5000 + 6 * float(np.max(tau)))


def simulate(
    optimizer: str, *, dim: int, lr, wd, beta1, beta2=0.999, eps: float = 1e-8,
    sigma: float = 1.0, steps: int, burn_in: int | None = None, replicas: int = 1,
    seed: int = 0, init_radius=None, n_blocks: int = 20, chunk: int = 20_000, mu=None,
    queue_size: int = 0,
) -> MomentumRun:
    """Run ``replicas`` chains per point of the broadcast (lr, wd, beta1, beta2) for ``steps``
    steps and measure the stationary window after ``burn_in`` (default `default_burn_in`).

    ``beta1`` is the heavy-ball momentum beta or AdamW's b1; ``beta2``, ``eps`` are AdamW's.
    Chains start from one random direction at ``init_radius`` (default: the SDE prediction),
    with zero optimizer buffers. ``mu`` (unit vector of the loss) defaults to the seeded random
    direction of `thermosgd.isotropic.loss_direction`; ``mu="diagonal"`` takes (1, ..., 1)/sqrt(d),
    whose minimum has equal coordinates (equal AdamW second moments in every coordinate).
    ``queue_size`` > 0 keeps that many unit-direction snapshots per chain, evenly spaced over
    the window (the last at the final step), pooled per point in ``directions`` for the k-NN
    entropy (`stationary_table`).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {optimizer!r}")
    if int(dim) != dim or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    lr_a, wd_a, b1_a, b2_a = (np.atleast_1d(np.asarray(x, dtype=float)).ravel() for x in
                              np.broadcast_arrays(lr, wd, beta1, beta2))
    optimizers.momentum_effective_lr(lr_a, b1_a)  # validates lr > 0 and beta1 in [0, 1)
    optimizers.adamw_relaxation_time(lr_a, wd_a)  # validates wd > 0
    if optimizer == "adamw":
        optimizers.momentum_noise_factor(b2_a)  # validates beta2 in [0, 1)
    if burn_in is None:
        burn_in = default_burn_in(optimizer, lr_a, wd_a, b1_a)
    if not (0 <= burn_in < steps) or steps - burn_in < n_blocks:
        raise ValueError(f"burn_in must be in [0, steps - n_blocks), got {burn_in} "
                         f"with steps={steps}")
    if int(replicas) != replicas or replicas < 1:
        raise ValueError(f"replicas must be a positive integer, got {replicas!r}")
    if int(queue_size) != queue_size or not 0 <= queue_size <= steps - burn_in:
        raise ValueError(f"queue_size must be an integer in [0, steps - burn_in], got "
                         f"{queue_size!r}")
    n_pts = lr_a.size
    rep = lambda a: np.ascontiguousarray(np.repeat(a, replicas))  # noqa: E731
    lr_c, wd_c, b1_c, b2_c = rep(lr_a), rep(wd_a), rep(b1_a), rep(b2_a)
    n_chains = n_pts * replicas
    if init_radius is None:
        if optimizer == "momentum":
            init_radius = optimizers.momentum_radius(lr_c, wd_c, b1_c, sigma**2, dim)
        else:
            init_radius = optimizers.adamw_radius(lr_c, wd_c, dim)
    r0 = np.broadcast_to(np.asarray(init_radius, dtype=float), (n_chains,))
    if mu is None:
        mu = loss_direction(dim, seed)
    elif isinstance(mu, str) and mu == "diagonal":
        mu = np.full(dim, 1.0 / math.sqrt(dim))
    else:
        mu = np.asarray(mu, dtype=float)
        if mu.shape != (dim,) or not np.all(np.isfinite(mu)) or np.linalg.norm(mu) == 0:
            raise ValueError(f"mu must be 'diagonal' or a finite nonzero vector of length {dim}")
        mu = mu / np.linalg.norm(mu)
    w0 = np.random.default_rng([seed, 42]).standard_normal(dim)
    w0 /= np.linalg.norm(w0)
    w = np.ascontiguousarray(w0[None, :] * r0[:, None])
    buf1 = np.zeros_like(w)
    buf2 = np.zeros_like(w)
    eps_c = np.full(n_chains, float(eps))
    block_sum = np.zeros((n_chains, n_blocks, _N_COLS))
    states = chain_states(n_chains, np.random.SeedSequence([seed, 7, OPTIMIZERS[optimizer]]))
    tables = ziggurat_tables()
    window = steps - burn_in
    # segment ends: every `chunk` steps and at every snapshot step
    snap = burn_in + (np.arange(1, queue_size + 1) * window) // max(queue_size, 1)
    ends = np.union1d(np.arange(chunk, steps, chunk), snap[:queue_size]).astype(np.int64)
    ends = np.union1d(ends, [steps])
    queue = np.empty((n_chains, queue_size, dim))
    t0 = time.perf_counter()
    start, q = 0, 0
    with np.errstate(all="ignore"):
        for stop in ends:
            _kernel(w, buf1, buf2, mu, lr_c, wd_c, b1_c, b2_c, eps_c, OPTIMIZERS[optimizer],
                    float(sigma), states, *tables, start, int(stop), burn_in, window, block_sum)
            start = int(stop)
            if q < queue_size and stop == snap[q]:
                queue[:, q] = w / np.linalg.norm(w, axis=1, keepdims=True)
                q += 1
    seconds = time.perf_counter() - t0
    radius, radius_se = _pooled_mean_and_stderr(block_sum, 0, replicas)
    energy, energy_se = _pooled_mean_and_stderr(block_sum, 1, replicas)
    gn2, _ = _pooled_mean_and_stderr(block_sum, 2, replicas)
    ang2, _ = _pooled_mean_and_stderr(block_sum, 3, replicas)
    r2, _ = _pooled_mean_and_stderr(block_sum, 5, replicas)
    rm2, _ = _pooled_mean_and_stderr(block_sum, 6, replicas)
    step2, _ = _pooled_mean_and_stderr(block_sum, 7, replicas)
    return MomentumRun(
        optimizer=optimizer, dim=int(dim), sigma=float(sigma), lr=lr_a, wd=wd_a, beta1=b1_a,
        beta2=b2_a, steps=int(steps), burn_in=int(burn_in), radius=radius, radius_se=radius_se,
        energy=energy, energy_se=energy_se, grad_norm2=gn2, angular_update=np.sqrt(ang2),
        seconds=seconds, mu=mu, radius2=r2, inv_radius2=rm2,
        step_ratio=np.sqrt(step2 / r2), replicas=int(replicas),
        directions=queue.reshape(n_pts, replicas * queue_size, dim) if queue_size else None,
    )


def temperature_from_energy(dim: int, energy) -> np.ndarray:
    """The temperature T = 1/kappa at which the exact von Mises-Fisher mean loss equals the
    measured one, E_kappa[1 + <mu, wbar>] = energy (`vmf.mean_energy`, decreasing in kappa):
    a measurement of T independent of the closed forms. NaN outside (0, 1)."""
    from scipy.optimize import brentq

    e = np.atleast_1d(np.asarray(energy, dtype=float))
    out = np.full(e.shape, np.nan)
    for i, u in enumerate(e):
        if not 0.0 < u < 1.0:
            continue
        f = lambda lk, u=u: float(vmf.mean_energy(dim, math.exp(lk))) - u  # noqa: E731
        out[i] = math.exp(-brentq(f, -30.0, 40.0, xtol=1e-13))
    return out


def stationary_table(run: MomentumRun, entropy_method: str = "chord") -> dict[str, np.ndarray]:
    """One row per point, with the columns of `thermosgd.analysis` (protocol "lr"): lr, wd,
    dim, sigma2, trace_sigma, grad_norm2, radius (window mean) and radius_balance, radius_sde
    and radius_discrete (this optimizer's closed forms), temperature (closed form) and
    temperature_energy (`temperature_from_energy`), energy, volume = r^2/2, pressure (heavy
    ball: lambda; AdamW: the coupled-equivalent lambda sqrt(s), `optimizers.adamw_pressure`),
    entropy_dir (k-NN of the pooled direction snapshots; needs ``queue_size`` > 0) and entropy
    = entropy_dir + (d-1) log r, each with ``*_se``; stationary (finite chains)."""
    d, n = run.dim, run.lr.size
    pred = run.predictions()
    s2 = run.sigma**2
    ok = np.isfinite(run.radius)
    cols: dict[str, np.ndarray] = {
        "protocol": np.full(n, "lr", dtype=object),
        "optimizer": np.full(n, run.optimizer, dtype=object),
        "momentum": run.beta1, "beta2": run.beta2, "lr": run.lr, "wd": run.wd,
        "elr": run.lr / run.radius**2, "dim": np.full(n, float(d)),
        "sigma2": np.full(n, s2), "trace_sigma": np.full(n, (d - 1) * s2),
        "grad_norm2": run.grad_norm2, "radius": run.radius, "radius_se": run.radius_se,
        "radius_balance": run.radius_balance, "radius_rel_std": run.radius_rel_std,
        "radius_sde": pred["radius_sde"], "radius_discrete": pred["radius_discrete"],
        "temperature": pred["temperature"],
        "temperature_energy": temperature_from_energy(d, run.energy),
        "energy": run.energy, "energy_se": run.energy_se, "energy_theory": pred["energy"],
        "volume": theory.volume(np.where(ok, run.radius, 1.0)) * np.where(ok, 1.0, np.nan),
        "pressure": optimizers.lr_pressure("momentum" if run.optimizer == "momentum" else
                                           "adamw", wd=run.wd, radius=run.radius, sigma2=s2,
                                           dim=d) * np.ones(n),
        "stationary": ok, "diverged": ~ok,
    }
    e_dir = np.full(n, np.nan)
    e_se = np.full(n, np.nan)
    if run.directions is not None:
        good = ok & np.isfinite(run.directions).all(axis=(1, 2))
        if good.any():
            est = sphere_entropy(run.directions[good], method=entropy_method)
            e_dir[good], e_se[good] = est.value, est.stderr
    cols["entropy_dir"], cols["entropy_dir_se"] = e_dir, e_se
    cols["entropy"] = theory.full_entropy(np.where(ok, e_dir, np.nan),
                                          np.where(ok, run.radius, 1.0), d)
    cols["entropy_se"] = np.hypot(e_se, (d - 1) * run.radius_se / run.radius)
    return cols


def run_study(optimizer: str, out_dir, *, dim: int, lr, wd, beta1: float, beta2: float = 0.999,
              sigma: float = 1.0, steps: int, replicas: int = 2, seed: int = 0,
              queue_size: int = 1000, mu=None, burn_in: int | None = None,
              figures: bool = True, entropy_method: str = "chord") -> dict:
    """Simulate the (lr x wd) grid, write ``config.json`` and ``results.csv``
    (`stationary_table`), then analyze it like a network sweep (`thermosgd.analysis.run_analysis`:
    equation of state, Maxwell relation of this optimizer, collapse, potential) into
    ``analysis.json`` and figures; ``thermosgd report`` shows the directory. Returns the
    analysis result."""
    from pathlib import Path

    from thermosgd.analysis import run_analysis
    from thermosgd.io import write_csv, write_json

    lrs = np.atleast_1d(np.asarray(lr, dtype=float))
    wds = np.atleast_1d(np.asarray(wd, dtype=float))
    L, W = np.meshgrid(lrs, wds, indexing="ij")
    run = simulate(optimizer, dim=dim, lr=L.ravel(), wd=W.ravel(), beta1=beta1, beta2=beta2,
                   sigma=sigma, steps=steps, replicas=replicas, seed=seed, burn_in=burn_in,
                   queue_size=queue_size, mu=mu)
    table = stationary_table(run, entropy_method=entropy_method)
    table["run"] = np.array([f"lr{a:.2e}_wd{b:.2e}" for a, b in zip(run.lr, run.wd,
                                                                      strict=True)], dtype=object)
    out = Path(out_dir)
    write_json(out / "config.json", {
        "model": "isotropic", "optimizer": optimizer, "dim": int(dim), "lr": lrs.tolist(),
        "wd": wds.tolist(), "momentum": float(beta1), "beta2": float(beta2),
        "sigma": float(sigma), "steps": int(steps), "burn_in": run.burn_in,
        "replicas": int(replicas), "seed": int(seed), "queue_size": int(queue_size),
        "mu": "diagonal" if isinstance(mu, str) else ("random" if mu is None else "given"),
        "seconds": run.seconds})
    write_csv(out / "results.csv", table)
    return run_analysis(out, figures=figures, strict=False)
