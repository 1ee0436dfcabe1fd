"""Thermodynamic monitor for any training run of a scale-invariant (SI) network.

Gradient noise (functional core)
--------------------------------
For an SI group w of radius r = ||w||, the minibatch gradient scales as 1/r, so the
unit-sphere gradient is r g_B. From n i.i.d. minibatch gradients g_1..g_n (train-mode BN, batch
size B) with mean gbar (the BN-consistent estimate of E g_B; reference-implementation 6.2 item
6: the paper's ``full gradient'' with batch-1024 BN is not E g_B and biases tr Sigma), with
c_i = g_i - gbar and q_i = ||c_i||^2:

* ``trace_sigma`` = r^2 sum_i q_i / (n - 1), unbiased for tr Sigma = r^2 E||g_B - E g_B||^2;
* ``grad_norm2`` = r^2 (||gbar||^2 - trace_sigma / (r^2 n)) = r^2 sum_{i != j} <g_i, g_j> /
  (n (n - 1)), unbiased for r^2 ||E g_B||^2 (may come out negative when the gradient is small);
* ``trace_total`` = their sum = r^2 mean_i ||g_i||^2, unbiased for Q = E||r g_B||^2.

Standard errors (``se="jackknife"``, the default): the delete-one jackknife, in closed form
from q_i and a_i = <gbar, c_i> (deleting g_i moves the mean by -c_i / (n - 1), so
s2_(-i) = (sum_j q_j - n q_i / (n - 1)) / (n - 2)); O(n d). For trace_sigma this is
SE^2 = n Var_hat(q) / (n - 2)^2 ~ Var(||g - E g||^2) / n, which is why n = 32-64 gradients
suffice instead of the paper's 4000. trace_total is a mean; its jackknife SE is the sample SD
of r^2 ||g_i||^2 over sqrt(n). trace_sigma and grad_norm2 are U-statistics of degree 2
(kernels ||g_i - g_j||^2 / 2 and <g_i, g_j>), for which the jackknife overestimates the
degenerate part of the variance: the SE of grad_norm2 is conservative (up to ~1.4x) when
||grad L||^2 is small compared with its spread, exactly where the estimate is skewed and a
normal interval with the exact SE would under-cover. ``se="unbiased"`` instead estimates
Hoeffding's Var = (4 (n-2) zeta_1 + 2 zeta_2) / (n (n-1)) without bias from the n x n Gram
matrix of the centred gradients (O(n^2 d)): with M the kernel matrix off the diagonal,
A2 = mean M_ij^2, A3 = mean over distinct triples of M_ij M_ik, A4 = mean over distinct
quadruples of M_ij M_kl, Var_hat = (4 (n-2) (A3 - A4) + 2 (A2 - A4)) / (n (n-1)). Measured
95% coverage (tests/test_monitor.py, benchmarks/bench_noise_estimator.py, docs/benchmarks.md):
both ~95% on network gradients; on low-dimensional synthetic gradients with a small mean the
jackknife covers 94-99% and the unbiased SE 85-95%. Intervals use Student's t with n - 1
degrees of freedom.

Stationary state (stateful wrapper)
-----------------------------------
`ThermoMonitor` stores cheap per-step records (radius, loss, pre-projection norm), noise
probes and weight snapshots (an `thermosgd.entropy.EntropyQueue`), and `stationary_state`
turns the records of a window (default: the second half of the recorded steps) into
T, p, V, U, S with uncertainties, the theory's radius / pressure predictions from the measured
noise, and a stationarity verdict with reasons (see `StationarityCriteria`). Steps count
iterations since the start of training (step 0 = initialization). `ThermoMonitor.attach` wraps
a model + a thermosgd protocol optimizer (or plain ``torch.optim.SGD``) for any training loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from thermosgd import optimizers as _opt
from thermosgd import theory
from thermosgd.entropy import EntropyQueue

__all__ = [
    "AttachedMonitor",
    "NoiseEstimate",
    "StationarityCriteria",
    "ThermoMonitor",
    "estimate_gradient_noise",
    "minibatch_gradients",
    "noise_from_gradients",
]

LossFn = Callable[[Tensor, Tensor], Tensor]

# Rows per block when reducing (n, d) gradients in float64 (bounds the float64 temporaries).
_BLOCK_ELEMENTS = 1 << 22
_ESTIMATE_NAMES = ("trace_sigma", "grad_norm2", "trace_total")


# --------------------------------------------------------------------------------------------
# noise estimate
# --------------------------------------------------------------------------------------------


def _scalar_or_array(v: Any) -> float | np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return float(a) if a.ndim == 0 else a


@dataclass(frozen=True)
class NoiseEstimate:
    """Unit-sphere gradient-noise statistics from n minibatch gradients (see the module doc).

    trace_sigma: tr Sigma = r^2 E||g_B - E g_B||^2 (unbiased); grad_norm2: r^2 ||E g_B||^2
    (unbiased); trace_total: Q = trace_sigma + grad_norm2 = r^2 E||g_B||^2 (computed from
    the two when not given); each with a standard error ``*_se``. Floats for one group,
    arrays of the batch shape for batched configs (index with ``est[g]``). n: number of
    gradients; radius: r at the probe.
    """

    trace_sigma: float | np.ndarray
    trace_sigma_se: float | np.ndarray
    grad_norm2: float | np.ndarray
    grad_norm2_se: float | np.ndarray
    n: int
    radius: float | np.ndarray
    trace_total: float | np.ndarray | None = None
    trace_total_se: float | np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.trace_total is None:  # Q = tr Sigma + ||grad L||^2 (SE: independent errors)
            object.__setattr__(self, "trace_total", np.add(self.trace_sigma, self.grad_norm2))
        if self.trace_total_se is None:
            object.__setattr__(
                self, "trace_total_se", np.hypot(self.trace_sigma_se, self.grad_norm2_se)
            )
        for f in fields(self):
            if f.name != "n":
                object.__setattr__(self, f.name, _scalar_or_array(getattr(self, f.name)))
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 2:
            raise ValueError(f"n must be an integer >= 2, got {self.n!r}")
        object.__setattr__(self, "n", int(self.n))

    @property
    def shape(self) -> tuple[int, ...]:
        """Batch shape (() for one group)."""
        return np.shape(self.trace_sigma)

    def sigma2(self, dim: int) -> float | np.ndarray:
        """Per-direction noise variance on the unit sphere: trace_sigma / (dim - 1)."""
        dim = _check_dim(dim)
        return _scalar_or_array(np.asarray(self.trace_sigma) / (dim - 1))

    def ci(self, name: str, level: float = 0.95) -> tuple[Any, Any]:
        """(lo, hi) = value -/+ t_{n-1, (1+level)/2} * se for name in trace_sigma, grad_norm2,
        trace_total."""
        if name not in _ESTIMATE_NAMES:
            raise ValueError(f"name must be one of {_ESTIMATE_NAMES}, got {name!r}")
        if not (isinstance(level, (int, float)) and 0 < level < 1):
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        t = float(stats.t.ppf(0.5 + level / 2, self.n - 1))
        v = np.asarray(getattr(self, name))
        se = np.asarray(getattr(self, name + "_se"))
        return _scalar_or_array(v - t * se), _scalar_or_array(v + t * se)

    def __getitem__(self, index) -> NoiseEstimate:
        """The estimate of one config (or a sub-batch) of a batched estimate."""
        if self.shape == ():
            raise ValueError("cannot index a scalar NoiseEstimate")
        kw = {
            f.name: np.broadcast_to(getattr(self, f.name), self.shape)[index]
            for f in fields(self)
            if f.name != "n"
        }
        return replace(self, **kw)


def _check_dim(dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    return int(dim)


def _row_blocks(grads, gbar):
    """Yield (start, centred float64 block c = g[a:b] - gbar) over row blocks of (..., n, d)."""
    n, d = grads.shape[-2:]
    step = max(1, _BLOCK_ELEMENTS // max(d, 1))
    for a in range(0, n, step):
        blk = grads[..., a : a + step, :]
        if isinstance(blk, Tensor):
            yield a, blk.to(torch.float64) - gbar.unsqueeze(-2)
        else:
            yield a, blk.astype(np.float64) - gbar[..., None, :]


def _moments(grads, gram: bool):
    """||gbar||^2 (...), q_i = ||c_i||^2 and a_i = <gbar, c_i> (..., n) with c_i = g_i - gbar,
    and (if ``gram``) the centred Gram matrix <c_i, c_j> (..., n, n); float64 numpy.

    torch tensors are reduced on their own device, numpy arrays in numpy, in row blocks.
    """
    torch_in = isinstance(grads, Tensor)
    n = grads.shape[-2]
    if torch_in:
        grads = grads.detach()
        gbar = grads.sum(dim=-2, dtype=torch.float64) / n
        mm, cat, tr = torch.matmul, torch.cat, (lambda t: t.transpose(-1, -2))
    else:
        gbar = grads.sum(axis=-2, dtype=np.float64) / n
        mm, cat, tr = np.matmul, np.concatenate, (lambda t: np.swapaxes(t, -1, -2))
    qs, as_, K = [], [], None
    blocks = list(_row_blocks(grads, gbar)) if gram else _row_blocks(grads, gbar)
    for _, c in blocks:
        qs.append((c * c).sum(-1))
        as_.append(mm(c, gbar[..., None])[..., 0])
    if gram:  # the centred float64 gradients in full
        C = cat([c for _, c in blocks], -2)
        K = mm(C, tr(C))
        del C, blocks
    q, ai = cat(qs, -1), cat(as_, -1)
    gb2 = (gbar * gbar).sum(-1)
    if torch_in:
        gb2, q, ai = gb2.cpu().numpy(), q.cpu().numpy(), ai.cpu().numpy()
        K = None if K is None else K.cpu().numpy()
    return np.asarray(gb2), np.asarray(q), np.asarray(ai), K


def _ustat2_var(M: np.ndarray) -> np.ndarray:
    """Unbiased estimate of Var(U), U = sum_{i != j} M_ij / (n (n-1)), for a symmetric kernel
    matrix M (..., n, n) of i.i.d. samples (diagonal ignored); Hoeffding's formula with
    A2, A3, A4 (module docstring) computed in O(n^2)."""
    n = M.shape[-1]
    M = M.copy()
    idx = np.arange(n)
    M[..., idx, idx] = 0.0
    S2 = np.square(M).sum(axis=(-1, -2))
    R = M.sum(axis=-1)
    SR2 = np.square(R).sum(axis=-1)
    T = R.sum(axis=-1)
    A2 = S2 / (n * (n - 1))
    A3 = (SR2 - S2) / (n * (n - 1) * (n - 2))
    A4 = (T * T + 2 * S2 - 4 * SR2) / (n * (n - 1) * (n - 2) * (n - 3))
    return (4 * (n - 2) * (A3 - A4) + 2 * (A2 - A4)) / (n * (n - 1))


def _jackknife_se(theta_minus: np.ndarray) -> np.ndarray:
    """Delete-one jackknife SE from the leave-one-out values (..., n)."""
    n = theta_minus.shape[-1]
    dev = theta_minus - theta_minus.mean(axis=-1, keepdims=True)
    return np.sqrt((n - 1) / n * np.square(dev).sum(axis=-1))


def noise_from_gradients(grads, radius, *, se: str = "jackknife") -> NoiseEstimate:
    """Unit-sphere tr Sigma, ||grad L||^2 and Q from n minibatch gradients, with SEs.

    grads: (..., n, d) numpy array or torch tensor (float32 is fine; statistics in float64 on
    the array's device): n >= 3 (4 for ``se="unbiased"``) flattened gradients of one SI group
    at radius ``radius`` (broadcastable to ``...``).
    trace_sigma = r^2 sum_i ||g_i - gbar||^2 / (n - 1);
    grad_norm2 = r^2 ||gbar||^2 - trace_sigma / n; trace_total = r^2 mean_i ||g_i||^2. SEs
    (module docstring): ``se="jackknife"`` (O(n d), conservative for a small grad_norm2) or
    ``"unbiased"`` (Hoeffding's U-statistic variance from the n x n Gram matrix, O(n^2 d);
    where that estimate comes out <= 0, the jackknife). Non-finite gradients propagate as NaN.
    """
    if isinstance(grads, Tensor):
        if not grads.is_floating_point():
            raise ValueError(f"grads must be a floating-point tensor, got {grads.dtype}")
        shape = tuple(grads.shape)
    else:
        if hasattr(grads, "detach"):
            raise ValueError("grads must be a numpy array or a torch tensor")
        grads = np.asarray(grads)
        if grads.dtype.kind not in "fiu":
            raise ValueError(f"grads must be a real numeric array, got dtype {grads.dtype}")
        shape = grads.shape
    if len(shape) < 2:
        raise ValueError(f"grads must have shape (..., n, d), got {shape}")
    n, d = shape[-2:]
    if se not in ("jackknife", "unbiased"):
        raise ValueError(f"se must be 'jackknife' or 'unbiased', got {se!r}")
    exact = se == "unbiased"
    if n < 3 + exact:
        raise ValueError(f"grads must hold n >= {3 + exact} gradients (axis -2), got n = {n}")
    if d < 1:
        raise ValueError("grads has dimension d = 0")
    if isinstance(radius, Tensor):
        radius = radius.detach().cpu().numpy()
    r = np.asarray(radius, dtype=np.float64)
    batch = shape[:-2]
    try:
        ok = np.broadcast_shapes(r.shape, batch) == batch
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"radius of shape {r.shape} does not broadcast to the batch shape {batch}")
    if np.any(r <= 0):
        raise ValueError("radius must be positive")
    r2 = np.broadcast_to(np.square(r), batch)

    gb2, q, a, K = _moments(grads, gram=exact)
    qsum = q.sum(axis=-1)
    s2 = qsum / (n - 1)
    m2 = gb2 - s2 / n
    tot = gb2 + qsum / n  # mean ||g_i||^2 (sum_i c_i = 0)
    # leave-one-out values (closed form: deleting g_i moves the mean by -c_i / (n - 1))
    s2_minus = (qsum[..., None] - n * q / (n - 1)) / (n - 2)
    gb2_minus = gb2[..., None] - 2 * a / (n - 1) + q / (n - 1) ** 2
    m2_minus = gb2_minus - s2_minus / (n - 1)
    s2_se = _jackknife_se(s2_minus)
    m2_se = _jackknife_se(m2_minus)
    gn2 = gb2[..., None] + 2 * a + q  # ||g_i||^2
    tot_se = gn2.std(axis=-1, ddof=1) / math.sqrt(n)
    if exact:
        H = (q[..., :, None] + q[..., None, :]) / 2 - K  # ||g_i - g_j||^2 / 2
        G = gb2[..., None, None] + a[..., :, None] + a[..., None, :] + K  # <g_i, g_j>
        v_s2, v_m2 = _ustat2_var(H), _ustat2_var(G)
        s2_se = np.where(v_s2 > 0, np.sqrt(np.maximum(v_s2, 0)), s2_se)
        m2_se = np.where(v_m2 > 0, np.sqrt(np.maximum(v_m2, 0)), m2_se)
    return NoiseEstimate(
        trace_sigma=r2 * s2,
        trace_sigma_se=r2 * s2_se,
        grad_norm2=r2 * m2,
        grad_norm2_se=r2 * m2_se,
        n=n,
        radius=np.broadcast_to(r, batch),
        trace_total=r2 * tot,
        trace_total_se=r2 * tot_se,
    )


# --------------------------------------------------------------------------------------------
# probing a model
# --------------------------------------------------------------------------------------------


def _positive_int(name: str, v: Any, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def _make_generator(generator, device: torch.device) -> torch.Generator:
    if generator is None:
        generator = 0
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, (int, np.integer)):
        raise ValueError(
            f"generator must be a torch.Generator, an int seed or None, got {generator!r}"
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
    (see `minibatch_gradients`): unbiased unit-sphere tr Sigma, ||grad L||^2 and Q with SEs."""
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
    statistics); the gradient of ``loss_fn(model(x[idx]), y[idx])`` w.r.t. ``params`` is taken
    with ``torch.autograd.grad`` and flattened. A scalar loss gives grads (n, d) and a float
    radius; a loss of shape (G,) (e.g. `thermosgd.models.batched_cross_entropy` of a
    `BatchedBNMLP`) gives grads (G, n, d) and radii (G,), every parameter carrying a leading
    config axis G. Grads keep the parameters' dtype and device. Afterwards the model is as
    before: parameters, buffers (BN running statistics, num_batches_tracked), train/eval flags,
    ``.grad`` fields (never touched) and the global RNG. ``generator``: a ``torch.Generator``
    (advanced by the draws), an int seed, or None (seed 0).
    """
    n_batches = _positive_int("n_batches", n_batches, 3)
    batch_size = _positive_int("batch_size", batch_size, 1)
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


# --------------------------------------------------------------------------------------------
# series statistics
# --------------------------------------------------------------------------------------------


def _batch_means(v: np.ndarray, t: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of v and t over k consecutive, (nearly) equal-count blocks."""
    vb = np.array([b.mean() for b in np.array_split(v, k)])
    tb = np.array([b.mean() for b in np.array_split(t, k)])
    return vb, tb


