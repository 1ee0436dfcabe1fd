"""``thermosgd schedule predict | process | validate | track``: happy paths checked against
the library on a table that sits exactly on a known noise curve, and one-line errors (exit
status 2) on bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.cli.conftest import assert_usage_error, run_main
from tests.schedules.curves import CURVE, curve_rows
from thermosgd import schedules as S
from thermosgd.io import read_csv, write_csv


def test_predict_and_recommend(schedule_table, tmp_path):
    res = run_main(["schedule", "predict", "--table", str(schedule_table), "--protocol", "lr",
                    "--lr", "1.0", "--wd", "0.01", "--out", str(tmp_path / "p.csv")])
    assert res.rc == 0, res.err
    want = S.predict(CURVE, "lr", lr=1.0, wd=0.01)  # the table's rows sit on CURVE
    assert f"{float(want['radius']):.4g}" in res.out
    assert res.out.startswith("noise curve: ") and f"wrote {tmp_path / 'p.csv'}" in res.out
    written = read_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(written["radius"], want["radius"], rtol=1e-6)  # fit round-off
    res = run_main(["schedule", "predict", "--table", str(schedule_table), "--protocol", "elr",
                    "--target-temperature", "1.2e-4", "--wd", "0.01"])
    assert res.rc == 0, res.err
    assert "reachable temperatures" in res.out and "0.00012" in res.out


@pytest.mark.parametrize("argv, match", [
    (["--protocol", "lr", "--elr", "0.01", "--wd", "0.01"], "takes --lr"),
    (["--protocol", "lr", "--wd", "0.01"], "give --lr and --wd"),
    (["--protocol", "lr", "--target-temperature", "1e-4"], "exactly two"),
    (["--protocol", "lr", "--lr", "x"], "cannot parse|LIST|invalid"),
])
def test_predict_bad_input_is_one_line(tmp_path, argv, match):
    table = tmp_path / "results.csv"
    write_csv(table, curve_rows(CURVE, "elr", [0.004, 0.01, 0.04], [0.003, 0.03]))
    res = run_main(["schedule", "predict", "--table", str(table), *argv])
    assert_usage_error(res, "")
    assert re.search(match, res.err)


def test_process(schedule_table):
    res = run_main(["schedule", "process", "--kind", "adiabatic", "--protocol", "lr", "--lr",
                    "0.7", "--wd", "0.001,0.01,0.1", "--sigma2", "0.05", "--dim", "50",
                    "--no-exact"])
    assert res.rc == 0, res.err
    lines = res.out.splitlines()
    assert lines[0].split() == ["lr", "wd", "temperature", "volume", "entropy",
                                "elr_predicted", "tau"]
    assert [ln.split()[0] for ln in lines[1:]] == ["0.7", "0.7", "0.7"]  # eta fixed
    assert len({ln.split()[4] for ln in lines[1:]}) == 1  # entropy constant
    res = run_main(["schedule", "process", "--kind", "isobaric", "--protocol", "elr", "--wd",
                    "0.01", "--temperature", "0.001,0.002", "--sigma2", "0.05", "--dim", "50"])
    assert res.rc == 0, res.err
    # constant noise: T = elr sigma2 / 2, so elr = 2 T / sigma2
    assert [float(ln.split()[0]) for ln in res.out.splitlines()[1:]] == pytest.approx(
        [0.04, 0.08])
    res = run_main(["schedule", "process", "--kind", "isothermal", "--protocol", "elr",
                    "--elr", "0.01", "--wd", "0.001,0.01", "--table", str(schedule_table)])
    assert res.rc == 0, res.err
    assert [ln.split()[0] for ln in res.out.splitlines()[1:]] == ["0.01", "0.01"]


@pytest.mark.parametrize("argv, match", [
    (["--kind", "isobaric", "--protocol", "elr", "--wd", "0.01,0.02", "--sigma2", "0.05",
      "--dim", "50"], "isobaric needs --temperature and one --wd value"),
    (["--kind", "isothermal", "--protocol", "elr", "--wd", "0.01"],
     "give --table, or a constant noise with --sigma2 and --dim"),
    (["--kind", "adiabatic", "--protocol", "lr", "--wd", "0.01", "--sigma2", "0.05",
      "--dim", "50"], "adiabatic needs the starting --lr"),
    (["--kind", "isothermal", "--protocol", "lr", "--elr", "0.01", "--wd", "0.01",
      "--sigma2", "0.05", "--dim", "50"], "protocol lr takes --lr, not --elr"),
])
def test_process_bad_input_is_one_line(argv, match):
    assert_usage_error(run_main(["schedule", "process", *argv]), match)


def test_validate(schedule_table, tmp_path):
    res = run_main(["schedule", "validate", "--table", str(schedule_table), "--out",
                    str(tmp_path / "v")])
    assert res.rc == 0, res.err
    assert "== fit on 20 stationary elr runs" in res.out and "predict 9 lr runs" in res.out
    assert "== fit on 9 stationary lr runs" in res.out and "predict 20 elr runs" in res.out
    doc = json.loads((tmp_path / "v" / "prediction.json").read_text())
    assert [v["label"] for v in doc["validations"]] == ["fit elr -> predict lr",
                                                        "fit lr -> predict elr"]
    assert (tmp_path / "v" / "prediction.png").is_file()


def test_validate_bad_input_is_one_line(tmp_path):
    table = tmp_path / "results.csv"
    write_csv(table, curve_rows(CURVE, "elr", [0.004, 0.01, 0.04], [0.003, 0.03]))
    assert_usage_error(run_main(["schedule", "validate", "--table", str(table)]),
                       "stationary")


def test_track(tmp_path, one_torch_thread):
    out = tmp_path / "t"
    res = run_main(["schedule", "track", "--schedule", "step", "--milestones", "100",
                    "--steps", "200", "--burn-in", "100", "--log-every", "10",
                    "--noise-every", "50", "--noise-batches", "4", "--hidden", "8,8",
                    "--no-figures", "--out", str(out)])
    assert res.rc == 0, res.err
    assert f"wrote {out}/records.csv, probes.csv, schedule.json" in res.out
    doc = json.loads((out / "schedule.json").read_text())
    assert doc["config"]["milestones"] == [100] and doc["figures"] == []
    assert len(read_csv(out / "records.csv")["step"]) >= 20


@pytest.mark.parametrize("argv, match", [
    (["--milestones", "1,x"], "cannot parse --milestones '1,x'"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--protocol", "elr", "--lr", "1.0"], "protocol elr takes --elr, not --lr"),
    (["--noise-every", "15"], "noise_every"),
])
def test_track_bad_input_is_one_line(tmp_path, argv, match):
    assert_usage_error(run_main(["schedule", "track", *argv, "--out", str(tmp_path / "t")]),
                       match)
    assert not (tmp_path / "t").exists()


def test_predict_reports_a_negative_rate_before_reading_the_table(tmp_path):
    # the table is not even there: the bad value is the first thing said
    assert_usage_error(run_main(["schedule", "predict", "--table", str(tmp_path / "missing"),
                                 "--protocol", "lr", "--lr", "-0.1", "--wd", "0.01"]),
                       "lr == (-0.1,), must be > 0")
