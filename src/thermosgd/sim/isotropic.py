"""The isotropic-noise model: SGD with weight decay on a scale-invariant linear loss.

Loss L(w) = 1 + <mu, w/||w||> on R^d (scale-invariant; minimum 0 at w/||w|| = -mu), exact
gradient grad L(w) = (mu - <mu, wbar> wbar)/||w||, stochastic gradient
g(w) = grad L(w) + (sigma/||w||) P_perp(w) xi with xi ~ N(0, I_d). On the unit sphere the noise is
isotropic with variance sigma^2 in each of the d-1 tangent directions, so the Gibbs law of the
directions at temperature T is von Mises-Fisher(-mu, kappa = 1/T).

The three protocols of the paper's code (paper.md section 5.1):

* ``lr``:     w <- w - eta (g(w) + lambda w)
* ``elr``:    w <- w - eta-tilde ||w||^2 (g(w) + lambda w)
* ``sphere``: w <- w - eta-tilde r^2 g(w), then w <- r w/||w||  (records the pre-projection norm)

A whole grid of hyperparameters times replicas is one float64 state of shape (chains, d), advanced
by a numba kernel (`thermosgd.sim._kernels.sgd_kernel`) that runs the chains in parallel, each
with its own random stream (results do not depend on the number of threads). Statistics over
the stationary window are accumulated on the fly (batch means for error bars,
`thermosgd.sim.blocks`); directions are kept in a snapshot queue per chain for the entropy.
This module simulates (`simulate`) and tabulates (`stationary_table`); the study summary is
`thermosgd.analysis.isotropic`, the study on disk `thermosgd.workflows.isotropic`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from thermosgd import theory
from thermosgd._progress import progress_disabled
from thermosgd._rng import chain_states, ziggurat_tables
from thermosgd._validate import (
    check_choice,
    check_int,
    check_number,
    positive_array,
)
from thermosgd.estimators.entropy import sphere_entropy
from thermosgd.estimators.stationarity import (
    block_process_variance,
    ou_adjacent_covariance,
    ou_mean_variance,
)
from thermosgd.sim._kernels import (
    COL_COUNT,
    COL_GRAD_NORM2,
    COL_LOSS,
    COL_NORM_AFTER,
    COL_RADIUS,
    MODE,
    SGD_COLUMNS,
    sgd_kernel,
)
from thermosgd.sim.blocks import pooled_mean_and_stderr
from thermosgd.spec import check_protocol, hyperparameters
from thermosgd.theory import vmf

__all__ = [
    "MODE",
    "IsotropicConfig",
    "Simulation",
    "default_burn_in",
    "grid_elr",
    "grid_values",
    "initial_radius",
    "loss_direction",
    "mixing_time",
    "predicted_radius",
    "radius_correlation_time",
    "relaxation_steps",
    "sde_radius_trajectory",
    "simulate",
    "stationary_table",
    "theory_radius",
    "theory_temperature",
    "validate_config",
]

#: integer fields of the config (normalized to Python int)
_INT_FIELDS = ("dim", "steps", "seed", "replicas", "queue_size", "n_blocks", "trace_points")


@dataclass(frozen=True)
class IsotropicConfig:
    """One isotropic-model study: a protocol, a grid of hyperparameters, replicas and schedule.

    The grid is the outer product of the protocol's two hyperparameters
    (`thermosgd.spec.HYPERPARAMETERS`): (lr, wd) for "lr", (elr, wd) for "elr", (elr, radius)
    for "sphere". ``burn_in=None`` derives it from the radius relaxation and angular mixing
    times (see `default_burn_in`); the stationary window is ``steps - burn_in``; the queue of
    ``queue_size`` direction snapshots per chain is spread evenly over the window.
    """

    protocol: str
    lr: tuple[float, ...] = ()
    elr: tuple[float, ...] = ()
    wd: tuple[float, ...] = ()
    radius: tuple[float, ...] = ()
    dim: int = 3
    sigma: float = 1.0
    steps: int = 200_000
    seed: int = 0
    replicas: int = 1
    burn_in: int | None = None
    queue_size: int = 1000
    init_radius: float | str | tuple[float, ...] = 1.0
    n_blocks: int = 20
    trace_points: int = 200

    def __post_init__(self) -> None:
        for name in ("lr", "elr", "wd", "radius"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if isinstance(self.init_radius, (list, tuple, np.ndarray)):
            object.__setattr__(self, "init_radius", tuple(float(v) for v in self.init_radius))
        for name in _INT_FIELDS:
            object.__setattr__(self, name, check_int(name, getattr(self, name)))
        if self.burn_in is not None:
            object.__setattr__(self, "burn_in", check_int("burn_in", self.burn_in))
        validate_config(self)

    @property
    def axes(self) -> tuple[str, str]:
        """The protocol's two hyperparameters, the grid's axes: (rate, second)."""
        return hyperparameters(self.protocol)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(number of rate values, number of second-axis values)."""
        a, b = self.axes
        return len(getattr(self, a)), len(getattr(self, b))

    def to_json(self) -> str:
        """The config as JSON text (``config.json``; `from_dict` reads it back)."""
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> IsotropicConfig:
        """The config of a ``config.json`` mapping."""
        return cls(**d)


