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
by a numba kernel that runs the chains in parallel, each with its own random stream (results do not
depend on the number of threads). Statistics over the stationary window are accumulated on the
fly (batch means for error bars); directions are kept in a snapshot queue per chain for the
entropy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field

import numba as nb
import numpy as np
from tqdm.auto import tqdm

from thermosgd import analysis, theory, vmf
from thermosgd._progress import progress_disabled
from thermosgd._rng import chain_states, normal, ziggurat_tables
from thermosgd.entropy import sphere_entropy

MODE = {"lr": 0, "elr": 1, "sphere": 2}
#: grid axes of each protocol: (rate axis, second axis)
AXES = {"lr": ("lr", "wd"), "elr": ("elr", "wd"), "sphere": ("elr", "radius")}


@dataclass(frozen=True)
class IsotropicConfig:
    """One isotropic-model study: a protocol, a grid of hyperparameters, replicas and schedule.

    The grid is the outer product of the protocol's two axes (``AXES``): (lr, wd) for "lr",
    (elr, wd) for "elr", (elr, radius) for "sphere". ``burn_in=None`` derives it from the
    radius relaxation and angular mixing times (see `default_burn_in`); the stationary window
    is ``steps - burn_in``; the queue of ``queue_size`` direction snapshots per chain is spread
    evenly over the window.
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
        validate_config(self)

    @property
    def axes(self) -> tuple[str, str]:
        return AXES[self.protocol]

    @property
    def grid_shape(self) -> tuple[int, int]:
        a, b = self.axes
        return len(getattr(self, a)), len(getattr(self, b))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> IsotropicConfig:
        return cls(**d)


def validate_config(c: IsotropicConfig) -> None:
    """Raise ValueError with a one-line message for any invalid combination."""
    if c.protocol not in AXES:
        raise ValueError(f"unknown protocol {c.protocol!r}; choose one of lr, elr, sphere")
    needed = AXES[c.protocol]
    for name in ("lr", "elr", "wd", "radius"):
        values = getattr(c, name)
        if name in needed and not values:
            raise ValueError(f"protocol {c.protocol!r} needs --{name} (at least one value)")
        if name not in needed and values:
            raise ValueError(
                f"protocol {c.protocol!r} takes no --{name}; it uses {' and '.join(needed)}"
            )
        if any(not (math.isfinite(v) and v > 0) for v in values):
            raise ValueError(f"--{name} values must be finite and > 0, got {list(values)}")
    if int(c.dim) != c.dim or c.dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {c.dim}")
    if not (math.isfinite(c.sigma) and c.sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, got {c.sigma}")
    _validate_init_radius(c)
    for name in ("steps", "replicas", "queue_size", "n_blocks", "trace_points"):
        if int(getattr(c, name)) != getattr(c, name) or getattr(c, name) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(c, name)}")
    if c.queue_size < 3:
        raise ValueError(f"queue_size must be >= 3 for a 1-NN entropy, got {c.queue_size}")
    burn_in = default_burn_in(c) if c.burn_in is None else c.burn_in
    if burn_in < 0 or burn_in >= c.steps:
        raise ValueError(f"burn_in must be in [0, steps), got {burn_in} with steps={c.steps}")
    window = c.steps - burn_in
    if window < max(c.queue_size, c.n_blocks):
        raise ValueError(
            f"steps too short: the stationary window ({window} steps after a burn-in of "
            f"{burn_in}) must hold queue_size={c.queue_size} snapshots; raise --steps"
        )


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


def _validate_init_radius(c: IsotropicConfig) -> None:
    r0 = c.init_radius
    if isinstance(r0, str):
        if r0 != "predicted":
            raise ValueError(f"init_radius must be a number, a list or 'predicted', got {r0!r}")
        return
    values = r0 if isinstance(r0, tuple) else (r0,)
    if isinstance(r0, tuple) and c.protocol != "sphere":
        n = c.grid_shape[0] * c.grid_shape[1]
        if len(r0) != n:
            raise ValueError(
                f"init_radius has {len(r0)} values; the {c.grid_shape[0]} x {c.grid_shape[1]} "
                f"grid needs one per point ({n}, C order over {' x '.join(c.axes)})")
    if any(not (math.isfinite(v) and v > 0) for v in values):
        raise ValueError(f"init_radius must be finite and > 0, got {r0}")


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


def effective_lr(c: IsotropicConfig) -> np.ndarray:
    """Stationary step on the unit sphere eta-tilde (for lr: eta / r*^2)."""
    g = grid_values(c)
    if c.protocol == "lr":
        return theory.stationary_elr_lr(g["lr"], g["wd"], c.sigma**2, c.dim)
    return g["elr"]


def mixing_time(c: IsotropicConfig) -> np.ndarray:
    """Angular mixing time 1/(eta-tilde h) in steps; the linear loss has curvature h = 1."""
    return theory.angular_mixing_time(effective_lr(c), 1.0)


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


def sde_radius_trajectory(c: IsotropicConfig, t) -> np.ndarray:
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
# the kernel


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


@nb.njit(parallel=True, cache=True)
def _simulate_kernel(
    w, mu, rate, wd, radius, mode, sigma, states, kn, wn, fn, t_start, t_stop, burn_in,
    window, spacing, queue, trace_every, trace_r, trace_loss, block_sum, diverged,
):  # pragma: no cover - compiled
    """Advance every chain from step t_start to t_stop (exclusive), in place.

    Each step records, at the pre-step point: radius r, loss L, the pre-projection norm r'
    after the step (= the post-step norm for lr/elr) and ||grad_S L(wbar)||^2 = 1 - <mu,wbar>^2.
    block_sum[b, k, j] (j = 0..3) sums them over the k-th of n_blocks equal blocks of the
    stationary window of `window` steps (batch means; whole-window sums are their total), and
    block_sum[b, k, 4] counts the steps.  Every spacing[b] window steps the direction after
    the step is pushed into queue[b].  A chain whose radius leaves (0, 1e150) or turns NaN is
    marked diverged and frozen (state set to NaN).
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
            if not (r > 0.0 and r < 1e150):
                diverged[b] = True
                break
            inv_r = 1.0 / r
            c = mw * inv_r  # <mu, wbar>
            xi_w = _draw_noise(xi, wb, inv_r, s, kn, wn, fn)
            if mode == 0:
                eta = rate[b]
            elif mode == 1:
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
            if mode == 2:
                scale = radius[b] / rp
                for i in range(d):
                    wb[i] *= scale
            if t % trace_every == 0 and t // trace_every < n_trace:
                trace_r[b, t // trace_every] = r
                trace_loss[b, t // trace_every] = 1.0 + c
            if t >= burn_in:
                tw = t - burn_in
                blk = min(tw * n_blocks // window, n_blocks - 1)
                vals = (r, 1.0 + c, rp, 1.0 - c * c)
                for j in range(4):
                    block_sum[b, blk, j] += vals[j]
                block_sum[b, blk, 4] += 1.0
                if tw % spacing[b] == 0 and tw // spacing[b] < n_queue:
                    q = tw // spacing[b]
                    inv = 1.0 / radius[b] if mode == 2 else 1.0 / rp
                    for i in range(d):
                        queue[b, q, i] = wb[i] * inv
        if diverged[b]:
            for i in range(d):
                wb[i] = np.nan


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
    block_sum: np.ndarray  # (chains, n_blocks, 5)
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
    block_sum = np.zeros((n_chains, c.n_blocks, 5))
    diverged = np.zeros(n_chains, dtype=np.bool_)
    states = chain_states(n_chains, np.random.SeedSequence([c.seed, MODE[c.protocol]]))
    tables = ziggurat_tables()
    t0 = time.perf_counter()
    bar = tqdm(total=c.steps, unit="step", unit_scale=True, disable=progress_disabled(progress),
               desc=f"isotropic {c.protocol} ({n_chains} chains, d={d})")
    with np.errstate(all="ignore"):
        for start in range(0, c.steps, chunk):
            stop = min(c.steps, start + chunk)
            _simulate_kernel(
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


def ou_mean_variance(length, tau) -> np.ndarray:
    """Variance of the mean over ``length`` steps of a stationary process with autocorrelation
    exp(-|t|/tau), in units of the process variance: v = 2 (y - 1 + e^{-y}) / y^2, y = L/tau
    (-> 2 tau/L for L >> tau, -> 1 - y/3 for L << tau; Taylor form below y = 1e-3)."""
    y = np.asarray(length, dtype=float) / np.asarray(tau, dtype=float)
    small = y < 1e-3
    ys = np.where(small, 1.0, y)
    with np.errstate(over="ignore", invalid="ignore"):
        big = 2.0 * (ys + np.expm1(-ys)) / ys**2
    return np.where(small, 1.0 - y / 3.0 + y * y / 12.0, big)


def ou_adjacent_covariance(length, tau) -> np.ndarray:
    """Covariance of the means over two adjacent windows of ``length`` steps of the same process,
    in units of its variance: (tau/L)^2 (1 - e^{-L/tau})^2."""
    y = np.asarray(length, dtype=float) / np.asarray(tau, dtype=float)
    return (np.expm1(-y) / y) ** 2


def _block_process_variance(means: np.ndarray, window: int, tau) -> np.ndarray:
    """Process variance sigma^2 per chain implied by its n_b block means over ``window`` steps
    when the autocorrelation is exp(-|t|/tau): E[s^2] = n_b/(n_b - 1) sigma^2 (v(B) - v(W)),
    B = W/n_b, exact for a stationary process (the blocks' mutual correlation included)."""
    n_b = means.shape[1]
    tau = np.maximum(np.asarray(tau, dtype=float), 1e-12)
    gap = ou_mean_variance(window / n_b, tau) - ou_mean_variance(window, tau)
    return means.var(axis=1, ddof=1) * (n_b - 1) / (n_b * gap)


def _pooled_mean_and_stderr(block_sum: np.ndarray, j: int, R: int, tau=None,
                            window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Window mean of quantity j per grid point (pooled over R replicas) and its standard error.

    Without ``tau``: batch means, std over the n_blocks block means / sqrt(n_blocks) (right when
    the blocks are much longer than the autocorrelation time). With ``tau`` (per chain, steps;
    the radius relaxation time) the blocks' correlation is modelled as exp(-|t|/tau): the
    process variance from `_block_process_variance` times v(W) (`ou_mean_variance`), which
    equals batch means when tau << W/n_blocks and is larger (5x at W = 2 tau, 20 blocks) when
    the relaxation time exceeds the block length. Replicas are independent: se^2 adds."""
    counts = block_sum[..., 4]
    means = block_sum[..., j] / np.maximum(counts, 1)  # (chains, blocks)
    chain_mean = block_sum[..., j].sum(1) / np.maximum(counts.sum(1), 1)
    n_blocks = block_sum.shape[1]
    if tau is None:
        chain_se2 = means.var(axis=1, ddof=1) / n_blocks
    else:
        chain_se2 = _block_process_variance(means, window, tau) * ou_mean_variance(window, tau)
    mean = chain_mean.reshape(-1, R).mean(1)
    se = np.sqrt(chain_se2.reshape(-1, R).sum(1)) / R
    return mean, se


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
    radius, radius_se = _pooled_mean_and_stderr(
        sim.block_sum, 0, R, tau=None if c.protocol == "sphere" else np.repeat(tau_r, R),
        window=window)
    energy, energy_se = _pooled_mean_and_stderr(sim.block_sum, 1, R)
    rp, rp_se = _pooled_mean_and_stderr(sim.block_sum, 2, R)
    grad_norm2, _ = _pooled_mean_and_stderr(sim.block_sum, 3, R)
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
        h = effective_lr(c).ravel()
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
    first = bs[:, :half, 0].sum(1) / np.maximum(bs[:, :half, 4].sum(1), 1)
    second = bs[:, half:, 0].sum(1) / np.maximum(bs[:, half:, 4].sum(1), 1)
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
        means = bs[..., 0] / np.maximum(bs[..., 4], 1)
        h = window / 2.0
        with np.errstate(invalid="ignore"):  # diverged chains hold NaN
            var = _block_process_variance(means, window, tau) * 2.0 * (
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


# --------------------------------------------------------------------------------------------
# summary: Maxwell slopes, worst errors, potential minimization


def _row_slopes(x: np.ndarray, y: np.ndarray, se: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Weighted least-squares slope of y on x along the last axis, for each row with >= 3
    usable points; returns (slope, its standard error) per row, NaN where unusable."""
    out = np.full((x.shape[0], 2), np.nan)
    for i in range(x.shape[0]):
        m = mask[i] & np.isfinite(y[i])
        if m.sum() < 3:
            continue
        wts = 1.0 / np.maximum(se[i, m], 1e-12) ** 2 if np.all(np.isfinite(se[i, m])) else None
        X = np.stack([np.ones(m.sum()), x[i, m]], 1)
        W = np.ones(m.sum()) if wts is None else wts / wts.mean()
        cov = np.linalg.inv(X.T @ (W[:, None] * X))
        beta = cov @ X.T @ (W * y[i, m])
        resid = y[i, m] - X @ beta
        dof = max(m.sum() - 2, 1)
        s2 = float(W @ resid**2) / dof  # scale by the observed scatter (conservative)
        out[i] = beta[1], math.sqrt(cov[1, 1] * s2)
    return out


def _slope_summary(slopes: np.ndarray, theory_value: float, norm: float) -> dict:
    s = slopes[:, 0]
    ok = np.isfinite(s)
    if not ok.any():  # fewer than 3 stationary points in every row: no slope
        return {"measured": None, "std_over_rows": None, "stderr": None, "theory": theory_value,
                "normalized": None, "normalized_std": None, "rows": 0, "per_row": []}
    mean = float(s[ok].mean())
    spread = float(s[ok].std(ddof=1)) if ok.sum() > 1 else float(slopes[ok, 1][0])
    return {
        "measured": mean, "std_over_rows": spread,
        "stderr": float(np.sqrt(np.nansum(slopes[ok, 1] ** 2)) / ok.sum()),
        "theory": theory_value, "normalized": mean / norm,
        "normalized_std": spread / norm, "rows": int(ok.sum()),
        "per_row": [None if not np.isfinite(v) else float(v) for v in s],
    }


def maxwell_summary(table: dict, c: IsotropicConfig) -> dict:
    """Maxwell-relation slopes measured from linear fits of S (full entropy) along each row /
    column of the grid (stationary points only), as the paper reports them (mean +- std over
    the other hyperparameter), against theory.maxwell_slope and isotropic_entropy_slopes."""
    n1, n2 = c.grid_shape
    S = table["entropy"].reshape(n1, n2)
    se = table["entropy_se"].reshape(n1, n2)
    ok = table["stationary"].reshape(n1, n2).astype(bool)
    a, b = c.axes
    xa = np.log(table[a].reshape(n1, n2))
    xb = np.log((table["radius_set"] if b == "radius" else table[b]).reshape(n1, n2))
    half = (c.dim - 1) / 2
    iso = theory.isotropic_entropy_slopes(c.protocol, c.dim)
    along_b = _slope_summary(_row_slopes(xb, S, se, ok), float(iso[b]), half)
    along_a = _slope_summary(_row_slopes(xa.T, S.T, se.T, ok.T), float(iso[a]), half)
    out = {f"dS/dlog({b})": along_b, f"dS/dlog({a})": along_a}
    if c.protocol == "lr" and along_a["measured"] is not None and along_b["measured"] is not None:
        diff = along_a["measured"] - along_b["measured"]
        out["dS/dlog(lr) - dS/dlog(wd)"] = {
            "measured": diff, "theory": float(theory.maxwell_slope("lr", c.dim)),
            "normalized": diff / half,
            "stderr": math.hypot(along_a["stderr"], along_b["stderr"]),
        }
    # the S_dir slope (temperature dependence at fixed volume), exact vMF prediction
    return out


def potential_argmin(table: dict, c: IsotropicConfig, targets: tuple[int, ...] | None = None
                     ) -> list[dict]:
    """Minimize the potential over the grid of measured states at the (T, p) of a target state.

    lr/elr: G(state) = U - T* S + p* V (Gibbs); sphere: per radius column,
    F(state) = U - T* S (Helmholtz, V fixed). Targets default to grid indices near 1/8, 1/2
    and 7/8 of each axis (the paper's {2, 8, 14} of 17). Returns, per target, the argmin and
    its Chebyshev distance in cells.
    """
    n1, n2 = c.grid_shape
    U = table["energy"].reshape(n1, n2)
    S = table["entropy"].reshape(n1, n2)
    V = table["volume"].reshape(n1, n2)
    T = table["temperature"].reshape(n1, n2)
    P = table["pressure"].reshape(n1, n2)
    cells = np.stack(np.unravel_index(np.arange(n1 * n2), (n1, n2)), axis=1)
    states = [a.ravel() for a in (U, S, V, T, P)]
    sphere = c.protocol == "sphere"

    def picks(m):
        return sorted({round(f * (m - 1)) for f in (0.125, 0.5, 0.875)})

    res = []
    for i in targets or picks(n1):
        for j in picks(n2):
            r = analysis.potential_argmin(*states, cells, i * n2 + j, fixed_volume=sphere)
            res.append({"target": [i, j], "argmin": r["argmin_cell"], "distance": r["distance"],
                        "potential": "F" if sphere else "G"})
    return res


def potential_map(table: dict, c: IsotropicConfig, target: tuple[int, int]) -> np.ndarray:
    """G - min G (lr/elr) over the grid, or F - min F per radius column (sphere: rows = states
    of the target's column), at the target's (T, p)."""
    n1, n2 = c.grid_shape
    i, j = target
    U, S, V, T, P = (table[k].reshape(n1, n2) for k in
                     ("energy", "entropy", "volume", "temperature", "pressure"))
    if c.protocol == "sphere":
        F = U - T[i, j] * S
        return F - np.nanmin(F, axis=0, keepdims=True)
    G = U - T[i, j] * S + P[i, j] * V
    return G - np.nanmin(G)


def _worst(rel: np.ndarray, mask: np.ndarray) -> float | None:
    m = mask & np.isfinite(rel)
    return float(np.max(np.abs(rel[m]))) if m.any() else None


def summarize(table: dict, c: IsotropicConfig, seconds: float | None = None) -> dict:
    """Study summary: Maxwell slopes, worst relative errors of the equation of state (SDE and
    discretization-corrected), of U and S_dir against exact vMF, potential argmins, flags."""
    ok = table["stationary"].astype(bool)
    out: dict = {"config": dataclasses.asdict(c), "grid_points": int(ok.size),
                 "stationary_points": int(ok.sum()),
                 "non_stationary": [_label(table, k, c) for k in np.flatnonzero(~ok)]}
    if c.protocol == "sphere":
        meas, sde, disc = table["pressure"], table["pressure_theory"], table["pressure_discrete"]
        key = "pressure"
    else:
        meas, sde, disc = table["radius"], table["radius_theory"], table["radius_discrete"]
        key = "radius"
    out[f"{key}_max_rel_error_discrete"] = _worst(meas / disc - 1, ok)
    out[f"{key}_max_rel_error_sde"] = _worst(meas / sde - 1, ok)
    out["energy_max_rel_error_exact"] = _worst(table["energy"] / table["energy_theory"] - 1, ok)
    z = (table["energy"] - table["energy_theory"]) / table["energy_se"]
    out["energy_max_abs_z_exact"] = _worst(z, ok)
    out["energy_max_rel_error_discrete"] = _worst(
        table["energy"] / table["energy_discrete"] - 1, ok)
    zd = (table["energy"] - table["energy_discrete"]) / table["energy_se"]
    out["energy_max_abs_z_discrete"] = _worst(zd, ok)
    out["entropy_dir_max_abs_error_exact"] = _worst(
        table["entropy_dir"] - table["entropy_dir_theory"], ok)
    out["entropy_dir_max_abs_error_discrete"] = _worst(
        table["entropy_dir"] - table["entropy_dir_discrete"], ok)
    out["maxwell"] = maxwell_summary(table, c)
    pot = potential_argmin(table, c)
    out["potential_argmin"] = {"targets": pot,
                               "max_distance_cells": max(p["distance"] for p in pot)}
    out["diverged"] = int(table["diverged"].sum())
    if seconds is not None:
        out["simulation_seconds"] = seconds
    return out


def _label(table: dict, k: int, c: IsotropicConfig) -> dict:
    a, b = c.axes
    col_b = "radius_set" if b == "radius" else b
    reasons = [name for name, bad in (("diverged", table["diverged"][k]),
                                      ("radius not relaxed", not table["relaxed"][k]),
                                      ("radius drifting", table["drifting"][k])) if bad]
    return {a: float(table[a][k]), b: float(table[col_b][k]), "why": ", ".join(reasons)}


# --------------------------------------------------------------------------------------------
# one study, end to end


def run_study(c: IsotropicConfig, out_dir, figures: bool = True, progress: bool | None = None,
              entropy_method: str = "chord") -> dict:
    """Simulate, measure, summarize; write results.csv, summary.json, config.json, figures."""
    from pathlib import Path

    from thermosgd.io import write_csv, write_json

    out = Path(out_dir)
    sim = simulate(c, progress=progress)
    table = stationary_table(sim, entropy_method=entropy_method)
    summary = summarize(table, c, seconds=sim.seconds)
    write_json(out / "config.json", dataclasses.asdict(c))
    write_csv(out / "results.csv", table)
    write_json(out / "summary.json", summary)
    if figures:
        from thermosgd.plots import isotropic_figures

        summary["figures"] = [p.name for p in isotropic_figures(table, c, out)]
        write_json(out / "summary.json", summary)
    return summary
