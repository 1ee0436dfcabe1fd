"""Conv training step of the paper's networks: CPU GFLOP/s against SGEMM and today's path, and
a batched ConvNet-8 grid against one config at a time (issue 10, items 2 and 3).

``--device cpu`` (default): ConvNet-8 (d = 24,408) and PreAct ResNet-18 k=4 (d = 43,692),
fwd + bwd + fixed-ELR step (`SingleNet.train_step`, the engine's step) at batch 128 on
CIFAR-shaped random inputs (3x32x32), in one run:

* today's path: the model as it was before issue 10 (NCHW, ConvNet ReLU before max-pool);
* ``memory_format="channels_last"`` (this issue: oneDNN without reorders, max-pool before ReLU,
  small-channel BatchNorm through the NCHW kernel);
* the same under ``torch.compile`` (unless ``--no-compile``; compile time printed apart);

FLOPs per step counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and
matrix products, forward and backward), GFLOP/s beside one-thread SGEMM (``torch.mm`` at the
size that reaches peak), steps/s ratios against today's path. Variants are timed in alternating
blocks (the machine is shared), medians reported.

``--device cuda`` (or ``--grid`` on any device): a grid of G = 117 ConvNet-8 configs (the paper's
13 x 9 ELR grid) as one `thermosgd.nn.batched_conv.BatchedConvModel` stepped by
`BatchedProtocol("elr")`, against one config at a time (`SingleNet`), config-steps/s, and the
projected wall time of the paper's whole ConvNet-8/CIFAR-10 study (ELR 13 x 9, LR 13 x 9, sphere
13 x 5 grids, 1e6 steps each). ``--device cpu --quick`` runs a tiny version of both parts (the
smoke test of tests/benchmarks).

    python benchmarks/bench_conv_step.py [--threads 1] [--repeats 7] [--doc docs/benchmarks.md]
    python benchmarks/bench_conv_step.py --device cuda --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from docsection import write_heading_section
from thermosgd.nn.batched import BatchedProtocol
from thermosgd.nn.batched_conv import BatchedConvModel
from thermosgd.nn.batched_convnet import BatchedConvNet
from thermosgd.nn.conv_models import ConvNet, convnet, preact_resnet18
from thermosgd.nn.models import batched_cross_entropy, si_parameters
from thermosgd.nn.optim import FixedELR
from thermosgd.train.nets import SingleNet

CPU_TITLE = "## Conv step on CPU (issue 10)"
GPU_TITLE = "## Batched conv grid on GPU (issue 10)"
#: the paper's ConvNet-8 / CIFAR-10 study (paper.md 9.3): runs per grid, steps per run
STUDY = {"elr": 13 * 9, "lr": 13 * 9, "sphere": 13 * 5}
STUDY_STEPS = 1_000_000


# ------------------------------------------------------------------ timing helpers


def sync(device: torch.device) -> None:
    """Wait for the device (CUDA only; CPU ops are synchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int,
                steps: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each fn: ``repeats`` rounds, each timing ``steps`` calls of every
    fn in turn (alternating blocks, so load changes hit all variants alike)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            sync(device)
            times[k].append((time.perf_counter() - t0) / steps)
    return times


def sgemm_gflops(device: torch.device, sizes: tuple[int, ...], repeats: int) -> tuple[float, int]:
    """Best median GFLOP/s of C = A @ B (float32, n x n, 2 n^3 flops) over ``sizes``."""
    best, best_n = 0.0, sizes[0]
    for n in sizes:
        g = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(n, n, device=device, generator=g)
        b = torch.randn(n, n, device=device, generator=g)
        t = interleaved({"mm": lambda a=a, b=b: torch.mm(a, b)}, device, repeats, 1)["mm"]
        rate = 2 * n**3 / statistics.median(t) / 1e9
        if rate > best:
            best, best_n = rate, n
    return best, best_n


def load() -> str:
    """The 1-minute load average of the machine, for the record."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


# ------------------------------------------------------------------ models and steps


def legacy_convnet(model: ConvNet) -> ConvNet:
    """Today's ConvNet layer order in place: ReLU before each max-pool (the function and the
    gradients are the same bit for bit; only the ReLU works on the unpooled map)."""
    layers = list(model.conv_layers)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], nn.MaxPool2d) and isinstance(layers[i + 1], nn.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    model.conv_layers = nn.Sequential(*layers)
    return model


def make_batches(device: torch.device, batch: int, size: int, classes: int = 10, pool: int = 4096):
    """An i.i.d. batch sampler over a fixed pool of random CIFAR-shaped images on ``device``."""
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(pool, 3, size, size, device=device, generator=g)
    y = torch.randint(0, classes, (pool,), device=device, generator=g)

    def draw():
        idx = torch.randint(0, pool, (batch,), device=device, generator=g)
        return x[idx], y[idx]

    return draw


def single_step(model: nn.Module, device: torch.device, draw, compile_model: bool = False):
    """The engine's one-config step (`SingleNet.train_step`, fixed ELR) as a callable."""
    model = model.to(device)
    params = si_parameters(model)
    run = torch.compile(model) if compile_model else model
    net = SingleNet(run, params, FixedELR(params, elr=1e-3, wd=5e-4))
    return lambda: net.train_step(*draw())


