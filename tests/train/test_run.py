"""train.run: every protocol writes its files, the SI check, finished runs are not retrained,
old config files resume, the stationary document follows the record schema, and the
`thermosgd train` command (grids, results.csv, one-line errors)."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.train.common import TINY_ARGS, crash_after, docs_equal, tiny
from thermosgd.cli import main
from thermosgd.io import read_csv
from thermosgd.nn.models import frozen_linear
from thermosgd.records import field_names
from thermosgd.train import TrainConfig, train
from thermosgd.train.checkpoint import config_diff

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("protocol", ["lr", "elr", "sphere"])
def test_every_protocol_runs_and_writes_its_files(tmp_path, protocol):
    c = tiny(protocol)
    doc = train(c, tmp_path / "run")
    out = tmp_path / "run"
    # the checkpoint of a finished run is removed (keep_checkpoints=False)
    assert {p.name for p in out.iterdir()} == {"config.json", "metrics.csv", "stationary.json"}
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
    # every key of the document is one of the record schema's (or its standard error)
    assert set(saved) <= set(field_names(with_se=True)), set(saved) - set(field_names(
        with_se=True))
    # a finished run is not retrained: the same document comes back
    docs_equal(train(c, out), doc)


def test_finished_runs_keep_their_checkpoint_only_when_asked(tmp_path, monkeypatch):
    c = tiny()
    doc = train(c, tmp_path / "a")
    assert not (tmp_path / "a" / "checkpoint.pt").exists()
    kept = train(c, tmp_path / "b", keep_checkpoints=True)
    docs_equal(kept, doc)
    ckpt = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 120 and ckpt["status"] == "complete"
    # an interrupted run keeps its checkpoint and resumes from it; once it ends the checkpoint
    # goes, and it ends as the uninterrupted run did
    part = train(c, tmp_path / "c", max_steps_this_call=53)
    assert part["status"] == "interrupted" and (tmp_path / "c" / "checkpoint.pt").is_file()
    docs_equal(train(c, tmp_path / "c"), doc)
    assert not (tmp_path / "c" / "checkpoint.pt").exists()
    # finished runs, with or without their checkpoint, are recognised and not retrained
    # (a training step now raises); a kept checkpoint stays
    crash_after(monkeypatch, 0)
    for d in ("a", "b", "c"):
        docs_equal(train(c, tmp_path / d), doc)
    assert (tmp_path / "b" / "checkpoint.pt").is_file()
    # without a readable stationary.json a run without checkpoint is not known to be
    # finished: it starts again
    (tmp_path / "a" / "stationary.json").write_text("{")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(c, tmp_path / "a")


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


def test_no_test_set_gives_train_evaluations_only_and_old_configs_still_resume(tmp_path):
    c = tiny()
    doc = train(c, tmp_path / "run")
    assert doc["n_evals"] == 8 and doc["eval_train_acc"] > 0
    assert doc["eval_test_loss"] is None and doc["gap_acc"] is None  # NaN in the JSON
    # a config.json written before test_evals/test_fraction existed still matches
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    del cfg["test_evals"], cfg["test_fraction"]
    assert config_diff(cfg, c) == []
    assert config_diff(cfg, tiny(test_evals=3)) == ["test_evals: 8 != 3"]


def test_convnet_variant_trains(tmp_path):
    c = tiny(model="convnet", width=2, hidden=(32, 32), variant="bn-affine", steps=40,
             noise_every=20, checkpoint_every=20)
    doc = train(c, tmp_path / "conv")
    assert doc["status"] == "complete" and doc["variant"] == "bn-affine"
    assert doc["dim"] == 1530 + 2 * 15 * 2 and doc["si_radial_gradient"] > 1e-3


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
    (["--protocol", "elr", "--elr", "-0.01", "--wd", "0.1"], "must be > 0"),
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
    assert "runs the protocol(s) lr" in capsys.readouterr().err
    assert main(["train", "--help"]) == 0
    help_text = capsys.readouterr().out
    for opt in ("--optimizer", "--momentum", "--beta2"):
        assert opt in help_text



# ---------------------------------------------------------------------------------------------
# bad input (issue 10): a model that does not fit its data, a grid of several architectures


def test_a_model_that_does_not_fit_the_data_is_one_line_before_training(tmp_path):
    from thermosgd.nn.conv_models import convnet
    from thermosgd.train import train_grid
    from thermosgd.train.nets import build_model

    small = dict(steps=8, log_every=2, noise_every=4, noise_batches=3, queue_size=3, window=4,
                 test_evals=0, device="cpu")
    c = TrainConfig(protocol="elr", elr=0.01, wd=0.01, model="convnet", width=2, data="digits",
                    **small)
    bad = TrainConfig(protocol="elr", elr=0.02, wd=0.01, model="convnet", width=2,
                      data="digits", **small)
    # a ConvNet built for 3-channel images on the 1-channel digits: refused before any run
    # (the fitting config first in the grid is not trained either)
    with pytest.raises(ValueError) as e:
        train_grid([c, bad], [tmp_path / "ok", tmp_path / "c"], progress=False,
                   model_fn=lambda cfg, ds: convnet(2, 3, ds.num_classes, input_size=8)
                   if cfg.elr == 0.02 else build_model(cfg, ds))
    msg = str(e.value)
    assert msg.startswith("the model of model_fn does not fit the digits data (inputs "
                          "(1, 8, 8), 10 classes): ") and "\n" not in msg
    assert not (tmp_path / "ok").exists() and not (tmp_path / "c").exists()
    # wrong number of classes: the output shape is named
    from thermosgd.train.nets import load_data
    from thermosgd.train.run import check_fit

    ds = load_data(c)
    with pytest.raises(ValueError, match=r"two samples give outputs \(2, 7\), need \(2, 10\)"):
        check_fit(c, ds, lambda cfg, d: convnet(2, 1, 7, input_size=8))
    check_fit(c, ds)  # the built-in model fits: nothing raised
    rng = torch.get_rng_state()
    check_fit(c, ds, lambda cfg, d: convnet(2, 1, 10, input_size=8))
    assert torch.equal(rng, torch.get_rng_state())  # the global RNG is left as it was


def test_a_grid_of_several_architectures_is_split_into_batches(tmp_path, monkeypatch):
    # ConvNet widths 1 and 2 and a ResNet, 2 configs each, batched on CPU ("always"): three
    # batched models of 2, one per architecture, not a refusal; each run's document equals
    # the run trained alone
    from thermosgd.train import run as R
    from thermosgd.train import train_grid

    sizes = []
    real = R.batched_engine
    monkeypatch.setattr(R, "batched_engine",
                        lambda cs, *a, **k: sizes.append((cs[0].model, cs[0].width, len(cs)))
                        or real(cs, *a, **k))
    arch = [("convnet", 1), ("convnet", 2), ("resnet18", 1)]
    configs = [TrainConfig(protocol="elr", elr=e, wd=0.01, model=m, width=w, data="digits",
                           steps=6, log_every=2, noise_every=6, noise_batches=3, queue_size=3,
                           window=4, test_evals=0, batch_size=16, device="cpu")
               for m, w in arch for e in (0.01, 0.02)]
    outs = [tmp_path / f"g{i}" for i in range(len(configs))]
    docs = train_grid(configs, outs, batched="always", progress=False)
    assert sorted(sizes) == [("convnet", 1, 2), ("convnet", 2, 2), ("resnet18", 1, 2)]
    assert [d["status"] for d in docs] == ["complete"] * 6
    alone = train(configs[4], tmp_path / "alone", progress=False)
    assert alone["radius"] == pytest.approx(docs[4]["radius"], rel=1e-5)  # float32 batched


def test_out_of_memory_retries_in_smaller_batches_and_resumes(tmp_path, monkeypatch, caplog):
    # a batch of 4 that runs out of memory after 50 of its 120 steps (its checkpoint and
    # metrics written up to there) is retried as two batches of 2 that resume from the
    # directories; the documents equal the uninterrupted grid's (float64 BN-MLP; the resumed
    # halves take the same per-config arithmetic, so only summation order could differ)
    from thermosgd.train import run as R
    from thermosgd.train import train_grid

    configs = [tiny(elr=e, wd=0.01) for e in (0.005, 0.01, 0.02, 0.04)]
    ref = train_grid(configs, [tmp_path / f"ref{i}" for i in range(4)], progress=False)
    sizes, real = [], R.batched_engine

    def engine_that_fills_memory(cs, *a, **k):
        sizes.append(len(cs))
        engine = real(cs, *a, **k)
        if len(cs) > 2:
            run = engine.run

            def run_then_oom(max_steps, progress, desc):
                run(50, progress, desc)
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            engine.run = run_then_oom
        return engine

    monkeypatch.setattr(R, "batched_engine", engine_that_fills_memory)
    with caplog.at_level("WARNING", logger="thermosgd.train"):
        docs = train_grid(configs, [tmp_path / f"g{i}" for i in range(4)], progress=False)
    assert sizes == [4, 2, 2]
    assert "out of memory on cpu training 4 configs batched (batch size 128)" in caplog.text
    assert "retrying in batches of 2" in caplog.text
    for d, r in zip(docs, ref, strict=True):
        assert d["status"] == "complete" and d["steps_done"] == 120
        for k in ("radius", "temperature", "energy", "entropy"):
            assert d[k] == pytest.approx(r[k], rel=1e-12), k


def test_out_of_memory_of_one_config_names_the_batch_size(tmp_path, monkeypatch):
    from thermosgd.train import run as R

    real = R.single_engine

    def oom_engine(*a, **k):
        engine = real(*a, **k)

        def run(*_):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:119] DefaultCPUAllocator: "
                               "can't allocate memory: you tried to allocate 9 GB")
        engine.run = run
        return engine

    monkeypatch.setattr(R, "single_engine", oom_engine)
    with pytest.raises(MemoryError, match=r"out of memory on cpu training one config of mlp "
                                          r"with batch size 128 \(run\).*smaller batch_size"):
        train(tiny(), tmp_path / "run", progress=False)
