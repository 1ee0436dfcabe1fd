"""Entropy of weight distributions: exact k-NN (Kozachenko-Leonenko) estimators.

Kozachenko-Leonenko (Kraskov/Goria form) for N points of a density on an m-dimensional
Euclidean space (or a Riemannian manifold of dimension m, locally flat at the scale of the
neighbour distances):

    H = psi(N) - psi(k) + log V_m + m * mean_i log eps_{i,k},   V_m = pi^{m/2} / Gamma(m/2 + 1),

with eps_{i,k} the distance from point i to its k-th nearest neighbour (self excluded). The
constants use the exact digamma function (not the log(N-1) shortcut of the paper's code).

* `nearest_neighbor_distances`: exact k-NN distances. Low dimension (D <= 16): a KD-tree per
  cloud. Otherwise: the points are centred, candidates are selected with a blocked Gram matrix
  (float32 by default) and the candidate distances are recomputed exactly in float64 from the
  coordinates, with a rounding-error bound guaranteeing that no true neighbour is missed.
* `knn_entropy`: the estimator above, batched over leading axes.
* `sphere_entropy`: entropy of directions w/|w| w.r.t. the surface measure of S^{D-1}, either
  from chord distances (intrinsic dimension D-1, no Jacobian) or with the paper's hyperspherical
  angles plus the mean log-Jacobian ("angles"; "scale": the authors' notebook variant, KL on
  the angles standardised per coordinate, plus sum_j log std_j).
* `chord_entropy`: the chord estimator on rows that stand for directions (unit vectors or
  their sketches; the snapshot queue `thermosgd.estimators.snapshots.EntropyQueue` uses it).

Every value comes with a standard error: the delete-one jackknife of the estimator, computed
exactly from the (k+1)-th neighbours (see `_kl_jackknife`); it is slightly conservative and
matches the spread over independent repeats (tested in tests/estimators/test_entropy.py),
unlike the naive std(m log eps)/sqrt(N), which ignores the correlations of neighbour distances.

Duplicates: repeated points (a nearest-neighbour distance of exactly zero; on the sphere,
directions within 8 sqrt(D) float64 ulps) are atoms, for which the differential entropy is -inf
and the estimator is undefined. By default (`duplicates="raise"`) the estimators raise a
ValueError; `duplicates="drop"` keeps the first of each group of repeated points (N becomes the
number of distinct points). `nearest_neighbor_distances` itself returns the
zeros unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from thermosgd._validate import check_choice, check_int

__all__ = [
    "EntropyEstimate",
    "chord_entropy",
    "hyperspherical_angles",
    "knn_entropy",
    "log_unit_ball_volume",
    "nearest_neighbor_distances",
    "sphere_entropy",
]

# KD-tree (exact, float64) up to this ambient dimension; blocked Gram above.
_KDTREE_MAX_DIM = 16
# Elements of one Gram block (float32: 128 MiB); N = 4000 fits in one block (a single SYRK).
_GRAM_BLOCK_ELEMENTS = 1 << 25
# Elements per float64 chunk in the streaming passes (32 MiB).
_CHUNK_ELEMENTS = 1 << 22
# Extra candidates kept per row beyond k (plus one boundary value to verify the selection).
_EXTRA_CANDIDATES = 4
# Clipping threshold of the paper's code for sin(phi_k) in the log-Jacobian (angle method).
ANGLE_SIN_CLIP = 1e-8

Duplicates = Literal["raise", "drop"]
Method = Literal["chord", "angles", "scale"]


# ----------------------------------------------------------------------------- result type


@dataclass(frozen=True)
class EntropyEstimate:
    """An entropy estimate in nats with its standard error.

    value, stderr: float for one cloud, ndarray of the batch shape otherwise.
    n: number of points used per cloud (int, or ndarray if `duplicates="drop"` changed it).
    k: neighbour order. dim: intrinsic dimension m used in the estimator. method: a label.
    """

    value: float | np.ndarray
    stderr: float | np.ndarray
    n: int | np.ndarray
    k: int
    dim: int
    method: str

    def __float__(self) -> float:
        if np.ndim(self.value) != 0:
            raise TypeError(f"float() needs a scalar estimate, got shape {np.shape(self.value)}")
        return float(self.value)


# ----------------------------------------------------------------------------- validation


def _check_points(name: str, x, k: int, min_points: int, finite: bool | None = None) -> np.ndarray:
    """Array (..., N, D) of float32/float64 with N >= min_points. finite=None checks NaN/inf only
    for the KD-tree path (D <= 16); the Gram path and the sphere norms detect them on the fly."""
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype.kind not in "fiu" or x.dtype == np.float16:
        if x.dtype.kind == "f":
            x = x.astype(np.float32)
        elif x.dtype.kind == "b":
            x = x.astype(np.float64)
        else:
            raise ValueError(f"{name} must be a real numeric array, got dtype {x.dtype}")
    if x.dtype.kind in "iu":
        x = x.astype(np.float64)
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (..., N, D), got shape {x.shape}")
    n, d = x.shape[-2:]
    if d < 1:
        raise ValueError(f"{name} has dimension D = 0")
    if n < min_points:
        raise ValueError(
            f"{name} has N = {n} points; need N >= k + {min_points - k} = {min_points} (k = {k})"
        )
    if finite is None:
        finite = d <= _KDTREE_MAX_DIM
    if finite and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


#: the ways to treat repeated points (see the module docstring)
_DUPLICATES = ("raise", "drop")
#: the estimators of `sphere_entropy`
_METHODS = ("chord", "angles", "scale")


def _check_dtype(dtype) -> np.dtype:
    """The floating-point dtype of a Gram matrix or a queue: float32 or float64."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype == {dtype!r}, must be float32 or float64")
    return dt