def validate_config(c: IsotropicConfig) -> None:
    """Raise ValueError with a one-line message for any invalid combination."""
    needed = hyperparameters(check_protocol(c.protocol))
    for name in ("lr", "elr", "wd", "radius"):
        values = getattr(c, name)
        if name in needed and not values:
            raise ValueError(f"protocol {c.protocol!r} needs --{name} (at least one value)")
        if name not in needed and values:
            raise ValueError(
                f"protocol {c.protocol!r} takes no --{name}; it uses {' and '.join(needed)}"
            )
        positive_array(name, values)
    check_int("dim", c.dim, min_val=2)
    check_number("sigma", c.sigma, min_val=0.0, include_min=False)
    _validate_init_radius(c)
    for name in ("steps", "replicas", "n_blocks", "trace_points"):
        check_int(name, getattr(c, name), min_val=1)
    check_int("seed", c.seed, min_val=0)
    check_int("queue_size", c.queue_size, min_val=3)  # a 1-NN entropy needs >= 3 snapshots
    if c.burn_in is None:
        burn_in = default_burn_in(c)
    else:
        burn_in = check_int("burn_in", c.burn_in, min_val=0, max_val=c.steps - 1)
    window = c.steps - burn_in
    if window < max(c.queue_size, c.n_blocks):
        raise ValueError(
            f"steps too short: the stationary window ({window} steps after a burn-in of "
            f"{burn_in}) must hold queue_size={c.queue_size} snapshots; raise --steps"
        )


def _validate_init_radius(c: IsotropicConfig) -> None:
    r0 = c.init_radius
    if isinstance(r0, str):
        check_choice("init_radius", r0, ("predicted",))
        return
    if isinstance(r0, tuple) and c.protocol != "sphere":
        n = c.grid_shape[0] * c.grid_shape[1]
        if len(r0) != n:
            raise ValueError(
                f"init_radius has {len(r0)} values; the {c.grid_shape[0]} x {c.grid_shape[1]} "
                f"grid needs one per point ({n}, C order over {' x '.join(c.axes)})")
    positive_array("init_radius", r0)


# --------------------------------------------------------------------------------------------
# grid bookkeeping and time scales


def grid_values(c: IsotropicConfig) -> dict[str, np.ndarray]:
    """Per-grid-point hyperparameters as arrays of shape grid_shape (NaN where absent)."""
    a, b = c.axes
    av, bv = np.meshgrid(np.array(getattr(c, a)), np.array(getattr(c, b)), indexing="ij")
    out = {k: np.full(av.shape, np.nan) for k in ("lr", "elr", "wd", "radius")}
    out[a], out[b] = av, bv
    return out


def theory_temperature(c: IsotropicConfig) -> np.ndarray:
    """T per grid point: eta-tilde sigma^2/2 (elr, sphere); sqrt(eta lambda sigma^2/(2(d-1)))."""
    g = grid_values(c)
    s2 = c.sigma**2
    if c.protocol == "lr":
        return theory.temperature_lr(g["lr"], g["wd"], s2, c.dim)
    return theory.temperature_elr(g["elr"], s2)


