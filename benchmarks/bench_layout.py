"""Speed of the package before and after a restructuring, measured in the same run.

Runs the same seeded workloads with two source trees of thermosgd (``--old``: a checkout of the
commit before, e.g. made with ``git worktree add /tmp/old <commit>``; ``--new``: this one),
alternating fresh processes so that machine load hits both alike, and prints the median time
of each and the ratio new / old. Workloads: the isotropic simulator (289 chains, d = 3) and its
stationary table (k-NN entropies), a batched digits BN-MLP grid through the training engine
with its monitor and stationary documents, and the isotropic momentum/AdamW kernel.

    git worktree add /tmp/old_tree <commit-before>
    .venv/bin/python benchmarks/bench_layout.py --old /tmp/old_tree/src --new src \
        --doc docs/benchmarks.md --label "issue 14 (layered package), before = 6603bdc"
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docsection import write_heading_section

WORKLOAD = r'''
import json, sys, tempfile, time
import numpy as np
which = sys.argv[1]
try:
    from thermosgd.sim.isotropic import IsotropicConfig, simulate, stationary_table
    from thermosgd.sim.momentum import simulate as msim
    from thermosgd.train import TrainConfig, train_grid
except ImportError:
    from thermosgd.isotropic import IsotropicConfig, simulate, stationary_table
    from thermosgd.isotropic_momentum import simulate as msim
    from thermosgd.training import TrainConfig, train_grid
grid = tuple(np.logspace(-2, -1, 17))
c = IsotropicConfig("elr", elr=grid, wd=grid, steps=400_000, queue_size=1000)
simulate(IsotropicConfig("elr", elr=grid, wd=grid, steps=2000, queue_size=10), progress=False)
msim("adamw", dim=10, lr=[1e-3, 3e-3], wd=[0.1, 0.3], beta1=0.9, steps=2000, burn_in=500)
t = {}
if which == "isotropic":
    t0 = time.perf_counter()
    sim = simulate(c, progress=False)
    t["simulate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stationary_table(sim)
    t["stationary_table"] = time.perf_counter() - t0
elif which == "momentum":
    t0 = time.perf_counter()
    msim("adamw", dim=10, lr=list(np.geomspace(1e-3, 1e-2, 5)), wd=[0.1] * 5, beta1=0.9,
         steps=300_000, replicas=8)
    t["adamw_kernel"] = time.perf_counter() - t0
else:
    cfgs = [TrainConfig(protocol="elr", elr=e, wd=w, steps=1500, hidden=(32, 32),
                        label_noise=0.3, device="cpu")
            for e in (0.005, 0.015, 0.045) for w in (0.003, 0.01, 0.03)]
    with tempfile.TemporaryDirectory() as d:
        dirs = [f"{d}/run{i}" for i in range(len(cfgs))]
        t0 = time.perf_counter(); train_grid(cfgs, dirs, progress=False)
        t["train_grid_9x1500"] = time.perf_counter() - t0
print(json.dumps(t))
'''


def run(src: str, which: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": src, "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", WORKLOAD, which], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="src/ directory of the tree before")
    ap.add_argument("--new", default=str(Path(__file__).resolve().parents[1] / "src"),
                    help="src/ directory of the tree after (default: this checkout)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs per tree")
    ap.add_argument("--workloads", default="isotropic,momentum,train",
                    help="comma-separated subset of isotropic, momentum, train")
    ap.add_argument("--doc", type=Path, default=None,
                    help="also write the table as the section '## Restructuring' of this file")
    ap.add_argument("--label", default="", help="what was compared, for the doc")
    a = ap.parse_args()
    times: dict[tuple[str, str], list[float]] = {}
    for which in a.workloads.split(","):
        for _ in range(a.repeats):
            for tree, src in (("old", a.old), ("new", a.new)):
                for k, v in run(src, which).items():
                    times.setdefault((k, tree), []).append(v)
    print(f"{'workload':22s} {'old (s)':>9s} {'new (s)':>9s} {'new/old':>8s}   (median of "
          f"{a.repeats}, alternating processes)")
    rows = []
    for k in dict.fromkeys(k for k, _ in times):
        old, new = (statistics.median(times[(k, t)]) for t in ("old", "new"))
        spread = max(max(times[(k, t)]) / min(times[(k, t)]) for t in ("old", "new"))
        print(f"{k:22s} {old:9.3f} {new:9.3f} {new / old:8.3f}")
        rows.append(f"| {k} | {old:.3f} | {new:.3f} | {new / old:.3f} | {spread:.2f} |")
    if a.doc is not None:
        write_heading_section(a.doc, "## Restructuring", "\n".join([
            "## Restructuring", "",
            f"`python benchmarks/bench_layout.py` ({a.label}; {time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} cores shared with other jobs): the same seeded workloads with "
            f"the source tree before and after, {a.repeats} alternating fresh processes each, "
            "median wall time. 'spread' is the largest max/min ratio of one tree's repeats: "
            "ratios within it are noise.", "",
            "| workload | before (s) | after (s) | after / before | spread |",
            "|---|---:|---:|---:|---:|", *rows, ""]))
        print(f"wrote {a.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