# ----------------------------------------------------------------------------- kernels

# Reassociation lets the float64 sums vectorize; no other fast-math (NaN/inf propagate).
_FASTMATH = {"reassoc", "contract"}


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _row_norms_kernel(x, out):  # pragma: no cover - compiled
    n, d = x.shape
    for i in numba.prange(n):
        acc = 0.0
        for j in range(d):
            v = np.float64(x[i, j])
            acc += v * v
        out[i] = np.sqrt(acc)


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _centre_kernel(x, s, normalize, c0, q, nrm):  # pragma: no cover - compiled
    """q_i = s_i x_i - c0 (Gram dtype), nrm_i = |q_i|^2; with normalize, s_i := 1/|x_i| first
    (written back to s; a zero or non-finite norm leaves s_i = inf or NaN and skips the row)."""
    n, d = x.shape
    for i in numba.prange(n):
        if normalize:
            acc = 0.0
            for j in range(d):
                v = np.float64(x[i, j])
                acc += v * v
            r = np.sqrt(acc)
            s[i] = 1.0 / r if r != 0.0 else np.inf  # NaN stays NaN
            if not (r > 0.0 and r < np.inf):
                nrm[i] = np.nan
                continue
        si = s[i]
        acc = 0.0
        for j in range(d):
            v = np.float64(x[i, j]) * si - c0[j]
            q[i, j] = v
            acc += v * v
        nrm[i] = acc


@numba.njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _subsample_mean_kernel(x, sub, s, normalize, out):  # pragma: no cover - compiled
    """out = mean over the rows i in sub of s_i x_i (normalize: s_i = 1/|x_i|), in float64; a
    zero or non-finite row makes out non-finite."""
    d = x.shape[1]
    out[:] = 0.0
    for i in sub:
        si = s[i]
        if normalize:
            acc = 0.0
            for j in range(d):
                v = np.float64(x[i, j])
                acc += v * v
            si = 1.0 / np.sqrt(acc)
        for j in range(d):
            out[j] += np.float64(x[i, j]) * si
    out /= sub.shape[0]


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _pair_d2_kernel(x, s, rows, cols, out):  # pragma: no cover - compiled
    d = x.shape[1]
    for p in numba.prange(rows.shape[0]):
        i = rows[p]
        j = cols[p]
        si = s[i]
        sj = s[j]
        acc = 0.0
        for t in range(d):
            v = np.float64(x[i, t]) * si - np.float64(x[j, t]) * sj
            acc += v * v
        out[p] = acc


def _row_norms(x: np.ndarray) -> np.ndarray:
    """Row norms (float64) of x (..., N, D), accumulated in float64 (NaN/inf propagate)."""
    d = x.shape[-1]
    flat = np.ascontiguousarray(x).reshape((-1, d))
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float64)
    out = np.empty(flat.shape[0])
    _row_norms_kernel(flat, out)
    return out.reshape(x.shape[:-1])