def theory_radius(c: IsotropicConfig) -> np.ndarray:
    """SDE radius r* (lr, elr) or the set radius (sphere), shape grid_shape."""
    g = grid_values(c)
    if c.protocol == "sphere":
        return g["radius"]
    return theory.radius_sde(
        c.protocol, sigma2=c.sigma**2, dim=c.dim, lr=g["lr"] if c.protocol == "lr" else None,
        elr=g["elr"] if c.protocol == "elr" else None, wd=g["wd"],
    )


def predicted_radius(c: IsotropicConfig) -> np.ndarray:
    """Discretization-corrected stationary radius per grid point (`theory.radius_discrete`)
    with the stationary ||grad_S L||^2 = E[1 - <mu, wbar>^2] = (d-1) A_d(kappa)/kappa of the
    vMF law at kappa = 1/T; for lr, T = sigma^2 eta / (2 r^2) depends on r, so the pair is
    iterated to its fixed point (10 rounds: the map contracts by ~T per round). The sphere
    returns its set radius."""
    g = grid_values(c)
    if c.protocol == "sphere":
        return g["radius"]
    trace_sigma = (c.dim - 1) * c.sigma**2
    r = theory_radius(c)
    for _ in range(10 if c.protocol == "lr" else 1):
        t = (0.5 * c.sigma**2 * g["lr"] / r**2 if c.protocol == "lr"
             else theory_temperature(c))
        g2 = (c.dim - 1) * vmf.mean_resultant_length(c.dim, 1.0 / t) * t
        kw = {"lr": g["lr"]} if c.protocol == "lr" else {"elr": g["elr"]}
        r = theory.radius_discrete(c.protocol, trace_sigma=trace_sigma, grad_norm2=g2,
                                   wd=g["wd"], **kw)
    return r


def initial_radius(c: IsotropicConfig) -> np.ndarray:
    """Initial |w| per grid point, shape grid_shape: the set radius for the sphere; else
    ``init_radius`` (one number, one per grid point in C order, or "predicted" =
    `predicted_radius`, which lets slowly relaxing points start in equilibrium)."""
    g = grid_values(c)
    if c.protocol == "sphere":
        return g["radius"]
    if c.init_radius == "predicted":
        return predicted_radius(c)
    return np.broadcast_to(np.asarray(c.init_radius, dtype=float).reshape(
        c.grid_shape if isinstance(c.init_radius, tuple) else ()), c.grid_shape).copy()


def grid_elr(c: IsotropicConfig) -> np.ndarray:
    """The elr per grid point: the set eta-tilde (elr, sphere); for lr the stationary step on
    the unit sphere eta / r*^2 at the SDE radius (`theory.stationary_elr_lr`)."""
    g = grid_values(c)
    if c.protocol == "lr":
        return theory.stationary_elr_lr(g["lr"], g["wd"], c.sigma**2, c.dim)
    return g["elr"]


def mixing_time(c: IsotropicConfig) -> np.ndarray:
    """Angular mixing time 1/(eta-tilde h) in steps; the linear loss has curvature h = 1."""
    return theory.angular_mixing_time(grid_elr(c), 1.0)


def _radius_relaxation(c: IsotropicConfig):
    """The SDE radius relaxes linearly in x = r^p: x(t) = x* + (x0 - x*) exp(-rate t).

    lr: p = 4, rate = 4 eta lambda (d r^4/dt = -4 eta lambda r^4 + 2 eta^2 Q);
    elr: p = -2, rate = eta-tilde^2 Q (logistic in r^2), Q = (d-1) sigma^2.
    Returns (rate, x0, x*, p) as arrays of grid_shape; not defined for the sphere.
    """
    g = grid_values(c)
    rstar = theory_radius(c)
    if c.protocol == "lr":
        rate = 1.0 / theory.relaxation_time("lr", lr=g["lr"], wd=g["wd"])
        p = 4.0
    else:
        q = (c.dim - 1) * c.sigma**2
        rate = 1.0 / theory.relaxation_time("elr", elr=g["elr"], trace_total=q)
        p = -2.0
    return rate, initial_radius(c) ** p, rstar**p, p