def step_flops(step: Callable[[], object]) -> int:
    """FLOPs of one step (convolutions and matrix products, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def optimizer_share(model: nn.Module, device: torch.device, draw, repeats: int) -> float:
    """Seconds of the step's non-network part: the FixedELR update (radius, update) plus the
    engine's float64 gradient norm, on existing gradients."""
    model = model.to(device)
    params = si_parameters(model)
    opt = FixedELR(params, elr=1e-3, wd=5e-4)
    x, y = draw()
    F.cross_entropy(model(x), y).backward()

    def update():
        opt.step()
        sum(torch.linalg.vector_norm(p.grad, dtype=torch.float64).square() for p in params)

    return statistics.median(interleaved({"u": update}, device, repeats, 20)["u"])


# ------------------------------------------------------------------ CPU part


CPU_MODELS = {
    "ConvNet-8": lambda mf: convnet(8, memory_format=mf),
    "PreAct ResNet-18 k=4": lambda mf: preact_resnet18(4, memory_format=mf),
}
QUICK_MODELS = {
    "ConvNet-2": lambda mf: convnet(2, memory_format=mf),
    "PreAct ResNet-18 k=1": lambda mf: preact_resnet18(1, memory_format=mf),
}


def cpu_part(a, device: torch.device) -> dict:
    """Today's path, channels-last (and compiled) steps of both models; see the module doc."""
    quick = a.quick
    sizes = (128, 256) if quick else (256, 512, 1024, 2048)
    if device.type == "cuda":
        sizes = (2048, 4096, 8192)
    sgemm, sgemm_n = sgemm_gflops(device, sizes, 3 if quick else a.repeats)
    where = f"{a.threads} thread(s)" if device.type == "cpu" else str(device)
    print(f"SGEMM (torch.mm float32, n = {sgemm_n}, {where}): {sgemm:.1f} GFLOP/s", flush=True)
    batch = 16 if quick else a.batch
    draw = make_batches(device, batch, 32)
    rows = []
    for name, mk in (QUICK_MODELS if quick else CPU_MODELS).items():
        base = mk("contiguous")
        if isinstance(base, ConvNet):
            legacy_convnet(base)
        fns = {"today": single_step(base, device, draw),
               "channels_last": single_step(mk("channels_last"), device, draw)}
        flops = step_flops(fns["today"])
        compile_s = None
        if a.compile and not quick and device.type == "cpu":
            fn = single_step(mk("channels_last"), device, draw, compile_model=True)
            t0 = time.perf_counter()
            fn()
            compile_s = time.perf_counter() - t0
            fns["channels_last + compile"] = fn
        times = interleaved(fns, device, 2 if quick else a.repeats, 1 if quick else a.steps)
        med = {k: statistics.median(v) for k, v in times.items()}
        opt_s = optimizer_share(mk("channels_last"), device, draw, 2 if quick else a.repeats)
        rows.append({"name": name, "flops": flops, "med": med, "compile_s": compile_s,
                     "spread": {k: max(v) / min(v) for k, v in times.items()},
                     "opt_s": opt_s})
        print(f"{name}: {flops / 1e9:.3f} GFLOP/step (batch {batch})", flush=True)
        for k, s in med.items():
            extra = f"  (compile {compile_s:.1f} s)" if "compile" in k else ""
            print(f"  {k:24s} {s * 1e3:8.2f} ms/step {1 / s:7.2f} steps/s "
                  f"{flops / s / 1e9:7.1f} GFLOP/s = {flops / s / 1e9 / sgemm:5.1%} of SGEMM  "
                  f"x{med['today'] / s:.2f} today's steps/s{extra}", flush=True)
        print(f"  optimizer update + gradient norm: {opt_s * 1e3:.2f} ms "
              f"({opt_s / med['channels_last']:.1%} of the channels_last step)", flush=True)
    return {"sgemm": sgemm, "sgemm_n": sgemm_n, "batch": batch, "rows": rows}


