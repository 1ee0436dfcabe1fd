"""`thermosgd.workflows.reproduce`: the end-to-end pipeline on a tiny preset, resumability
(the presets themselves: test_presets.py; the command: tests/cli/test_reproduce.py)."""

from pathlib import Path

import numpy as np
import pytest

from thermosgd.workflows import preset_table
from thermosgd.workflows import presets as P
from thermosgd.workflows import reproduce as rp

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_preset_end_to_end_and_resume(tmp_path, monkeypatch):
    monkeypatch.setitem(P.ISOTROPIC_PRESETS, "tiny", {
        "lr": {"lr": "0.05,0.1", "wd": "0.05,0.1"}, "elr": {"elr": "0.05,0.1", "wd": "0.05,0.1"},
        "sphere": {"elr": "0.05,0.1", "radius": "1,2"},
        "steps": 5000, "dim": 3, "sigma": 1.0, "queue_size": 100})
    grid = preset_table._nn_grids([0.01, 0.02, 0.04], [0.01, 0.03], [0.5, 1.0], [0.01, 0.03],
                        [0.01, 0.02, 0.04], [1.0, 2.0])
    monkeypatch.setitem(P.PRESETS, "tiny", P.Preset(
        "test", isotropic="tiny", grid=grid,
        base={"model": "mlp", "hidden": [8, 8], "data": "digits", "label_noise": 0.3,
              "steps": 300, "device": "cpu", "noise_batches": 4}))
    logs = []
    report = rp.reproduce("tiny", tmp_path, progress=False, log=logs.append)
    assert report.is_file() and report.stat().st_size > 10_000
    for proto in ("elr", "lr", "sphere"):
        assert (tmp_path / "isotropic" / proto / "summary.json").is_file()
    assert (tmp_path / "nn" / "results.csv").is_file()
    assert (tmp_path / "nn" / "analysis.json").is_file()
    text = report.read_text()
    assert "<img" in text and "Maxwell" in text
    # a second call redoes nothing
    logs.clear()
    rp.reproduce("tiny", tmp_path, progress=False, log=logs.append)
    assert sum("already done" in m for m in logs) == 3
    assert any("16 done" in m for m in logs)


