"""train.engine: resume bit-identically after a crash, divergence, the batched engine against
the single one (through `tests.reference.assert_matches_reference`), whole-set evaluations,
non-SI variants, momentum and AdamW, the per-step hyperparameter hook."""

import json
import math

import numpy as np
import pytest
import torch

from tests.reference import assert_matches_reference
from tests.train.common import OPT_HYPER, assert_same_run, crash_after, docs_equal, tiny
from thermosgd.io import read_csv
from thermosgd.nn.models import frozen_linear
from thermosgd.train import build_model, load_data
from thermosgd.train import train as _train
from thermosgd.train import train_grid as _train_grid

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(*args, **kwargs):
    """`thermosgd.train.train` keeping the final checkpoint.pt: these tests compare runs
    through it (model weights, optimizer state, step)."""
    return _train(*args, keep_checkpoints=True, **kwargs)


def train_grid(*args, **kwargs):
    """`thermosgd.train.train_grid` keeping the final checkpoints (see `train`)."""
    return _train_grid(*args, keep_checkpoints=True, **kwargs)


@pytest.mark.parametrize("protocol", ["elr", "sphere"])
def test_resume_after_interruption_is_identical(tmp_path, monkeypatch, protocol):
    c = tiny(protocol)
    train(c, tmp_path / "a")
    # crash at step 71: the last checkpoint is at step 40
    crash_after(monkeypatch, 70)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(c, tmp_path / "b")
    monkeypatch.undo()
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["step"] == 40
    train(c, tmp_path / "b")
    assert_same_run(tmp_path / "a", tmp_path / "b")
    # a clean stop mid-block (max_steps_this_call) checkpoints and resumes as well
    doc = train(c, tmp_path / "c", max_steps_this_call=53)
    assert doc["status"] == "interrupted" and doc["steps_done"] == 53
    assert not (tmp_path / "c" / "stationary.json").exists()
    train(c, tmp_path / "c")
    assert_same_run(tmp_path / "a", tmp_path / "c")


def test_batched_grid_resumes_identically(tmp_path, monkeypatch):
    cs = [tiny(elr=0.01, wd=0.01), tiny(elr=0.02, wd=0.03, init_radius=0.5)]
    train_grid(cs, [tmp_path / "a0", tmp_path / "a1"])
    crash_after(monkeypatch, 90)
    with pytest.raises(RuntimeError):
        train_grid(cs, [tmp_path / "b0", tmp_path / "b1"])
    monkeypatch.undo()
    train_grid(cs, [tmp_path / "b0", tmp_path / "b1"])
    for i in (0, 1):
        assert_same_run(tmp_path / f"a{i}", tmp_path / f"b{i}")


@pytest.mark.parametrize("protocol,hyper", [("elr", {"elr": 1e3, "wd": 0.01}),
                                            ("lr", {"lr": 1e4, "wd": 0.01})])
def test_divergence_is_recorded_not_raised(tmp_path, protocol, hyper):
    doc = train(tiny(protocol, **hyper), tmp_path / "run")
    assert doc["status"] == "diverged" and doc["diverged"] is True and doc["stationary"] is False
    assert doc["diverged_at"] is not None and doc["steps_done"] < 120
    saved = json.loads((tmp_path / "run" / "stationary.json").read_text())
    assert saved["status"] == "diverged" and any("diverged" in r for r in saved["reasons"])
    assert "DIVERGED" in saved["summary"]


def test_batched_grid_keeps_training_after_a_divergence(tmp_path):
    cs = [tiny(elr=0.01, wd=0.01), tiny(elr=1e3, wd=0.01), tiny(elr=0.02, wd=0.03)]
    outs = [tmp_path / f"r{i}" for i in range(3)]
    docs = train_grid(cs, outs)
    assert [d["status"] for d in docs] == ["complete", "diverged", "complete"]
    assert docs[1]["steps_done"] < 120 and docs[0]["steps_done"] == docs[2]["steps_done"] == 120
    # the survivors match runs trained without the diverging config (float tolerance)
    ref = train_grid([cs[0], cs[2]], [tmp_path / "s0", tmp_path / "s2"], batched=False)
    for d, r in zip((docs[0], docs[2]), ref, strict=True):
        assert math.isfinite(d["radius"])
        np.testing.assert_allclose(d["radius"], r["radius"], rtol=1e-4)
    # a finished grid is not retrained
    again = train_grid(cs, outs)
    assert [d["status"] for d in again] == ["complete", "diverged", "complete"]