def _mean_se(b: np.ndarray) -> float:
    return float(b.std(ddof=1) / math.sqrt(b.size)) if b.size >= 2 else float("nan")


def _halves(b: np.ndarray) -> tuple[float, float, float]:
    """Mean of the first and second half of batch means and the SE of their difference."""
    h = b.size // 2
    b1, b2 = b[:h], b[h:]
    se = math.hypot(_mean_se(b1), _mean_se(b2))
    return float(b1.mean()), float(b2.mean()), se


def _slope(b: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """OLS slope of b on t and its standard error."""
    tc = t - t.mean()
    sxx = float(tc @ tc)
    if b.size < 3 or sxx == 0:
        return float("nan"), float("nan")
    slope = float(tc @ (b - b.mean())) / sxx
    resid = b - b.mean() - slope * tc
    se = math.sqrt(float(resid @ resid) / (b.size - 2) / sxx)
    return slope, se


def _combine_probes(v: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """Mean of m probe values and its SE: the larger of the propagated estimator SE and the
    spread between probes (which also holds the genuine fluctuation of the state)."""
    m = v.size
    mean = float(v.mean())
    prop = float(np.sqrt(np.square(se).sum()) / m)
    spread = float(v.std(ddof=1) / math.sqrt(m)) if m >= 3 else 0.0
    return mean, max(prop, spread)


# --------------------------------------------------------------------------------------------
# monitor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StationarityCriteria:
    """Thresholds of `ThermoMonitor.stationary_state`'s verdict; each failing test is a reason.

    * window vs relaxation time tau (lr, elr; the sphere's radius has no dynamics): the window
      must start at least ``burn_in_tau`` tau after step 0 and span ``min_window_tau`` tau;
    * drift: the window is cut into ``n_blocks`` blocks (block means carry the error bars);
      the mean radius (sphere: the pressure) of the second half differs from the first by more
      than ``max_radius_drift`` (sphere: ``max_pressure_drift``) relative and by more than
      ``z`` standard errors;
    * loss trend: OLS slope of the block means of the loss, |t| > ``z`` and the change over the
      window > ``max_loss_change`` of the mean loss;
    * T -> 0: mean loss < ``interpolation_loss``, or tr Sigma of the probes in the window's
      second half below the first half's by more than ``max_noise_drop`` (relative) and ``z``
      standard errors.
    """

    burn_in_tau: float = 3.0
    min_window_tau: float = 1.0
    min_records: int = 20
    n_blocks: int = 20
    z: float = 3.0
    max_radius_drift: float = 0.01
    max_pressure_drift: float = 0.05
    max_loss_change: float = 0.02
    max_noise_drop: float = 0.2
    interpolation_loss: float = 1e-3


def _check_hyper(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a positive number, got {v!r}")
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be positive and finite, got {v!r}")
    return float(v)


_NEEDS = {"lr": ("lr", "wd"), "elr": ("elr", "wd"), "sphere": ("elr", "radius")}


def _to_float(name: str, v: Any) -> float:
    if isinstance(v, Tensor):
        if v.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(v.shape)}")
        return float(v.detach())
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer, np.ndarray)):
        raise ValueError(f"{name} must be a real number, got {v!r}")
    if np.ndim(v) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(v)}")
    return float(v)


