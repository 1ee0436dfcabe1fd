"""Gradient noise of a scale-invariant group from n minibatch gradients (arrays in, arrays out).

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
95% coverage (tests/estimators/test_noise.py, benchmarks/bench_noise_estimator.py,
docs/benchmarks.md): both ~95% on network gradients; on low-dimensional synthetic gradients
with a small mean the jackknife covers 94-99% and the unbiased SE 85-95%. Intervals use
Student's t with n - 1 degrees of freedom.

Gradients may be numpy arrays or torch tensors; tensors are reduced on their own device (torch
is imported only when a tensor is given: this module is numpy-only otherwise). Drawing the
gradients of a network is `thermosgd.nn.probes`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
from scipy import stats

from thermosgd._validate import check_choice, check_int, check_number

__all__ = ["NoiseEstimate", "noise_from_gradients"]

# Rows per block when reducing (n, d) gradients in float64 (bounds the float64 temporaries).
_BLOCK_ELEMENTS = 1 << 22
_ESTIMATE_NAMES = ("trace_sigma", "grad_norm2", "trace_total")
_SE_METHODS = ("jackknife", "unbiased")


def _is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (never imports torch: without it no tensor exists)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


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
        object.__setattr__(self, "n", check_int("n", self.n, min_val=2))

    @property
    def shape(self) -> tuple[int, ...]:
        """Batch shape (() for one group)."""
        return np.shape(self.trace_sigma)

    def sigma2(self, dim: int) -> float | np.ndarray:
        """Per-direction noise variance on the unit sphere: trace_sigma / (dim - 1)."""
        dim = check_int("dim", dim, min_val=2)
        return _scalar_or_array(np.asarray(self.trace_sigma) / (dim - 1))

    def ci(self, name: str, level: float = 0.95) -> tuple[Any, Any]:
        """(lo, hi) = value -/+ t_{n-1, (1+level)/2} * se for name in trace_sigma, grad_norm2,
        trace_total."""
        check_choice("name", name, _ESTIMATE_NAMES)
        check_number("level", level, min_val=0.0, max_val=1.0, include_min=False,
                     include_max=False)
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


def _row_blocks(grads, gbar):
    """Yield (start, centred float64 block c = g[a:b] - gbar) over row blocks of (..., n, d)."""
    n, d = grads.shape[-2:]
    step = max(1, _BLOCK_ELEMENTS // max(d, 1))
    for a in range(0, n, step):
        blk = grads[..., a : a + step, :]
        if _is_tensor(blk):
            import torch

            yield a, blk.to(torch.float64) - gbar.unsqueeze(-2)
        else:
            yield a, blk.astype(np.float64) - gbar[..., None, :]


def _moments(grads, gram: bool):
    """||gbar||^2 (...), q_i = ||c_i||^2 and a_i = <gbar, c_i> (..., n) with c_i = g_i - gbar,
    and (if ``gram``) the centred Gram matrix <c_i, c_j> (..., n, n); float64 numpy.

    torch tensors are reduced on their own device, numpy arrays in numpy, in row blocks.
    """
    torch_in = _is_tensor(grads)
    n = grads.shape[-2]
    if torch_in:
        import torch

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


def _check_grads(grads, se: str) -> tuple[Any, tuple[int, ...]]:
    """(grads as a tensor or numpy array, its shape) after the input checks."""
    if _is_tensor(grads):
        if not grads.is_floating_point():
            raise ValueError(f"grads.dtype == {grads.dtype}, must be a floating-point tensor")
        shape = tuple(grads.shape)
    else:
        if hasattr(grads, "detach"):
            raise ValueError("grads must be a numpy array or a torch tensor")
        grads = np.asarray(grads)
        if grads.dtype.kind not in "fiu":
            raise ValueError(f"grads.dtype == {grads.dtype}, must be a real numeric dtype")
        shape = grads.shape
    if len(shape) < 2:
        raise ValueError(f"grads.shape == {shape}, must be (..., n, d)")
    n, d = shape[-2:]
    check_choice("se", se, _SE_METHODS)
    need = 3 + (se == "unbiased")
    if n < need:
        raise ValueError(f"grads.shape[-2] == {n}, must be >= {need} (n gradients)")
    if d < 1:
        raise ValueError(f"grads.shape[-1] == {d}, must be >= 1 (dimension d)")
    return grads, shape


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
    grads, shape = _check_grads(grads, se)
    n = shape[-2]
    exact = se == "unbiased"
    if _is_tensor(radius):
        radius = radius.detach().cpu().numpy()
    r = np.asarray(radius, dtype=np.float64)
    batch = shape[:-2]
    try:
        ok = np.broadcast_shapes(r.shape, batch) == batch
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"radius.shape == {r.shape}, must broadcast to the batch shape {batch}")
    if np.any(r <= 0):
        raise ValueError(f"radius == {radius!r}, must be > 0")
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
