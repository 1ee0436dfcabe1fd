"""train.engine with conv grids: G ConvNet / ResNet configs as one `BatchedConvNet` against the
same configs one at a time, bit-identical resume of a batched conv grid, a config's batched
checkpoint as a single-model checkpoint, divergence of one config, and the batching rule
(`batch_limit`, ``train_grid(batched=...)``)."""

import dataclasses
import json
import math

import pytest
import torch

from tests.reference import assert_matches_reference
from tests.train.common import assert_same_run, crash_after, tiny
from thermosgd.io import read_csv
from thermosgd.train import build_model, load_data, run, train_grid
from thermosgd.train.engine import CPU_CONV_BATCHING, batch_limit
from thermosgd.train.run import _groups

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KW = dict(steps=30, log_every=1, noise_every=10, queue_size=10, checkpoint_every=15)


@pytest.fixture
def float64(monkeypatch):
    """Train in float64: models built under the float64 default dtype, the data cast.

    In float32 two kernel orders of the same network (grouped convolutions or one conv per
    config) part after ~5-15 steps at these rates: round-off (1e-7) grows by ~10x per step
    until an exact tie of the digits' integer pixels (a max-pool or a ReLU at 0) resolves
    the other way, and the paths then differ by ~1e-2. A float32 single model parts from its
    own float64 copy the same way (measured), so float32 cannot tell a bug from round-off over
    30 steps; in float64 the batched and the separate runs agree to <= 6e-13 (measured, every
    case below)."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    real = run.load_data

    def load64(c, device):
        ds = real(c, device)
        return dataclasses.replace(ds, x_train=ds.x_train.double(), x_test=ds.x_test.double())

    monkeypatch.setattr(run, "load_data", load64)
    yield
    torch.set_default_dtype(prev)


def conv(protocol="elr", model="convnet", **kw):
    """A tiny conv config on the 8x8 digits (width 2: d = 1530 for the ConvNet)."""
    return tiny(protocol, model=model, **{"width": 2, **KW, **kw})


def _models_close(a, b, rtol, scale, what):
    wa = torch.load(a / "checkpoint.pt", weights_only=False)["model"]
    wb = torch.load(b / "checkpoint.pt", weights_only=False)["model"]
    assert wa.keys() == wb.keys()
    for k in wb:
        if wb[k].is_floating_point():
            assert_matches_reference(wa[k], wb[k], rtol=rtol,
                                     atol=scale * float(wb[k].abs().max()), what=f"{what} {k}")


CASES = {
    # (model, protocol, optimizer, per-config hyperparameters, shared training seed)
    "convnet-elr-shared": ("convnet", "elr", "sgd",
                           [dict(elr=0.01, wd=0.01), dict(elr=0.005, wd=0.003)], True),
    "convnet-sphere-seeds": ("convnet", "sphere", "sgd",
                             [dict(elr=0.01, radius=1.0), dict(elr=0.005, radius=2.0)], False),
    "resnet-lr-seeds": ("resnet18", "lr", "sgd",
                        [dict(lr=0.3, wd=0.01), dict(lr=0.1, wd=0.003, init_radius=1.4)], False),
    "convnet-momentum": ("convnet", "lr", "momentum",
                         [dict(lr=0.03, wd=0.01), dict(lr=0.02, wd=0.03, momentum=0.5)], False),
    "resnet-adamw": ("resnet18", "lr", "adamw",
                     [dict(lr=3e-3, wd=0.1), dict(lr=1e-3, wd=0.1, beta2=0.99)], True),
}


def _configs(case, **kw):
    model, protocol, optimizer, hp, shared = CASES[case]
    return [conv(protocol, model=model, optimizer=optimizer, init_seed=1 + i, **h, **kw,
                 **({} if shared else {"seed": 1 + i})) for i, h in enumerate(hp)]


@pytest.mark.parametrize("case", list(CASES))
def test_batched_conv_grid_equals_sequential_runs(tmp_path, float64, case):
    """One `BatchedConvNet` (grouped convolutions, its own init seed, batch stream and
    optimizer state per config) against one model per config stepped by its own optimizer,
    30 steps in float64 (see `float64`): metrics, probes, weights, BN statistics, entropy."""
    cs = _configs(case)
    b = train_grid(cs, [tmp_path / "b0", tmp_path / "b1"], batched="always",
                   keep_checkpoints=True)
    s = train_grid(cs, [tmp_path / "s0", tmp_path / "s1"], batched=False,
                   keep_checkpoints=True)
    for i in range(2):
        mb = read_csv(tmp_path / f"b{i}" / "metrics.csv")
        ms = read_csv(tmp_path / f"s{i}" / "metrics.csv")
        assert b[i]["n_snapshots"] == s[i]["n_snapshots"] == 10
        keys = ("loss", "radius", "trace_sigma", "grad_norm2")
        # float64 round-off of two kernel orders amplified over 30 steps: seen <= 6e-13 of
        # each key's largest entry (the ResNet's gradient norms); 1e-9 leaves > 1000x, while a
        # config mix-up (hyperparameters, seed, init, BN statistics) changes them by > 1e-2
        assert_matches_reference({k: mb[k] for k in keys}, {k: ms[k] for k in keys},
                                 rtol=1e-9, what=f"metrics of config {i}")
        _models_close(tmp_path / f"b{i}", tmp_path / f"s{i}", 1e-9, 1e-9, f"config {i}")
        assert_matches_reference(b[i]["entropy"], s[i]["entropy"], rtol=1e-9, what="entropy")


@pytest.mark.parametrize("case", ["convnet-momentum", "resnet-adamw", "convnet-sphere-seeds"])
def test_batched_conv_grid_resumes_identically(tmp_path, monkeypatch, case):
    """A batched conv grid crashed at step 21 (last checkpoint at 15) and resumed, batched,
    equals the uninterrupted batched grid bit for bit (weights, BN statistics, optimizer
    buffers, metrics, documents)."""
    cs = _configs(case)
    a = [tmp_path / "a0", tmp_path / "a1"]
    b = [tmp_path / "b0", tmp_path / "b1"]
    train_grid(cs, a, batched="always", keep_checkpoints=True)
    crash_after(monkeypatch, 20)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_grid(cs, b, batched="always")
    monkeypatch.undo()
    assert torch.load(b[0] / "checkpoint.pt", weights_only=False)["step"] == 15
    train_grid(cs, b, batched="always", keep_checkpoints=True)
    for x, y in zip(a, b, strict=True):
        assert_same_run(x, y)
        ca, cb = (torch.load(d / "checkpoint.pt", weights_only=False)["optimizer"]
                  for d in (x, y))
        for sa, sb in zip(ca["state"].values(), cb["state"].values(), strict=True):
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_batched_conv_checkpoint_is_a_single_model_checkpoint(tmp_path, float64):
    """Config g's checkpoint of a batched conv grid holds its single model's state_dict and
    single optimizer state: it loads into `build_model`'s model, and the grid resumes one
    config at a time to the end (matching the uninterrupted batched run; float64)."""
    cs = _configs("convnet-momentum")
    full = [tmp_path / "f0", tmp_path / "f1"]
    part = [tmp_path / "p0", tmp_path / "p1"]
    train_grid(cs, full, batched="always", keep_checkpoints=True)
    docs = train_grid(cs, part, batched="always", max_steps_this_call=17)
    assert [d["status"] for d in docs] == ["interrupted"] * 2
    ck = torch.load(part[1] / "checkpoint.pt", weights_only=False)
    model = build_model(cs[1], load_data(cs[1], "cpu"))
    model.load_state_dict(ck["model"])  # strict: the same keys and shapes
    assert {tuple(v["momentum_buffer"].shape) for v in ck["optimizer"]["state"].values()} == {
        tuple(p.shape) for p in model.si_parameters()}
    done = train_grid(cs, part, batched=False, keep_checkpoints=True)
    assert [d["status"] for d in done] == ["complete"] * 2
    for i in range(2):
        mf, mp = (read_csv(d[i] / "metrics.csv") for d in (full, part))
        # float64 round-off of the two kernel orders after step 17, as in the test above
        assert_matches_reference(mp["radius"], mf["radius"], rtol=1e-9, what="radius")
        assert_matches_reference(mp["loss"], mf["loss"], rtol=1e-9, what="loss")


def test_batched_conv_grid_keeps_training_after_a_divergence(tmp_path, float64):
    """A diverging config (elr 1e3) is recorded and frozen; the others finish, equal to the
    grid trained without it (float64 round-off, as above), and a rerun retrains nothing."""
    cs = [conv(elr=0.01, wd=0.01), conv(elr=1e3, wd=0.01), conv(elr=0.02, wd=0.03)]
    outs = [tmp_path / f"r{i}" for i in range(3)]
    docs = train_grid(cs, outs, batched="always")
    assert [d["status"] for d in docs] == ["complete", "diverged", "complete"]
    assert docs[1]["steps_done"] < 30 and docs[0]["steps_done"] == docs[2]["steps_done"] == 30
    saved = json.loads((outs[1] / "stationary.json").read_text())
    assert saved["status"] == "diverged" and saved["diverged_at"] is not None
    ref = train_grid([cs[0], cs[2]], [tmp_path / "s0", tmp_path / "s2"], batched="always")
    for d, r in zip((docs[0], docs[2]), ref, strict=True):
        assert math.isfinite(d["radius"])
        for k in ("radius", "energy", "entropy", "trace_sigma", "eval_train_loss"):
            assert_matches_reference(d[k], r[k], rtol=1e-9, what=k)
    again = train_grid(cs, outs)
    assert [d["status"] for d in again] == ["complete", "diverged", "complete"]


def test_batching_rule():
    """`batch_limit`: BN-MLP always; conv on CUDA always, on CPU per `CPU_CONV_BATCHING`;
    non-SI variants never; batched=False never, "always" everywhere; `_groups` splits a conv
    grid into batches of at most the limit and keeps different architectures apart."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    wide, narrow = conv(width=8), conv()
    assert CPU_CONV_BATCHING["convnet"][0] >= 2 > 0
    assert batch_limit(tiny(), cpu) == 0 and batch_limit(tiny(), cpu, False) == 1
    assert batch_limit(wide, cpu) == 1 and batch_limit(wide, cuda) == 0
    assert batch_limit(wide, cpu, "always") == 0 and batch_limit(wide, cuda, False) == 1
    assert batch_limit(narrow, cpu) == CPU_CONV_BATCHING["convnet"][1]
    assert batch_limit(conv(variant="bn-affine"), cuda) == 1
    with pytest.raises(ValueError, match="batched == 'yes', must be True, False or 'always'"):
        batch_limit(narrow, cpu, "yes")
    limit = CPU_CONV_BATCHING["convnet"][1]
    cs = [conv(elr=0.01 * (1 + i), wd=0.01) for i in range(limit + 1)] + [wide,
                                                                         conv(model="resnet18")]
    n = len(cs)
    groups = _groups(cs, list(range(n)), [cpu] * n, [None] * n, True, None)
    assert sorted(len(g) for g in groups.values()) == [1, 1, 1, limit]
    groups = _groups(cs, list(range(n)), [cuda] * n, [None] * n, True, None)
    assert sorted(map(sorted, groups.values())) == [
        list(range(limit + 1)), [limit + 1], [limit + 2]]
    groups = _groups(cs, list(range(n)), [cpu] * n, [None] * n, False, None)
    assert all(len(g) == 1 for g in groups.values())