class ThermoMonitor:
    """Records of one SI group's training run and its measured thermodynamic state.

    ``protocol`` in {"lr", "elr", "sphere"} with its hyperparameters (lr + wd, elr + wd,
    elr + radius); ``dim`` = d, the number of SI parameters. ``optimizer`` "momentum" (heavy
    ball, ``momentum`` = beta, default 0.9) or "adamw" (``momentum`` = beta1, default 0.9,
    ``beta2`` default 0.999) with protocol "lr" switches the predictions (radius, temperature,
    pressure, relaxation time) to that optimizer's closed forms (`thermosgd.optimizers`).
    ``record_step`` is cheap (three floats appended) and may be called at any cadence;
    ``record_noise`` stores a `NoiseEstimate` (e.g. from `estimate_gradient_noise`);
    ``push_snapshot`` feeds an `EntropyQueue` of ``queue_capacity`` snapshots stored as
    ``dtype``. Non-finite values are recorded (the run is then reported as diverged); negative
    radii or norms raise.
    """

    def __init__(
        self,
        protocol: str,
        dim: int,
        *,
        lr: float | None = None,
        elr: float | None = None,
        wd: float | None = None,
        radius: float | None = None,
        queue_capacity: int = 1000,
        dtype=np.float32,
        criteria: StationarityCriteria | None = None,
        optimizer: str = "sgd",
        momentum: float | None = None,
        beta2: float | None = None,
    ) -> None:
        from thermosgd.protocols import DEFAULT_BETA2, DEFAULT_MOMENTUM, _check_optimizer

        _check_optimizer(protocol, optimizer, momentum, beta2)
        self.optimizer = optimizer
        b1 = DEFAULT_MOMENTUM if momentum is None else momentum
        self.momentum = None if optimizer == "sgd" else float(b1)
        self.beta2 = (
            None if optimizer != "adamw" else float(DEFAULT_BETA2 if beta2 is None else beta2)
        )
        if protocol not in _NEEDS:
            raise ValueError(f"protocol must be one of {tuple(_NEEDS)}, got {protocol!r}")
        self.protocol = protocol
        self.dim = _check_dim(dim)
        given = {
            k: v
            for k, v in {"lr": lr, "elr": elr, "wd": wd, "radius": radius}.items()
            if v is not None
        }
        extra = set(given) - set(_NEEDS[protocol])
        if extra:
            raise ValueError(f"protocol {protocol!r} does not take {sorted(extra)}")
        missing = [k for k in _NEEDS[protocol] if k not in given]
        if missing:
            raise ValueError(f"protocol {protocol!r} needs {missing}")
        self.hyper = {k: _check_hyper(k, v) for k, v in given.items()}
        self.lr, self.elr, self.wd, self.radius = (
            self.hyper.get(k) for k in ("lr", "elr", "wd", "radius")
        )
        self.criteria = StationarityCriteria() if criteria is None else criteria
        if not isinstance(self.criteria, StationarityCriteria):
            raise ValueError("criteria must be a StationarityCriteria")
        self.queue = EntropyQueue(queue_capacity, self.dim, dtype=dtype)
        self._steps: list[int] = []
        self._radius: list[float] = []
        self._loss: list[float] = []
        self._prenorm: list[float] = []
        self._noise: list[tuple[int, float, float, float, float, float, float, float, int]] = []
        self._si: list[tuple[int, float, float]] = []  # (step, radial mean, radial rms)
        self._n_snapshots = 0

    # -- recording -----------------------------------------------------------------------------

    def _check_step(self, step: Any, last: int | None) -> int:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        if last is not None and step <= last:
            raise ValueError(f"step must increase: got {step} after {last}")
        return int(step)

    def record_step(
        self, step: int, *, radius: float, loss: float, preprojection_norm: float | None = None
    ) -> None:
        """Record the radius, the (minibatch) training loss and, for the sphere, the norm of
        the iterate before projection, at iteration ``step`` (strictly increasing)."""
        step = self._check_step(step, self._steps[-1] if self._steps else None)
        r = _to_float("radius", radius)
        lo = _to_float("loss", loss)
        pn = (
            float("nan")
            if preprojection_norm is None
            else _to_float("preprojection_norm", preprojection_norm)
        )
        if r <= 0:
            raise ValueError(f"radius must be positive, got {r}")
        if pn <= 0:
            raise ValueError(f"preprojection_norm must be positive, got {pn}")
        self._steps.append(step)
        self._radius.append(r)
        self._loss.append(lo)
        self._prenorm.append(pn)

    def record_noise(self, step: int, estimate: NoiseEstimate) -> None:
        """Record a (scalar) `NoiseEstimate` measured at iteration ``step``."""
        if not isinstance(estimate, NoiseEstimate):
            raise ValueError(f"estimate must be a NoiseEstimate, got {type(estimate).__name__}")
        if estimate.shape != ():
            raise ValueError(
                f"estimate is batched (shape {estimate.shape}); record one config: estimate[g]"
            )
        step = self._check_step(step, self._noise[-1][0] if self._noise else None)
        if estimate.trace_sigma < 0 or estimate.trace_sigma_se < 0 or estimate.grad_norm2_se < 0:
            raise ValueError("estimate has a negative trace_sigma or standard error")
        e = estimate
        self._noise.append(
            (
                step,
                e.trace_sigma,
                e.trace_sigma_se,
                e.grad_norm2,
                e.grad_norm2_se,
                e.trace_total,
                e.trace_total_se,
                e.radius,
                e.n,
            )
        )

    def record_si_distance(self, step: int, radial: float, radial_rms: float) -> None:
        """Record the group's distance from scale invariance at iteration ``step`` (strictly
        increasing): the relative radial components |<gbar, w>| / (|gbar| |w|) of the mean
        probe gradient and sqrt(mean <g_i, w>^2) / (sqrt(mean |g_i|^2) |w|) of the minibatch
        gradients (`thermosgd.scale_invariance.radial_gradient_stats`); 0 for an SI group."""
        step = self._check_step(step, self._si[-1][0] if self._si else None)
        a, b = _to_float("radial", radial), _to_float("radial_rms", radial_rms)
        if a < 0 or b < 0:
            raise ValueError(f"radial components must be >= 0, got {a} and {b}")
        self._si.append((step, a, b))

    def push_snapshot(self, w) -> None:
        """Push the flattened SI vector (numpy or torch, length dim) into the entropy queue."""
        if isinstance(w, Tensor):
            w = w.detach().reshape(-1).cpu().numpy()
        self.queue.push(w)
        self._n_snapshots += 1

    # -- access --------------------------------------------------------------------------------

    def history(self) -> dict[str, np.ndarray]:
        """Step records as arrays: step, radius, loss, preprojection_norm (NaN where absent)."""
        return {
            "step": np.asarray(self._steps, dtype=np.int64),
            "radius": np.asarray(self._radius, dtype=np.float64),
            "loss": np.asarray(self._loss, dtype=np.float64),
            "preprojection_norm": np.asarray(self._prenorm, dtype=np.float64),
        }

    def noise_history(self) -> dict[str, np.ndarray]:
        """Noise probes as arrays: step, trace_sigma(_se), grad_norm2(_se), trace_total(_se),
        radius, n."""
        keys = (
            "step",
            "trace_sigma",
            "trace_sigma_se",
            "grad_norm2",
            "grad_norm2_se",
            "trace_total",
            "trace_total_se",
            "radius",
            "n",
        )
        cols = list(zip(*self._noise, strict=True)) if self._noise else [()] * len(keys)
        out = {k: np.asarray(c, dtype=np.float64) for k, c in zip(keys, cols, strict=True)}
        out["step"] = out["step"].astype(np.int64)
        out["n"] = out["n"].astype(np.int64)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume monitoring (records and the snapshot queue)."""
        return {
            "protocol": self.protocol,
            "optimizer": (self.optimizer, self.momentum, self.beta2),
            "dim": self.dim,
            "hyper": dict(self.hyper),
            "history": self.history(),
            "noise": list(self._noise),
            "si_distance": list(self._si),
            "snapshots": self.queue.snapshots(),
            "n_snapshots": self._n_snapshots,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore records saved by `state_dict` (same protocol, dim and hyperparameters)."""
        if (state.get("protocol"), state.get("dim"), state.get("hyper")) != (
            self.protocol,
            self.dim,
            self.hyper,
        ):
            raise ValueError("state_dict is for a different protocol, dim or hyperparameters")
        if tuple(state.get("optimizer", ("sgd", None, None))) != (
            self.optimizer,
            self.momentum,
            self.beta2,
        ):
            raise ValueError("state_dict is for a different optimizer or betas")
        h = state["history"]
        self._steps = [int(s) for s in h["step"]]
        self._radius = [float(v) for v in h["radius"]]
        self._loss = [float(v) for v in h["loss"]]
        self._prenorm = [float(v) for v in h["preprojection_norm"]]
        self._noise = [tuple(t) for t in state["noise"]]
        self._si = [tuple(t) for t in state.get("si_distance", [])]  # absent in old states
        self.queue = EntropyQueue(self.queue.capacity, self.dim, dtype=self.queue.dtype)
        for w in state["snapshots"]:
            self.queue.push(w)
        self._n_snapshots = int(state["n_snapshots"])

    # -- stationary state ----------------------------------------------------------------------

    def _elr_effective(self, radius: float, sigma2: float) -> float:
        """eta-tilde of the direction's Langevin step (AdamW's needs sigma2 > 0)."""
        if self.protocol != "lr":
            return self.elr
        if self.optimizer == "adamw" and not (np.isfinite(sigma2) and sigma2 > 0):
            return float("nan")
        return float(
            _opt.lr_effective_step(
                self.optimizer,
                lr=self.lr,
                radius=radius,
                sigma2=sigma2 if self.optimizer == "adamw" else 1.0,
                dim=self.dim,
                momentum=self.momentum,
            )
        )

    def _opt_kw(self) -> dict[str, Any]:
        return {"lr": self.lr, "wd": self.wd, "momentum": self.momentum}

    def stationary_state(self, window_start: int | None = None, *, entropy: bool = True) -> dict:
        """Measured state over the window [window_start, last step] (default: the second half
        of the recorded steps) and the stationarity verdict.

        Keys (floats unless said): protocol, dim, hyperparameters, window_start, window_end,
        n_records, n_noise, n_snapshots; radius (mean), volume r^2/2, energy U (mean loss),
        trace_sigma, grad_norm2, trace_total Q (means of the probes in the window), sigma2 =
        trace_sigma / (d-1), elr_effective (lr: lr / r^2), temperature (per protocol from sigma2:
        elr and sphere elr sigma2 / 2, lr sqrt(lr wd sigma2 / (2 (d-1)))), temperature_measured
        (elr_effective sigma2 / 2), pressure (lr, elr: wd; sphere: (mean r' - r) / (elr r^3)),
        pressure_sde = elr_effective trace_sigma / (2 r^2) ((d-1) T_measured / r^2, the ideal-gas
        pressure at the measured V), pressure_discrete = elr_effective Q / (2 r^2) (AdamW:
        pressure (radius_discrete / radius)^2);
        radius_sde, radius_discrete (theory with the measured trace_sigma, Q; NaN on the
        sphere), relaxation_time (of the radius, `theory.relaxation_time`), entropy_dir
        (`EntropyQueue.entropy`, chord k-NN, NaN below 3 snapshots) and entropy (+ (d-1) mean
        log r of the snapshots); si_radial_gradient, si_radial_gradient_rms (window means of
        `record_si_distance`, the distance from scale invariance; NaN without records);
        ``*_se`` standard errors (block means for step records,
        probe spread / jackknife for noise, k-NN jackknife for entropy); the test statistics
        radius_drift (sphere: pressure_drift), loss_change, noise_change (relative), window_tau,
        burn_in_tau; ``diverged`` (a non-finite record), ``stationary`` and ``reasons`` (empty
        when stationary), ``warnings`` (tests that could not be run).
        """
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return self._stationary_state(window_start, entropy)

    def _stationary_state(self, window_start: int | None, entropy: bool) -> dict:
        c = self.criteria
        h = self.history()
        nz = self.noise_history()
        d = self.dim
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "beta2": self.beta2,
            "dim": d,
            **self.hyper,
        }
        reasons: list[str] = []
        warnings: list[str] = []
        nan = float("nan")
        steps = h["step"]
        if steps.size == 0:
            raise ValueError("no steps recorded: call record_step before stationary_state")
        first, last = int(steps[0]), int(steps[-1])
        if window_start is None:
            window_start = (first + last + 1) // 2
        elif isinstance(window_start, bool) or not isinstance(window_start, (int, np.integer)):
            raise ValueError(f"window_start must be an integer step, got {window_start!r}")
        if window_start > last:
            raise ValueError(
                f"window_start = {window_start} is after the last recorded step {last}"
            )
        window_start = int(window_start)
        sel = steps >= window_start
        nsel = (nz["step"] >= window_start) if nz["step"].size else np.zeros(0, bool)
        out.update(
            window_start=window_start,
            window_end=last,
            n_records=int(sel.sum()),
            n_noise=int(nsel.sum()),
            n_snapshots=len(self.queue),
        )

        # divergence: any non-finite record (anywhere: a diverged run is never stationary)
        bad = ~(np.isfinite(h["radius"]) & np.isfinite(h["loss"]))
        if self.protocol == "sphere":
            bad |= np.isinf(h["preprojection_norm"])
        nbad = (
            ~np.isfinite(np.c_[nz["trace_sigma"], nz["grad_norm2"]]).all(axis=1)
            if nz["step"].size
            else np.zeros(0, bool)
        )
        diverged = bool(bad.any() or nbad.any())
        out["diverged"] = diverged
        if diverged:
            at = [int(steps[bad][0])] if bad.any() else []
            at += [int(nz["step"][nbad][0])] if nbad.any() else []
            reasons.append(f"diverged: non-finite loss, radius or noise from step {min(at)}")

        t = steps[sel].astype(np.float64)
        r = h["radius"][sel]
        loss = h["loss"][sel]
        k = min(c.n_blocks, t.size)
        k -= k % 2
        enough = t.size >= max(c.min_records, 4) and k >= 4
        if not enough:
            reasons.append(
                f"too few step records in the window ({t.size} < {max(c.min_records, 4)})"
            )

        # radius, volume, energy
        rbar = float(r.mean())
        out["radius"] = rbar
        out["volume"] = rbar**2 / 2
        out["energy"] = float(loss.mean())
        if enough:
            rb, tb = _batch_means(r, t, k)
            lb, _ = _batch_means(loss, t, k)
            out["radius_se"] = _mean_se(rb)
            out["energy_se"] = _mean_se(lb)
        else:
            rb = lb = tb = None
            out["radius_se"] = out["energy_se"] = nan
        out["volume_se"] = rbar * out["radius_se"]

        # noise
        if nsel.any():
            ts, ts_se = _combine_probes(nz["trace_sigma"][nsel], nz["trace_sigma_se"][nsel])
            g2, g2_se = _combine_probes(nz["grad_norm2"][nsel], nz["grad_norm2_se"][nsel])
            tt, tt_se = _combine_probes(nz["trace_total"][nsel], nz["trace_total_se"][nsel])
        else:
            ts = ts_se = g2 = g2_se = tt = tt_se = nan
            reasons.append(
                "no gradient-noise probe in the window (T and the relaxation time are unknown)"
            )
        out.update(
            trace_sigma=ts,
            trace_sigma_se=ts_se,
            grad_norm2=g2,
            grad_norm2_se=g2_se,
            trace_total=tt,
            trace_total_se=tt_se,
        )
        sigma2 = ts / (d - 1)
        out["sigma2"], out["sigma2_se"] = sigma2, ts_se / (d - 1)
        rel_ts = ts_se / ts if ts > 0 else nan
        rel_tt = tt_se / tt if tt > 0 else nan
        ok_noise = bool(np.isfinite(ts) and ts > 0 and np.isfinite(rbar) and rbar > 0)

        # temperature, pressure
        elr_eff = self._elr_effective(rbar, sigma2) if np.isfinite(rbar) and rbar > 0 else nan
        out["elr_effective"] = elr_eff
        if ok_noise:
            hp = {k_: v for k_, v in self.hyper.items() if k_ != "radius"}
            if self.optimizer != "sgd":
                T = float(
                    _opt.lr_temperature(self.optimizer, sigma2=sigma2, dim=d, **self._opt_kw())
                )
            else:
                T = float(theory.temperature(self.protocol, sigma2=sigma2, dim=d, **hp))
            Tm = elr_eff * sigma2 / 2
            out["temperature"] = T
            out["temperature_se"] = T * rel_ts / (2 if self.protocol == "lr" else 1)
            out["temperature_measured"], out["temperature_measured_se"] = Tm, Tm * rel_ts
        else:
            for key in (
                "temperature",
                "temperature_se",
                "temperature_measured",
                "temperature_measured_se",
            ):
                out[key] = nan
        pb = None  # block means of the pre-projection norm (sphere)
        out["pressure"], out["pressure_se"] = (
            (self.wd, 0.0) if self.protocol != "sphere" else (nan, nan)
        )
        if self.protocol == "sphere":
            pn = h["preprojection_norm"][sel]
            fin = np.isfinite(pn)
            if not fin.any():
                warnings.append(
                    "no pre-projection norms recorded: the sphere's pressure is unknown"
                )
            else:
                out["pressure"] = float(
                    theory.sphere_pressure_from_norm(pn[fin].mean(), self.radius, self.elr)
                )
                kp = min(c.n_blocks, int(fin.sum()))
                kp -= kp % 2
                if kp >= 4:
                    pb, _ = _batch_means(pn[fin], t[fin], kp)
                    out["pressure_se"] = _mean_se(pb) / (self.elr * self.radius**3)
        if self.optimizer == "adamw" and ok_noise:  # lambda sqrt(s), s from the measured noise
            out["pressure"] = float(_opt.lr_pressure("adamw", wd=self.wd, radius=rbar,
                                                     sigma2=sigma2, dim=d))
            out["pressure_se"] = out["pressure"] * rel_ts / 2
        elif self.optimizer == "adamw":
            out["pressure"] = out["pressure_se"] = nan
        if ok_noise:
            out["pressure_sde"] = elr_eff * ts / (2 * rbar**2)
            out["pressure_sde_se"] = out["pressure_sde"] * rel_ts
            # the noise that sets the radius with the mean-gradient term: Q for SGD; for heavy
            # ball / AdamW the grad_norm2 weights of their discrete radii (docs/theory.md)
            q_eff = tt
            if self.optimizer != "sgd" and np.isfinite(g2):
                w_ = (1 - self.momentum) / (1 + self.momentum)
                g2p = max(g2, 0.0)
                q_eff = ts + g2p * w_
                if self.optimizer == "adamw":
                    q_eff = ts * q_eff / (ts + g2p)
            out["pressure_discrete"] = elr_eff * q_eff / (2 * rbar**2)
            out["pressure_discrete_se"] = out["pressure_discrete"] * rel_tt
        else:
            for key in (
                "pressure_sde",
                "pressure_sde_se",
                "pressure_discrete",
                "pressure_discrete_se",
            ):
                out[key] = nan

        # radius predictions, relaxation time
        out["radius_sde"] = out["radius_sde_se"] = nan
        out["radius_discrete"] = out["radius_discrete_se"] = nan
        out["relaxation_time"] = nan
        if self.optimizer != "sgd" and ok_noise:
            power = _opt.lr_radius_power(self.optimizer)
            out["radius_sde"] = float(
                _opt.lr_radius_sde(self.optimizer, sigma2=sigma2, dim=d, **self._opt_kw())
            )
            out["radius_sde_se"] = out["radius_sde"] * rel_ts / power if power == 4 else 0.0
            if np.isfinite(g2):  # grad_norm2 (unbiased) may come out < 0: clipped at 0
                out["radius_discrete"] = float(
                    _opt.lr_radius_discrete(
                        self.optimizer,
                        dim=d,
                        trace_sigma=ts,
                        grad_norm2=max(g2, 0.0),
                        **self._opt_kw(),
                    )
                )
                out["radius_discrete_se"] = out["radius_discrete"] * rel_tt / power
                if self.optimizer == "adamw":  # the pressure holding r at the all-orders radius
                    ratio = (out["radius_discrete"] / rbar) ** 2
                    out["pressure_discrete"] = out["pressure"] * ratio
                    out["pressure_discrete_se"] = out["pressure_discrete"] * rel_tt
        elif self.protocol != "sphere" and ok_noise:
            hp = dict(self.hyper)
            power = 4 if self.protocol == "lr" else 2
            out["radius_sde"] = float(theory.radius_sde(self.protocol, sigma2=sigma2, dim=d, **hp))
            out["radius_sde_se"] = out["radius_sde"] * rel_ts / power
            if np.isfinite(tt) and tt > 0:
                # Q alone enters the discretized balance; grad_norm2 (unbiased) may be < 0.
                out["radius_discrete"] = float(
                    theory.radius_discrete(self.protocol, trace_sigma=tt, grad_norm2=0.0, **hp)
                )
                out["radius_discrete_se"] = out["radius_discrete"] * rel_tt / power
        if self.protocol == "lr":
            out["relaxation_time"] = float(
                _opt.lr_relaxation_time(self.optimizer, **self._opt_kw())
            )
        elif self.protocol == "elr" and np.isfinite(tt) and tt > 0:
            out["relaxation_time"] = float(
                theory.relaxation_time("elr", elr=self.elr, trace_total=tt)
            )
        elif self.protocol == "sphere":
            out["relaxation_time"] = 0.0

        # entropy
        out["entropy_dir"] = out["entropy_dir_se"] = out["entropy"] = out["entropy_se"] = nan
        if entropy and len(self.queue) >= 3:
            try:
                e_dir = self.queue.entropy(duplicates="drop")
                e_full = self.queue.full_entropy(duplicates="drop")
            except ValueError as err:
                warnings.append(f"entropy not computed: {err}")
            else:
                out["entropy_dir"], out["entropy_dir_se"] = float(e_dir.value), float(e_dir.stderr)
                out["entropy"], out["entropy_se"] = float(e_full.value), float(e_full.stderr)
        elif entropy:
            warnings.append(f"only {len(self.queue)} snapshots in the queue: no entropy")

        # distance from scale invariance: window means of the probes' radial components
        si = np.asarray(self._si, dtype=np.float64).reshape(-1, 3)
        si = si[si[:, 0] >= window_start]
        out["si_radial_gradient"] = float(si[:, 1].mean()) if si.size else nan
        out["si_radial_gradient_rms"] = float(si[:, 2].mean()) if si.size else nan

        # ---- verdict ----
        tau = out["relaxation_time"]
        span = float(last - window_start)
        out["window_tau"] = span / tau if tau and np.isfinite(tau) and tau > 0 else nan
        out["burn_in_tau"] = window_start / tau if tau and np.isfinite(tau) and tau > 0 else nan
        if self.protocol != "sphere" and np.isfinite(tau) and tau > 0:
            if out["burn_in_tau"] < c.burn_in_tau:
                reasons.append(
                    f"window starts too early: {out['burn_in_tau']:.2g} relaxation times after "
                    f"step 0 (< {c.burn_in_tau:g}; tau = {tau:.3g} steps)"
                )
            if out["window_tau"] < c.min_window_tau:
                reasons.append(
                    f"window too short: {out['window_tau']:.2g} relaxation times "
                    f"(< {c.min_window_tau:g}; tau = {tau:.3g} steps)"
                )

        out["radius_drift"] = out["pressure_drift"] = out["loss_change"] = nan
        if enough and not diverged:
            if self.protocol != "sphere":
                m1, m2, se = _halves(rb)
                drift = (m2 - m1) / rbar
                out["radius_drift"] = drift
                if abs(drift) > c.max_radius_drift and abs(m2 - m1) > c.z * se:
                    reasons.append(
                        f"radius drifting: {100 * drift:+.2g}% between the window's halves "
                        f"({abs(m2 - m1) / se:.1f} standard errors)"
                    )
            elif pb is not None and pb.size >= 4:
                exc = pb - self.radius  # r' - r, proportional to the pressure
                m1, m2, se = _halves(exc)
                mean_exc = float(exc.mean())
                if mean_exc > 0:
                    drift = (m2 - m1) / mean_exc
                    out["pressure_drift"] = drift
                    if abs(drift) > c.max_pressure_drift and abs(m2 - m1) > c.z * se:
                        reasons.append(
                            f"pressure drifting: {100 * drift:+.2g}% between the window's halves "
                            f"({abs(m2 - m1) / se:.1f} standard errors)"
                        )
            slope, sse = _slope(lb, tb)
            change = slope * span
            scale = max(abs(out["energy"]), 1e-12)
            out["loss_change"] = change / scale
            if (
                np.isfinite(slope)
                and abs(change) > c.max_loss_change * scale
                and abs(slope) > c.z * sse
            ):
                reasons.append(
                    f"loss trending: {100 * change / scale:+.2g}% over the window "
                    f"(slope {slope / sse:+.1f} standard errors)"
                )

        if (
            not diverged
            and np.isfinite(out["energy"])
            and abs(out["energy"]) < c.interpolation_loss
        ):
            reasons.append(
                f"temperature collapsing (interpolation): training loss {out['energy']:.2g} < "
                f"{c.interpolation_loss:g}"
            )
        out["noise_change"] = nan
        if not diverged and nsel.sum() >= 2:
            ns = nz["step"][nsel]
            mid = (window_start + last) / 2
            a_ = ns < mid
            if a_.any() and (~a_).any():
                v, vse = nz["trace_sigma"][nsel], nz["trace_sigma_se"][nsel]
                m1, s1 = _combine_probes(v[a_], vse[a_])
                m2, s2 = _combine_probes(v[~a_], vse[~a_])
                out["noise_change"] = (m2 - m1) / m1 if m1 > 0 else nan
                if (
                    m1 > 0
                    and (m1 - m2) / m1 > c.max_noise_drop
                    and m1 - m2 > c.z * math.hypot(s1, s2)
                ):
                    reasons.append(
                        f"temperature collapsing: tr Sigma fell {100 * (m1 - m2) / m1:.2g}% "
                        f"across the window ({(m1 - m2) / math.hypot(s1, s2):.1f} standard errors)"
                    )
            else:
                warnings.append("noise probes in only one half of the window: no noise-trend test")
        elif not diverged:
            warnings.append("fewer than 2 noise probes in the window: no noise-trend test")

        out["stationary"] = not reasons
        out["reasons"] = reasons
        out["warnings"] = warnings
        return out

    def summary(self, window_start: int | None = None) -> str:
        """A few human-readable lines: the measured state, theory, and the verdict."""
        if not self._steps:
            return f"ThermoMonitor({self.protocol}, d={self.dim}): no steps recorded"
        s = self.stationary_state(window_start)
        hyp = ", ".join(f"{k}={v:g}" for k, v in self.hyper.items())
        if self.optimizer != "sgd":
            betas = f"beta={self.momentum:g}" if self.beta2 is None else (
                f"beta1={self.momentum:g}, beta2={self.beta2:g}")
            hyp = f"{self.optimizer}, {hyp}, {betas}"

        def pm(key: str) -> str:
            v, se = s[key], s.get(key + "_se", float("nan"))
            if not np.isfinite(v):
                return "n/a"
            return f"{v:.4g}" if not (np.isfinite(se) and se > 0) else f"{v:.4g} ± {se:.2g}"

        lines = [
            f"ThermoMonitor [{self.protocol}: {hyp}, d={self.dim}] steps "
            f"{self._steps[0]}..{s['window_end']}, window from {s['window_start']} "
            f"({s['n_records']} records, {s['n_noise']} noise probes, "
            f"{s['n_snapshots']} snapshots)",
            f"  T = {pm('temperature')}   p = {pm('pressure')}   V = {pm('volume')}   "
            f"U = {pm('energy')}   S = {pm('entropy')}",
            f"  sigma2 = {pm('sigma2')}   tr Sigma = {pm('trace_sigma')}   "
            f"|grad L|^2 = {pm('grad_norm2')}",
        ]
        if self.protocol == "sphere":
            lines.append(
                f"  pressure {pm('pressure')} vs SDE {pm('pressure_sde')}, "
                f"discrete {pm('pressure_discrete')}"
            )
        else:
            lines.append(
                f"  radius {pm('radius')} vs SDE {pm('radius_sde')}, discrete "
                f"{pm('radius_discrete')}; relaxation time {s['relaxation_time']:.3g} steps "
                f"(window {s['window_tau']:.3g} tau)"
            )
        if s["stationary"]:
            lines.append("  stationary: yes")
        else:
            lines.append("  stationary: NO (" + "; ".join(s["reasons"]) + ")")
        return "\n".join(lines)

    # -- attaching to a training loop ----------------------------------------------------------

    @classmethod
    def attach(
        cls,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        loss_fn: LossFn | None = None,
        x: Tensor | None = None,
        y: Tensor | None = None,
        queue_capacity: int = 1000,
        params: Sequence[Tensor] | None = None,
        group: int | None = None,
        n_batches: int = 64,
        batch_size: int = 128,
        seed: int = 0,
        snapshot_every: int | None = None,
        probe_every: int | None = None,
        dtype=np.float32,
        criteria: StationarityCriteria | None = None,
    ) -> AttachedMonitor:
        """A monitor wired to ``model`` and ``optimizer`` (see `AttachedMonitor`).

        ``optimizer``: a thermosgd `FixedLR` / `FixedELR` / `FixedSphere` / `MomentumLR` /
        `AdamWLR` (protocol, optimizer, hyperparameters and the SI group ``group``, default the
        first SI group, are read from it) or a plain ``torch.optim.SGD``, with or without
        heavy-ball momentum (dampening 0, no Nesterov) (protocol "lr" with its lr and
        weight_decay; the SI group is ``params``, default ``si_parameters(model)``, and must
        be one of its param groups' parameters). ``loss_fn``, ``x``, ``y`` (the training set)
        enable noise probes of ``n_batches`` x ``batch_size`` from a generator seeded ``seed``.
        ``snapshot_every`` / ``probe_every``: ``observe(step, ...)`` then also pushes a
        snapshot / probes the noise when ``step`` is a multiple.
        """
        from thermosgd.protocols import AdamWLR, FixedELR, FixedLR, FixedSphere, MomentumLR

        betas: dict[str, Any] = {}
        if isinstance(optimizer, (FixedLR, FixedELR, FixedSphere, MomentumLR, AdamWLR)):
            si = optimizer.si_groups
            if not si:
                raise ValueError("the optimizer has no SI param group")
            gi = si[0] if group is None else group
            if gi not in si:
                raise ValueError(
                    f"group {gi} is not an SI param group of the optimizer (SI groups: {si})"
                )
            pg = optimizer.param_groups[gi]
            if params is not None:
                ids = {id(p) for p in pg["params"]}
                if {id(p) for p in params} != ids:
                    raise ValueError("params must be exactly the optimizer's SI group")
            gparams = list(pg["params"])
            protocol = optimizer.protocol
            hyper = {k: pg[k] for k in _NEEDS[protocol]}
            kind = "protocol"
            if isinstance(optimizer, MomentumLR):
                betas = {"optimizer": "momentum", "momentum": pg["momentum"]}
            elif isinstance(optimizer, AdamWLR):
                betas = {"optimizer": "adamw", "momentum": pg["beta1"], "beta2": pg["beta2"]}
        elif type(optimizer) is torch.optim.SGD:
            if params is None:
                from thermosgd.models import si_parameters

                params = si_parameters(model)
            gparams = [params] if isinstance(params, Tensor) else list(params)
            ids = {id(p) for p in gparams}
            matches = [
                i
                for i, g in enumerate(optimizer.param_groups)
                if ids <= {id(p) for p in g["params"]}
            ]
            if not matches:
                raise ValueError(
                    "params (the SI group) must all belong to one param group of the SGD optimizer"
                )
            gi = matches[0] if group is None else group
            pg = optimizer.param_groups[gi]
            if pg.get("nesterov", False) or (pg.get("momentum", 0) and pg.get("dampening", 0)):
                raise ValueError(
                    "SGD with heavy-ball momentum needs dampening=0 and nesterov=False (the "
                    "theory is for SGD / heavy ball + coupled L2)"
                )
            if pg.get("momentum", 0):
                betas = {"optimizer": "momentum", "momentum": float(pg["momentum"])}
            if not pg.get("weight_decay", 0):
                raise ValueError("torch SGD needs weight_decay > 0 for the lr protocol")
            protocol = "lr"
            hyper = {"lr": float(pg["lr"]), "wd": float(pg["weight_decay"])}
            kind = "sgd"
        else:
            raise ValueError(
                "optimizer must be a thermosgd protocol optimizer or torch.optim.SGD, "
                f"got {type(optimizer).__name__} (batched grids: one ThermoMonitor per config)"
            )
        dim = sum(p.numel() for p in gparams)
        mon = cls(
            protocol,
            dim,
            queue_capacity=queue_capacity,
            dtype=dtype,
            criteria=criteria,
            **hyper,
            **betas,
        )
        if (x is None) != (y is None) or (x is not None and loss_fn is None):
            raise ValueError("noise probes need loss_fn, x and y together")
        for name, v in (("snapshot_every", snapshot_every), ("probe_every", probe_every)):
            if v is not None:
                _positive_int(name, v)
        if probe_every is not None and x is None:
            raise ValueError("probe_every needs loss_fn, x and y")
        return AttachedMonitor(
            mon,
            model,
            optimizer,
            gparams,
            gi,
            kind,
            loss_fn,
            x,
            y,
            n_batches,
            batch_size,
            seed,
            snapshot_every,
            probe_every,
        )