@pytest.mark.parametrize("protocol,shared", [("elr", True), ("elr", False), ("sphere", True),
                                             ("lr", False)])
def test_batched_grid_equals_sequential_runs(tmp_path, protocol, shared):
    hp = {
        "elr": [dict(elr=0.01, wd=0.01), dict(elr=0.02, wd=0.003)],
        "sphere": [dict(elr=0.01, radius=1.0), dict(elr=0.005, radius=2.0)],
        "lr": [dict(lr=0.3, wd=0.01), dict(lr=0.1, wd=0.003)],
    }[protocol]
    kw = dict(steps=30, log_every=1, noise_every=10, queue_size=10, checkpoint_every=15)
    cs = [tiny(protocol, **kw, **h, **({} if shared else {"seed": 1 + i}))
          for i, h in enumerate(hp)]
    if protocol != "sphere" and not shared:
        cs[1] = tiny(protocol, **kw, **hp[1], seed=2, init_radius=0.7, init_seed=3)
    b = train_grid(cs, [tmp_path / "b0", tmp_path / "b1"])
    s = train_grid(cs, [tmp_path / "s0", tmp_path / "s1"], batched=False)
    # the batched engine (one BatchedBNMLP, one GEMM for all configs) is the fast path; the
    # reference is one torch model per config stepped by its own protocol optimizer
    for i in range(2):
        mb = read_csv(tmp_path / f"b{i}" / "metrics.csv")
        ms = read_csv(tmp_path / f"s{i}" / "metrics.csv")
        keys = ("loss", "radius", "trace_sigma", "grad_norm2")
        # float32 round-off of two kernel orders (one GEMM for all configs vs one per config),
        # amplified over 30 steps: ~1e-7 seen, 1e-5 allowed
        assert_matches_reference({k: mb[k] for k in keys}, {k: ms[k] for k in keys},
                                 rtol=1e-5, atol=1e-6, what=f"metrics of config {i}")
        wb = torch.load(tmp_path / f"b{i}" / "checkpoint.pt", weights_only=False)["model"]
        ws = torch.load(tmp_path / f"s{i}" / "checkpoint.pt", weights_only=False)["model"]
        assert wb.keys() == ws.keys()
        floats = [k for k in ws if ws[k].is_floating_point()]
        # the same round-off in the weights and BN statistics after 30 steps
        assert_matches_reference({k: wb[k] for k in floats}, {k: ws[k] for k in floats},
                                 rtol=1e-5, atol=1e-6, what=f"model of config {i}")
        assert b[i]["n_snapshots"] == s[i]["n_snapshots"] == 10
        # k-NN entropy of snapshots that differ by that round-off
        assert_matches_reference(b[i]["entropy"], s[i]["entropy"], rtol=1e-5, what="entropy")


