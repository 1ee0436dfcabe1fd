"""The snapshot queue of the k-NN entropy, bounded in memory at any dimension d.

`EntropyQueue(capacity, dim, memory_budget=...)` keeps the last ``capacity`` weight snapshots
w_t in R^d (a preallocated ring buffer; ``clear()`` restarts it without allocating) and their
norms r_t = |w_t| in float64, and computes the direction entropy on S^{d-1} (chord k-NN,
`thermosgd.estimators.entropy`) and the full entropy S = S_dir + (d-1) mean log r.

Storage (``storage="auto"``, the default, picks the first that fits ``memory_budget``, default
256 MiB, counted as `EntropyQueue.nbytes`):

* ``"exact"``: the snapshots themselves in ``dtype`` (float32 default): capacity * d * 4 bytes
  (1,000 x 3,072 float32: 12 MiB). The entropies are the exact estimators of
  `sphere_entropy`, unchanged.
* ``"sketch"``: a CountSketch (feature hashing) of each direction, y_t = S u_t, u_t = w_t/r_t,
  with S the k x d matrix S_{b j} = s_j [h(j) = b], h(j) uniform in {0..k-1} and s_j = +-1
  (seeded, stored as one int32 code per coordinate: 4 d bytes), in float32: capacity * k * 4
  bytes, stored as y_t - y_ref (y_ref: the first push since the start or `clear`, float64),
  so that the rows are centred and the Gram matrix needs no centred copy (`chord_entropy`
  with centred=True): summary() adds one Gram block, not a second copy of the queue.
  k (``sketch_dim``) is the largest multiple of 64 that fits the budget. A push costs O(d)
  time and no O(d) temporary; the entropy costs O(capacity^2 k) instead of O(capacity^2 d).
  N = 4,000 snapshots at d = 1e7 fit 256 MiB with k = 14,208 (see
  benchmarks/bench_snapshot_queue.py for the measured memory and accuracy).

What the sketch does to the estimator. For a fixed x (here u_i - u_j), E|Sx|^2 = |x|^2 and
Var |Sx|^2 = (2/k) (|x|^4 - sum_j x_j^4) <= 2 |x|^4 / k (tests/estimators/test_snapshots.py
checks both against a brute-force dense S), so a sketched chord distance is the exact one times
1 + delta, E log(1 + delta) ~ -1/(2k), sd(log(1 + delta)) ~ (2k)^(-1/2), nearly independent
between pairs (Cov(|Sx|^2, |Sy|^2) = (2/k)((x.y)^2 - sum_j x_j^2 y_j^2)). The chord k-NN entropy
H = psi(N) - psi(k_nn) + log V_m + m mean_i log eps_i (m = d - 1, `chord_entropy`) keeps the
exact m and constants and uses the sketched eps_i, so

    H_sketch - H_exact = m mean_i log(eps~_i / eps_i)
                       ~ -m (1/(2k) + c / sqrt(2k)) +- m / sqrt(2 k N),

where c > 0 is the downward bias of re-selecting the nearest neighbour among noisy distances
(up to ~sqrt(2 log N) when the sketch noise (2k)^(-1/2) exceeds the relative spread of the true
distances, which is O(d^(-1/2)) in high dimension). The shift is O(m / sqrt(k)) nats in absolute
value (the exact estimator's own bias at N << d is O(m) too: (m/2) log 2 for a Gaussian
cloud), but it depends on the cloud only through the shape of its neighbour-distance
distribution and is therefore nearly the same for every state of a sweep at one (d, capacity,
k): entropy differences and Maxwell slopes keep their accuracy, the error being the noise
term, m / sqrt(k N) per difference (measured: benchmarks/bench_snapshot_queue.py,
docs/benchmarks.md). Compare states with the same capacity and budget (hence the same k and
seed); the jackknife stderr includes the sketch noise of the h_i. The radial term (d-1) mean
log r uses the exact float64 norms in both storages.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numba
import numpy as np

from thermosgd._validate import check_choice, check_int
from thermosgd.estimators.entropy import (
    EntropyEstimate,
    Method,
    _check_dtype,
    chord_entropy,
    sphere_entropy,
)

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "EntropyQueue",
    "countsketch",
    "countsketch_codes",
    "sketch_dim_for_budget",
]

#: default memory budget of a snapshot queue (bytes)
DEFAULT_MEMORY_BUDGET = 256 * 2**20
#: the sketch dimension is a multiple of this, and at least this
_SKETCH_QUANTUM = 64
_STORAGES = ("auto", "exact", "sketch")
Storage = Literal["auto", "exact", "sketch"]
_MIB = 2.0**20


def countsketch_codes(dim: int, sketch_dim: int, seed: int = 0) -> np.ndarray:
    """The hash of a CountSketch R^dim -> R^sketch_dim as int32 codes c_j (dim,): bucket h(j)
    = c_j and sign s_j = +1 if c_j >= 0, else h(j) = ~c_j = -c_j - 1 and s_j = -1; h and s
    independent and uniform, from numpy's default generator seeded ``seed``."""
    dim = check_int("dim", dim, min_val=1)
    sketch_dim = check_int("sketch_dim", sketch_dim, min_val=1, max_val=2**31 - 1)
    seed = check_int("seed", seed, min_val=0)
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, sketch_dim, size=dim, dtype=np.int32)
    neg = rng.integers(0, 2, size=dim, dtype=np.int8).view(bool)
    np.invert(codes, out=codes, where=neg)
    return codes


