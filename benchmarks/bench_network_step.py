"""Step time of the paper's networks (fwd + bwd + fixed-ELR step, batch 128, float32).

ConvNet-8 (d = 24,408) and pre-activation ResNet-18 k=4 (d = 43,692) on CIFAR-shaped inputs
(3x32x32, random data kept on the device, i.i.d. batches as in the paper). Times every device
that is available (cpu, and cuda when present). Prints ms/step and steps/s.

    python benchmarks/bench_network_step.py [--steps 50] [--devices cpu,cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from thermosgd.nn.conv_models import convnet, preact_resnet18
from thermosgd.nn.models import si_dim, si_parameters
from thermosgd.nn.optim import FixedELR


def time_model(name: str, model: torch.nn.Module, device: str, steps: int) -> float:
    model = model.to(device)
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(4096, 3, 32, 32, device=device, generator=g)
    y = torch.randint(0, 10, (4096,), device=device, generator=g)
    opt = FixedELR(si_parameters(model), elr=1e-3, wd=5e-4)

    def step():
        idx = torch.randint(0, x.shape[0], (128,), device=device, generator=g)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()

    for _ in range(10):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    ms = (time.perf_counter() - t) / steps * 1e3
    print(f"{name:22s} d={si_dim(model):6d} device={device:4s} {ms:8.2f} ms/step "
          f"{1e3 / ms:8.1f} steps/s", flush=True)
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads (1 is fastest on a busy 2-core machine: small ops wait "
                         "for the other core otherwise)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for device in a.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: not available on this machine")
            continue
        if device == "cuda":
            print(f"cuda device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
        time_model("ConvNet-8 (paper)", convnet(8), device, a.steps)
        time_model("PreAct ResNet-18 k=4", preact_resnet18(4), device, a.steps)


if __name__ == "__main__":
    main()