def test_evaluations_match_a_direct_computation_and_the_batched_engine(tmp_path):
    kw = dict(test_fraction=0.2, test_evals=4)
    cs = [tiny(elr=0.01, wd=0.01, **kw), tiny(elr=0.02, wd=0.003, **kw)]
    b = train_grid(cs, [tmp_path / "b0", tmp_path / "b1"])
    s = train_grid(cs, [tmp_path / "s0", tmp_path / "s1"], batched=False)
    ds = load_data(cs[0])
    assert ds.n_test == round(0.2 * 1797)
    for i in range(2):
        ck = torch.load(tmp_path / f"s{i}" / "checkpoint.pt", weights_only=False)
        assert [e["step"] for e in ck["evals"]] == [75, 90, 105, 120]
        # the last evaluation is at the final weights: recompute it by hand (eval-mode BN)
        model = build_model(cs[i], ds)
        model.load_state_dict(ck["model"])
        model.eval()
        with torch.no_grad():
            for split in ("train", "test"):
                x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
                logits = model(x).double()
                loss = float(torch.nn.functional.cross_entropy(logits, y))
                acc = float((logits.argmax(1) == y).double().mean())
                assert ck["evals"][-1][f"{split}_loss"] == pytest.approx(loss, rel=1e-6)
                assert ck["evals"][-1][f"{split}_acc"] == pytest.approx(acc, abs=1e-12)
        ev = {k: np.array([e[k] for e in ck["evals"]]) for k in ck["evals"][0]}
        assert s[i]["n_evals"] == 4
        assert s[i]["eval_test_loss"] == pytest.approx(ev["test_loss"].mean(), rel=1e-12)
        gap = ev["test_loss"] - ev["train_loss"]
        assert s[i]["gap_loss"] == pytest.approx(gap.mean(), rel=1e-9)
        assert s[i]["gap_loss_se"] == pytest.approx(gap.std(ddof=1) / 2, rel=1e-9)
        assert s[i]["gap_acc"] == pytest.approx((ev["train_acc"] - ev["test_acc"]).mean())
        # batched and single engines agree to float32 round-off (see the test above)
        for k in ("eval_train_loss", "eval_test_loss", "gap_loss"):
            assert b[i][k] == pytest.approx(s[i][k], rel=1e-4, abs=1e-5), k


def test_non_si_variants_train_as_one_group_and_report_their_distance(tmp_path):
    """The SI baseline's radial gradient is float32 round-off plus BatchNorm's eps (< 1e-4
    measured ~1e-6); a trainable head moves it to ~1e-2 and the loss under scaling by 1/2
    or 2 by tens of percent (measured 0.1-0.5); we assert 1e-3 and 1e-2."""
    docs = train_grid([tiny(), tiny(variant="head"), tiny(variant="bn-affine")],
                      [tmp_path / "si", tmp_path / "head", tmp_path / "bn"])
    si, head, bn = docs
    assert [d["variant"] for d in docs] == ["si", "head", "bn-affine"]
    assert si["dim"] == 64 * 16 + 16 * 16
    assert head["dim"] == si["dim"] + 16 * 10 and bn["dim"] == si["dim"] + 2 * (16 + 16)
    assert si["si_radial_gradient"] < 1e-4 and si["si_loss_change"] < 1e-2
    for d in (head, bn):
        assert d["status"] == "complete" and d["si_radial_gradient"] > 1e-3
        assert d["si_radial_gradient_rms"] > 1e-3 and d["si_loss_change"] > 1e-2
        assert d["si_loss_change"] == max(d["si_loss_change_half"], d["si_loss_change_double"])
        assert math.isfinite(d["radius_discrete"])
    # the trained group holds the head: its weights moved, and the radius counts them
    ck = torch.load(tmp_path / "head" / "checkpoint.pt", weights_only=False)
    assert not torch.equal(ck["model"]["head.weight"], frozen_linear(16, 10, bias=False).weight)
    w = torch.cat([v.reshape(-1) for k, v in ck["model"].items() if k.endswith("weight")])
    assert math.isclose(float(w.norm()), ck["optimizer"]["param_groups"][0]["last_radius"],
                        rel_tol=0.05)


