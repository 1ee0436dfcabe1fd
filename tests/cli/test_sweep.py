"""``thermosgd sweep``: an isotropic sweep run, rerun (nothing redone) and refused options;
bad input in one line with exit status 2."""

from __future__ import annotations

import json

from tests.cli.conftest import ISO_BASE, assert_usage_error, run_main
from thermosgd.io import read_csv


def test_sweep_runs_and_collects(iso_sweep):
    assert iso_sweep.res.rc == 0, iso_sweep.res.err
    assert "sweep iso: 2 done" in iso_sweep.res.out
    t = read_csv(iso_sweep.dir / "results.csv")
    assert list(t["state"]) == ["done", "done"] and sorted(t["seed"]) == [0, 1]
    assert (iso_sweep.dir / "results.parquet").is_file()


def test_sweep_rerun_redoes_nothing(iso_sweep):
    records = sorted(iso_sweep.dir.glob("runs/*/record.json"))
    before = [p.read_bytes() for p in records]
    res = run_main(["sweep", str(iso_sweep.config), "--out", str(iso_sweep.dir),
                    "--no-progress"])
    assert res.rc == 0 and "2 done" in res.out
    assert [p.read_bytes() for p in records] == before


def test_bad_input_is_one_line_exit_2(tmp_path):
    out = str(tmp_path / "o")
    assert_usage_error(run_main(["sweep", str(tmp_path / "nope.json"), "--out", out]),
                       "does not exist")
    iso = tmp_path / "i.json"
    iso.write_text(json.dumps({"kind": "isotropic", "base": ISO_BASE, "grid": {"seed": [0]}}))
    assert_usage_error(run_main(["sweep", str(iso), "--out", out, "--variant", "si"]),
                       "--variant is for train sweeps")
    assert_usage_error(run_main(["sweep", str(iso), "--out", out, "--beta2", "0.9"]),
                       "--optimizer, --momentum and --beta2 are for train sweeps")
    assert_usage_error(run_main(["sweep", str(iso), "--out", out, "--workers", "0"]),
                       "workers == 0, must be >= 1")
    assert not (tmp_path / "o").exists()
