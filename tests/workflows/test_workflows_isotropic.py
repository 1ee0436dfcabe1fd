"""Isotropic studies on disk (thermosgd.workflows.isotropic): what run_study and
run_momentum_study write, and the CLI path of the momentum/AdamW study."""

import json

import numpy as np

from thermosgd.io import read_csv
from thermosgd.sim import isotropic as iso
from thermosgd.workflows.isotropic import run_momentum_study, run_study


def test_run_study_writes_config_table_summary_and_figures(tmp_path):
    c = iso.IsotropicConfig("elr", elr=(0.02, 0.05, 0.1), wd=(0.01, 0.03, 0.1), steps=20_000,
                            queue_size=100, seed=2)
    summary = run_study(c, tmp_path, progress=False)
    assert iso.IsotropicConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == c
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["figures"] == summary["figures"]
    assert set(summary["figures"]) == {p.name for p in tmp_path.glob("*.png")}
    assert "elr-potential.png" in summary["figures"]
    # the written table is the simulator's (seeded: a second simulation gives the same bits)
    table = read_csv(tmp_path / "results.csv")
    again = iso.stationary_table(iso.simulate(c, progress=False))
    for k in ("radius", "energy", "entropy", "pressure"):
        np.testing.assert_array_equal(table[k], again[k])


def test_run_momentum_study_writes_a_sweep_like_directory(tmp_path):
    result = run_momentum_study("adamw", tmp_path, dim=3, lr=[0.003, 0.01], wd=[0.1],
                                beta1=0.9, steps=20_000, queue_size=100, mu="diagonal",
                                figures=False)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["optimizer"] == "adamw" and cfg["mu"] == "diagonal" and cfg["lr"] == [0.003, 0.01]
    table = read_csv(tmp_path / "results.csv")
    assert list(table["run"]) == ["lr3.00e-03_wd1.00e-01", "lr1.00e-02_wd1.00e-01"]
    assert (tmp_path / "analysis.json").is_file() and isinstance(result, dict)


def test_cli_runs_an_optimizer_grid_and_analyzes_it(tmp_path, capsys):
    from thermosgd.cli import main

    out = tmp_path / "mom"
    assert main(["isotropic", "--optimizer", "momentum", "--momentum", "0.5", "--protocol", "lr",
                 "--lr", "log:0.01:0.1:3", "--wd", "log:0.01:0.1:3", "--steps", "20000",
                 "--queue-size", "100", "--no-figures", "--out", str(out)]) == 0
    assert "9/9 stationary runs" in capsys.readouterr().out
    for f in ("config.json", "results.csv", "analysis.json"):
        assert (out / f).is_file()
    assert main(["isotropic", "--optimizer", "adamw", "--protocol", "elr", "--elr", "0.1",
                 "--wd", "0.1", "--out", str(tmp_path / "x")]) == 2
    assert "runs the fixed-LR protocol" in capsys.readouterr().err