@dataclass
class AttachedMonitor:
    """A `ThermoMonitor` wired to a model and optimizer (built by `ThermoMonitor.attach`).

    In the training loop, after each ``optimizer.step()``: ``observe(step, loss)`` (the
    radius before the step and, for the sphere, the pre-projection norm come from the
    optimizer; ``loss`` is the minibatch loss of that step); ``probe_noise(step)`` when loss_fn,
    x, y were given; ``snapshot()`` pushes the SI vector. ``stationary_state`` / ``summary``
    delegate to ``monitor``.
    """

    monitor: ThermoMonitor
    model: nn.Module
    optimizer: torch.optim.Optimizer
    params: list[Tensor]
    group: int
    kind: str
    loss_fn: LossFn | None
    x: Tensor | None
    y: Tensor | None
    n_batches: int
    batch_size: int
    seed: int
    snapshot_every: int | None
    probe_every: int | None
    generator: torch.Generator | None = field(default=None)

    def __post_init__(self) -> None:
        if self.x is not None:
            self.generator = _make_generator(self.seed, self.x.device)

    def observe(self, step: int, loss) -> None:
        """Record step ``step`` (after ``optimizer.step()``); also snapshot / probe on cadence."""
        opt = self.optimizer
        if self.kind == "protocol":
            r = opt.last_radius(self.group)
            if r is None:
                raise ValueError("observe must follow optimizer.step() (no step recorded yet)")
            pn = (
                opt.last_preprojection_norm(self.group)
                if self.monitor.protocol == "sphere"
                else None
            )
        else:
            with torch.no_grad():
                r = float(sum(p.detach().double().square().sum() for p in self.params).sqrt())
            pn = None
        self.monitor.record_step(step, radius=r, loss=loss, preprojection_norm=pn)
        if self.snapshot_every and step % self.snapshot_every == 0:
            self.snapshot()
        if self.probe_every and step % self.probe_every == 0:
            self.probe_noise(step)

    def probe_noise(self, step: int) -> NoiseEstimate:
        """Estimate the gradient noise at the current weights and record it at ``step``, with
        the group's distance from scale invariance from the same gradients
        (`ThermoMonitor.record_si_distance`)."""
        from thermosgd.scale_invariance import radial_gradient_stats

        if self.x is None:
            raise ValueError("probe_noise needs loss_fn, x and y (pass them to attach)")
        grads, radius = minibatch_gradients(
            self.model,
            self.loss_fn,
            self.x,
            self.y,
            self.params,
            n_batches=self.n_batches,
            batch_size=self.batch_size,
            generator=self.generator,
        )
        est = noise_from_gradients(grads, radius)
        self.monitor.record_noise(step, est)
        w = torch.cat([p.detach().reshape(-1) for p in self.params])
        mean, rms = radial_gradient_stats(grads, w)
        if math.isfinite(float(mean)) and math.isfinite(float(rms)):
            self.monitor.record_si_distance(step, float(mean), float(rms))
        return est

    def snapshot(self) -> None:
        """Push the current flattened SI vector into the entropy queue."""
        with torch.no_grad():
            w = torch.cat([p.detach().reshape(-1) for p in self.params])
        if not torch.isfinite(w).all():
            return  # a diverged run: nothing sensible to store; record_step flags it
        self.monitor.push_snapshot(w)

    def stationary_state(self, window_start: int | None = None, **kw) -> dict:
        return self.monitor.stationary_state(window_start, **kw)

    def summary(self, window_start: int | None = None) -> str:
        return self.monitor.summary(window_start)