def test_unknown_preset(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        rp.reproduce("nope", tmp_path)


def test_run_isotropic_preset_logs_each_study(tmp_path, monkeypatch):
    monkeypatch.setitem(P.ISOTROPIC_PRESETS, "tiny", {
        "lr": {"lr": "0.05", "wd": "0.05"}, "elr": {"elr": "0.05", "wd": "0.05"},
        "sphere": {"elr": "0.05", "radius": "1"},
        "steps": 3000, "dim": 3, "sigma": 1.0, "queue_size": 50})
    seen = []
    summaries = rp.run_isotropic_preset("tiny", tmp_path, figures=False, progress=False,
                                        log=lambda s, d: seen.append((s["config"]["protocol"],
                                                                      d)),
                                        seed=4, burn_in=None)
    assert seen == [(p, tmp_path / p) for p in ("elr", "lr", "sphere")]
    assert [s["config"]["seed"] for s in summaries] == [4, 4, 4]
    assert all((tmp_path / p / "summary.json").is_file() for p, _ in seen)


# ---------------------------------------------------------------------------------------------
# the paper's CIFAR presets at tiny size (issue 10, item 5): a CIFAR-format fixture archive
# (tests/nn/fixtures.py, 8 random images per batch file), 2 values per grid axis (4 runs per
# protocol), 16 steps of batch 16; the presets themselves keep the paper's sizes

#: the tiny size: schedule settings that fit 16 steps (the monitor's windows and probes)
TINY = {"batch_size": 16, "log_every": 2, "noise_every": 8, "noise_batches": 3,
        "queue_size": 4, "window": 8, "checkpoint_every": 4, "test_evals": 0, "device": "cpu"}
TINY_STEPS = 16


@pytest.fixture
def batched_spy(monkeypatch):
    """Conv grids batch on CPU as on CUDA (in groups of at most 4, the CPU limit), and the
    sizes of the batched engines built are recorded."""
    from thermosgd.train import engine as E
    from thermosgd.train import run as R

    monkeypatch.setitem(E.CPU_CONV_BATCHING, "convnet", (16, 4))
    monkeypatch.setitem(E.CPU_CONV_BATCHING, "resnet18", (4, 4))
    sizes = []
    real = R.batched_engine

    def spy(configs, *args, **kwargs):
        sizes.append(len(configs))
        return real(configs, *args, **kwargs)

    monkeypatch.setattr(R, "batched_engine", spy)
    return sizes


def _states(out):
    from thermosgd.io import read_csv

    return list(read_csv(out / "nn" / "results.csv")["state"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["paper-convnet-cifar10", "paper-convnet-cifar100",
                                  "paper-resnet18-cifar10", "paper-resnet18-cifar100"])
def test_cifar_presets_tiny_end_to_end_batched(name, tmp_path, batched_spy):
    from tests.nn.fixtures import write_cifar

    write_cifar(tmp_path, "cifar100" if name.endswith("100") else "cifar10", n=8, as_tar=True)
    logs = []
    report = rp.reproduce(name, tmp_path / "out", data_dir=str(tmp_path), progress=False,
                          log=logs.append, steps=TINY_STEPS, grid_values=2, settings=TINY)
    assert report.is_file() and (tmp_path / "out" / "nn" / "analysis.json").is_file()
    states = _states(tmp_path / "out")
    assert len(states) == 12 and "failed" not in states  # diverged runs are recorded too
    assert batched_spy == [4, 4, 4]  # one batched model per protocol
    assert any(m.startswith("acceptance:") for m in logs[-2].splitlines())
    assert P.PRESETS[name].base["steps"] == 1_000_000  # the preset itself is unchanged


@pytest.mark.slow
def test_cifar_preset_resumes_an_interrupted_sweep(tmp_path, batched_spy, monkeypatch, caplog):
    # Ctrl-C after 8 of 16 steps of the first batch (the 4 elr runs) leaves them "running"
    # with their checkpoints; the rerun resumes them (batched again), runs the others and
    # ends with the records of an uninterrupted sweep
    from tests.nn.fixtures import write_cifar
    from thermosgd.io import read_csv
    from thermosgd.workflows import runners

    write_cifar(tmp_path, "cifar10", n=8, as_tar=True)
    kw = dict(data_dir=str(tmp_path), progress=False, log=lambda m: None, steps=TINY_STEPS,
              grid_values=2, settings=TINY)
    rp.reproduce("paper-convnet-cifar10", tmp_path / "full", **kw)
    real = runners.train_grid

    def interrupted(*args, **kwargs):
        real(*args, **{**kwargs, "max_steps_this_call": 8})
        raise KeyboardInterrupt

    monkeypatch.setattr(runners, "train_grid", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rp.reproduce("paper-convnet-cifar10", tmp_path / "cut", **kw)
    monkeypatch.setattr(runners, "train_grid", real)
    with caplog.at_level("INFO", logger="thermosgd.train"):
        rp.reproduce("paper-convnet-cifar10", tmp_path / "cut", **kw)
    assert sum("resuming from step 8 of 16" in r.getMessage() for r in caplog.records) == 4
    full, cut = (read_csv(tmp_path / d / "nn" / "results.csv") for d in ("full", "cut"))
    order = [list(cut["run"]).index(r) for r in full["run"]]
    for col in ("state", "radius", "energy"):  # bit-identical
        np.testing.assert_array_equal(np.asarray(cut[col])[order], full[col], err_msg=col)
    # the probe's temperature of a run cut at a probe step differs in the last float32 bits
    # (8e-9 relative measured; reported to the engine's owner): 1e-6 is ~100x that and ~1e-4
    # of the probe's own standard error at 3 batches
    for col in ("temperature", "entropy"):
        np.testing.assert_allclose(np.asarray(cut[col], float)[order], full[col], rtol=1e-6,
                                   err_msg=col)


@pytest.mark.slow
def test_resnet_preset_on_fashion_mnist_small(tmp_path, batched_spy):
    # the ResNet path on real images: Fashion-MNIST (1x28x28, installed by .ci/run)
    from thermosgd.nn.data import FASHION_MNIST_DIR

    if not Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip(f"{FASHION_MNIST_DIR} missing (Debian package dataset-fashion-mnist)")
    report = rp.reproduce("paper-resnet18-cifar10", tmp_path, data_dir=FASHION_MNIST_DIR,
                          progress=False, log=lambda m: None, steps=TINY_STEPS, grid_values=2,
                          settings={**TINY, "data": "fashion-mnist"})
    assert report.is_file()
    states = _states(tmp_path)
    assert len(states) == 12 and "failed" not in states and batched_spy == [4, 4, 4]


def test_cifar_preset_data_dir_missing_or_wrong_is_one_line(tmp_path):
    # before anything runs or is written: where the archive goes, in one line
    from tests.nn.fixtures import write_cifar

    out = tmp_path / "out"
    with pytest.raises(ValueError) as e:
        rp.reproduce("paper-resnet18-cifar100", out, steps=4)
    msg = str(e.value)
    assert "needs --data-dir" in msg and "cifar-100-python.tar.gz" in msg and "\n" not in msg
    with pytest.raises(ValueError) as e:
        rp.reproduce("paper-convnet-cifar10", out, data_dir=str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert msg.startswith("preset 'paper-convnet-cifar10': CIFAR files not found under")
    assert "put cifar-10-python.tar.gz" in msg and "\n" not in msg
    write_cifar(tmp_path, "cifar100", as_tar=True)  # the wrong CIFAR
    with pytest.raises(ValueError, match="CIFAR-100 is there, this run needs CIFAR-10"):
        rp.reproduce("paper-convnet-cifar10", out, data_dir=str(tmp_path))
    assert not out.exists()


def test_nn_spec_at_another_size():
    spec = P.nn_spec("paper-convnet-cifar10", data_dir="/d", steps=40, grid_values=2,
                     settings={"batch_size": 16})
    elr = spec.grid[0]
    assert elr["elr"] == [1e-4, 1e-2] and elr["wd"] == [1e-3, 1e-1]  # both ends kept
    assert spec.base["steps"] == 40 and spec.base["batch_size"] == 16
    assert P.thin_axis([1, 2, 3, 4, 5], 3) == [1, 3, 5] and P.thin_axis([1, 2], 5) == [1, 2]
    assert P.thin_axis([1, 2, 3], 1) == [1]
    # switching the data off CIFAR lifts the data-dir requirement
    assert P.nn_spec("paper-resnet18-cifar10", settings={"data": "digits"}).base["data"] == (
        "digits")
    with pytest.raises(ValueError, match="grid_values == 0, must be >= 1"):
        P.nn_spec("quick", grid_values=0)
