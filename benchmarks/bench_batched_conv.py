"""Batched conv grids: G configs as one model (grouped convolutions, or torch.func vmap) vs G
separate models, in the same run (issue 10, item 1).

For each model (ConvNet of width c, PreAct ResNet-18 of width k), input (28x28x1 Fashion-MNIST
shaped, 32x32x3 CIFAR shaped) and G, three paths train G fixed-ELR configs (elr, wd differ per
config) on random batches of 128 (one shared batch per step, as the paper's grids: every run
the same training seed; ``--per-config`` draws one batch per config):

* separate: G single models, each with its own `FixedELR`, stepped one after another;
* grouped:  one `thermosgd.nn.batched_convnet.BatchedConvNet` (configs stacked along the
  channels, ``groups = G``, BatchNorm over G C channels) with `BatchedProtocol`;
* vmap:     ``torch.func.vmap`` of ``functional_call`` over the stacked parameters and the
  stacked BN buffers (running statistics per config), with `BatchedProtocol`.

Blocks of steps alternate between the paths and the median block rate is reported (load from
other processes hits all alike). Printed: config-steps/s of each path and the ratios
grouped / separate and vmap / separate. ``--doc FILE`` also writes the table as a section of
FILE (docs/benchmarks.md), between the markers of `MARK`.

    .venv/bin/python benchmarks/bench_batched_conv.py [--models convnet:8,resnet18:4]
        [--sizes 28,32] [--G 1,4,16] [--steps 2] [--blocks 3] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from thermosgd.nn.batched import BatchedProtocol
from thermosgd.nn.batched_convnet import BatchedConvNet
from thermosgd.nn.conv_models import convnet, preact_resnet18
from thermosgd.nn.models import batched_cross_entropy
from thermosgd.nn.optim import FixedELR

MARK = ("<!-- bench_batched_conv:start -->", "<!-- bench_batched_conv:end -->")
BATCH = 128
SHAPES = {28: (1, 10), 32: (3, 10)}  # input size -> (channels, classes)


class VmapConv(nn.Module):
    """G models under ``vmap(functional_call)``: stacked trainable parameters and buffers
    (per-config BN statistics), the frozen head shared."""

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__()
        first = models[0]
        self.template = [copy.deepcopy(first).to("meta")]
        named = [dict(m.named_parameters()) for m in models]
        bufs = [dict(m.named_buffers()) for m in models]
        self.train_names = [n for n, p in first.named_parameters() if p.requires_grad]
        self.frozen = {n: p.detach() for n, p in first.named_parameters() if not p.requires_grad}
        self.params = nn.ParameterList(
            nn.Parameter(torch.stack([d[n].detach() for d in named])) for n in self.train_names
        )
        self.buf_names = list(bufs[0])
        for i, n in enumerate(self.buf_names):
            self.register_buffer(f"b{i}", torch.stack([b[n] for b in bufs]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.template[0]
        t.train(self.training)
        p = dict(zip(self.train_names, self.params, strict=True))
        b = {n: getattr(self, f"b{i}") for i, n in enumerate(self.buf_names)}

        def one(p, b, xb):
            return functional_call(t, (p, b, self.frozen), (xb,))

        return vmap(one, in_dims=(0, 0, 0 if x.dim() == 5 else None))(p, b, x)


def _models(spec: str, size: int, G: int, dev) -> list[nn.Module]:
    name, width = spec.split(":")
    c_in, k = SHAPES[size]
    make = convnet if name == "convnet" else preact_resnet18
    return [make(int(width), c_in, k, input_size=size, init_seed=1 + g).to(dev) for g in range(G)]


def _case(spec: str, size: int, G: int, args, dev, sync) -> dict[str, float]:
    """Median config-steps/s of the three paths for one (model, size, G)."""
    models = _models(spec, size, G, dev)
    elr = torch.linspace(1e-3, 1e-2, G, dtype=torch.float64)
    wd = torch.linspace(1e-3, 1e-2, G, dtype=torch.float64)
    grouped = BatchedConvNet.from_models(models)
    vm = VmapConv(models)
    paths = {
        "separate": (None, [FixedELR(m.si_parameters(), elr=float(e), wd=float(w))
                            for m, e, w in zip(models, elr, wd, strict=True)]),
        "grouped": (grouped, BatchedProtocol(grouped.si_parameters(), "elr", elr=elr, wd=wd)),
        "vmap": (vm, BatchedProtocol(list(vm.params), "elr", elr=elr, wd=wd)),
    }
    c_in, k = SHAPES[size]
    gen = torch.Generator().manual_seed(0)
    shape = (G, BATCH) if args.per_config else (BATCH,)
    x = torch.randn(*shape, c_in, size, size, generator=gen).to(dev)
    y = torch.randint(0, k, shape, generator=gen).to(dev)

    def block(name: str, n: int) -> None:
        model, opt = paths[name]
        for _ in range(n):
            if model is None:
                for g, (m, o) in enumerate(zip(models, opt, strict=True)):
                    xg, yg = (x[g], y[g]) if args.per_config else (x, y)
                    o.zero_grad(set_to_none=True)
                    F.cross_entropy(m(xg), yg).backward()
                    o.step()
            else:
                opt.zero_grad(set_to_none=True)
                batched_cross_entropy(model(x), y).sum().backward()
                opt.step()

    rates: dict[str, list[float]] = {k: [] for k in paths}
    for name in paths:
        block(name, 1)  # warm-up
    for _ in range(args.blocks):
        for name in paths:
            sync()
            t0 = time.perf_counter()
            block(name, args.steps)
            sync()
            rates[name].append(G * args.steps / (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in rates.items()}


def _table(results: list[tuple], args, dev) -> str:
    lines = [
        f"device {dev}, threads {args.threads}, batch {BATCH}, "
        f"{'one batch per config' if args.per_config else 'one shared batch'}, fixed-ELR "
        f"step, float32; median of {args.blocks} alternating blocks of {args.steps} steps",
        "",
        "| model | input | G | separate config-steps/s | grouped | vmap | grouped / separate "
        "| vmap / separate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec, size, G, r in results:
        lines.append(
            f"| {spec} | {size}x{size}x{SHAPES[size][0]} | {G} | {r['separate']:.2f} | "
            f"{r['grouped']:.2f} | {r['vmap']:.2f} | {r['grouped'] / r['separate']:.2f}x | "
            f"{r['vmap'] / r['separate']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", default="convnet:8,resnet18:4")
    ap.add_argument("--sizes", default="28,32")
    ap.add_argument("--G", default="1,4,16")
    ap.add_argument("--steps", type=int, default=2, help="steps per timed block")
    ap.add_argument("--blocks", type=int, default=3, help="timed blocks per path (alternating)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--per-config", action="store_true", help="one batch per config")
    ap.add_argument("--doc", type=Path, default=None, help="write the table into this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    results = []
    for spec in args.models.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            for G in (int(g) for g in args.G.split(",")):
                r = _case(spec, size, G, args, dev, sync)
                results.append((spec, size, G, r))
                print(f"{spec} {size}x{size} G={G}: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in r.items())
                    + f" config-steps/s; grouped/separate {r['grouped'] / r['separate']:.2f}x,"
                    f" vmap/separate {r['vmap'] / r['separate']:.2f}x", flush=True)
    table = _table(results, args, dev)
    print(table)
    if args.doc is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from docsection import write_section

        section = (f"{MARK[0]}\n### Batched conv grids (`benchmarks/bench_batched_conv.py`)\n\n"
                   f"{table}\n{MARK[1]}")
        write_section(args.doc, *MARK, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