def sde_radius_trajectory(c: IsotropicConfig, t: ArrayLike) -> np.ndarray:
    """Radius r(t) of the SDE started at init_radius, shape grid_shape + shape(t) (see
    `_radius_relaxation`); for the sphere r(t) = r."""
    t = np.asarray(t, dtype=float)
    if c.protocol == "sphere":
        rstar = theory_radius(c)
        return np.broadcast_to(rstar[..., None] if t.ndim else rstar,
                               rstar.shape + t.shape)
    rate, x0, xs, p = (v[..., None] if t.ndim and np.ndim(v) else v
                       for v in _radius_relaxation(c))
    return (xs + (x0 - xs) * np.exp(-rate * t)) ** (1.0 / p)


def relaxation_steps(c: IsotropicConfig, tol: float = 2e-3) -> np.ndarray:
    """Steps until the SDE radius started at init_radius stays within ``tol`` (relative) of r*."""
    if c.protocol == "sphere":
        return np.zeros(c.grid_shape)
    rate, x0, xs, p = _radius_relaxation(c)
    # r = r* (1 + e) gives x/x* - 1 ~ p e: need |x0/x* - 1| exp(-rate t) < |p| tol
    ratio = np.abs(x0 / xs - 1.0) / (abs(p) * tol)
    return np.log(np.maximum(ratio, 1.0)) / rate


