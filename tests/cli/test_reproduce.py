"""``thermosgd reproduce``: the parser and the end-to-end workflow on a tiny preset (two
network runs of 60 steps: sweep, lenient analysis, report); bad input in one line, exit 2.
The real presets' end to end and resume: tests/workflows/test_reproduce.py."""

from __future__ import annotations

import pytest

from tests.cli.conftest import assert_usage_error, run_main
from thermosgd.io import read_csv
from thermosgd.workflows import presets

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny_preset(monkeypatch):
    monkeypatch.setitem(presets.PRESETS, "tiny", presets.Preset(
        "test", isotropic=None, grid=[{"protocol": ["elr"], "elr": [0.01, 0.02], "wd": [0.01]}],
        base={"model": "mlp", "hidden": [8, 8], "data": "digits", "label_noise": 0.3,
              "steps": 60, "log_every": 5, "noise_every": 20, "noise_batches": 4,
              "queue_size": 10, "test_evals": 0, "device": "cpu"}))


def test_tiny_preset_end_to_end(tiny_preset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run_main(["reproduce", "--preset", "tiny", "--no-progress"])
    assert res.rc == 0, res.err
    out = tmp_path / "runs" / "tiny"  # the default --out
    assert list(read_csv(out / "nn" / "results.csv")["state"]) == ["done", "done"]
    assert (out / "nn" / "analysis.json").is_file() and (out / "report.html").is_file()
    assert "network runs: 2 done" in res.out and "report: runs/tiny/report.html" in res.out
    assert "thermosgd reproduce --preset tiny" in (out / "report.html").read_text()


def test_bad_input_is_one_line_exit_2(tiny_preset, tmp_path):
    out = str(tmp_path / "o")
    assert_usage_error(run_main(["reproduce", "--preset", "nope", "--out", out]),
                       "invalid choice: 'nope'")
    assert_usage_error(run_main(["reproduce", "--preset", "tiny", "--workers", "0", "--out",
                                 out]), "workers == 0, must be >= 1")
    assert_usage_error(run_main(["reproduce", "--preset", "paper-convnet-cifar10", "--out",
                                 out]), "needs --data-dir")
    assert not (tmp_path / "o").exists()


def test_steps_and_grid_values_run_a_preset_small(tiny_preset, tmp_path):
    """--steps / --grid-values: 40 steps per run instead of the preset's 60, at most 2 values
    per axis (the tiny preset's two elr values are both ends: both kept); a bad size is one
    line."""
    out = tmp_path / "small"
    res = run_main(["reproduce", "--preset", "tiny", "--steps", "40", "--grid-values", "2",
                    "--no-progress", "--out", str(out)])
    assert res.rc == 0, res.err
    table = read_csv(out / "nn" / "results.csv")
    assert list(table["state"]) == ["done", "done"] and set(table["steps"]) == {40}
    assert_usage_error(run_main(["reproduce", "--preset", "tiny", "--grid-values", "0",
                                 "--out", str(tmp_path / "bad")]), "grid_values == 0")