@numba.njit(cache=True)
def _sketch_kernel(w, codes, out):  # pragma: no cover - compiled
    """out[b] = sum_{j: h(j) = b} s_j w_j (float64); returns |w|^2 accumulated in float64."""
    out[:] = 0.0
    acc = 0.0
    for j in range(w.shape[0]):
        v = np.float64(w[j])
        acc += v * v
        c = codes[j]
        if c >= 0:
            out[c] += v
        else:
            out[~c] -= v
    return acc


def countsketch(w, codes: np.ndarray, sketch_dim: int) -> np.ndarray:
    """CountSketch S w of the rows of w (..., dim): (S w)_b = sum_{j: h(j) = b} s_j w_j, float64
    (..., sketch_dim), with h, s from ``codes`` (`countsketch_codes`)."""
    w = np.asarray(w)
    if w.dtype not in (np.float32, np.float64):
        w = w.astype(np.float64)
    if w.shape[-1] != codes.shape[0]:
        raise ValueError(f"w.shape[-1] == {w.shape[-1]}, must be {codes.shape[0]} (the codes)")
    flat = np.ascontiguousarray(w).reshape((-1, w.shape[-1]))
    out = np.empty((flat.shape[0], sketch_dim))
    for i in range(flat.shape[0]):
        _sketch_kernel(flat[i], codes, out[i])
    return out.reshape((*w.shape[:-1], sketch_dim))


def _exact_nbytes(capacity: int, dim: int, itemsize: int) -> int:
    return capacity * dim * itemsize + 8 * capacity


def _sketch_nbytes(capacity: int, dim: int, sketch_dim: int) -> int:
    return capacity * sketch_dim * 4 + 8 * capacity + 4 * dim + 8 * sketch_dim


