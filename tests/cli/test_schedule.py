"""Tests of the ``thermosgd schedule`` commands (predict, validate, process): happy paths
against the library and one-line errors on bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.schedules.curves import CURVE, curve_rows, merge
from thermosgd import schedules as S


def _write_table(path, table):
    from thermosgd.io import write_csv

    write_csv(path, table)
    return path


def test_cli_predict_recommend_validate(tmp_path, capsys):
    from thermosgd.cli import main

    elr = curve_rows(CURVE, "elr", np.geomspace(0.004, 0.04, 5), np.geomspace(0.003, 0.03, 4))
    lr = curve_rows(CURVE, "lr", np.geomspace(0.5, 1.5, 3), np.geomspace(0.005, 0.01, 3))
    table = _write_table(tmp_path / "results.csv", merge(elr, lr))
    assert main(["schedule", "predict", "--table", str(table), "--protocol", "lr",
                 "--lr", "1.0", "--wd", "0.01", "--out", str(tmp_path / "p.csv")]) == 0
    out = capsys.readouterr().out
    want = S.predict(CURVE, "lr", lr=1.0, wd=0.01)
    assert f"{float(want['radius']):.4g}" in out
    assert main(["schedule", "predict", "--table", str(table), "--protocol", "elr",
                 "--target-temperature", "1.2e-4", "--wd", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "reachable temperatures" in out and "0.00012" in out
    assert main(["schedule", "validate", "--table", str(table)]) == 0
    assert "predict 9 lr runs" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--protocol", "lr", "--elr", "0.01", "--wd", "0.01"], "takes --lr"),
    (["--protocol", "lr", "--wd", "0.01"], "give --lr and --wd"),
    (["--protocol", "lr", "--target-temperature", "1e-4"], "exactly two"),
    (["--protocol", "lr", "--lr", "x"], "cannot parse|LIST|invalid"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv, match):
    from thermosgd.cli import main

    table = _write_table(tmp_path / "results.csv",
                         curve_rows(CURVE, "elr", [0.004, 0.01, 0.04], [0.003, 0.03]))
    assert main(["schedule", "predict", "--table", str(table), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("thermosgd: error:")
    assert re.search(match, err)


def test_cli_process(capsys):
    from thermosgd.cli import main

    assert main(["schedule", "process", "--kind", "adiabatic", "--protocol", "lr", "--lr",
                 "0.7", "--wd", "0.001,0.01,0.1", "--sigma2", "0.05", "--dim", "50",
                 "--no-exact"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["lr", "wd", "temperature"]
    assert [ln.split()[0] for ln in lines[1:]] == ["0.7", "0.7", "0.7"]  # eta fixed
    assert len({ln.split()[4] for ln in lines[1:]}) == 1  # entropy constant
    assert main(["schedule", "process", "--kind", "isobaric", "--protocol", "elr", "--wd",
                 "0.01", "--temperature", "0.001,0.002", "--sigma2", "0.05",
                 "--dim", "50"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [float(ln.split()[0]) for ln in out[1:]] == pytest.approx([0.04, 0.08])
    assert main(["schedule", "process", "--kind", "isobaric", "--protocol", "elr", "--wd",
                 "0.01,0.02", "--sigma2", "0.05", "--dim", "50"]) == 2