def step_table(res: dict) -> list[str]:
    """The Markdown rows of the step part (one per model and path)."""
    lines = ["| model | GFLOP/step | path | ms/step | steps/s | GFLOP/s | of SGEMM | "
             "vs today (steps/s) | spread |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        for k, s in r["med"].items():
            label = k if r["compile_s"] is None or "compile" not in k else \
                f"{k} (compile {r['compile_s']:.0f} s apart)"
            lines.append(f"| {r['name']} | {r['flops'] / 1e9:.3f} | {label} | {s * 1e3:.1f} | "
                         f"{1 / s:.2f} | {r['flops'] / s / 1e9:.1f} | "
                         f"{r['flops'] / s / 1e9 / res['sgemm']:.0%} | "
                         f"**{r['med']['today'] / s:.2f}x** | {r['spread'][k]:.2f} |")
    return lines


def cpu_section(a, res: dict, load0: str, load1: str) -> str:
    """The docs/benchmarks.md section of the CPU part, formatted from the run."""
    lines = [CPU_TITLE, "",
             f"`python benchmarks/bench_conv_step.py --threads {a.threads} --repeats "
             f"{a.repeats} --steps {a.steps}{' --quick' if a.quick else ''}` "
             f"({time.strftime('%Y-%m-%d')}, torch "
             f"{torch.__version__}, {os.cpu_count()} cores shared with other jobs, load "
             f"average {load0} at the start and {load1} at the end): fwd + bwd + fixed-ELR "
             f"step (`SingleNet.train_step`) at batch {res['batch']} on 3x32x32 random data, "
             f"{a.threads} thread(s); the variants timed in {a.repeats} alternating blocks of "
             f"{a.steps} steps, median. FLOPs from `torch.utils.flop_counter.FlopCounterMode`. "
             f"SGEMM = `torch.mm` float32 at n = {res['sgemm_n']}: **{res['sgemm']:.1f} GFLOP/s**. "
             "'spread' is the largest / smallest block of a variant: ratios inside it are noise.",
             "", *step_table(res)]
    opt = "; ".join(f"{r['name']} {r['opt_s'] * 1e3:.2f} ms "
                    f"({r['opt_s'] / r['med']['channels_last']:.1%})" for r in res["rows"])
    lines += ["", "Today's path: the models as before issue 10 (NCHW; ConvNet ReLU before its "
              "max-pools). `channels_last`: `convnet(..., memory_format=\"channels_last\")` / "
              "`preact_resnet18(...)`, the same function (tests/nn/test_models.py: equal "
              "outputs and gradients to float32 round-off): oneDNN convolutions without layout "
              "reorders, ConvNet max-pool before ReLU (exact, a quarter of the ReLU work), "
              "BatchNorm with fewer than 8 channels through the NCHW kernel (the channels-last "
              "kernel is ~3x slower there: the ResNet's C = 4 stage). The optimizer update and "
              f"the engine's gradient norm cost {opt} of the step: there is nothing to win "
              "there. `+ compile`: `torch.compile(model)` (inductor, default mode) of the "
              "channels-last model; its compile time is the first step, measured apart (a warm "
              "inductor cache from an earlier run shortens it). Targets: >= 1.5x today's "
              "steps/s; stretch 50% of SGEMM.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ batched grid part


def elr_grid(G: int) -> tuple[list[float], list[float]]:
    """The first G configs of the paper's ConvNet-8 ELR grid: elr in [1e-4, 1e-2] (13 values) x
    wd in [1e-3, 1e-1] (9 values), elr-major."""
    elrs = [10 ** (-4 + 2 * i / 12) for i in range(13)]
    wds = [10 ** (-3 + 2 * j / 8) for j in range(9)]
    pairs = [(e, w) for e in elrs for w in wds][:G]
    return [e for e, _ in pairs], [w for _, w in pairs]


#: the batched conv backends timed on the grid: the grid engine's grouped convolutions and
#: torch.func vmap over stacked parameters and BN buffers
BACKENDS = {"grouped": BatchedConvNet, "vmap": BatchedConvModel}


def batched_step(model: nn.Module, G: int, device: torch.device, draw,
                 backend: str = "grouped"):
    """One step of G configs as one batched model of ``backend`` (`BACKENDS`) +
    `BatchedProtocol("elr")`."""
    bm = BACKENDS[backend].replicate(model, G).to(device)
    elr, wd = elr_grid(G)
    opt = BatchedProtocol(bm.si_parameters(), "elr",
                          elr=torch.tensor(elr, dtype=torch.float64, device=device),
                          wd=torch.tensor(wd, dtype=torch.float64, device=device))

    def step():
        x, y = draw()
        opt.zero_grad(set_to_none=True)
        batched_cross_entropy(bm(x), y).sum().backward()
        opt.step()

    return step


def grid_part(a, device: torch.device) -> dict:
    """Batched config-steps/s of a G-config ConvNet grid against one config at a time; halves
    the chunk of configs on out-of-memory."""
    quick = a.quick
    width, G, batch = (2, 4, 16) if quick else (a.width, a.configs, a.batch)
    draw = make_batches(device, batch, 32)
    mk = lambda: convnet(width)  # noqa: E731
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
    single = single_step(mk(), device, draw)
    repeats, steps = (2, 1) if quick else (a.repeats, a.steps)
    t_single = statistics.median(interleaved({"s": single}, device, repeats, steps)["s"])
    backends = {}
    for backend in BACKENDS:
        chunk, step = G, None
        while True:
            try:
                step = batched_step(mk(), chunk, device, draw, backend)
                t_batch = statistics.median(
                    interleaved({"b": step}, device, repeats, steps)["b"])
                break
            except torch.OutOfMemoryError:
                if chunk == 1:
                    raise
                print(f"{backend}: out of memory at G = {chunk}, trying {chunk // 2}",
                      flush=True)
                del step
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                chunk //= 2
        del step
        backends[backend] = {"chunk": chunk, "seconds": t_batch, "rate": chunk / t_batch}
        print(f"{backend}: G = {chunk}, {chunk / t_batch:.1f} config-steps/s "
              f"({t_batch * 1e3:.1f} ms/step)", flush=True)
    best = max(backends, key=lambda b: backends[b]["rate"])
    chunk, t_batch = backends[best]["chunk"], backends[best]["seconds"]
    rate_single, rate_batch = 1 / t_single, chunk / t_batch
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    runs = sum(STUDY.values())
    res = {"width": width, "G": G, "chunk": chunk, "batch": batch, "single": rate_single,
           "best": best, "backends": backends,
           "batched": rate_batch, "speedup": rate_batch / rate_single, "peak_gib": peak,
           "study_single_h": runs * STUDY_STEPS / rate_single / 3600,
           "study_batched_h": runs * STUDY_STEPS / rate_batch / 3600, "runs": runs}
    print(f"ConvNet-{width} grid, batch {batch}, device {device}: one config "
          f"{rate_single:.1f} config-steps/s ({t_single * 1e3:.2f} ms/step); batched "
          f"({best}) G = {chunk}"
          f" {rate_batch:.1f} config-steps/s ({t_batch * 1e3:.1f} ms/step): "
          f"x{res['speedup']:.1f} (target >= 10x)" + (f"; peak memory {peak:.1f} GiB"
                                                      if peak is not None else ""), flush=True)
    print(f"projected paper ConvNet-{width}/CIFAR-10 study ({runs} runs x {STUDY_STEPS:.0e} "
          f"steps): one at a time {res['study_single_h']:.1f} h, batched "
          f"{res['study_batched_h']:.1f} h", flush=True)
    return res


def gpu_section(a, res: dict | None, device_name: str = "", steps: dict | None = None) -> str:
    """The docs section of the batched grid on a GPU (``res`` None: pending)."""
    cmd = "`python benchmarks/bench_conv_step.py --device cuda --doc docs/benchmarks.md`"
    head = [GPU_TITLE, ""]
    if res is None:
        return "\n".join([*head,
            f"{cmd}: batched config-steps/s of a ConvNet-8 grid of {a.configs} configs (the "
            "paper's 13 x 9 ELR grid; two backends stepped by `BatchedProtocol(\"elr\")`: "
            "the grid engine's grouped convolutions, `thermosgd.nn.batched_convnet."
            "BatchedConvNet`, and torch.func vmap, `thermosgd.nn.batched_conv."
            "BatchedConvModel`) against one config at a time, and the projected wall "
            f"time of the paper's ConvNet-8/CIFAR-10 study ({sum(STUDY.values())} runs x 1e6 "
            "steps). **Pending a GPU machine**: issue 10's session had none; the script's "
            "CUDA path is smoke-tested on CPU (`--device cpu --quick`, "
            "tests/benchmarks/test_bench_conv_step.py). Target: >= 10x.", ""])
    peak = "" if res["peak_gib"] is None else f", peak memory {res['peak_gib']:.1f} GiB"
    return "\n".join([*head,
        f"{cmd} ({time.strftime('%Y-%m-%d')}, {device_name}, torch {torch.__version__}, "
        f"cudnn.benchmark on, default TF32 settings): ConvNet-{res['width']} at batch "
        f"{res['batch']}, fixed-ELR grid of {res['G']} configs run as batches of {res['chunk']}"
        f"{peak}; medians of {a.repeats} blocks of {a.steps} steps.", "",
        "| path | config-steps/s | speed-up (target >= 10x) | paper study "
        f"({res['runs']} runs x 1e6 steps) |", "|---|---:|---:|---:|",
        f"| one config at a time (`SingleNet`) | {res['single']:.1f} | 1x | "
        f"{res['study_single_h']:.0f} h |",
        *(f"| batched {name} (`{BACKENDS[name].__name__}`, G = {b['chunk']}) | "
          f"{b['rate']:.1f} | " + (f"**{b['rate'] / res['single']:.1f}x**" if name ==
                                   res["best"] else f"{b['rate'] / res['single']:.1f}x")
          + f" | {res['runs'] * STUDY_STEPS / b['rate'] / 3600:.1f} h |"
          for name, b in res["backends"].items()), "",
        *([] if steps is None else [
            f"One config's step on the same GPU (SGEMM = `torch.mm` float32 at n = "
            f"{steps['sgemm_n']}: {steps['sgemm']:.0f} GFLOP/s):", "", *step_table(steps), ""])])


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    ap.add_argument("--repeats", type=int, default=7, help="alternating blocks per variant")
    ap.add_argument("--steps", type=int, default=5, help="steps per block")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--configs", type=int, default=117, help="G of the batched grid")
    ap.add_argument("--width", type=int, default=8, help="ConvNet width of the batched grid")
    ap.add_argument("--grid", action="store_true",
                    help="on CPU, also run the batched grid part (always on with cuda)")
    ap.add_argument("--no-compile", dest="compile", action="store_false",
                    help="skip the torch.compile variant of the CPU part")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    ap.add_argument("--gpu-flow", action="store_true",
                    help="run the --device cuda flow and doc section on this device (tests)")
    ap.add_argument("--doc", type=Path, default=None, help="write the sections into this file")
    a = ap.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("cuda: not available on this machine", file=sys.stderr)
        return 2
    device = torch.device(a.device)
    torch.set_num_threads(a.threads)
    load0 = load()
    print(f"torch {torch.__version__}, device {device}, {a.threads} thread(s), load {load0}",
          flush=True)
    if device.type == "cuda" or a.gpu_flow:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
        print(f"device: {name}", flush=True)
        steps = cpu_part(a, device)  # the single-config step part, on the GPU
        res = grid_part(a, device)
        if a.doc is not None:
            write_heading_section(a.doc, GPU_TITLE, gpu_section(a, res, name, steps))
        return 0
    cpu = cpu_part(a, device)
    grid = grid_part(a, device) if (a.grid or a.quick) else None
    load1 = load()
    print(f"load average at the end: {load1}")
    if a.doc is not None:
        write_heading_section(a.doc, CPU_TITLE, cpu_section(a, cpu, load0, load1))
        text = a.doc.read_text()
        if GPU_TITLE not in text or "Pending a GPU machine" in text:
            write_heading_section(a.doc, GPU_TITLE, gpu_section(a, None))
        print(f"wrote {a.doc}")
    del grid
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
