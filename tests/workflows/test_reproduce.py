"""`thermosgd.workflows.reproduce`: the end-to-end pipeline on a tiny preset, resumability
(the presets themselves: test_presets.py; the command: tests/cli/test_reproduce.py)."""

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
