"""The isotropic-noise model under heavy-ball momentum SGD and AdamW (fixed learning rate).

Same model as `thermosgd.sim.isotropic`: L(w) = 1 + <mu, w/||w||>, stochastic gradient
g(w) = (mu - <mu, wbar> wbar)/||w|| + (sigma/||w||) P_perp(w) xi, xi ~ N(0, I_d). Optimizers:

* ``"momentum"`` (heavy ball, coupled WD, PyTorch SGD): v <- beta v + g + lambda w;
  w <- w - eta v.
* ``"adamw"`` (decoupled WD, PyTorch AdamW): m <- b1 m + (1-b1) g; s <- b2 s + (1-b2) g*g;
  w <- w - eta (m_hat / (sqrt(s_hat) + eps) + lambda w), bias-corrected m_hat, s_hat.

Every point of a list of hyperparameters (lr, wd, beta1[, beta2, eps]) times replicas is one
chain of a float64 state (chains, d), advanced by a numba kernel
(`thermosgd.sim._kernels.momentum_kernel`) in parallel over chains, each with its own random
stream (`thermosgd._rng`). Stationary statistics are accumulated over the window after
``burn_in`` in batch means (`thermosgd.sim.blocks`): radius r, loss L,
||grad_S L||^2 = 1 - <mu, wbar>^2 and the squared angle between successive iterates. This module
simulates (`simulate`) and tabulates (`stationary_table`); the study on disk is
`thermosgd.workflows.isotropic`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from thermosgd import theory
from thermosgd._rng import chain_states, ziggurat_tables
from thermosgd._validate import (
    check_choice,
    check_fraction,
    check_int,
    check_number,
    finite_array,
    positive_array,
)
from thermosgd.estimators.entropy import sphere_entropy
from thermosgd.sim._kernels import (
    COL_ANGLE2,
    COL_GRAD_NORM2,
    COL_INV_RADIUS2,
    COL_LOSS,
    COL_RADIUS,
    COL_RADIUS2,
    COL_STEP2,
    MOMENTUM_COLUMNS,
    MOMENTUM_MODE,
    momentum_kernel,
)
from thermosgd.sim.blocks import pooled_mean_and_stderr
from thermosgd.sim.isotropic import loss_direction
from thermosgd.spec import DEFAULT_BETA2, DEFAULT_EPS, OPTIMIZER_HYPERPARAMETERS
from thermosgd.theory import vmf
from thermosgd.theory.adamw import adamw_angular_update
from thermosgd.theory.momentum import momentum_angular_update

#: RMS angular update per step of each optimizer (not a fixed-LR form of theory.predict)
_ANGULAR_UPDATE = {"momentum": momentum_angular_update, "adamw": adamw_angular_update}

__all__ = [
    "MOMENTUM_MODE",
    "MomentumRun",
    "default_burn_in",
    "simulate",
    "stationary_table",
    "temperature_from_energy",
]


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
        if theory.fixed_lr_forms(self.optimizer).radius_power == 4:
            return (self.radius2 / self.inv_radius2) ** 0.25
        return np.sqrt(self.radius2)

    @property
    def radius_rel_std(self) -> np.ndarray:
        """Relative standard deviation of the radius over the window (all chains of a point)."""
        return np.sqrt(np.maximum(self.radius2 - self.radius**2, 0.0)) / self.radius

    def predictions(self) -> dict[str, np.ndarray]:
        """Theory at every point: radius (SDE and with the measured mean-gradient term; for
        AdamW also all orders in eta lambda, as the network monitor), RMS angular update,
        temperature, the exact vMF energy at that temperature and the pressure of the gas law
        p r^2 = (d-1) T (heavy ball: lambda; AdamW: the coupled-equivalent lambda sqrt(s) at
        the measured radius; NaN where the radius is not finite), each optimizer's closed forms
        from `thermosgd.theory.fixed_lr_forms`."""
        d, s2 = self.dim, self.sigma**2
        ts = (d - 1) * s2
        forms, b = theory.fixed_lr_forms(self.optimizer), self.beta1
        ok = np.isfinite(self.radius)
        pressure = forms.pressure(self.wd, np.where(ok, self.radius, 1.0), s2, d)
        zero = 0.0 * b  # broadcasts the forms that do not depend on beta1 to the grid
        out = {
            "radius_sde": forms.radius_sde(self.lr, self.wd, s2, d, b) + zero,
            "radius_discrete": forms.radius_discrete(self.lr, self.wd, d, ts, self.grad_norm2, b),
            "angular_update": _ANGULAR_UPDATE[self.optimizer](self.lr, self.wd, b),
            "temperature": forms.temperature(self.lr, self.wd, s2, d, b) + zero,
            "pressure": np.where(ok, pressure, np.nan),
        }
        out["energy"] = vmf.mean_energy(d, 1.0 / out["temperature"])
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def default_burn_in(optimizer: str, lr: ArrayLike, wd: ArrayLike, beta1: ArrayLike,
                    beta2: ArrayLike = DEFAULT_BETA2) -> int:
    """Six radius relaxation times of the slowest point (the chains start at the SDE radius,
    a few percent off at most, so this leaves < 0.1%); heavy ball adds 5000 steps for the
    momentum buffers, AdamW's relaxation time already holds the lag of its second-moment
    average (~2 / (1 - b2) steps, `thermosgd.theory.adamw.adamw_relaxation_time`)."""
    tau = theory.fixed_lr_forms(optimizer).relaxation_time(lr, wd, beta1, beta2)
    settle = 0 if "beta2" in OPTIMIZER_HYPERPARAMETERS[optimizer] else 5000
    return int(settle + 6 * float(np.max(tau)))


def simulate(
    optimizer: str, *, dim: int, lr: ArrayLike, wd: ArrayLike, beta1: ArrayLike,
    beta2: ArrayLike = DEFAULT_BETA2, eps: float = DEFAULT_EPS, sigma: float = 1.0, steps: int,
    burn_in: int | None = None, replicas: int = 1, seed: int = 0,
    init_radius: ArrayLike | None = None, n_blocks: int = 20, chunk: int = 20_000,
    mu: str | ArrayLike | None = None, queue_size: int = 0,
) -> MomentumRun:
    """Run ``replicas`` chains per point of the broadcast (lr, wd, beta1, beta2) for ``steps``
    steps and measure the stationary window after ``burn_in`` (default `default_burn_in`).

    ``beta1`` is the heavy-ball momentum beta or AdamW's b1; ``beta2``, ``eps`` are AdamW's.
    Chains start from one random direction at ``init_radius`` (default: the SDE prediction),
    with zero optimizer buffers. ``mu`` (unit vector of the loss) defaults to the seeded random
    direction of `thermosgd.sim.isotropic.loss_direction`; ``mu="diagonal"`` takes
    (1, ..., 1)/sqrt(d), whose minimum has equal coordinates (equal AdamW second moments in
    every coordinate).
    ``queue_size`` > 0 keeps that many unit-direction snapshots per chain, evenly spaced over
    the window (the last at the final step), pooled per point in ``directions`` for the k-NN
    entropy (`stationary_table`).
    """
    check_choice("optimizer", optimizer, MOMENTUM_MODE)
    dim = check_int("dim", dim, min_val=2)
    check_number("sigma", sigma, min_val=0.0, include_min=False)
    check_number("eps", eps, min_val=0.0)
    steps = check_int("steps", steps, min_val=1)
    n_blocks = check_int("n_blocks", n_blocks, min_val=1)
    chunk = check_int("chunk", chunk, min_val=1)
    lr_a, wd_a, b1_a, b2_a = (np.atleast_1d(np.asarray(x, dtype=float)).ravel() for x in
                              np.broadcast_arrays(lr, wd, beta1, beta2))
    positive_array("lr", lr_a)
    positive_array("wd", wd_a)
    takes_beta2 = "beta2" in OPTIMIZER_HYPERPARAMETERS[optimizer]
    for name, values in (("beta1", b1_a), ("beta2", b2_a if takes_beta2 else ())):
        for v in values:
            check_fraction(name, v)
    if burn_in is None:
        burn_in = default_burn_in(optimizer, lr_a, wd_a, b1_a, b2_a)
    burn_in = check_int("burn_in", burn_in, min_val=0, max_val=steps - n_blocks)
    replicas = check_int("replicas", replicas, min_val=1)
    queue_size = check_int("queue_size", queue_size, min_val=0, max_val=steps - burn_in)
    n_pts = lr_a.size
    rep = lambda a: np.ascontiguousarray(np.repeat(a, replicas))  # noqa: E731
    lr_c, wd_c, b1_c, b2_c = rep(lr_a), rep(wd_a), rep(b1_a), rep(b2_a)
    n_chains = n_pts * replicas
    if init_radius is None:
        init_radius = theory.fixed_lr_forms(optimizer).radius_sde(lr_c, wd_c, sigma**2, dim,
                                                                  b1_c)
    r0 = np.broadcast_to(np.asarray(init_radius, dtype=float), (n_chains,))
    if mu is None:
        mu = loss_direction(dim, seed)
    elif isinstance(mu, str) and mu == "diagonal":
        mu = np.full(dim, 1.0 / math.sqrt(dim))
    else:
        given = mu
        mu = finite_array("mu", mu)
        if mu.shape != (dim,) or np.linalg.norm(mu) == 0:
            raise ValueError(f"mu == {given!r}, must be 'diagonal' or a nonzero vector of "
                             f"length {dim}")
        mu = mu / np.linalg.norm(mu)
    w0 = np.random.default_rng([seed, 42]).standard_normal(dim)
    w0 /= np.linalg.norm(w0)
    w = np.ascontiguousarray(w0[None, :] * r0[:, None])
    buf1 = np.zeros_like(w)
    buf2 = np.zeros_like(w)
    eps_c = np.full(n_chains, float(eps))
    block_sum = np.zeros((n_chains, n_blocks, MOMENTUM_COLUMNS))
    states = chain_states(n_chains, np.random.SeedSequence([seed, 7, MOMENTUM_MODE[optimizer]]))
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
            momentum_kernel(w, buf1, buf2, mu, lr_c, wd_c, b1_c, b2_c, eps_c,
                            MOMENTUM_MODE[optimizer], float(sigma), states, *tables, start,
                            int(stop), burn_in, window, block_sum)
            start = int(stop)
            if q < queue_size and stop == snap[q]:
                queue[:, q] = w / np.linalg.norm(w, axis=1, keepdims=True)
                q += 1
    seconds = time.perf_counter() - t0
    radius, radius_se = pooled_mean_and_stderr(block_sum, COL_RADIUS, replicas)
    energy, energy_se = pooled_mean_and_stderr(block_sum, COL_LOSS, replicas)
    gn2, _ = pooled_mean_and_stderr(block_sum, COL_GRAD_NORM2, replicas)
    ang2, _ = pooled_mean_and_stderr(block_sum, COL_ANGLE2, replicas)
    r2, _ = pooled_mean_and_stderr(block_sum, COL_RADIUS2, replicas)
    rm2, _ = pooled_mean_and_stderr(block_sum, COL_INV_RADIUS2, replicas)
    step2, _ = pooled_mean_and_stderr(block_sum, COL_STEP2, replicas)
    return MomentumRun(
        optimizer=optimizer, dim=int(dim), sigma=float(sigma), lr=lr_a, wd=wd_a, beta1=b1_a,
        beta2=b2_a, steps=int(steps), burn_in=int(burn_in), radius=radius, radius_se=radius_se,
        energy=energy, energy_se=energy_se, grad_norm2=gn2, angular_update=np.sqrt(ang2),
        seconds=seconds, mu=mu, radius2=r2, inv_radius2=rm2,
        step_ratio=np.sqrt(step2 / r2), replicas=int(replicas),
        directions=queue.reshape(n_pts, replicas * queue_size, dim) if queue_size else None,
    )


def temperature_from_energy(dim: int, energy: ArrayLike) -> np.ndarray:
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
    ball: lambda; AdamW: the coupled-equivalent lambda sqrt(s), `MomentumRun.predictions`),
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
        "pressure": pred["pressure"] * np.ones(n),
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