@pytest.mark.parametrize("optimizer", ["momentum", "adamw"])
def test_momentum_adamw_runs_resume_identically(tmp_path, monkeypatch, optimizer):
    """A tiny run writes the optimizer into stationary.json with its predictions; a crash
    after the checkpoint at step 40 resumes bit-identically (the buffers are checkpointed)."""
    c = tiny("lr", optimizer=optimizer, **OPT_HYPER[optimizer])
    doc = train(c, tmp_path / "a")
    assert doc["status"] == "complete" and doc["optimizer"] == optimizer
    assert doc["momentum"] == 0.9 and doc["beta2"] == (0.999 if optimizer == "adamw" else None)
    assert math.isfinite(doc["radius_sde"]) and math.isfinite(doc["temperature"])
    if optimizer == "adamw":  # sigma-independent: sqrt(eta d / (2 lambda))
        assert doc["radius_sde"] == pytest.approx(math.sqrt(3e-3 * doc["dim"] / 0.2))
    crash_after(monkeypatch, 70)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(c, tmp_path / "b")
    monkeypatch.undo()
    train(c, tmp_path / "b")
    assert_same_run(tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize("optimizer", ["momentum", "adamw"])
def test_batched_momentum_adamw_grid_equals_sequential_and_resumes(tmp_path, monkeypatch,
                                                                    optimizer):
    h = OPT_HYPER[optimizer]
    kw = dict(steps=30, log_every=1, noise_every=10, queue_size=10, checkpoint_every=15)
    cs = [tiny("lr", optimizer=optimizer, **kw, **h),
          tiny("lr", optimizer=optimizer, momentum=0.5, **kw, lr=2 * h["lr"], wd=h["wd"])]
    b = train_grid(cs, [tmp_path / "b0", tmp_path / "b1"])
    s = train_grid(cs, [tmp_path / "s0", tmp_path / "s1"], batched=False)
    for i in range(2):
        mb = read_csv(tmp_path / f"b{i}" / "metrics.csv")
        ms = read_csv(tmp_path / f"s{i}" / "metrics.csv")
        if optimizer == "momentum":
            keys = ("loss", "radius", "trace_sigma")  # float32 kernel orders, as above
            assert_matches_reference({k: mb[k] for k in keys}, {k: ms[k] for k in keys},
                                     rtol=1e-5, atol=1e-6, what=f"momentum config {i}")
        else:
            # AdamW divides each coordinate by its RMS gradient: the float32 round-off of the
            # two GEMM orders (1e-7) flips the sign of the coordinates whose gradient is that
            # small and moves them by O(lr) within a few steps, so the loss paths part (~1%);
            # the radius, set by lr sqrt(d) alone, stays within 1% (0.2% seen). The batched
            # step itself is torch's AdamW bit for bit (tests/test_protocols.py).
            assert_matches_reference(mb["loss"][:4], ms["loss"][:4], rtol=1e-5, atol=1e-6,
                                     what="AdamW loss, first steps")
            assert_matches_reference(mb["radius"], ms["radius"], rtol=1e-2, what="AdamW radius")
        assert b[i]["momentum"] == s[i]["momentum"] == (0.9, 0.5)[i]
    # the batched checkpoint holds config g's buffers: a batched crash + resume is identical
    crash_after(monkeypatch, 20)
    with pytest.raises(RuntimeError):
        train_grid(cs, [tmp_path / "c0", tmp_path / "c1"])
    monkeypatch.undo()
    train_grid(cs, [tmp_path / "c0", tmp_path / "c1"])
    for i in (0, 1):
        a, c = (torch.load(tmp_path / f"{x}{i}" / "checkpoint.pt", weights_only=False)
                for x in "bc")
        assert all(torch.equal(a["model"][k], c["model"][k]) for k in a["model"])
        for sa, sc in zip(a["optimizer"]["state"].values(), c["optimizer"]["state"].values(),
                          strict=True):
            assert all(torch.equal(sa[k], sc[k]) for k in sa)
        assert (tmp_path / f"b{i}" / "metrics.csv").read_text() == (
            tmp_path / f"c{i}" / "metrics.csv").read_text()
        da, dc = (json.loads((tmp_path / f"{x}{i}" / "stationary.json").read_text())
                  for x in "bc")
        docs_equal(da, dc)



# --------------------------------------------------------------------------------------------
# the per-step hyperparameter hook


def _ramp(step, config):
    """A schedule: elr grows linearly from the config's value (a pure function of step)."""
    return {"elr": config.elr * (1.0 + step / 100.0)}


def test_hook_with_the_config_values_changes_nothing(tmp_path):
    c = tiny()
    train(c, tmp_path / "a")
    calls = []

    def same(step, config):
        calls.append(step)
        return dict(config.hyperparameters)

    train(c, tmp_path / "b", hook=same)
    assert calls == list(range(c.steps))  # once per step, before it: 0 .. steps - 1
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_hook_drives_the_rate_and_resumes_identically(tmp_path, monkeypatch):
    c = tiny()
    train(c, tmp_path / "const")
    train(c, tmp_path / "a", hook=_ramp)
    a = read_csv(tmp_path / "a" / "metrics.csv")
    const = read_csv(tmp_path / "const" / "metrics.csv")
    assert a["loss"][-1] != const["loss"][-1]  # the ramp reached elr = 2.2 x the config's
    crash_after(monkeypatch, 70)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(c, tmp_path / "b", hook=_ramp)
    monkeypatch.undo()
    train(c, tmp_path / "b", hook=_ramp)
    assert_same_run(tmp_path / "a", tmp_path / "b")


def _weights(state):
    return {k: v for k, v in state.items() if k.endswith("weight")}


def test_hook_rate_zero_freezes_the_weights_single_and_batched(tmp_path):
    """lr = 0 makes w <- w - 0 (g + wd w) = w exactly: the trained weights stay at their
    initialization (the model of the config scaled to init_radius), independently of the
    engine; a per-config hook freezes one config of a batched grid (to float32 round-off of
    its batched initialization) and leaves the other bit-identical to its hook-free run."""
    from thermosgd.nn.scale_invariance import set_group_radius
    from thermosgd.train.nets import si_params

    cs = [tiny("lr"), tiny("lr", lr=0.1, wd=0.003)]
    ds = load_data(cs[1])
    init = build_model(cs[1], ds)
    set_group_radius(si_params(init), 1.0)
    expected = _weights(init.state_dict())

    def freeze_second(step, config):
        return {"lr": 0.0} if config == cs[1] else {}

    frozen = train(cs[1], tmp_path / "single", hook=freeze_second)
    # lr = 0 is no state of the theory: the monitor keeps the config's, the verdict says so
    assert frozen["stationary"] is False and frozen["lr"] == 0.1
    assert any("hyperparameter hook holds lr = 0 from step 1 on: no stationary state" in r
               for r in frozen["reasons"])
    ck = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=False)
    assert _weights(ck["model"]).keys() == expected.keys()
    assert all(torch.equal(_weights(ck["model"])[k], expected[k]) for k in expected)
    train_grid(cs, [tmp_path / "h0", tmp_path / "h1"], hook=freeze_second)
    train_grid(cs, [tmp_path / "n0", tmp_path / "n1"])
    h1 = torch.load(tmp_path / "h1" / "checkpoint.pt", weights_only=False)["model"]
    n1 = torch.load(tmp_path / "n1" / "checkpoint.pt", weights_only=False)["model"]
    # the batched model scales the same initial weights to radius 1 with a radius summed in
    # another order (float32: ~1e-7 relative); the unfrozen config moved by ~1e-2
    assert_matches_reference(_weights(h1), expected, rtol=1e-6, atol=1e-7, what="frozen")
    assert not all(torch.allclose(_weights(n1)[k], expected[k], atol=1e-3) for k in expected)
    h0, n0 = (torch.load(tmp_path / f"{x}0" / "checkpoint.pt", weights_only=False)["model"]
              for x in "hn")
    assert all(torch.equal(h0[k], n0[k]) for k in n0)
    assert (tmp_path / "h0" / "metrics.csv").read_text() == (
        tmp_path / "n0" / "metrics.csv").read_text()


