"""Speed of the chord-distance sphere entropy vs scikit-learn brute-force 1-NN, side by side.

Points: N snapshots of a D-dimensional weight vector, a tight vMF cloud on the sphere
(kappa = 1e5, i.e. T = 1e-5 as in the ConvNet runs) scaled to radius ~3 with 1% radial jitter,
stored in float32 (what `EntropyQueue` holds). Timed in the same run, interleaved, best of
--repeats:

* ours: `sphere_entropy(w)` (norms, centring, float32 SYRK candidates, exact float64 recompute,
  estimator), from the raw float32 snapshots;
* sklearn: `NearestNeighbors(n_neighbors=2, algorithm="brute").fit(u).kneighbors(u)` on the
  float32 unit vectors u (what the paper's code does, without its angle transform);
* floor: one float32 `x @ x.T` (numpy dispatches it to SYRK, i.e. half the N^2 D products), and
  one general float32 N x N x D product `x @ y` with y = x.T copied (the full GEMM).

The 1-NN chord distances of ours and sklearn must agree to 1e-6 relative.

    .venv/bin/python benchmarks/bench_entropy.py                 # N = 4000, D = 24408
    .venv/bin/python benchmarks/bench_entropy.py --n 500 --dim 2000 --repeats 1   # smoke test
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from thermosgd.estimators import entropy as ent
from thermosgd.theory import vmf


def make_points(n: int, dim: int, kappa: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal(dim)
    u = vmf.sample(n, mu, kappa, seed=rng)
    r = 3.0 * (1.0 + 0.01 * rng.standard_normal(n))
    return (u * r[:, None]).astype(np.float32)


def interleaved(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Best wall time of each function; the functions alternate within each repeat so that
    the load of a shared machine hits all of them alike."""
    best = dict.fromkeys(fns, float("inf"))
    out = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best, out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--dim", type=int, default=24408)
    ap.add_argument("--kappa", type=float, default=1e5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn baseline")
    ap.add_argument("--angles", action="store_true", help="also time method='angles' (once)")
    args = ap.parse_args(argv)

    from sklearn.neighbors import NearestNeighbors

    w = make_points(args.n, args.dim, args.kappa, args.seed)
    u32 = (w / np.linalg.norm(w.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)
    print(f"N = {args.n}, D = {args.dim}, kappa = {args.kappa:g}, float32 snapshots; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {platform.processor()}")

    # warm-up (numba kernels compile or load from cache; BLAS threads spin up)
    t = time.perf_counter()
    ent.sphere_entropy(w[: min(args.n, 64), : max(32, min(args.dim, 64))])
    print(f"warm-up (numba JIT/cache load): {time.perf_counter() - t:.2f} s")

    wt = np.ascontiguousarray(w.T)

    def sk():
        nn = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(u32)
        return nn.kneighbors(u32)[0][:, 1]

    fns = {
        "ours": lambda: ent.sphere_entropy(w),
        "syrk": lambda: w @ w.T,
        "gemm": lambda: w @ wt,
    }
    if not args.no_sklearn:
        fns["sklearn"] = sk
    t, out = interleaved(fns, args.repeats)
    del out["syrk"], out["gemm"]
    est = out["ours"]
    print(f"ours     sphere_entropy(chord) : {t['ours']:7.3f} s   S_dir = {est.value:.2f} "
          f"+- {est.stderr:.2f} nats")
    print(f"floor    float32 x @ x.T (SYRK): {t['syrk']:7.3f} s   ours / floor = "
          f"{t['ours'] / t['syrk']:.2f}")
    print(f"         float32 x @ y (GEMM)  : {t['gemm']:7.3f} s   ours / gemm  = "
          f"{t['ours'] / t['gemm']:.2f}")
    if not args.no_sklearn:
        ours_d = ent._knn_gram(w, 1, scale=1.0 / ent._row_norms(w))[0][:, 0]
        rel = np.max(np.abs(out["sklearn"] / ours_d - 1.0))
        print(f"sklearn  NearestNeighbors brute: {t['sklearn']:7.3f} s   sklearn / ours = "
              f"{t['sklearn'] / t['ours']:.2f}")
        print(f"max relative 1-NN difference ours vs sklearn: {rel:.2e} "
              f"({'OK' if rel < 1e-6 else 'FAIL'} at 1e-6; sklearn sees float32 unit vectors)")
    if args.angles:
        t0 = time.perf_counter()
        est_a = ent.sphere_entropy(w, method="angles")
        print(f"angles   sphere_entropy(angles): {time.perf_counter() - t0:7.3f} s   S_dir = "
              f"{est_a.value:.2f} +- {est_a.stderr:.2f} nats (float64 angles, once)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
