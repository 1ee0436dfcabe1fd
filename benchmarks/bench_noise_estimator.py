"""Gradient-noise probes of n = 32-64 minibatch gradients vs the paper's 4000, in the same run.

Setting: digits with 30% random labels, BN-MLP 64-32-32-10 with a frozen head (d = 3072),
batch 128 drawn i.i.d. with replacement, fixed ELR (default elr = wd = 1e-2) from radius 1.
The run is trained for --steps steps; at the --points (typical log points of a run with one
probe every --log-every steps) the weights are frozen and measured:

* reference: ``noise_from_gradients`` of --ref (4000) minibatch gradients, the paper's count
  (its own SE is ~ sqrt(64 / 4000) = 13% of a 64-gradient SE);
* ours: --repeats independent probes of n gradients (n in --n), drawn from another
  generator, each with its 95% Student-t interval. Reported per point and quantity: the mean
  relative SE of one probe, the median and 95th percentile of |ours - ref| / SE_ours, and the
  coverage (fraction of the repeats whose interval holds the reference value), with the
  default jackknife SE and with ``se="unbiased"``;
* the paper's definition for comparison: tr Sigma = r^2 mean ||g_i - g_full||^2 over the 4000
  with g_full the full-data gradient in train-mode BN over chunks of 1024 (reference-impl.
  6.2 item 6); its relative difference from the reference is the BN batch-size bias.

Extra compute: n gradients per --log-every training steps, as a gradient count
(n / log_every) and as measured wall time (one probe vs log_every training steps, medians
of interleaved blocks). Exit status 1 if the pooled coverage of tr Sigma at the largest n
is below --min-coverage or the extra compute above 10%.

    .venv/bin/python benchmarks/bench_noise_estimator.py [--repeats 100] [--n 32 64]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from thermosgd.estimators.noise import noise_from_gradients
from thermosgd.nn.data import iid_batches, load_digits
from thermosgd.nn.models import bn_mlp, si_parameters
from thermosgd.nn.optim import FixedELR
from thermosgd.nn.probes import estimate_gradient_noise, minibatch_gradients

BATCH = 128
NAMES = ("trace_sigma", "grad_norm2")


def full_gradient_paper(model, x, y, params, chunk: int = 1024) -> torch.Tensor:
    """The paper's "full gradient": sum-reduced chunk losses in train-mode BN, over N.
    BN running statistics are restored afterwards."""
    saved = [b.detach().clone() for b in model.buffers()]
    model.train()
    total = [torch.zeros_like(p) for p in params]
    for a in range(0, x.shape[0], chunk):
        loss = F.cross_entropy(model(x[a : a + chunk]), y[a : a + chunk], reduction="sum")
        for t, g in zip(total, torch.autograd.grad(loss, params), strict=True):
            t += g
    with torch.no_grad():
        for b, s in zip(model.buffers(), saved, strict=True):
            b.copy_(s)
    return torch.cat([t.reshape(-1) for t in total]) / x.shape[0]


def train_step(model, opt, x, y, idx):
    loss = F.cross_entropy(model(x[idx]), y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--elr", type=float, default=1e-2)
    ap.add_argument("--wd", type=float, default=1e-2)
    ap.add_argument("--points", type=int, nargs="+", default=[1000, 2000, 3000, 4000, 5000])
    ap.add_argument("--log-every", type=int, default=1000)
    ap.add_argument("--ref", type=int, default=4000)
    ap.add_argument("--n", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--timing-blocks", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-coverage", type=float, default=0.9)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if max(args.points) > args.steps:
        ap.error("--points must not exceed --steps")

    ds = load_digits(label_noise=0.3, seed=1)
    x, y = ds.x_train, ds.y_train
    model = bn_mlp()
    opt = FixedELR(si_parameters(model), elr=args.elr, wd=args.wd)
    gen = torch.Generator().manual_seed(args.seed)
    frozen = {}
    t0 = time.perf_counter()
    for step, idx in enumerate(iid_batches(x.shape[0], BATCH, gen, num_batches=args.steps), 1):
        train_step(model, opt, x, y, idx)
        if step in args.points:
            frozen[step] = copy.deepcopy(model)
    train_s = time.perf_counter() - t0
    d = sum(p.numel() for p in si_parameters(model))
    print(
        f"digits (30% random labels), BN-MLP 64-32-32, d = {d}, fixed ELR elr = {args.elr:g}, "
        f"wd = {args.wd:g}: {args.steps} steps in {train_s:.1f} s; reference n = {args.ref}, "
        f"{args.repeats} repeats per n; torch {torch.__version__}, {args.threads} thread(s)"
    )

    pooled = {(n, name, se): [] for n in args.n for name in NAMES for se in ("jk", "ub")}
    rows = []
    for point, m in sorted(frozen.items()):
        ps = si_parameters(m)
        t1 = time.perf_counter()
        g_ref, r = minibatch_gradients(
            m, F.cross_entropy, x, y, ps, n_batches=args.ref, generator=10_000 + point
        )
        ref_s = time.perf_counter() - t1
        ref = noise_from_gradients(g_ref, r)
        g_full = full_gradient_paper(m, x, y, ps).double()
        paper_trace = r**2 * float((g_ref.double() - g_full).square().sum(1).mean())
        paper_g2 = r**2 * float(g_full.square().sum())
        nmax = max(args.n)
        g_ours, _ = minibatch_gradients(
            m, F.cross_entropy, x, y, ps, n_batches=args.repeats * nmax, generator=20_000 + point
        )
        print(
            f"\nstep {point}: radius {float(r):.4f}; reference ({args.ref} gradients, "
            f"{ref_s:.1f} s): tr Sigma = {ref.trace_sigma:.3f} ± {ref.trace_sigma_se:.3f}, "
            f"|grad L|^2 = {ref.grad_norm2:.3f} ± {ref.grad_norm2_se:.3f}; paper's definition "
            f"(batch-1024 BN full gradient): tr Sigma {paper_trace:.3f} "
            f"({100 * (paper_trace / ref.trace_sigma - 1):+.1f}%), |grad L|^2 {paper_g2:.3f} "
            f"({100 * (paper_g2 / ref.grad_norm2 - 1):+.1f}%)"
        )
        for n in args.n:
            reps = args.repeats * nmax // n
            g = g_ours[: reps * n].reshape(reps, n, -1)
            for se, key in (("jackknife", "jk"), ("unbiased", "ub")):
                est = noise_from_gradients(g, r, se=se)
                for name in NAMES:
                    v, s = getattr(est, name), getattr(est, name + "_se")
                    truth = getattr(ref, name)
                    lo, hi = est.ci(name)
                    cover = (lo <= truth) & (truth <= hi)
                    z = np.abs(v - truth) / s
                    pooled[(n, name, key)].append(cover)
                    rows.append(
                        (
                            point,
                            n,
                            reps,
                            se,
                            name,
                            float(np.mean(s) / truth),
                            float(np.median(z)),
                            float(np.quantile(z, 0.95)),
                            float(cover.mean()),
                            float(v.mean() / truth - 1),
                            float(v.std() / np.sqrt(reps) / truth),
                        )
                    )
    print(
        "\n| step | n | repeats | SE | quantity | SE/value (one probe) | median |ours-ref|/SE "
        "| 95th pct | 95% CI coverage | mean(ours)/ref - 1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p, n, reps, se, name, rel, zmed, z95, cov, bias, bias_se in rows:
        if se != "jackknife":  # the default; se="unbiased" appears in the pooled lines
            continue
        print(
            f"| {p} | {n} | {reps} | {se} | {name} | {100 * rel:.1f}% | {zmed:.2f} | {z95:.2f} "
            f"| {cov:.2f} | {100 * bias:+.2f}% ± {100 * bias_se:.2f}% |"
        )
    print("\npooled coverage over the points:")
    for (n, name, key), covs in pooled.items():
        c = np.concatenate(covs)
        print(
            f"  n = {n:3d} {name:11s} {key}: {c.mean():.3f} of {c.size} "
            f"(binomial SD {math.sqrt(0.95 * 0.05 / c.size):.3f})"
        )

    # extra compute: one probe vs log_every training steps, interleaved blocks, medians
    m = frozen[max(frozen)]
    mopt = FixedELR(si_parameters(m), elr=args.elr, wd=args.wd)
    tgen = torch.Generator().manual_seed(args.seed + 7)
    probe_t, train_t = {n: [] for n in args.n}, []
    for _ in range(args.timing_blocks):
        t1 = time.perf_counter()
        for idx in iid_batches(x.shape[0], BATCH, tgen, num_batches=args.log_every):
            train_step(m, mopt, x, y, idx)
        train_t.append(time.perf_counter() - t1)
        for n in args.n:
            t1 = time.perf_counter()
            estimate_gradient_noise(
                m, F.cross_entropy, x, y, si_parameters(m), n_batches=n, generator=tgen
            )
            probe_t[n].append(time.perf_counter() - t1)
    tt = statistics.median(train_t)
    print(
        f"\nextra compute, one probe per {args.log_every} training steps "
        f"(median of {args.timing_blocks} interleaved blocks; {args.log_every} steps took "
        f"{tt:.2f} s):"
    )
    worst = 0.0
    for n in args.n:
        pt = statistics.median(probe_t[n])
        frac = pt / tt
        worst = max(worst, frac, n / args.log_every)
        print(
            f"  n = {n}: {100 * n / args.log_every:.1f}% extra gradients, {100 * frac:.1f}% "
            f"extra wall time ({1e3 * pt:.0f} ms per probe); the paper's {args.ref}-gradient "
            f"probe costs {args.ref / n:.0f}x more"
        )
    c = np.concatenate(pooled[(max(args.n), "trace_sigma", "jk")])
    ok = c.mean() >= args.min_coverage and worst <= 0.10
    print(f"\n{'OK' if ok else 'FAIL'}: pooled coverage {c.mean():.3f}, worst extra {worst:.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