def sketch_dim_for_budget(capacity: int, dim: int, memory_budget: int) -> int:
    """The largest multiple k of 64 with capacity * k * 4 (float32 sketches) + 8 * capacity
    (radii) + 4 * dim (hash codes) + 8 k (the reference row) <= memory_budget, capped at dim;
    ValueError below 64."""
    free = memory_budget - 8 * capacity - 4 * dim
    k = (free // (4 * capacity + 8)) // _SKETCH_QUANTUM * _SKETCH_QUANTUM
    if k < _SKETCH_QUANTUM:
        need = _sketch_nbytes(capacity, dim, _SKETCH_QUANTUM)
        raise ValueError(f"memory_budget == {memory_budget}, must be >= {need} for "
                         f"capacity={capacity}, dim={dim} (a {_SKETCH_QUANTUM}-dim sketch)")
    return int(min(k, dim))


class EntropyQueue:
    """Bounded FIFO of weight snapshots (preallocated ring buffer of ``capacity`` rows) within
    a memory budget; see the module docstring for the storages and what a sketch changes.

    push(w) stores a 1-D numpy array or torch tensor of length dim (finite, nonzero); once
    full, the oldest snapshot is overwritten. The norms are kept in float64 at push time.
    ``memory_budget`` (bytes, None: unbounded), ``storage`` ("auto": exact when it fits, else
    sketch), ``sketch_dim`` (default: the largest that fits) and ``seed`` (the sketch's hash).
    """

    def __init__(self, capacity: int, dim: int, dtype=np.float32, *,
                 memory_budget: int | None = DEFAULT_MEMORY_BUDGET, storage: Storage = "auto",
                 sketch_dim: int | None = None, seed: int = 0):
        self.capacity = check_int("capacity", capacity, min_val=3)
        self.dim = check_int("dim", dim, min_val=2)
        self.dtype = _check_dtype(dtype)
        check_choice("storage", storage, _STORAGES)
        self.memory_budget = (None if memory_budget is None
                              else check_int("memory_budget", memory_budget, min_val=1))
        self.seed = check_int("seed", seed, min_val=0)
        exact = _exact_nbytes(self.capacity, self.dim, self.dtype.itemsize)
        fits = self.memory_budget is None or exact <= self.memory_budget
        if storage == "exact" and not fits:
            raise ValueError(
                f"memory_budget == {self.memory_budget}, must be >= {exact} for exact storage "
                f"of capacity={self.capacity} x dim={self.dim} {self.dtype} snapshots (raise "
                "it, pass None, or use storage='sketch')")
        self.storage = "exact" if storage == "exact" or (storage == "auto" and fits) else "sketch"
        self.sketch_dim: int | None = None
        self._codes = None
        if self.storage == "exact":
            self._buf = np.zeros((self.capacity, self.dim), dtype=self.dtype)
        else:
            self.sketch_dim = self._choose_sketch_dim(sketch_dim)
            self._codes = countsketch_codes(self.dim, self.sketch_dim, self.seed)
            self._buf = np.zeros((self.capacity, self.sketch_dim), dtype=np.float32)
            self._row = np.empty(self.sketch_dim)
            self._ref = np.zeros(self.sketch_dim)  # S u of the first push: rows are centred
        self._radius = np.zeros(self.capacity)
        self._next = 0
        self._size = 0

    def _choose_sketch_dim(self, sketch_dim: int | None) -> int:
        if sketch_dim is None:
            if self.memory_budget is None:
                raise ValueError("sketch_dim == None, must be given when memory_budget is None")
            return sketch_dim_for_budget(self.capacity, self.dim, self.memory_budget)
        k = check_int("sketch_dim", sketch_dim, min_val=2)
        need = _sketch_nbytes(self.capacity, self.dim, k)
        if self.memory_budget is not None and need > self.memory_budget:
            raise ValueError(f"sketch_dim == {k}, needs {need} bytes > memory_budget == "
                             f"{self.memory_budget}")
        return k

    @property
    def nbytes(self) -> int:
        """Bytes held: the ring buffer, the float64 radii and (sketch) the int32 hash codes and
        the float64 reference row."""
        extra = 0 if self._codes is None else self._codes.nbytes + self._ref.nbytes
        return int(self._buf.nbytes + self._radius.nbytes + extra)

    def push(self, w) -> None:
        if hasattr(w, "detach"):
            w = w.detach().cpu().numpy()
        w = np.asarray(w)
        if w.shape != (self.dim,):
            raise ValueError(f"w must have shape ({self.dim},), got {w.shape}")
        if w.dtype.kind not in "fiu":
            raise ValueError(f"w must be real numeric, got dtype {w.dtype}")
        if self.storage == "exact":
            w64 = w.astype(np.float64, copy=False)
            r = float(np.sqrt(np.dot(w64, w64)))
        else:
            if w.dtype not in (np.float32, np.float64):
                w = w.astype(np.float64)
            r = math.sqrt(_sketch_kernel(np.ascontiguousarray(w), self._codes, self._row))
        if not np.isfinite(r):
            raise ValueError("w contains NaN or inf")
        if r == 0.0:
            raise ValueError("w is the zero vector (no direction on the sphere)")
        if self.storage == "exact":
            self._buf[self._next] = w
        else:  # stored as S u - S u_ref (u_ref: the first push since the start or clear())
            self._row /= r
            if self._size == 0:
                self._ref[:] = self._row
            self._row -= self._ref
            self._buf[self._next] = self._row
        self._radius[self._next] = r
        self._next = (self._next + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def clear(self) -> None:
        """Empty the queue (O(1): the buffer is kept and overwritten by later pushes)."""
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def full(self) -> bool:
        return self._size == self.capacity

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        """Stored rows and radii in buffer order (no copy when full)."""
        if self.full:
            return self._buf, self._radius
        return self._buf[: self._size], self._radius[: self._size]

    def _ordered(self) -> np.ndarray:
        """Copy of the stored rows in time order (oldest first)."""
        if not self.full:
            return self._buf[: self._size].copy()
        return np.roll(self._buf, -self._next, axis=0)

    def rows(self) -> np.ndarray:
        """The stored rows in time order (oldest first): the snapshots (exact, ``dtype``) or
        the sketched directions S w / |w| (sketch, float64), shape (len, dim or sketch_dim)."""
        if self.storage == "exact":
            return self._ordered()
        return self._ordered() + self._ref

    def snapshots(self) -> np.ndarray:
        """Copy of the stored snapshots in time order (oldest first), shape (len, dim); exact
        storage only."""
        if self.storage != "exact":
            raise ValueError("storage == 'sketch' keeps no snapshots, only their sketches "
                             "(rows())")
        return self.rows()

    def radii(self) -> np.ndarray:
        """Norms of the stored snapshots in time order (float64, computed at push)."""
        if not self.full:
            return self._radius[: self._size].copy()
        return np.roll(self._radius, -self._next)

    def mean_radius(self) -> float:
        """Mean norm of the stored snapshots."""
        if self._size == 0:
            raise ValueError("the queue is empty")
        return float(self._stored()[1].mean())

    def entropy(self, method: Method = "chord", k: int = 1, **kw) -> EntropyEstimate:
        """Entropy of the stored directions (order-independent), see `sphere_entropy`; a
        sketched queue: `chord_entropy` of the sketches with m = dim - 1 (method 'chord' only,
        labelled 'chord-sketch')."""
        buf, _ = self._stored()
        if self.storage == "exact":
            return sphere_entropy(buf, method=method, k=k, **kw)
        if method != "chord":
            raise ValueError(f"method == {method!r}, must be 'chord' for a sketched queue "
                             "(the angle methods need the coordinates)")
        est = chord_entropy(buf, self.dim, k=k, centred=True, **kw)
        return dataclasses.replace(est, method="chord-sketch")

    def full_entropy(self, method: Method = "chord", k: int = 1, *,
                     direction: EntropyEstimate | None = None, **kw) -> EntropyEstimate:
        """S = S_dir + (d-1) mean log r with r the stored radii (float64), see `sphere_entropy`;
        ``direction``: S_dir already computed by `entropy` (not recomputed)."""
        est = self.entropy(method=method, k=k, **kw) if direction is None else direction
        logr = np.log(self._stored()[1])
        m = self.dim - 1
        value = est.value + m * float(logr.mean())
        err = math.hypot(est.stderr, m * float(logr.std(ddof=1)) / math.sqrt(logr.size))
        return EntropyEstimate(value, err, est.n, est.k, est.dim, est.method + "+radius")

    def describe(self) -> str:
        """One line: snapshots kept, storage, bytes used / budget."""
        budget = ("no budget" if self.memory_budget is None
                  else f"{self.memory_budget / _MIB:.4g} MiB budget")
        if self.storage == "exact":
            how = f"exact {self.dtype}"
        else:
            how = (f"CountSketch of the directions to {self.sketch_dim:,} of {self.dim:,} dims "
                   "(float32; entropy differences, not absolute values)")
        return (f"{len(self)} of {self.capacity} snapshots kept, {how}, "
                f"{self.nbytes / _MIB:.4g} MiB of {budget}")

    def state_dict(self) -> dict[str, Any]:
        """The layout and the stored rows and radii (time order; a sketch: its centred rows
        and the reference row); the sketch's hash is regenerated from ``seed``."""
        return {"capacity": self.capacity, "dim": self.dim, "dtype": str(self.dtype),
                "storage": self.storage, "sketch_dim": self.sketch_dim, "seed": self.seed,
                "rows": self._ordered(), "radii": self.radii(),
                "reference": None if self._codes is None else self._ref.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the rows saved by `state_dict` into this queue (same dim, dtype, storage,
        sketch_dim and seed; a smaller capacity keeps the newest rows). No allocation."""
        mine = {"dim": self.dim, "dtype": str(self.dtype), "storage": self.storage,
                "sketch_dim": self.sketch_dim, "seed": self.seed if self._codes is not None
                else state.get("seed")}
        theirs = {k: state.get(k) for k in mine}
        if theirs != mine:
            diff = ", ".join(f"{k} {theirs[k]!r} (this queue: {mine[k]!r})"
                             for k in mine if theirs[k] != mine[k])
            raise ValueError(f"the saved snapshot queue has a different layout: {diff}")
        rows, radii = np.asarray(state["rows"]), np.asarray(state["radii"], dtype=np.float64)
        if rows.shape[0] != radii.shape[0] or rows.shape[1:] != self._buf.shape[1:]:
            raise ValueError(f"saved rows {rows.shape} and radii {radii.shape} do not match "
                             f"the layout (n, {self._buf.shape[1]})")
        n = min(rows.shape[0], self.capacity)
        self._buf[:n] = rows[rows.shape[0] - n:]
        self._radius[:n] = radii[radii.shape[0] - n:]
        if self._codes is not None:
            self._ref[:] = state["reference"]
        self._size, self._next = n, n % self.capacity

