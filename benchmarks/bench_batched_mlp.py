"""The 16-config digits grid: one batched BN-MLP vs one config at a time, in the same run.

Setting (reference-implementation 8.2, grid N1): digits with 30% random labels, BN-MLP
64-32-32-10 with a frozen head, batch 128 drawn i.i.d. with replacement, fixed ELR + WD with
elr in {2e-3, 5e-3, 1e-2, 2e-2} x wd in {3e-3, 1e-2, 3e-2, 1e-1}, radius 1 at the start.

* baseline: 16 `bn_mlp` models, each with its own `FixedELR` optimizer, stepped one config at a
  time (round robin), the way a plain training loop would run the grid;
* batched: one `BatchedBNMLP` (G = 16) with `BatchedProtocol("elr")`.

Every config sees the same batch sequence in both (the paper gives every run the same training
seed), so after the warm-up both paths hold the same weights up to float32 round-off (printed
as a sanity check; over longer runs the chaotic dynamics amplify round-off, e.g. a ReLU
flipping sign, so the check is made before the timing). Blocks of steps alternate between
the two paths and the median block rate is reported, so that load from other processes hits
both alike. Threads: 1 by default (tiny tensors; on a shared machine intra-op threads mostly
wait at barriers); --threads changes it for both paths. Exit status 1 if batched / baseline
< --min-ratio (default 4).

    .venv/bin/python benchmarks/bench_batched_mlp.py [--steps 100] [--blocks 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from thermosgd.nn.batched import BatchedProtocol
from thermosgd.nn.data import iid_batches, load_digits
from thermosgd.nn.models import BatchedBNMLP, batched_cross_entropy, bn_mlp
from thermosgd.nn.optim import FixedELR
from thermosgd.nn.scale_invariance import batched_group_radius, group_radius, set_group_radius

ELRS = (2e-3, 5e-3, 1e-2, 2e-2)
WDS = (3e-3, 1e-2, 3e-2, 1e-1)
BATCH = 128


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=100, help="steps per config per timed block")
    ap.add_argument("--blocks", type=int, default=7, help="timed blocks per path (alternating)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-ratio", type=float, default=4.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    ds = load_digits(label_noise=0.3, seed=1, device=dev)
    x, y = ds.x_train, ds.y_train
    grid = [(e, w) for e in ELRS for w in WDS]
    G = len(grid)

    # Baseline: G separate models and optimizers, identical init (init seed 1) and batches.
    models = [bn_mlp(init_seed=1).to(dev) for _ in range(G)]
    for m in models:
        set_group_radius(m.si_parameters(), 1.0)
    opts = [
        FixedELR(m.si_parameters(), elr=e, wd=w) for m, (e, w) in zip(models, grid, strict=True)
    ]
    gens = [torch.Generator(device=dev).manual_seed(1) for _ in range(G)]
    streams = [iid_batches(ds.n_train, BATCH, g) for g in gens]

    # Batched: the same G configs as one module.
    bm = BatchedBNMLP.from_models(models)
    bopt = BatchedProtocol(
        bm.si_parameters(),
        "elr",
        elr=torch.tensor([e for e, _ in grid]),
        wd=torch.tensor([w for _, w in grid]),
    )
    bstream = iid_batches(ds.n_train, BATCH, torch.Generator(device=dev).manual_seed(1))

    def baseline_block(n: int) -> None:
        for _ in range(n):
            for m, opt, s in zip(models, opts, streams, strict=True):
                idx = next(s)
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(m(x[idx]), y[idx]).backward()
                opt.step()

    def batched_block(n: int) -> None:
        for _ in range(n):
            idx = next(bstream)
            bopt.zero_grad(set_to_none=True)
            batched_cross_entropy(bm(x[idx]), y[idx]).sum().backward()
            bopt.step()

    def timed(fn, n: int) -> tuple[float, float]:
        sync()
        w0, c0 = time.perf_counter(), time.process_time()
        fn(n)
        sync()
        return time.perf_counter() - w0, time.process_time() - c0

    warm = max(5, args.steps // 10)
    baseline_block(warm)
    batched_block(warm)
    r_b = batched_group_radius(bm.si_parameters()).cpu()
    r_u = torch.tensor([group_radius(m.si_parameters()) for m in models], dtype=torch.float64)
    rel = float(((r_b - r_u).abs() / r_u).max())
    rates = {"baseline": ([], []), "batched": ([], [])}
    for _ in range(args.blocks):
        for name, fn in (("baseline", baseline_block), ("batched", batched_block)):
            wall, cpu = timed(fn, args.steps)
            rates[name][0].append(G * args.steps / wall)
            rates[name][1].append(G * args.steps / max(cpu, 1e-9))
    med = {k: (statistics.median(v[0]), statistics.median(v[1])) for k, v in rates.items()}
    ratio_wall = med["batched"][0] / med["baseline"][0]
    ratio_cpu = med["batched"][1] / med["baseline"][1]

    total = warm + args.blocks * args.steps

    print(f"device {dev}, threads {args.threads}, G = {G} configs, batch {BATCH}, d = {bm.dim}")
    print(
        f"{total} steps per config on each path, {args.blocks} alternating blocks of {args.steps}"
    )
    head = ("path", "config-steps/s (wall)", "config-steps/s (CPU)", "ms/config-step")
    print(f"{head[0]:<10}{head[1]:>24}{head[2]:>24}{head[3]:>16}")
    for k, (w, c) in med.items():
        print(f"{k:<10}{w:>24.0f}{c:>24.0f}{1e3 / w:>16.3f}")
    print(f"speed-up batched/baseline: {ratio_wall:.2f}x wall, {ratio_cpu:.2f}x CPU time")
    print(
        f"radii after the {warm} warm-up steps: batched vs baseline differ by {rel:.1e} (relative)"
    )
    ok = ratio_wall >= args.min_ratio
    print(f"{'PASS' if ok else 'FAIL'}: need >= {args.min_ratio}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
