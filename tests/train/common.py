"""Shared pieces of the training tests: tiny configs (BN-MLP 64-16-16-10 on digits, ~100
steps), run comparisons and crash injection."""

import json

import pytest
import torch

from thermosgd.train import TrainConfig
from thermosgd.train import engine as train_engine

HYPER = {
    "lr": {"lr": 0.3, "wd": 0.01},
    "elr": {"elr": 0.01, "wd": 0.01},
    "sphere": {"elr": 0.01, "radius": 2.0},
}


def tiny(protocol="elr", **kw):
    base = dict(
        steps=120, hidden=(16, 16), label_noise=0.3, log_every=5, noise_every=40,
        noise_batches=4, queue_size=20, checkpoint_every=40, device="cpu",
    )
    if not any(k in kw for k in ("lr", "elr", "wd", "radius")):
        base.update(HYPER[protocol])
    base.update(kw)
    return TrainConfig(protocol=protocol, **base)


def docs_equal(a: dict, b: dict) -> None:
    skip = {"seconds", "name"}
    assert {k for k in a if k not in skip} == {k for k in b if k not in skip}
    for k in a:
        if k in skip:
            continue
        if k.startswith("si_loss_change") or k == "si_radial_gradient_end":
            # a fresh float64 forward pass at the end, not training state: the kernel chosen on
            # a process's first call may sum in another order (~1e-16 of the loss), which the
            # ~1e-4 loss change of an SI model amplifies to ~1e-12
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-15), k
        else:
            assert a[k] == b[k], k


def assert_same_run(a, b):
    ca = torch.load(a / "checkpoint.pt", weights_only=False)
    cb = torch.load(b / "checkpoint.pt", weights_only=False)
    assert ca["step"] == cb["step"]
    assert ca["model"].keys() == cb["model"].keys()
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    docs_equal(json.loads((a / "stationary.json").read_text()),
                json.loads((b / "stationary.json").read_text()))


def crash_after(monkeypatch, k):
    real = train_engine._training_step
    calls = {"n": 0}

    def step(net, x, y):
        calls["n"] += 1
        if calls["n"] > k:
            raise RuntimeError("simulated crash")
        return real(net, x, y)

    monkeypatch.setattr(train_engine, "_training_step", step)


TINY_ARGS = ["--hidden", "16,16", "--label-noise", "0.3", "--log-every", "5",
             "--noise-every", "40", "--noise-batches", "4", "--queue-size", "20",
             "--device", "cpu"]


OPT_HYPER = {"momentum": {"lr": 0.03, "wd": 0.01}, "adamw": {"lr": 3e-3, "wd": 0.1}}



__all__ = ["HYPER", "OPT_HYPER", "TINY_ARGS", "assert_same_run", "crash_after", "docs_equal",
           "tiny"]