def default_burn_in(c: IsotropicConfig) -> int:
    """Burn-in: time for the slowest radius to relax to 0.2% plus 5 angular mixing times,
    clipped to [steps/10, steps/2] so the window keeps at least half of the run."""
    need = float(np.max(relaxation_steps(c) + 5.0 * mixing_time(c)))
    return int(np.clip(need, c.steps // 10, c.steps // 2))




# --------------------------------------------------------------------------------------------
# driver


@dataclass
class Simulation:
    """Raw output of `simulate`: per-chain block sums (batch means), snapshots and traces.

    Chains are ordered (rate index, second-axis index, replica) in C order.
    """

    config: IsotropicConfig
    burn_in: int
    spacing: np.ndarray  # (chains,) queue spacing in steps
    block_sum: np.ndarray  # (chains, n_blocks, SGD_COLUMNS), columns COL_* of sim._kernels
    queue: np.ndarray  # (chains, queue_size, dim) unit directions
    trace_steps: np.ndarray  # (trace_points,)
    trace_radius: np.ndarray  # (chains, trace_points)
    trace_loss: np.ndarray  # (chains, trace_points)
    diverged: np.ndarray  # (chains,) bool
    mu: np.ndarray = field(repr=False)  # (dim,)
    seconds: float = 0.0


def loss_direction(dim: int, seed: int) -> np.ndarray:
    """The unit vector mu of the loss L = 1 + <mu, wbar>, fixed by the seed."""
    v = np.random.default_rng([seed, 44]).standard_normal(dim)
    return v / np.linalg.norm(v)


def simulate(c: IsotropicConfig, progress: bool | None = None, chunk: int = 20_000) -> Simulation:
    """Run every chain of the grid for ``c.steps`` steps; see `Simulation`.

    All chains start from the same random direction (as in the paper's code), at
    `initial_radius` (``init_radius`` for lr/elr, the set radius for the sphere).
    """
    validate_config(c)
    n1, n2 = c.grid_shape
    R, d = c.replicas, c.dim
    n_chains = n1 * n2 * R
    g = grid_values(c)
    per_chain = {k: np.repeat(v.ravel(), R) for k, v in g.items()}
    rate = per_chain["lr"] if c.protocol == "lr" else per_chain["elr"]
    wd = np.nan_to_num(per_chain["wd"], nan=0.0)
    radius = np.nan_to_num(per_chain["radius"], nan=1.0)
    mu = loss_direction(d, c.seed)
    w0 = np.random.default_rng([c.seed, 42]).standard_normal(d)
    w0 /= np.linalg.norm(w0)
    r0 = np.repeat(initial_radius(c).ravel(), R)
    w = np.ascontiguousarray(w0[None, :] * r0[:, None])
    burn_in = default_burn_in(c) if c.burn_in is None else int(c.burn_in)
    window = c.steps - burn_in
    spacing = np.full(n_chains, max(1, window // c.queue_size), dtype=np.int64)
    queue = np.full((n_chains, c.queue_size, d), np.nan)
    trace_every = max(1, c.steps // c.trace_points)
    n_trace = -(-c.steps // trace_every)
    trace_r = np.full((n_chains, n_trace), np.nan)
    trace_loss = np.full((n_chains, n_trace), np.nan)
    block_sum = np.zeros((n_chains, c.n_blocks, SGD_COLUMNS))
    diverged = np.zeros(n_chains, dtype=np.bool_)
    states = chain_states(n_chains, np.random.SeedSequence([c.seed, MODE[c.protocol]]))
    tables = ziggurat_tables()
    t0 = time.perf_counter()
    bar = tqdm(total=c.steps, unit="step", unit_scale=True, disable=progress_disabled(progress),
               desc=f"isotropic {c.protocol} ({n_chains} chains, d={d})")
    with np.errstate(all="ignore"):
        for start in range(0, c.steps, chunk):
            stop = min(c.steps, start + chunk)
            sgd_kernel(
                w, mu, rate, wd, radius, MODE[c.protocol], float(c.sigma), states, *tables,
                start, stop, burn_in, window, spacing, queue, trace_every, trace_r, trace_loss,
                block_sum, diverged,
            )
            bar.update(stop - start)
    bar.close()
    return Simulation(
        config=c, burn_in=burn_in, spacing=spacing, block_sum=block_sum, queue=queue,
        trace_steps=np.arange(n_trace) * trace_every, trace_radius=trace_r, trace_loss=trace_loss,
        diverged=diverged, mu=mu, seconds=time.perf_counter() - t0,
    )



# --------------------------------------------------------------------------------------------
# stationary statistics


def radius_correlation_time(c: IsotropicConfig) -> np.ndarray:
    """Autocorrelation time of the radius fluctuations in steps, per grid point (flattened): the
    linearized relaxation time 1/rate of `_radius_relaxation` (lr: 1/(4 eta lambda); elr:
    1/(eta-tilde^2 Q)); 0 for the sphere (fixed radius)."""
    if c.protocol == "sphere":
        return np.zeros(c.grid_shape[0] * c.grid_shape[1])
    return (1.0 / _radius_relaxation(c)[0]).ravel()


def stationary_table(sim: Simulation, entropy_method: str = "chord") -> dict[str, np.ndarray]:
    """Measured stationary state, theory and diagnostics per grid point (flattened, C order).

    Measured: ``radius`` (window mean of ||w||), ``energy`` U (window mean of L),
    ``pressure`` (lambda; on the sphere the effective weight decay (mean r' - r)/(eta-tilde r^3)),
    ``entropy_dir`` (k-NN entropy of the pooled direction snapshots, nats w.r.t. the surface
    measure of S^{d-1}), ``entropy`` = entropy_dir + (d-1) log radius, and ``*_se`` errors.
    Theory: ``temperature``; ``radius_theory`` (SDE) and ``radius_discrete``
    (eta (tr Sigma + ||grad L||^2)/(2 lambda) form with the measured ||grad L||^2);
    ``pressure_theory``/``pressure_discrete``; exact vMF ``energy_theory`` and
    ``entropy_dir_theory`` at kappa = 1/T and their equipartition forms; ``entropy_theory``.
    """
    c = sim.config
    R, d = c.replicas, c.dim
    g = {k: v.ravel() for k, v in grid_values(c).items()}
    n = g["wd"].size
    temperature = theory_temperature(c).ravel()
    window = c.steps - sim.burn_in
    tau_r = radius_correlation_time(c)
    radius, radius_se = pooled_mean_and_stderr(
        sim.block_sum, COL_RADIUS, R, tau=None if c.protocol == "sphere" else np.repeat(tau_r, R),
        window=window)
    energy, energy_se = pooled_mean_and_stderr(sim.block_sum, COL_LOSS, R)
    rp, rp_se = pooled_mean_and_stderr(sim.block_sum, COL_NORM_AFTER, R)
    grad_norm2, _ = pooled_mean_and_stderr(sim.block_sum, COL_GRAD_NORM2, R)
    diverged = sim.diverged.reshape(-1, R).any(1)
    # a diverged grid point keeps NaN measurements; theory is evaluated on placeholders
    nan_if_diverged = np.where(diverged, np.nan, 1.0)
    radius, energy, rp = radius * nan_if_diverged, energy * nan_if_diverged, rp * nan_if_diverged
    safe_g2 = np.where(diverged, 0.0, grad_norm2)
    safe_rp = np.where(diverged, g["radius"] if c.protocol == "sphere" else 1.0, rp)
    trace_sigma = (d - 1) * c.sigma**2
    sigma2 = np.full(n, c.sigma**2)

    cols: dict[str, np.ndarray] = {
        "protocol": np.full(n, c.protocol, dtype=object),
        "lr": g["lr"], "elr": g["elr"], "wd": g["wd"], "radius_set": g["radius"],
        "dim": np.full(n, d), "sigma": np.full(n, c.sigma), "replicas": np.full(n, R),
        "temperature": temperature, "sigma2": sigma2,
    }
    if c.protocol == "sphere":
        radius, radius_se = g["radius"].copy(), np.zeros(n)
        pressure = theory.sphere_pressure_from_norm(safe_rp, g["radius"], g["elr"])
        pressure = pressure * nan_if_diverged
        pressure_se = rp_se / (g["elr"] * g["radius"] ** 3)
        pressure_theory = theory.sphere_pressure_sde(g["elr"], g["radius"], c.sigma**2, d)
        pressure_discrete = theory.sphere_pressure_discrete(
            g["elr"], g["radius"], trace_sigma, safe_g2) * nan_if_diverged
        radius_theory = radius_discrete = g["radius"].copy()
    else:
        pressure, pressure_se = g["wd"].copy(), np.zeros(n)
        pressure_theory = pressure_discrete = g["wd"].copy()
        radius_theory = theory_radius(c).ravel()
        kw = {"lr": g["lr"]} if c.protocol == "lr" else {"elr": g["elr"]}
        radius_discrete = theory.radius_discrete(
            c.protocol, trace_sigma=trace_sigma, grad_norm2=safe_g2, wd=g["wd"], **kw
        ) * nan_if_diverged

    # entropy of directions from the pooled snapshot queues (replicas pooled: R*N points)
    snaps = sim.queue.reshape(n, R * c.queue_size, d)
    ok = ~diverged & np.isfinite(snaps).all(axis=(1, 2))
    entropy_dir = np.full(n, np.nan)
    entropy_dir_se = np.full(n, np.nan)
    if ok.any():
        est = sphere_entropy(snaps[ok], method=entropy_method)
        entropy_dir[ok] = est.value
        entropy_dir_se[ok] = est.stderr
    log_r = np.log(radius)
    valid = np.isfinite(entropy_dir) & np.isfinite(radius)
    entropy = np.where(valid, theory.full_entropy(np.where(valid, entropy_dir, 0.0),
                                                  np.where(valid, radius, 1.0), d), np.nan)
    entropy_se = np.hypot(entropy_dir_se, (d - 1) * radius_se / radius)
    kappa = 1.0 / temperature
    cols.update(
        radius=radius, radius_se=radius_se, energy=energy, energy_se=energy_se,
        pressure=pressure, pressure_se=pressure_se, grad_norm2=grad_norm2,
        trace_sigma=np.full(n, trace_sigma),
        entropy_dir=entropy_dir, entropy_dir_se=entropy_dir_se,
        entropy=entropy, entropy_se=entropy_se, log_radius=log_r,
        volume=np.where(np.isfinite(radius),
                        theory.volume(np.where(np.isfinite(radius), radius, 1.0)), np.nan),
        radius_theory=radius_theory, radius_discrete=radius_discrete,
        pressure_theory=pressure_theory, pressure_discrete=pressure_discrete,
        energy_theory=vmf.mean_energy(d, kappa),
        energy_equipartition=theory.equipartition_energy(temperature, d),
        entropy_dir_theory=vmf.entropy(d, kappa),
        entropy_dir_equipartition=theory.equipartition_entropy(temperature, d),
    )
    # finite-step forms at the step the chain takes on the unit sphere: eta-tilde for elr and
    # the sphere; eta / r^2 at the discretization-corrected radius for lr, with the vMF law at
    # the temperature of that step (the SDE radius' sqrt(eta lambda)-like step over-predicted
    # U by 2.3% at (lr, wd) = (0.1, 0.1))
    if c.protocol == "lr":
        with np.errstate(invalid="ignore"):
            h = g["lr"] / radius_discrete**2
        kappa_h = 2.0 / (c.sigma**2 * h)
        u_h, s_h = vmf.mean_energy(d, np.nan_to_num(kappa_h, nan=1.0)), vmf.entropy(
            d, np.nan_to_num(kappa_h, nan=1.0))
        h_ok = np.isfinite(h)
        h = np.where(h_ok, h, 1.0)
    else:
        h = grid_elr(c).ravel()
        u_h, s_h, h_ok = cols["energy_theory"], cols["entropy_dir_theory"], True
    cols["energy_discrete"] = np.where(h_ok, theory.discrete_energy(u_h, h), np.nan)
    cols["entropy_dir_discrete"] = np.where(
        h_ok, s_h + theory.discrete_entropy_shift(h, d), np.nan)
    cols["entropy_theory"] = theory.full_entropy(cols["entropy_dir_theory"], radius_theory, d)
    if c.protocol == "lr":  # the temperature the chain actually feels: eta/r^2 sigma^2/2
        cols["temperature_measured"] = 0.5 * c.sigma**2 * g["lr"] / radius**2
    else:
        cols["temperature_measured"] = temperature.copy()
    cols.update(_diagnostics(sim, radius, diverged))
    return cols


def _diagnostics(sim: Simulation, radius: np.ndarray, diverged: np.ndarray) -> dict:
    """Stationarity flags: predicted radius offset at the window start, measured drift between
    the window's halves, queue spacing vs angular mixing time."""
    c = sim.config
    R = c.replicas
    n = radius.size
    offset = np.abs(sde_radius_trajectory(c, float(sim.burn_in)).ravel()
                    / theory_radius(c).ravel() - 1.0)
    half = c.n_blocks // 2
    bs = sim.block_sum
    first = bs[:, :half, COL_RADIUS].sum(1) / np.maximum(bs[:, :half, COL_COUNT].sum(1), 1)
    second = bs[:, half:, COL_RADIUS].sum(1) / np.maximum(bs[:, half:, COL_COUNT].sum(1), 1)
    with np.errstate(invalid="ignore", divide="ignore"):  # diverged chains hold NaN
        drift = ((second - first) / ((second + first) / 2)).reshape(-1, R).mean(1)
    if c.protocol == "sphere":
        drift[:] = 0.0
        drift_se = np.zeros(n)
    else:
        # Var(second - first) = sigma^2 2 (v(H) - cov(H)) for the two halves H = W/2 of an
        # exp(-|t|/tau) process (= 4 s^2/n_blocks, plain batch means, when tau << W/n_blocks)
        window = c.steps - sim.burn_in
        tau = np.repeat(radius_correlation_time(c), R)
        means = bs[..., COL_RADIUS] / np.maximum(bs[..., COL_COUNT], 1)
        h = window / 2.0
        with np.errstate(invalid="ignore"):  # diverged chains hold NaN
            var = block_process_variance(means, window, tau) * 2.0 * (
                ou_mean_variance(h, tau) - ou_adjacent_covariance(h, tau))
            rel_var = var / np.maximum(means.mean(1), 1e-300) ** 2
        drift_se = np.sqrt(rel_var.reshape(-1, R).sum(1)) / R
    drifting = (np.abs(drift) > 5e-3) & (np.abs(drift) > 3.0 * drift_se)
    relaxed = offset < 5e-3
    mix = mixing_time(c).ravel()
    spacing = sim.spacing.reshape(-1, R)[:, 0].astype(float)
    return {
        "burn_in": np.full(n, sim.burn_in), "steps": np.full(n, c.steps),
        "relaxation_steps": relaxation_steps(c).ravel(),
        "radius_offset_at_window": offset, "relaxed": relaxed,
        "radius_drift": drift, "radius_drift_se": drift_se, "drifting": drifting,
        "mixing_time": mix, "queue_spacing": spacing, "queue_mixed": spacing >= mix,
        "diverged": diverged, "stationary": relaxed & ~drifting & ~diverged,
    }

