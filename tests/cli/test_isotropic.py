"""``thermosgd isotropic``: one protocol's study, a preset's three, heavy ball / AdamW; bad
input in one line with exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli.conftest import assert_usage_error, run_main
from thermosgd.io import read_csv
from thermosgd.workflows import presets


def test_help_lists_every_option():
    res = run_main(["isotropic", "--help"])
    assert res.rc == 0
    for opt in ("--protocol", "--lr", "--elr", "--wd", "--radius", "--dim", "--sigma", "--steps",
                "--seed", "--out", "--preset", "--replicas", "--burn-in", "--queue-size",
                "--optimizer", "--momentum", "--beta2", "--mu", "--init-radius",
                "--entropy-method", "--no-figures", "--progress"):
        assert opt in res.out, opt


def test_isotropic_run_writes_results(tmp_path):
    out = tmp_path / "run"
    res = run_main(["isotropic", "--protocol", "elr", "--elr", "0.05,0.1", "--wd",
                    "log:0.01:0.1:3", "--dim", "3", "--sigma", "1", "--steps", "4000",
                    "--seed", "1", "--queue-size", "100", "--no-progress", "--out", str(out)])
    assert res.rc == 0, res.err
    t = read_csv(out / "results.csv")
    assert len(t["elr"]) == 6
    for col in ("protocol", "lr", "elr", "wd", "radius_set", "dim", "sigma", "radius", "energy",
                "entropy_dir", "entropy", "pressure", "radius_theory", "energy_theory",
                "entropy_dir_theory", "entropy_theory", "pressure_theory", "temperature",
                "stationary"):
        assert col in t, col
    assert np.isnan(t["lr"]).all() and np.isnan(t["radius_set"]).all()
    s = json.loads((out / "summary.json").read_text())
    assert "dS/dlog(wd)" in s["maxwell"] and s["config"]["steps"] == 4000
    assert {p.name for p in out.glob("*.png")} >= {"elr-equation-of-state.png",
                                                   "elr-potential.png"}
    assert "radius: worst rel. error" in res.out
    assert f"wrote {out}/results.csv, {out}/summary.json" in res.out


def test_preset_runs_three_protocols(tmp_path, monkeypatch):
    monkeypatch.setitem(presets.ISOTROPIC_PRESETS, "tiny", {
        "lr": {"lr": "0.05,0.1", "wd": "0.05"}, "elr": {"elr": "0.05,0.1", "wd": "0.05"},
        "sphere": {"elr": "0.05,0.1", "radius": "1"},
        "steps": 3000, "dim": 3, "sigma": 1.0, "queue_size": 50})
    res = run_main(["isotropic", "--preset", "tiny", "--seed", "2", "--no-figures",
                    "--no-progress", "--out", str(tmp_path)])
    assert res.rc == 0, res.err
    assert res.out.count("== isotropic") == 3
    for proto in ("elr", "lr", "sphere"):
        c = json.loads((tmp_path / proto / "config.json").read_text())
        assert c["protocol"] == proto and c["seed"] == 2 and c["steps"] == 3000
        assert len(read_csv(tmp_path / proto / "results.csv")["protocol"]) == 2


@pytest.mark.parametrize("optimizer", ["momentum", "adamw"])
def test_optimizer_grid(tmp_path, optimizer):
    out = tmp_path / optimizer
    res = run_main(["isotropic", "--optimizer", optimizer, "--momentum", "0.5", "--protocol",
                    "lr", "--lr", "0.05,0.1", "--wd", "0.05,0.1", "--steps", "4000",
                    "--burn-in", "1000", "--queue-size", "100", "--replicas", "2",
                    "--no-figures", "--out", str(out)])
    assert res.rc == 0, res.err
    t = read_csv(out / "results.csv")
    assert len(t["run"]) == 4 and set(t["optimizer"]) == {optimizer}
    assert json.loads((out / "config.json").read_text())["optimizer"] == optimizer
    assert (out / "analysis.json").is_file() and f"== lr, {optimizer} 0.5" in res.out


@pytest.mark.parametrize("args,msg", [
    (["--protocol", "lr", "--lr", "0.1"], "needs --wd"),
    (["--protocol", "lr", "--lr", "-0.1", "--wd", "0.1"], "> 0"),
    (["--protocol", "sphere", "--elr", "0.1", "--wd", "0.1"], "takes no --wd"),
    (["--protocol", "elr", "--elr", "0.1", "--wd", "0.1", "--steps", "100"], "steps too short"),
    (["--protocol", "elr", "--elr", "x", "--wd", "0.1"], "cannot parse"),
    (["--elr", "0.1"], "give --protocol"),
    (["--preset", "quick", "--protocol", "lr"], "--preset runs its own grids"),
    (["--protocol", "elr", "--elr", "0.1", "--wd", "0.1", "--dim", "0"], "dim"),
    (["--protocol", "elr", "--elr", "0.1", "--wd", "0.1", "--init-radius", "big"],
     "neither a number nor 'predicted'"),
    (["--optimizer", "adamw", "--protocol", "elr", "--elr", "0.1", "--wd", "0.1"],
     "runs the fixed-LR protocol"),
    (["--optimizer", "momentum", "--protocol", "lr", "--lr", "0.1"], "give --lr and --wd"),
    (["--optimizer", "momentum", "--protocol", "lr", "--lr", "0.1", "--wd", "0.1",
      "--replicas", "0"], "--replicas must be >= 1"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, msg):
    assert_usage_error(run_main(["isotropic", *args, "--out", str(tmp_path / "o")]), msg)
    assert not (tmp_path / "o").exists()