# ----------------------------------------------------------------------------- k-NN core


def _knn_kdtree(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN distances (float64) and indices with a KD-tree; zero duplicates kept.

    The query returns the k+1 smallest distances of each point including itself (distance 0).
    With exact duplicates the tree may list a twin before the point itself, so the point is
    removed by index, not by position (the last column where it is absent: then k+1 points
    sit at distance 0 and any k of them are its neighbours). Neighbour indices never name the
    point itself, which the duplicate-dropping loop of `_estimate_batch` relies on.
    """

    x64 = np.ascontiguousarray(x, dtype=np.float64)
    n = x64.shape[0]
    d, i = cKDTree(x64).query(x64, k=k + 1, workers=-1)
    own = i == np.arange(n)[:, None]
    own[~own.any(axis=1), -1] = True
    own &= np.cumsum(own, axis=1) == 1  # a point is listed once, but be safe
    keep = ~own
    return (np.ascontiguousarray(d[keep].reshape(n, k)),
            np.ascontiguousarray(i[keep].reshape(n, k)))


def _merge_topk(best_v, best_i, new_v, new_i, m: int):
    import torch

    v = torch.cat([best_v, new_v], dim=1)
    i = torch.cat([best_i, new_i], dim=1)
    vv, pos = torch.topk(v, m, dim=1, largest=False, sorted=True)
    return vv, torch.gather(i, 1, pos)


def _knn_gram(x: np.ndarray, k: int, scale=None, block_size=None, dtype=None, normalize=False,
              centred=False):
    """Exact k-NN distances (float64, (N, k)) and indices of the rows p_i = scale_i * x_i of x.

    normalize=True: scale_i = 1/|x_i| (unit vectors; the norms are computed in the centring pass
    and returned as a third output; zero or non-finite rows raise ValueError).

    1. Centre: q_i = p_i - c (c = mean of a strided subsample, computed in float64), stored in
       the Gram dtype (float32 by default); n_i = |q_i|^2 in float64.
    2. Blocked Gram G = q q^T (SYRK on diagonal blocks, upper triangle only) gives approximate
       squared distances a_ij = n_i + n_j - 2 G_ij; keep the k + 4 smallest per row plus the next
       one as a boundary.
    3. Rounding-error bound e_ij = (10 + 8 sqrt(D)) u (n_i + n_j) (u = unit roundoff of the Gram
       dtype; the sqrt(D) term is the probabilistic bound of Higham & Mary 2019 for a length-D
       dot product with lambda = 8, the constant covers rounding q and forming a_ij). With U_i the
       k-th smallest a_ij + e_ij, the true k nearest neighbours are among {j: a_ij - e_ij <= U_i}.
       If the boundary value does not clear U_i, the row is redone against all points.
    4. The candidate distances are recomputed exactly in float64 from the coordinates (the
       difference p_i - p_j, no cancellation); the k smallest are returned, sorted.

    centred=True (no scale, no normalize, x already in the Gram dtype and centred by the
    caller, e.g. the sketched snapshot queue): step 1 uses x itself, no copy.
    """
    import torch

    n, d = x.shape
    gdt = _check_dtype(np.float32 if dtype is None else dtype)
    tdt = torch.float32 if gdt == np.float32 else torch.float64
    if block_size is None:
        block_size = max(256, _GRAM_BLOCK_ELEMENTS // n)
    else:
        check_int("block_size", block_size, min_val=1)
    bs = int(min(block_size, n))

    x = np.ascontiguousarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    s = np.ones(n) if scale is None else np.array(scale, dtype=np.float64)

    # 1. centre (fused float64 kernel: q_i = s_i x_i - c0 stored in the Gram dtype, n_i = |q_i|^2;
    # c0 is streamed from the rows of x: no float64 copy of the subsample)
    if centred and scale is None and not normalize and x.dtype == gdt:
        qn = x
        nr = _row_norms(x) ** 2
    else:
        sub = np.arange(0, n, max(1, n // 512))
        c0 = np.empty(d)
        _subsample_mean_kernel(x, sub, s, normalize, c0)
        if not np.isfinite(c0).all():  # a row is zero or non-finite: let the kernel report it
            c0 = np.zeros(d)
        qn = np.empty((n, d), dtype=gdt)
        nr = np.empty(n)
        _centre_kernel(x, s, normalize, c0, qn, nr)
    if not np.isfinite(nr).all():
        if normalize and np.any(s == np.inf):
            nzero = int(np.count_nonzero(s == np.inf))
            raise ValueError(f"w has {nzero} zero vectors (no direction)")
        name = "w" if normalize else "x"
        raise ValueError(f"{name} contains NaN or inf (or values too large to square in float64)")
    nq = torch.from_numpy(nr).to(tdt)

    # 2. blocked Gram, running top-(m+1)
    m = min(k + _EXTRA_CANDIDATES, n - 1)
    keep = min(m + 1, n - 1)  # the (m+1)-th is the boundary; none if keep == n - 1
    inf = float("inf")
    best_v = torch.full((n, keep), inf, dtype=tdt)
    best_i = torch.full((n, keep), -1, dtype=torch.int64)
    for a in range(0, n, bs):
        b = min(n, a + bs)
        blk = qn[a:b]
        g = torch.from_numpy(blk @ blk.T)  # SYRK (numpy detects x @ x.T)
        g.mul_(-2.0).add_(nq[a:b, None]).add_(nq[None, a:b])
        g.fill_diagonal_(inf)
        kk = min(keep, b - a)
        v, i = torch.topk(g, kk, dim=1, largest=False)
        best_v[a:b], best_i[a:b] = _merge_topk(best_v[a:b], best_i[a:b], v, i + a, keep)
        if b < n:
            g = torch.from_numpy(blk @ qn[b:].T)
            g.mul_(-2.0).add_(nq[a:b, None]).add_(nq[None, b:])
            v, i = torch.topk(g, min(keep, n - b), dim=1, largest=False)
            best_v[a:b], best_i[a:b] = _merge_topk(best_v[a:b], best_i[a:b], v, i + b, keep)
            v, i = torch.topk(g, min(keep, b - a), dim=0, largest=False)
            best_v[b:], best_i[b:] = _merge_topk(
                best_v[b:], best_i[b:], v.T.contiguous(), i.T.contiguous() + a, keep
            )
        del g

    # 3. candidate sets with the rounding-error bound
    u = float(np.finfo(gdt).eps) / 2.0
    tol = (10.0 + 8.0 * math.sqrt(d)) * u
    av = best_v.numpy().astype(np.float64)
    ai = best_i.numpy()
    has_boundary = keep == m + 1
    top_v, top_i = (av[:, :m], ai[:, :m]) if has_boundary else (av, ai)
    e = tol * (nr[:, None] + nr[top_i])
    upper = np.partition(top_v + e, k - 1, axis=1)[:, k - 1]
    cand = top_v - e <= upper[:, None]
    if has_boundary:
        bad = av[:, m] - tol * (nr + nr.max()) <= upper
    else:
        bad = np.zeros(n, dtype=bool)
    rows_l = [np.broadcast_to(np.arange(n)[:, None], top_i.shape)[cand & ~bad[:, None]]]
    cols_l = [top_i[cand & ~bad[:, None]]]
    bad_rows = np.flatnonzero(bad)  # rare: ambiguous beyond the kept candidates
    step = max(1, _CHUNK_ELEMENTS // n)
    for a in range(0, bad_rows.size, step):
        rr = bad_rows[a : a + step]
        arow = nr[rr, None] + nr[None, :] - 2.0 * (qn[rr] @ qn.T).astype(np.float64)
        arow[np.arange(rr.size), rr] = np.inf
        erow = tol * (nr[rr, None] + nr[None, :])
        up = np.partition(arow + erow, k - 1, axis=1)[:, k - 1]
        ri, js = np.nonzero(arow - erow <= up[:, None])
        rows_l.append(rr[ri])
        cols_l.append(js)
    rows = np.concatenate(rows_l).astype(np.int64)
    cols = np.concatenate(cols_l).astype(np.int64)

    # 4. exact float64 distances of the unique candidate pairs
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    key, inv = np.unique(lo * n + hi, return_inverse=True)
    d2 = np.empty(key.size)
    _pair_d2_kernel(x, s, key // n, key % n, d2)
    d2 = d2[inv.ravel()]
    order = np.lexsort((d2, rows))
    rows, cols, d2 = rows[order], cols[order], d2[order]
    start = np.searchsorted(rows, np.arange(n))
    pos = np.arange(rows.size) - start[rows]
    sel = pos < k
    out = np.empty((n, k))
    idx = np.empty((n, k), dtype=np.int64)
    out[rows[sel], pos[sel]] = np.sqrt(d2[sel])
    idx[rows[sel], pos[sel]] = cols[sel]
    if normalize:
        return out, idx, 1.0 / s
    return out, idx


def _knn_one(x: np.ndarray, k: int, scale=None, block_size=None, dtype=None, centred=False):
    """(distances, indices) of the k nearest neighbours of each row of x (N, D)."""
    if x.shape[1] <= _KDTREE_MAX_DIM:
        if scale is not None:
            x = np.asarray(x, dtype=np.float64) * scale[:, None]
        return _knn_kdtree(x, k)
    return _knn_gram(x, k, scale=scale, block_size=block_size, dtype=dtype, centred=centred)


def nearest_neighbor_distances(x, k: int = 1, *, block_size=None, dtype=None) -> np.ndarray:
    """Exact Euclidean distances from each row of x (..., N, D) to its k nearest other rows.

    Returns float64 (..., N, k), sorted ascending. For D <= 16 a KD-tree (float64); otherwise
    a centred, blocked Gram matrix in `dtype` (float32 default, or float64) selects candidates
    whose distances are then recomputed exactly in float64 from the coordinates, with a
    rounding-error bound that guarantees no neighbour is missed (see `_knn_gram`). Memory:
    one Gram block of block_size x N (default: about 2^25 elements) plus a copy of x in `dtype`.
    Duplicate points give exact zero distances (no clipping).
    """
    k = check_int("k", k, min_val=1)
    x = _check_points("x", x, k, k + 1)
    lead = x.shape[:-2]
    n, d = x.shape[-2:]
    flat = x.reshape((-1, n, d))
    out = np.empty((flat.shape[0], n, k))
    for b in range(flat.shape[0]):
        out[b] = _knn_one(flat[b], k, block_size=block_size, dtype=dtype)[0]
    return out.reshape((*lead, n, k))


# ----------------------------------------------------------------------------- estimators


def log_unit_ball_volume(dim: int) -> float:
    """log V_m = (m/2) log pi - log Gamma(m/2 + 1), the volume of the unit ball in R^m."""
    return 0.5 * dim * math.log(math.pi) - float(gammaln(0.5 * dim + 1.0))


def _kl_jackknife(dist: np.ndarray, idx: np.ndarray, k: int, dim: int, extra=None):
    """(H, stderr) of one cloud from its k+1 nearest-neighbour distances and indices (N, k+1).

    H = psi(N) - psi(k) + log V_m + mean_i h_i, h_i = m log eps_{i,k} (+ extra_i).
    stderr: delete-one jackknife, exact for this estimator: removing point j drops h_j and moves
    every point i that has j among its k nearest neighbours to its (k+1)-th neighbour,
    H_(-j) = psi(N-1) - psi(k) + log V_m + (sum_i h_i - h_j + m sum_{i: j in kNN(i)}
    log(eps_{i,k+1}/eps_{i,k})) / (N-1), and var = (N-1)/N sum_j (H_(-j) - mean H_(-)).
    By the Efron-Stein inequality this is conservative in expectation; it captures the strong
    correlations of nearest-neighbour distances (hubs in high dimension), which the naive
    std(h)/sqrt(N) misses by up to 2x at D = 1000. Measured: repeat spread / stderr = 0.6-1.1.
    """
    n = dist.shape[0]
    le = np.log(dist[:, k - 1])
    h = dim * le
    if extra is not None:
        h = h + extra
    lv = log_unit_ball_volume(dim)
    value = float(digamma(n) - digamma(k)) + lv + float(h.mean())
    gain = dim * (np.log(dist[:, k]) - le)
    moved = np.bincount(idx[:, :k].ravel(), weights=np.repeat(gain, k), minlength=n)
    hj = (h.sum() - h + moved) / (n - 1)  # constants drop out of the variance
    var = (n - 1) / n * float(np.sum((hj - hj.mean()) ** 2))
    return value, math.sqrt(var)


def _estimate_batch(x, k, dim, method, one, duplicates, name="x") -> EntropyEstimate:
    """Loop over the leading axes of x (..., N, D).

    one(cloud, b) -> (dist, idx, extra, tiny): the k+1 nearest-neighbour distances and indices,
    the per-point extra summand (or None) and the duplicate threshold; b is the flat cloud index
    (None after dropping duplicates); points with a 1-NN distance <= tiny are duplicates."""
    lead = x.shape[:-2]
    n, d = x.shape[-2:]
    flat = x.reshape((-1, n, d))
    vals = np.empty(flat.shape[0])
    errs = np.empty(flat.shape[0])
    ns = np.empty(flat.shape[0], dtype=np.int64)
    for b in range(flat.shape[0]):
        cloud = flat[b]
        dist, idx, extra, tiny = one(cloud, b)
        while True:
            dup = dist <= tiny
            ndup = int(np.count_nonzero(dup[:, 0]))
            if not ndup:
                break
            if duplicates == "raise":
                raise ValueError(
                    f"{name} has {ndup} points with a duplicate (nearest-neighbour distance <= "
                    f"{tiny:.3g}); the k-NN estimator needs distinct points: pass "
                    "duplicates='drop' or remove them"
                )
            # drop every point with a duplicate of lower index among its neighbours: keeps
            # the first of each group (groups larger than k+2 take a few rounds)
            drop = np.any(dup & (idx < np.arange(idx.shape[0])[:, None]), axis=1)
            cloud = cloud[~drop]
            if cloud.shape[0] < k + 2:
                raise ValueError(
                    f"{name} has only {cloud.shape[0]} distinct points; need N >= k + 2 = {k + 2}"
                )
            dist, idx, extra, tiny = one(cloud, None)
        vals[b], errs[b] = _kl_jackknife(dist, idx, k, dim, extra)
        ns[b] = dist.shape[0]
    if flat.shape[0] == 1 and not lead:
        return EntropyEstimate(float(vals[0]), float(errs[0]), int(ns[0]), k, dim, method)
    nn = int(ns[0]) if np.all(ns == ns[0]) else ns.reshape(lead)
    return EntropyEstimate(vals.reshape(lead), errs.reshape(lead), nn, k, dim, method)


def knn_entropy(
    x, k: int = 1, dim: int | None = None, *, duplicates: Duplicates = "raise"
) -> EntropyEstimate:
    """Kozachenko-Leonenko differential entropy (nats) of the rows of x (..., N, D).

    H = psi(N) - psi(k) + log V_m + m mean_i log eps_{i,k}, V_m = pi^{m/2}/Gamma(m/2+1), m = dim
    (default: the ambient D; use the intrinsic dimension for points on an m-manifold).
    Batched over the leading axes; value and stderr have their shape.
    Duplicates (zero distances): ValueError, or duplicates='drop' keeps one copy of each.
    """
    k = check_int("k", k, min_val=1)
    duplicates = check_choice("duplicates", duplicates, _DUPLICATES)
    x = _check_points("x", x, k, k + 2)
    # an intrinsic dimension m <= the ambient D
    dim = x.shape[-1] if dim is None else check_int("dim", dim, min_val=1, max_val=x.shape[-1])

    def one(cloud, _):
        return (*_knn_one(cloud, k + 1), None, 0.0)

    return _estimate_batch(x, k, dim, "knn", one, duplicates)


def chord_entropy(
    y, dim: int, k: int = 1, *, duplicates: Duplicates = "raise", block_size=None, dtype=None,
    centred: bool = False,
) -> EntropyEstimate:
    """Kozachenko-Leonenko entropy (nats, surface measure of S^{dim-1}) of directions given by
    rows y (..., N, D') whose Euclidean distances stand for their chord distances: unit vectors
    u_i (D' = dim), or distance-preserving sketches of them (`thermosgd.estimators.snapshots`,
    D' < dim). H = psi(N) - psi(k) + log V_m + m mean_i log eps_{i,k}, m = dim - 1, with eps
    from the rows as given (no normalisation); jackknife stderr and duplicates (eps <=
    8 sqrt(D') eps_64) as in `sphere_entropy`. Batched over the leading axes. centred=True:
    the rows are already centred (near their mean, which bounds the Gram's rounding), so the
    Gram path uses them without a centred copy (float32 rows: no copy at all).
    """
    k = check_int("k", k, min_val=1)
    duplicates = check_choice("duplicates", duplicates, _DUPLICATES)
    dim = check_int("dim", dim, min_val=2)
    y = _check_points("y", y, k, k + 2)
    tiny = 8.0 * math.sqrt(y.shape[-1]) * float(np.finfo(np.float64).eps)

    def one(cloud, _):
        return (*_knn_one(cloud, k + 1, block_size=block_size, dtype=dtype, centred=centred),
                None, tiny)

    return _estimate_batch(y, k, dim - 1, "chord", one, duplicates, name="y")


def hyperspherical_angles(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angles (N, D-1) and log sin(phi_k), k = 1..D-2 (N, D-2), of the rows of w (N, D), float64.

    phi_k = atan2(rho_{k+1}, x_k) in [0, pi] for k <= D-2 with rho_k = |x_{k:}| (1-based), and the
    last angle phi_{D-1} = atan2(x_D, x_{D-1}) in (-pi, pi]. log sin phi_k = log(rho_{k+1}/rho_k),
    computed from the norms (no sin(atan2(...)) round trip) and clipped below at log(1e-8) as in
    the paper's code.
    """
    w = np.asarray(w, dtype=np.float64)
    n, d = w.shape
    sq = w * w
    rho = np.sqrt(np.cumsum(sq[:, ::-1], axis=1)[:, ::-1])  # rho[:, j] = |w[:, j:]|
    ang = np.empty((n, d - 1))
    ang[:, : d - 2] = np.arctan2(rho[:, 1 : d - 1], w[:, : d - 2])
    ang[:, d - 2] = np.arctan2(w[:, d - 1], w[:, d - 2])
    with np.errstate(divide="ignore"):
        logsin = np.log(rho[:, 1 : d - 1]) - np.log(rho[:, : d - 2])
    np.maximum(logsin, math.log(ANGLE_SIN_CLIP), out=logsin)
    return ang, logsin


def _angles_and_log_jacobian(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angles (N, D-1) and log-Jacobians sum_{k=1}^{D-2} (D-1-k) log sin phi_k (N,), in row
    chunks so that only the angles are held in full."""
    n, d = w.shape
    mult = np.arange(d - 2, 0, -1, dtype=np.float64)  # D-1-k for k = 1..D-2
    ang = np.empty((n, d - 1))
    jac = np.empty(n)
    step = max(1, _CHUNK_ELEMENTS // d)
    for a in range(0, n, step):
        ang[a : a + step], logsin = hyperspherical_angles(w[a : a + step])
        jac[a : a + step] = logsin @ mult
    return ang, jac


def _standardize_angles(ang: np.ndarray, const_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """In place: ang (N, D-1) -> z = (ang - mean) / s per column, s = std (ddof=1, as torch's
    default std in the authors' notebook). Returns (z, log s). A column with s <= const_tol (a
    constant angle, up to the rounding of its mean) cannot be standardised: ValueError."""
    mean = ang.mean(axis=0)
    ang -= mean
    s = np.sqrt(np.einsum("ij,ij->j", ang, ang) / (ang.shape[0] - 1))
    flat = np.flatnonzero(~(s > const_tol))
    if flat.size:
        names = ", ".join(f"phi_{j + 1}" for j in flat[:5]) + (", ..." if flat.size > 5 else "")
        raise ValueError(
            f"method='scale': angle coordinate(s) {names} constant over the cloud (std <= "
            f"{const_tol:.3g}); per-coordinate standardisation is undefined: use "
            "method='angles' or 'chord'"
        )
    ang /= s
    return ang, np.log(s)


def _check_radii(r: np.ndarray) -> None:
    if not np.isfinite(r).all():
        raise ValueError("w contains NaN or inf (or values too large to square in float64)")
    if np.any(r == 0):
        raise ValueError(f"w has {int(np.count_nonzero(r == 0))} zero vectors (no direction)")


def sphere_entropy(
    w,
    method: Method = "chord",
    k: int = 1,
    *,
    full: bool = False,
    duplicates: Duplicates = "raise",
    block_size=None,
    dtype=None,
) -> EntropyEstimate:
    """Entropy (nats) of the directions w/|w| of the rows of w (..., N, D), w.r.t. the surface
    measure of the unit sphere S^{D-1}; batched over leading axes.

    method="chord": Kozachenko-Leonenko on the chord distances |u_i - u_j| of the unit vectors,
    intrinsic dimension m = D-1 (no coordinates, no Jacobian; chord = geodesic to O(eps^3)).
    method="angles" (the paper's): hyperspherical angles phi (see `hyperspherical_angles`),
    Euclidean KL in angle space (m = D-1; the periodic last angle is treated as Euclidean, as in
    the paper), plus the mean log-Jacobian mean_i sum_{k=1}^{D-2} (D-1-k) log sin phi_{i,k}
    (sin clipped at 1e-8 as in the paper; computed in float64, no distance clipping).
    method="scale" (the authors' isotropic-model notebook, `mode='scale'`): the same angles,
    each coordinate centred and divided by its std over the cloud, s_j (ddof=1), z_ij =
    (phi_ij - mean_i phi_ij)/s_j; then H = KL(z; m = D-1) + sum_j log s_j + the same mean
    log-Jacobian. The notebook does not clip sin phi_k; here it is clipped at 1e-8 as for
    "angles" (a difference only for |sin| < 1e-8). Constants psi(N) - psi(k) as everywhere (the
    notebook: log(N-1) + gamma_E, 1/(2N) smaller). The stderr is the jackknife of the KL part
    with the s_j held fixed (their sampling error, O(1/sqrt(N)) per coordinate on sum log s_j,
    is not included). KL + sum_j log s_j is unchanged when all s_j are scaled by one factor, so
    the ddof convention cancels. A constant angle coordinate (std 0) raises ValueError.
    full=True adds (D-1) mean_i log |w_i| (the exact mean of the log of the surface-measure
    Jacobian r^{D-1}; the paper uses (D-1) log mean_i |w_i|, which differs by O(Var r / r^2)),
    giving the entropy on the sphere of the snapshots' radius; the radial term's stderr is
    added in quadrature.
    Duplicated directions (chord <= 8 sqrt(D) eps_64): ValueError, or duplicates='drop'.
    """
    k = check_int("k", k, min_val=1)
    duplicates = check_choice("duplicates", duplicates, _DUPLICATES)
    check_choice("method", method, _METHODS)
    w = _check_points("w", w, k, k + 2, finite=False)
    d = w.shape[-1]
    if d < 2:
        raise ValueError(f"w must have dimension D >= 2 for the sphere S^(D-1), got D = {d}")
    n = w.shape[-2]
    gram_chord = method == "chord" and d > _KDTREE_MAX_DIM
    if gram_chord:
        r = np.empty(w.shape[:-1])  # filled by the centring pass of each cloud
    else:
        r = _row_norms(w)
        _check_radii(r)
    r_flat = r.reshape((-1, n))
    m = d - 1
    tiny = 8.0 * math.sqrt(d) * float(np.finfo(np.float64).eps)

    if method == "chord":

        def one(cloud, b):
            if gram_chord:
                dist, idx, rb = _knn_gram(
                    cloud, k + 1, block_size=block_size, dtype=dtype, normalize=True
                )
                if b is not None:
                    r_flat[b] = rb
            else:
                rb = _row_norms(cloud) if b is None else r_flat[b]
                dist, idx = _knn_kdtree(cloud.astype(np.float64) / rb[:, None], k + 1)
            return dist, idx, None, tiny

    else:
        def one(cloud, _):
            ang, extra = _angles_and_log_jacobian(cloud)
            dup_tol = math.pi * tiny  # angles are <= pi in magnitude
            if method == "scale":
                # KL is computed on z = (phi - mean)/s; each point's term gets + sum_j log s_j
                # (a constant: it shifts the value and leaves the jackknife, s fixed, unchanged)
                ang, log_s = _standardize_angles(ang, dup_tol)
                extra = extra + float(log_s.sum())
                dup_tol /= math.exp(float(log_s.min()))  # rounding of z: <~ pi eps / min s
            dist, idx = _knn_one(ang, k + 1, block_size=block_size, dtype=dtype)
            return dist, idx, extra, dup_tol

    est = _estimate_batch(w, k, m, method, one, duplicates, name="w")
    if not full:
        return est
    if not isinstance(est.n, int) or est.n != n:
        raise ValueError("full=True with dropped duplicates is ambiguous; remove duplicates first")
    logr = np.log(r)
    radial = m * logr.mean(axis=-1)
    radial_err = m * logr.std(axis=-1, ddof=1) / math.sqrt(n)
    value = est.value + radial
    stderr = np.hypot(est.stderr, radial_err)
    if np.ndim(value) == 0:
        value, stderr = float(value), float(stderr)
    return EntropyEstimate(value, stderr, est.n, k, m, method + "+radius")
