"""Training runs: every protocol writes its files, SI check, resume, divergence, batched grids,
the `thermosgd train` command. Tiny configs (BN-MLP 64-16-16-10 on digits, ~100 steps)."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import thermosgd.training as training
from thermosgd.cli import main
from thermosgd.io import read_csv
from thermosgd.models import frozen_linear
from thermosgd.training import TrainConfig, run_name, train, train_grid

pytestmark = pytest.mark.usefixtures("one_torch_thread")

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


def _docs_equal(a: dict, b: dict) -> None:
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


# --------------------------------------------------------------------------------------------
# config


def test_config_json_round_trip_and_default_schedule():
    c = TrainConfig(protocol="elr", elr=2e-3, wd=3e-3, steps=50_000, label_noise=0.3)
    assert TrainConfig.from_json(c.to_json()) == c
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    s = c.schedule
    assert (s.log_every, s.window, s.window_start, s.queue_size) == (50, 25_000, 25_000, 1000)
    # probes: a multiple of log_every, ~10% extra gradients, at most ~64 in the window
    assert s.noise_every % s.log_every == 0 and 0.09 <= s.noise_fraction() <= 0.1
    assert 30 <= s.window // s.noise_every <= 64
    long = TrainConfig(protocol="elr", elr=2e-3, wd=3e-3, steps=1_000_000).schedule
    assert long.window // long.noise_every == 62 and long.noise_fraction() < 0.01
    snaps = s.snapshot_steps(c.steps)
    assert len(np.unique(snaps)) == 1000 and snaps[0] > s.window_start and snaps[-1] == c.steps
    assert TrainConfig(protocol="sphere", elr=0.01, radius=2.0).schedule.init_radius == 2.0
    assert run_name(c) == "elr2.00e-03_wd3.00e-03"
    assert run_name(tiny("sphere", seed=3)) == "elr1.00e-02_r2.00e+00_seed3"


@pytest.mark.parametrize(
    "kw,msg",
    [
        (dict(protocol="sgd", lr=0.1, wd=0.1), "protocol must be one of"),
        (dict(protocol="elr", elr=0.1), "needs wd"),
        (dict(protocol="sphere", elr=0.1, radius=1.0, wd=0.1), "takes no wd"),
        (dict(protocol="lr", lr=-0.1, wd=0.1), "lr must be a positive"),
        (dict(protocol="elr", elr=0.1, wd=0.1, model="vgg"), "model must be one of"),
        (dict(protocol="elr", elr=0.1, wd=0.1, data="mnist"), "data must be one of"),
        (dict(protocol="elr", elr=0.1, wd=0.1, data="cifar10"), "needs data_dir"),
        (dict(protocol="elr", elr=0.1, wd=0.1, data="synthetic", model="convnet"), "vectors"),
        (dict(protocol="elr", elr=0.1, wd=0.1, width=8), "width is for"),
        (dict(protocol="elr", elr=0.1, wd=0.1, label_noise=1.5), "label_noise"),
        (dict(protocol="elr", elr=0.1, wd=0.1, steps=0), "steps must be"),
        (dict(protocol="sphere", elr=0.1, radius=1.0, init_radius=2.0), "init_radius"),
        (dict(protocol="elr", elr=0.1, wd=0.1, steps=100, log_every=10, noise_every=15),
         "multiple of log_every"),
        (dict(protocol="elr", elr=0.1, wd=0.1, steps=100, queue_size=80), "queue_size"),
        (dict(protocol="elr", elr=0.1, wd=0.1, device="tpu"), "device must be one of"),
        (dict(protocol="elr", elr=0.1, wd=0.1, noise_batches=2), "noise_batches"),
    ],
)
def test_bad_config_is_a_one_line_value_error(kw, msg):
    with pytest.raises(ValueError, match=msg) as e:
        TrainConfig(**kw)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------------------------
# runs


@pytest.mark.parametrize("protocol", ["lr", "elr", "sphere"])
def test_every_protocol_runs_and_writes_its_files(tmp_path, protocol):
    c = tiny(protocol)
    doc = train(c, tmp_path / "run")
    out = tmp_path / "run"
    assert {p.name for p in out.iterdir()} >= {
        "config.json", "metrics.csv", "stationary.json", "checkpoint.pt"
    }
    assert TrainConfig.from_json((out / "config.json").read_text()) == c
    m = read_csv(out / "metrics.csv")
    assert list(m["step"]) == list(range(5, 121, 5))
    probed = np.isfinite(m["trace_sigma"])
    assert list(m["step"][probed]) == [40, 80, 120]
    for k in ("grad_norm2", "sigma2", "temperature", "trace_sigma_se"):
        assert np.isfinite(m[k][probed]).all() and np.isnan(m[k][~probed]).all()
    assert np.isfinite(m["loss"]).all() and (m["radius"] > 0).all()
    if protocol == "sphere":
        # the gradient is tangent, so the update can only lengthen w: r' >= r
        assert (m["preprojection_norm"] >= 2.0).all() and (m["pressure"] > 0).all()
        np.testing.assert_allclose(m["radius"], 2.0, rtol=1e-6)
    else:
        assert np.isnan(m["preprojection_norm"]).all()
    saved = json.loads((out / "stationary.json").read_text())
    assert saved["status"] == doc["status"] == "complete" and saved["diverged"] is False
    for k in ("temperature", "pressure", "volume", "energy", "entropy_dir", "entropy", "sigma2",
              "trace_sigma", "grad_norm2", "radius", "pressure_sde", "pressure_discrete"):
        assert saved[k] is not None and math.isfinite(saved[k]), k
    assert saved["temperature"] > 0 and isinstance(saved["stationary"], bool)
    assert isinstance(saved["reasons"], list) and "stationary" in saved["summary"]
    # Q from the training steps' own gradients vs the probes' (both unbiased; 3 probes and
    # 12 blocks of 5 steps here, so only a loose agreement is expected)
    assert np.isfinite(m["trace_total_steps"]).all()
    np.testing.assert_allclose(saved["trace_total_steps"], saved["trace_total"], rtol=0.5)
    if protocol != "sphere":
        assert saved["radius_discrete"] > 0 and saved["radius_sde"] > 0
        assert saved["radius_discrete_steps"] > 0
    else:
        assert saved["pressure_discrete_steps"] > 0
    assert saved["n_snapshots"] == 20 and saved["n_noise"] >= 1
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 120 and ckpt["status"] == "complete"
    # a finished run is not retrained: the same document comes back
    _docs_equal(train(c, out), doc)


def _mlp_factory(affine: bool):
    def make(config, ds):
        h = config.hidden[0]
        head = frozen_linear(h, ds.num_classes, bias=False)
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, h, bias=False), nn.BatchNorm1d(h, affine=affine),
            nn.ReLU(), head,
        )

    return make


def test_a_non_scale_invariant_model_is_refused(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="not scale-invariant") as e:
        train(tiny(), out, model_fn=_mlp_factory(affine=True))
    assert "affine" in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()  # nothing written before the check
    # the same architecture without the BN affine parameters is SI and trains
    doc = train(tiny(steps=40, noise_every=20, queue_size=10), out,
                model_fn=_mlp_factory(affine=False))
    assert doc["status"] == "complete" and doc["dim"] == 64 * 16


def _assert_same_run(a, b):
    ca = torch.load(a / "checkpoint.pt", weights_only=False)
    cb = torch.load(b / "checkpoint.pt", weights_only=False)
    assert ca["step"] == cb["step"]
    assert ca["model"].keys() == cb["model"].keys()
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    _docs_equal(json.loads((a / "stationary.json").read_text()),
                json.loads((b / "stationary.json").read_text()))


def _crash_after(monkeypatch, k):
    real = training._training_step
    calls = {"n": 0}

    def step(net, x, y):
        calls["n"] += 1
        if calls["n"] > k:
            raise RuntimeError("simulated crash")
        return real(net, x, y)

    monkeypatch.setattr(training, "_training_step", step)


@pytest.mark.parametrize("protocol", ["elr", "sphere"])
def test_resume_after_interruption_is_identical(tmp_path, monkeypatch, protocol):
    c = tiny(protocol)
    train(c, tmp_path / "a")
    # crash at step 71: the last checkpoint is at step 40
    _crash_after(monkeypatch, 70)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(c, tmp_path / "b")
    monkeypatch.undo()
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["step"] == 40
    train(c, tmp_path / "b")
    _assert_same_run(tmp_path / "a", tmp_path / "b")
    # a clean stop mid-block (max_steps_this_call) checkpoints and resumes as well
    doc = train(c, tmp_path / "c", max_steps_this_call=53)
    assert doc["status"] == "interrupted" and doc["steps_done"] == 53
    assert not (tmp_path / "c" / "stationary.json").exists()
    train(c, tmp_path / "c")
    _assert_same_run(tmp_path / "a", tmp_path / "c")


def test_batched_grid_resumes_identically(tmp_path, monkeypatch):
    cs = [tiny(elr=0.01, wd=0.01), tiny(elr=0.02, wd=0.03, init_radius=0.5)]
    train_grid(cs, [tmp_path / "a0", tmp_path / "a1"])
    _crash_after(monkeypatch, 90)
    with pytest.raises(RuntimeError):
        train_grid(cs, [tmp_path / "b0", tmp_path / "b1"])
    monkeypatch.undo()
    train_grid(cs, [tmp_path / "b0", tmp_path / "b1"])
    for i in (0, 1):
        _assert_same_run(tmp_path / f"a{i}", tmp_path / f"b{i}")


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
    for i in range(2):
        mb, ms = read_csv(tmp_path / f"b{i}" / "metrics.csv"), read_csv(tmp_path / f"s{i}" /
                                                                        "metrics.csv")
        # float32 round-off of two kernel orders (one GEMM for all configs vs one per config),
        # amplified over 30 steps: ~1e-7 seen, 1e-5 allowed
        for k in ("loss", "radius", "trace_sigma", "grad_norm2"):
            np.testing.assert_allclose(mb[k], ms[k], rtol=1e-5, atol=1e-6, err_msg=k)
        wb = torch.load(tmp_path / f"b{i}" / "checkpoint.pt", weights_only=False)["model"]
        ws = torch.load(tmp_path / f"s{i}" / "checkpoint.pt", weights_only=False)["model"]
        for k in ws:
            if ws[k].is_floating_point():
                torch.testing.assert_close(wb[k], ws[k], rtol=1e-5, atol=1e-6)
        assert b[i]["n_snapshots"] == s[i]["n_snapshots"] == 10
        np.testing.assert_allclose(b[i]["entropy"], s[i]["entropy"], rtol=1e-5)


# --------------------------------------------------------------------------------------------
# command line

TINY_ARGS = ["--hidden", "16,16", "--label-noise", "0.3", "--log-every", "5",
             "--noise-every", "40", "--noise-batches", "4", "--queue-size", "20",
             "--device", "cpu"]


def test_train_help_lists_every_option(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--model", "--hidden", "--width", "--data", "--data-dir", "--label-noise",
                "--protocol", "--lr", "--elr", "--wd", "--radius", "--steps", "--batch-size",
                "--seed", "--init-radius", "--log-every", "--noise-every", "--noise-batches",
                "--window", "--queue-size", "--checkpoint-every", "--device", "--threads",
                "--no-batch", "--no-resume", "--overwrite", "--progress", "--out"):
        assert opt in out, opt


def test_train_command_writes_a_grid(tmp_path, capsys):
    out = tmp_path / "grid"
    rc = main(["train", "--protocol", "sphere", "--elr", "0.01,0.02", "--radius", "1",
               "--steps", "120", *TINY_ARGS, "--out", str(out)])
    assert rc == 0
    names = ["elr1.00e-02_r1.00e+00", "elr2.00e-02_r1.00e+00"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == names
    t = read_csv(out / "results.csv")
    assert list(t["name"]) == names and list(t["status"]) == ["complete", "complete"]
    assert np.isfinite(t["pressure"]).all() and np.isfinite(t["pressure_discrete"]).all()
    printed = capsys.readouterr().out
    assert printed.count("== elr") == 2 and "stationary:" in printed


@pytest.mark.parametrize("args,msg", [
    (["--protocol", "sphere", "--elr", "0.01", "--wd", "0.1"], "takes no wd"),
    (["--protocol", "elr", "--elr", "0.01"], "needs wd"),
    (["--protocol", "elr", "--elr", "-0.01", "--wd", "0.1"], "positive"),
    (["--protocol", "elr", "--elr", "x", "--wd", "0.1"], "cannot parse"),
    (["--protocol", "elr", "--elr", "0.01", "--wd", "0.1", "--hidden", "0"], "--hidden"),
    (["--protocol", "elr", "--elr", "0.01", "--wd", "0.1", "--model", "convnet",
      "--data", "synthetic"], "vectors"),
    (["--protocol", "elr", "--elr", "0.01,0.01", "--wd", "0.1"], "twice"),
    (["--protocol", "elr", "--elr", "0.01", "--wd", "0.1", "--data", "cifar10",
      "--data-dir", "/nonexistent"], "CIFAR files not found"),
    (["--elr", "0.01", "--wd", "0.1"], "--protocol"),
])
def test_train_bad_input_is_one_line_exit_2(tmp_path, capsys, args, msg):
    rc = main(["train", *args, "--steps", "100", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert msg in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_train_command_never_partially_overwrites_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "grid"
    base = ["train", "--protocol", "elr", "--wd", "0.01", *TINY_ARGS, "--out", str(out)]
    assert main([*base, "--elr", "0.02", "--steps", "80"]) == 0
    old = out / "elr2.00e-02_wd1.00e-02"
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    capsys.readouterr()
    # the new grid point elr=0.01 is fine, but elr=0.02 exists with another config: nothing
    # at all is written
    rc = main([*base, "--elr", "0.01,0.02", "--steps", "120"])
    err = capsys.readouterr().err
    assert rc == 2 and "different config" in err and err.count("\n") == 1
    assert not (out / "elr1.00e-02_wd1.00e-02").exists()
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    # rerunning the same command resumes (nothing to do) and leaves the results as they were
    assert main([*base, "--elr", "0.02", "--steps", "80"]) == 0
    assert json.loads((old / "stationary.json").read_text()) == json.loads(
        before["stationary.json"])


# --------------------------------------------------------------------------------------------
# test-set evaluations (generalization of the stationary state)


def test_evaluations_match_a_direct_computation_and_the_batched_engine(tmp_path):
    kw = dict(test_fraction=0.2, test_evals=4)
    cs = [tiny(elr=0.01, wd=0.01, **kw), tiny(elr=0.02, wd=0.003, **kw)]
    b = train_grid(cs, [tmp_path / "b0", tmp_path / "b1"])
    s = train_grid(cs, [tmp_path / "s0", tmp_path / "s1"], batched=False)
    ds = training.load_data(cs[0])
    assert ds.n_test == round(0.2 * 1797)
    for i in range(2):
        ck = torch.load(tmp_path / f"s{i}" / "checkpoint.pt", weights_only=False)
        assert [e["step"] for e in ck["evals"]] == [75, 90, 105, 120]
        # the last evaluation is at the final weights: recompute it by hand (eval-mode BN)
        model = training.build_model(cs[i], ds)
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


def test_no_test_set_gives_train_evaluations_only_and_old_configs_still_resume(tmp_path):
    c = tiny()
    doc = train(c, tmp_path / "run")
    assert doc["n_evals"] == 8 and doc["eval_train_acc"] > 0
    assert doc["eval_test_loss"] is None and doc["gap_acc"] is None  # NaN in the JSON
    # a config.json written before test_evals/test_fraction existed still matches
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    del cfg["test_evals"], cfg["test_fraction"]
    assert training._config_diff(cfg, c) == []
    assert training._config_diff(cfg, tiny(test_evals=3)) == ["test_evals: 8 != 3"]


@pytest.mark.parametrize("kw,msg", [
    (dict(test_fraction=1.0), "test_fraction must be a fraction in"),
    (dict(test_fraction=0.2, data="synthetic"), "has its own test set"),
    (dict(test_evals=-1), "test_evals must be"),
    (dict(test_evals=100), r"test_evals \(100\) must be <= window"),
])
def test_bad_evaluation_settings_are_one_line_errors(kw, msg):
    with pytest.raises(ValueError, match=msg) as e:
        tiny(**kw)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------------------------
# non-scale-invariant variants (issue 6)


def test_variant_config_validation_names_and_old_configs():
    c = tiny(variant="bn-affine")
    assert TrainConfig.from_json(c.to_json()) == c
    assert run_name(c) == "elr1.00e-02_wd1.00e-02_bn-affine"
    assert run_name(tiny(variant="head", seed=2)) == "elr1.00e-02_wd1.00e-02_head_seed2"
    cfg = tiny().to_dict()
    del cfg["variant"]  # a config.json written before the field existed
    assert training._config_diff(cfg, tiny()) == []
    assert training._config_diff(cfg, c) == ["variant: 'si' != 'bn-affine'"]
    for kw, msg in ((dict(variant="dropout"), "variant must be one of"),
                    (dict(variant="bias", model="resnet18"), "resnet18 takes 'si'"),
                    (dict(variant="layernorm", model="convnet"), "the convnet takes variant")):
        with pytest.raises(ValueError, match=msg) as e:
            TrainConfig(protocol="elr", elr=0.1, wd=0.1, **kw)
        assert "\n" not in str(e.value)


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


def test_train_command_variant_axis(tmp_path, capsys):
    out = tmp_path / "grid"
    rc = main(["train", "--protocol", "elr", "--elr", "0.01", "--wd", "0.01", "--variant",
               "si,bias", "--steps", "120", *TINY_ARGS, "--out", str(out)])
    assert rc == 0
    t = read_csv(out / "results.csv")
    assert sorted(t["variant"]) == ["bias", "si"]
    assert np.isfinite(t["si_radial_gradient"]).all() and np.isfinite(t["si_loss_change"]).all()
    assert main(["train", "--protocol", "elr", "--elr", "0.01", "--wd", "0.01", "--variant",
                 "si,dropout", "--out", str(tmp_path / "x")]) == 2
    assert "--variant: unknown ['dropout']" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# momentum and AdamW


OPT_HYPER = {"momentum": {"lr": 0.03, "wd": 0.01}, "adamw": {"lr": 3e-3, "wd": 0.1}}


def test_optimizer_config_validation_round_trip_and_name():
    c = tiny("lr", optimizer="adamw", momentum=0.8, **OPT_HYPER["adamw"])
    assert TrainConfig.from_json(c.to_json()) == c
    assert c.optimizer_kwargs == {"optimizer": "adamw", "momentum": 0.8, "beta2": 0.999}
    assert run_name(c) == "adamw0.8_lr3.00e-03_wd1.00e-01"
    assert run_name(tiny("lr", optimizer="momentum", **OPT_HYPER["momentum"])).startswith(
        "momentum0.9_lr3.00e-02")
    old = tiny("lr").to_dict()  # a config.json written before the optimizer fields existed
    for k in ("optimizer", "momentum", "beta2"):
        old.pop(k)
    assert TrainConfig.from_dict(old).optimizer == "sgd"
    for kw, match in (
        ({"protocol": "elr", "elr": 0.1, "wd": 0.1, "optimizer": "momentum"}, "protocol 'lr'"),
        ({"protocol": "lr", "lr": 0.1, "wd": 0.1, "optimizer": "adam"}, "optimizer must be"),
        ({"protocol": "lr", "lr": 0.1, "wd": 0.1, "optimizer": "momentum", "momentum": 1.0},
         r"\[0, 1\)"),
        ({"protocol": "lr", "lr": 0.1, "wd": 0.1, "momentum": 0.9}, "not 'sgd'"),
        ({"protocol": "lr", "lr": 0.1, "wd": 0.1, "optimizer": "momentum", "beta2": 0.9},
         "beta2"),
    ):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**kw)


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
    _crash_after(monkeypatch, 70)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(c, tmp_path / "b")
    monkeypatch.undo()
    train(c, tmp_path / "b")
    _assert_same_run(tmp_path / "a", tmp_path / "b")


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
            for k in ("loss", "radius", "trace_sigma"):  # float32 kernel orders, as above
                np.testing.assert_allclose(mb[k], ms[k], rtol=1e-5, atol=1e-6, err_msg=k)
        else:
            # AdamW divides each coordinate by its RMS gradient: the float32 round-off of the
            # two GEMM orders (1e-7) flips the sign of the coordinates whose gradient is that
            # small and moves them by O(lr) within a few steps, so the loss paths part (~1%);
            # the radius, set by lr sqrt(d) alone, stays within 1% (0.2% seen). The batched
            # step itself is torch's AdamW bit for bit (tests/test_protocols.py).
            np.testing.assert_allclose(mb["loss"][:4], ms["loss"][:4], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(mb["radius"], ms["radius"], rtol=1e-2)
        assert b[i]["momentum"] == s[i]["momentum"] == (0.9, 0.5)[i]
    # the batched checkpoint holds config g's buffers: a batched crash + resume is identical
    _crash_after(monkeypatch, 20)
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
        _docs_equal(da, dc)


def test_convnet_variant_trains(tmp_path):
    c = tiny(model="convnet", width=2, hidden=(32, 32), variant="bn-affine", steps=40,
             noise_every=20, checkpoint_every=20)
    doc = train(c, tmp_path / "conv")
    assert doc["status"] == "complete" and doc["variant"] == "bn-affine"
    assert doc["dim"] == 1530 + 2 * 15 * 2 and doc["si_radial_gradient"] > 1e-3


def test_cli_train_momentum_grid_and_errors(tmp_path, capsys):
    out = tmp_path / "grid"
    assert main(["train", "--protocol", "lr", "--optimizer", "momentum", "--momentum",
                 "0.9,0.5", "--lr", "0.03", "--wd", "0.01", "--steps", "120", *TINY_ARGS,
                 "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == ["momentum0.5_lr3.00e-02_wd1.00e-02", "momentum0.9_lr3.00e-02_wd1.00e-02"]
    rows = read_csv(out / "results.csv")
    assert sorted(rows["momentum"].tolist()) == [0.5, 0.9]
    assert main(["train", "--protocol", "lr", "--momentum", "0.9", "--lr", "0.1", "--wd",
                 "0.01", "--out", str(tmp_path / "x")]) == 2
    assert "--optimizer momentum or adamw" in capsys.readouterr().err
    assert main(["train", "--protocol", "elr", "--optimizer", "adamw", "--elr", "0.1", "--wd",
                 "0.01", "--out", str(tmp_path / "y")]) == 2
    assert "protocol 'lr'" in capsys.readouterr().err
    assert main(["train", "--help"]) == 0
    help_text = capsys.readouterr().out
    for opt in ("--optimizer", "--momentum", "--beta2"):
        assert opt in help_text
