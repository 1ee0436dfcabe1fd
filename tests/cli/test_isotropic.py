"""The thermosgd command line: options, outputs, one-line errors with exit status 2."""

import json

import numpy as np
import pytest

from thermosgd.cli import main, parse_list
from thermosgd.io import read_csv


def test_parse_list():
    assert parse_list("0.1,0.2") == (0.1, 0.2)
    np.testing.assert_allclose(parse_list("log:1e-3:1e-1:3"), [1e-3, 1e-2, 1e-1])
    for bad in ("log:1:2", "a,b", "log:0:1:3", ""):
        with pytest.raises(ValueError):
            parse_list(bad)


def test_help_lists_every_option(capsys):
    assert main(["isotropic", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--protocol", "--lr", "--elr", "--wd", "--radius", "--dim", "--sigma", "--steps",
                "--seed", "--out", "--preset", "--replicas", "--burn-in", "--queue-size"):
        assert opt in out


def test_isotropic_run_writes_results(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["isotropic", "--protocol", "elr", "--elr", "0.05,0.1", "--wd", "log:0.01:0.1:3",
               "--dim", "3", "--sigma", "1", "--steps", "20000", "--seed", "1",
               "--queue-size", "200", "--out", str(out)])
    assert rc == 0
    t = read_csv(out / "results.csv")
    assert len(t["elr"]) == 6
    for col in ("protocol", "lr", "elr", "wd", "radius_set", "dim", "sigma", "radius", "energy",
                "entropy_dir", "entropy", "pressure", "radius_theory", "energy_theory",
                "entropy_dir_theory", "entropy_theory", "pressure_theory", "temperature",
                "stationary"):
        assert col in t, col
    assert np.isnan(t["lr"]).all() and np.isnan(t["radius_set"]).all()
    s = json.loads((out / "summary.json").read_text())
    assert "dS/dlog(wd)" in s["maxwell"]
    assert {p.name for p in out.glob("*.png")} >= {"elr-equation-of-state.png",
                                                   "elr-potential.png"}
    assert "radius: worst rel. error" in capsys.readouterr().out


@pytest.mark.parametrize("args,msg", [
    (["--protocol", "lr", "--lr", "0.1"], "needs --wd"),
    (["--protocol", "lr", "--lr", "-0.1", "--wd", "0.1"], "> 0"),
    (["--protocol", "sphere", "--elr", "0.1", "--wd", "0.1"], "takes no --wd"),
    (["--protocol", "elr", "--elr", "0.1", "--wd", "0.1", "--steps", "100"], "steps too short"),
    (["--protocol", "elr", "--elr", "x", "--wd", "0.1"], "cannot parse"),
    (["--elr", "0.1"], "give --protocol"),
    (["--preset", "quick", "--protocol", "lr"], "--preset runs its own grids"),
    (["--protocol", "elr", "--elr", "0.1", "--wd", "0.1", "--dim", "0"], "dim"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, msg):
    rc = main(["isotropic", *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert msg in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()
