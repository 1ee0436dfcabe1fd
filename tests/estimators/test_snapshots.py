"""Tests of thermosgd.estimators.snapshots: the snapshot queue (FIFO, exact storage), its memory
budget and storage switch, the CountSketch against a dense brute-force matrix and the distance
statistics derived in the module docstring, clear(), state_dict, and the monitor's queue."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from thermosgd.estimators.entropy import chord_entropy, sphere_entropy
from thermosgd.estimators.snapshots import (
    DEFAULT_MEMORY_BUDGET,
    EntropyQueue,
    countsketch,
    countsketch_codes,
    sketch_dim_for_budget,
)
from thermosgd.monitor import ThermoMonitor
from thermosgd.theory import vmf


def dense_sketch(codes: np.ndarray, k: int) -> np.ndarray:
    """Oracle: the k x d CountSketch matrix S_{bj} = s_j [h(j) = b] built entry by entry."""
    d = codes.shape[0]
    s = np.zeros((k, d))
    for j in range(d):
        c = int(codes[j])
        if c >= 0:
            s[c, j] = 1.0
        else:
            s[-c - 1, j] = -1.0
    return s


def pairwise(x: np.ndarray) -> np.ndarray:
    """Oracle: all pairwise distances (i < j) from coordinate differences in float64."""
    x = np.asarray(x, dtype=np.float64)
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
    return d[np.triu_indices(x.shape[0], 1)]


# ----------------------------------------------------------------------------- exact queue


def test_queue_fifo_and_entropy():
    d, cap = 20, 50
    rng = np.random.default_rng(17)
    snaps = vmf.sample(80, rng.standard_normal(d), 200.0, seed=2) * (
        2.0 + 0.1 * rng.standard_normal((80, 1))
    )
    q = EntropyQueue(cap, d, dtype=np.float64)
    assert len(q) == 0 and not q.full and q.storage == "exact"
    for i in range(30):
        q.push(snaps[i] if i % 2 else torch.from_numpy(snaps[i]))
    assert len(q) == 30 and not q.full
    np.testing.assert_array_equal(q.snapshots(), snaps[:30])
    for i in range(30, 80):
        q.push(snaps[i])
    assert len(q) == cap and q.full
    np.testing.assert_array_equal(q.snapshots(), snaps[30:])
    r = np.linalg.norm(snaps[30:], axis=1)
    np.testing.assert_allclose(q.radii(), r, rtol=1e-15)
    assert q.mean_radius() == pytest.approx(r.mean(), rel=1e-14)
    est = q.entropy()
    assert est.value == pytest.approx(sphere_entropy(snaps[30:]).value, abs=1e-9)
    full = q.full_entropy()
    assert full.value == pytest.approx(est.value + (d - 1) * np.log(r).mean(), abs=1e-9)
    again = q.full_entropy(direction=est)  # reuses S_dir: the same number
    assert (again.value, again.stderr) == (full.value, full.stderr)
    assert q.entropy(method="angles").value == pytest.approx(
        sphere_entropy(snaps[30:], method="angles").value, abs=1e-9
    )


def test_queue_float32_storage_and_validation():
    q = EntropyQueue(10, 4)
    assert q._buf.dtype == np.float32 and q._buf.shape == (10, 4)
    q.push(torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        q.push(np.ones(5))
    with pytest.raises(ValueError, match="NaN or inf"):
        q.push(np.array([1.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="zero vector"):
        q.push(np.zeros(4))
    with pytest.raises(ValueError, match="capacity == 2, must be >= 3"):
        EntropyQueue(2, 4)
    with pytest.raises(ValueError, match="dim == 1, must be >= 2"):
        EntropyQueue(10, 1)
    with pytest.raises(ValueError, match=r"dtype == <class 'numpy\.int32'>, must be float32 or"):
        EntropyQueue(10, 4, dtype=np.int32)
    with pytest.raises(ValueError, match="empty"):
        EntropyQueue(10, 4).mean_radius()
    with pytest.raises(ValueError, match="N = 1"):
        q.entropy()
    with pytest.raises(ValueError, match="storage == 'disk', must be one of"):
        EntropyQueue(10, 4, storage="disk")
    with pytest.raises(ValueError, match="memory_budget == 0, must be >= 1"):
        EntropyQueue(10, 4, memory_budget=0)


# ----------------------------------------------------------------------------- budget


def test_budget_and_storage_switch():
    """Exact storage whenever it fits (1,000 x 3,072 float32: 12 MB, the network default);
    one byte less and the queue sketches, with the largest multiple of 64 that fits."""
    q = EntropyQueue(1000, 3072)
    assert q.storage == "exact" and q.sketch_dim is None
    assert q.nbytes == 1000 * 3072 * 4 + 8 * 1000 <= DEFAULT_MEMORY_BUDGET
    exact = 50 * 3000 * 4 + 8 * 50
    assert EntropyQueue(50, 3000, memory_budget=exact).storage == "exact"
    q = EntropyQueue(50, 3000, memory_budget=exact - 1)
    assert q.storage == "sketch" and q.sketch_dim % 64 == 0
    # rows, radii, hash codes, reference row
    assert q.nbytes == 50 * q.sketch_dim * 4 + 8 * 50 + 4 * 3000 + 8 * q.sketch_dim <= exact - 1
    assert 50 * (q.sketch_dim + 64) * 4 + 8 * 50 + 4 * 3000 + 8 * (q.sketch_dim + 64) > exact - 1
    assert q._buf.shape == (50, q.sketch_dim) and q._buf.dtype == np.float32
    for cap, dim, budget in [(4000, 10_000_000, DEFAULT_MEMORY_BUDGET), (1000, 250_000, 2**26),
                             (3, 10**6, 2**23), (200, 5000, 100_000)]:
        q = EntropyQueue(cap, dim, memory_budget=budget)
        assert q.nbytes <= budget, (cap, dim, budget)
    # the target: N = 4000 at d = 1e7 in the default budget
    assert EntropyQueue(4000, 10_000_000).sketch_dim == 14_208
    assert EntropyQueue(10, 4, memory_budget=None).storage == "exact"
    with pytest.raises(ValueError, match=r"memory_budget == 1000, must be >= 4080 for exact"):
        EntropyQueue(10, 100, memory_budget=1000, storage="exact")
    with pytest.raises(ValueError, match=r"memory_budget == 1000, must be >= 3552 for "
                                         r"capacity=10, dim=100 \(a 64-dim sketch\)"):
        EntropyQueue(10, 100, memory_budget=1000)
    with pytest.raises(ValueError, match="sketch_dim == 64, needs 3552 bytes > memory_budget"):
        EntropyQueue(10, 100, memory_budget=3000, storage="sketch", sketch_dim=64)
    with pytest.raises(ValueError, match="sketch_dim == None, must be given"):
        EntropyQueue(10, 100, memory_budget=None, storage="sketch")
    assert sketch_dim_for_budget(10, 100, 10**9) == 100  # capped at dim


# ----------------------------------------------------------------------------- sketch


def test_countsketch_matches_dense_matrix_and_queue_rows():
    d, k = 300, 64
    codes = countsketch_codes(d, k, seed=3)
    s = dense_sketch(codes, k)
    assert np.all(np.abs(s).sum(axis=0) == 1)  # one +-1 per column
    buckets = np.where(codes >= 0, codes, -codes - 1)
    assert buckets.min() >= 0 and buckets.max() < k
    w = np.random.default_rng(0).standard_normal((5, d))
    np.testing.assert_allclose(countsketch(w, codes, k), w @ s.T, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(countsketch_codes(d, k, seed=3), codes)  # seeded
    assert not np.array_equal(countsketch_codes(d, k, seed=4), codes)
    q = EntropyQueue(10, d, storage="sketch", sketch_dim=k, seed=3)
    for row in w:
        q.push(row.astype(np.float32))
    r = np.linalg.norm(w.astype(np.float32).astype(np.float64), axis=1)
    np.testing.assert_allclose(q.radii(), r, rtol=1e-14)
    u = w.astype(np.float32).astype(np.float64) / r[:, None]
    np.testing.assert_allclose(q.rows(), u @ s.T, rtol=0, atol=2e-7)  # float32 storage
    with pytest.raises(ValueError, match="keeps no snapshots"):
        q.snapshots()
    with pytest.raises(ValueError, match="method == 'angles', must be 'chord'"):
        q.entropy(method="angles")


def test_sketch_distance_statistics_over_seeds():
    """For fixed x, y over M = 3000 independent hashes: E|Sx|^2 = |x|^2, Var |Sx|^2 / |x|^4 =
    (2/k)(1 - sum x_j^4 / |x|^4) and Cov(|Sx|^2, |Sy|^2) = (2/k)((x.y)^2 - sum x_j^2 y_j^2)
    (module docstring). Tolerances: the mean within 4 standard errors sqrt(var/M); the
    sample variance and covariance have relative standard errors ~ sqrt(2.2/M) = 2.7% (the
    ratio is nearly chi^2_k/k, excess kurtosis 12/k = 0.19), allowed 15% (5.5 sigma)."""
    d, k, m = 400, 64, 3000
    rng = np.random.default_rng(1)
    x = rng.standard_normal(d)
    x[:5] *= 8.0  # a few large coordinates: sum x^4 / |x|^4 = 0.06, not negligible
    y = 0.8 * x + 0.6 * rng.standard_normal(d) * np.linalg.norm(x) / math.sqrt(d)
    rx, ry = np.empty(m), np.empty(m)
    for seed in range(m):
        codes = countsketch_codes(d, k, seed=seed)
        sx, sy = countsketch(np.stack([x, y]), codes, k)
        rx[seed], ry[seed] = sx @ sx, sy @ sy
    x2, y2 = x @ x, y @ y
    var_x = 2.0 / k * (x2**2 - np.sum(x**4))
    assert abs(rx.mean() - x2) < 4.0 * math.sqrt(var_x / m)
    assert rx.var(ddof=1) == pytest.approx(var_x, rel=0.15)
    assert var_x < 2.0 * x2**2 / k  # never above the Gaussian JL variance
    cov = 2.0 / k * ((x @ y) ** 2 - np.sum(x**2 * y**2))
    assert np.cov(rx, ry)[0, 1] == pytest.approx(cov, rel=0.15)
    assert abs(ry.mean() - y2) < 4.0 * math.sqrt(2.0 / k * y2**2 / m)


def test_sketch_preserves_pairwise_chord_distances():
    """One hash, 300 vMF directions at d = 5000, k = 1024: the 44,850 log ratios of sketched to
    exact chord distances (brute-force numpy) have mean -1/(2k) (+ O(k^-2)) and sd (2k)^-1/2
    = 0.0221 (dense differences: sum x^4/|x|^4 ~ 3/d). The pairs share points, so the mean's
    error is not sd/sqrt(pairs); the per-point sketch errors give ~ sd/sqrt(N) = 0.0013:
    allowed 0.005. The sd within 10% (the correlation between pairs of a common point is
    ((x.y)/|x||y|)^2 ~ 1/4, which barely changes the spread of 44,850 values)."""
    d, k, n = 5000, 1024, 300
    u = vmf.sample(n, np.ones(d), 2.0 * d, seed=11)
    q = EntropyQueue(n, d, storage="sketch", sketch_dim=k, seed=5, memory_budget=None)
    for row in u:
        q.push(row)
    lr = np.log(pairwise(q.rows()) / pairwise(u))
    assert abs(lr.mean() + 1.0 / (2 * k)) < 0.005
    assert lr.std() == pytest.approx(1.0 / math.sqrt(2 * k), rel=0.10)


def test_sketched_entropy_is_the_estimator_on_sketches_and_keeps_differences():
    """The sketched queue's S_dir is chord_entropy of its rows with m = d - 1 (wiring), and
    the difference of S_dir between two vMF states (kappa = d and 4 d, N = 400, d = 4000,
    k = 1024) is the exact estimator's within 2%: the derived noise of a difference is
    m sqrt(2/(2 k N)) ~ 140 nats of a ~5,000-nat difference; measured: 0.2%."""
    d, k, n = 4000, 1024, 400
    out = {}
    for f in (1.0, 4.0):
        u = (vmf.sample(n, np.ones(d), f * d, seed=int(f)) * 3.0).astype(np.float32)
        q = EntropyQueue(n, d, storage="sketch", sketch_dim=k, memory_budget=None)
        for row in u:
            q.push(row)
        est = q.entropy()
        assert est.method == "chord-sketch" and est.dim == d - 1
        assert est.value == chord_entropy(q._stored()[0], d).value
        out[f] = (sphere_entropy(u).value, est.value)
    exact = out[1.0][0] - out[4.0][0]
    sketched = out[1.0][1] - out[4.0][1]
    assert sketched == pytest.approx(exact, rel=0.02)


# ----------------------------------------------------------------------------- clear, state


@pytest.mark.parametrize("storage", ["exact", "sketch"])
def test_clear_is_cheap_and_restarts(storage):
    d = 50
    w = vmf.sample(40, np.ones(d), 100.0, seed=0) * 2.0
    q = EntropyQueue(20, d, storage=storage, sketch_dim=32 if storage == "sketch" else None)
    fresh = EntropyQueue(20, d, storage=storage, sketch_dim=32 if storage == "sketch" else None)
    for row in w[:25]:
        q.push(row)
    buf = q._buf
    q.clear()
    assert len(q) == 0 and not q.full and q._buf is buf  # nothing reallocated
    for row in w[25:]:
        q.push(row)
        fresh.push(row)
    np.testing.assert_array_equal(q.rows(), fresh.rows())
    np.testing.assert_array_equal(q.radii(), fresh.radii())
    assert q.entropy().value == fresh.entropy().value


@pytest.mark.parametrize("storage", ["exact", "sketch"])
def test_state_dict_round_trip(storage):
    d = 60
    w = vmf.sample(35, np.ones(d), 200.0, seed=1) * 1.5
    kw = {"storage": storage, "sketch_dim": 64 if storage == "sketch" else None, "seed": 2}
    q = EntropyQueue(30, d, **kw)
    for row in w:
        q.push(row)
    other = EntropyQueue(30, d, **kw)
    other.push(w[0])
    other.load_state_dict(q.state_dict())
    np.testing.assert_array_equal(other.rows(), q.rows())
    np.testing.assert_array_equal(other.radii(), q.radii())
    assert other.full and other.full_entropy().value == pytest.approx(q.full_entropy().value,
                                                                      abs=1e-9)
    other.push(w[3])  # the ring continues: the oldest saved row is dropped
    q.push(w[3])
    np.testing.assert_array_equal(other.rows(), q.rows())
    small = EntropyQueue(10, d, **kw)  # a smaller capacity keeps the newest rows
    small.load_state_dict(q.state_dict())
    np.testing.assert_array_equal(small.rows(), q.rows()[-10:])
    if storage == "sketch":
        with pytest.raises(ValueError, match=r"different layout: seed 2 \(this queue: 3\)"):
            EntropyQueue(30, d, **{**kw, "seed": 3}).load_state_dict(q.state_dict())
    with pytest.raises(ValueError, match="different layout: dim"):
        EntropyQueue(30, d + 1, **kw).load_state_dict(q.state_dict())


# ----------------------------------------------------------------------------- monitor


def _monitor(**kw) -> ThermoMonitor:
    mon = ThermoMonitor("elr", 500, elr=0.05, wd=0.02, queue_capacity=40, **kw)
    rng = np.random.default_rng(0)
    for t in range(200):
        mon.record_step(t, radius=1.0 + 0.01 * rng.standard_normal(), loss=1.0)
    for row in vmf.sample(40, np.ones(500), 1000.0, seed=4):
        mon.push_snapshot(torch.from_numpy(row * 2.0))
    return mon


def test_monitor_summary_states_the_queue():
    mon = _monitor()
    last = mon.summary().splitlines()[-1]
    assert last == ("  snapshot queue: 40 of 40 snapshots kept, exact float32, 0.0766 MiB of "
                    "256 MiB budget")
    sk = _monitor(memory_budget=40_000)
    assert sk.queue.storage == "sketch" and sk.queue.sketch_dim == 192
    assert sk.summary().splitlines()[-1] == (
        "  snapshot queue: 40 of 40 snapshots kept, CountSketch of the directions to 192 of "
        "500 dims (float32; entropy differences, not absolute values), 0.03297 MiB of "
        "0.03815 MiB budget")
    s = sk.stationary_state()
    assert np.isfinite(s["entropy_dir"]) and np.isfinite(s["entropy"])
    exact = mon.stationary_state()
    radial = 499 * np.log(mon.queue.radii()).mean()
    assert s["entropy"] - s["entropy_dir"] == pytest.approx(radial, rel=1e-12)  # exact radii
    assert exact["entropy"] - exact["entropy_dir"] == pytest.approx(radial, rel=1e-12)


def test_monitor_hyperparameter_change_restarts_the_queue_in_place():
    mon = _monitor(memory_budget=40_000)
    queue, buf = mon.queue, mon.queue._buf
    mon.set_hyperparameters(200, elr=0.1)
    assert mon.queue is queue and queue._buf is buf and len(queue) == 0


@pytest.mark.parametrize("budget", [DEFAULT_MEMORY_BUDGET, 40_000])
def test_monitor_state_dict_resumes_the_queue(budget):
    mon = _monitor(memory_budget=budget)
    other = ThermoMonitor("elr", 500, elr=0.05, wd=0.02, queue_capacity=40,
                          memory_budget=budget)
    other.load_state_dict(mon.state_dict())
    np.testing.assert_array_equal(other.queue.rows(), mon.queue.rows())
    assert other.stationary_state()["entropy"] == mon.stationary_state()["entropy"]
    if budget == DEFAULT_MEMORY_BUDGET:  # a state saved before the queue had a layout
        old = mon.state_dict()
        old["snapshots"] = old.pop("queue")["rows"]
        other.load_state_dict(old)
        np.testing.assert_array_equal(other.queue.rows(), mon.queue.rows())
    else:
        exact = ThermoMonitor("elr", 500, elr=0.05, wd=0.02, queue_capacity=40)
        with pytest.raises(ValueError, match="different layout: storage 'sketch'"):
            exact.load_state_dict(mon.state_dict())