@pytest.mark.parametrize("protocol,values,msg", [
    ("sphere", {"radius": 2.0}, "hyperparameter hook key == 'radius', must be one of elr"),
    ("elr", {"lr": 0.1}, "hyperparameter hook key == 'lr', must be one of elr, wd"),
    ("elr", {"wd": -1.0}, "wd == -1.0, must be >= 0"),
])
def test_bad_hook_values_are_one_line_errors(tmp_path, protocol, values, msg):
    with pytest.raises(ValueError, match=msg):
        train(tiny(protocol), tmp_path / "run", hook=lambda step, config: values)


def _step_lr(step, config):
    """StepLR(step_size=200, gamma=0.3) as a hook: update ``step`` (from 0) uses
    lr0 0.3^(step // 200), a pure function of (step, config)."""
    return {"lr": config.lr * 0.3 ** (step // 200)}


def test_step_lr_hook_temperature_is_the_fixed_lr_one_at_the_final_lr(tmp_path, monkeypatch):
    """A StepLR-like hook through `thermosgd.train.train`: lr 0.3 -> 0.09 -> 0.027 from updates
    200 and 400 (the engine tells the monitor from step 201 / 401 on, the first records made
    with them). stationary.json reports the hyperparameters in force at the end (lr = 0.027)
    and T = sqrt(eta lambda sigma^2 / (2 (d-1))) at eta = 0.027 with the window's measured
    sigma^2 (the formula computed here, as the scheduler test of attached monitors does), the
    probes' temperatures in metrics.csv likewise at the lr of their step; the window after the
    last change is not flagged, one that reaches back over it is. A crash after the change
    resumes to the same run bit for bit (the monitor's changes and the values in force are
    checkpointed)."""
    c = tiny("lr", steps=600, window=150)
    doc = train(c, tmp_path / "a", hook=_step_lr)
    assert doc["lr"] == pytest.approx(0.3 * 0.3**2, rel=1e-12) and doc["wd"] == 0.01
    assert doc["window_start"] == 450 and doc["n_noise"] >= 3
    d = doc["dim"]
    t_final = math.sqrt(doc["lr"] * doc["wd"] * doc["sigma2"] / (2 * (d - 1)))
    assert doc["temperature"] == pytest.approx(t_final, rel=1e-12)
    assert doc["relaxation_time"] == pytest.approx(1 / (4 * doc["lr"] * doc["wd"]), rel=1e-12)
    assert not any("hyperparameters changed" in r for r in doc["reasons"])
    assert doc["n_snapshots"] >= 3
    m = read_csv(tmp_path / "a" / "metrics.csv")
    probed = np.isfinite(m["temperature"])
    lr_of_row = 0.3 * 0.3 ** ((m["step"][probed] - 1) // 200)  # a probe after update step-1
    np.testing.assert_allclose(
        m["temperature"][probed],
        np.sqrt(lr_of_row * 0.01 * m["sigma2"][probed] / (2 * (d - 1))), rtol=1e-12)
    spanning = train(tiny("lr", steps=600, window=300), tmp_path / "span", hook=_step_lr)
    assert spanning["stationary"] is False and spanning["lr"] == doc["lr"]
    assert any("hyperparameters changed at step 401 inside the window (lr 0.09 -> 0.027)" in r
               for r in spanning["reasons"])
    crash_after(monkeypatch, 470)  # checkpoint at step 440, after the last change
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(c, tmp_path / "b", hook=_step_lr)
    monkeypatch.undo()
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 440 and ck["hyper_since"] == 401
    assert ck["hyper_in_force"]["lr"] == pytest.approx(0.027, rel=1e-12)
    train(c, tmp_path / "b", hook=_step_lr)
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_batched_hook_that_omits_keys_resumes_identically(tmp_path, monkeypatch):
    """A hook that sets elr for the first 30 updates and then omits it (the value stays): the
    batched optimizer is rebuilt from the configs on resume, so the engine writes the values
    in force back from the checkpoint; the resumed grid equals the uninterrupted one."""
    cs = [tiny(elr=0.01, wd=0.01), tiny(elr=0.02, wd=0.03, init_radius=0.5)]

    def early(step, config):
        return {"elr": 2 * config.elr} if step < 30 else {}

    train_grid(cs, [tmp_path / "a0", tmp_path / "a1"], hook=early)
    crash_after(monkeypatch, 90)
    with pytest.raises(RuntimeError):
        train_grid(cs, [tmp_path / "b0", tmp_path / "b1"], hook=early)
    monkeypatch.undo()
    train_grid(cs, [tmp_path / "b0", tmp_path / "b1"], hook=early)
    for i in (0, 1):
        assert_same_run(tmp_path / f"a{i}", tmp_path / f"b{i}")
        doc = json.loads((tmp_path / f"a{i}" / "stationary.json").read_text())
        assert doc["elr"] == 2 * cs[i].elr  # in force at the end, not the config's
