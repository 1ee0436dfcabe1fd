"""Small inputs shared by the command-line tests, built once per session: a results table of
a synthetic ideal gas (analyze, report), a table on a known noise curve (schedule) and an
isotropic sweep made by ``thermosgd sweep`` (sweep, collect, report)."""

from __future__ import annotations

import contextlib
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest

from tests.analysis.tables import _merge, ideal_gas_table
from tests.schedules.curves import CURVE, curve_rows, merge
from thermosgd.cli import main
from thermosgd.io import write_csv

#: an isotropic study of one grid point, 4000 steps (as tests/test_sweep.py)
ISO_BASE = {"protocol": "elr", "wd": [0.05], "steps": 4000, "queue_size": 50, "n_blocks": 4}


def run_main(argv: list[str]) -> SimpleNamespace:
    """``main(argv)`` with its exit status and what it printed (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return SimpleNamespace(rc=rc, out=out.getvalue(), err=err.getvalue())


def assert_usage_error(res: SimpleNamespace, match: str) -> None:
    """Exit status 2, one line ``thermosgd: error: ...`` holding ``match``, no traceback."""
    assert res.rc == 2, (res.out, res.err)
    assert res.err.startswith("thermosgd: error:") and res.err.count("\n") == 1, res.err
    assert match in res.err and "Traceback" not in res.err, res.err


@pytest.fixture(scope="session")
def gas_dir(tmp_path_factory):
    """A directory holding results.csv: ideal-gas elr and lr grids (30 + 35 stationary runs),
    analyzable with every acceptance check passing."""
    d = tmp_path_factory.mktemp("gas")
    write_csv(d / "results.csv", _merge(ideal_gas_table("elr"), ideal_gas_table("lr")))
    return d


@pytest.fixture(scope="session")
def schedule_table(tmp_path_factory):
    """A results table whose elr (5x4) and lr (3x3) rows sit exactly on `CURVE`."""
    elr = curve_rows(CURVE, "elr", np.geomspace(0.004, 0.04, 5), np.geomspace(0.003, 0.03, 4))
    lr = curve_rows(CURVE, "lr", np.geomspace(0.5, 1.5, 3), np.geomspace(0.005, 0.01, 3))
    path = tmp_path_factory.mktemp("schedule") / "results.csv"
    write_csv(path, merge(elr, lr))
    return path


@pytest.fixture(scope="session")
def iso_sweep(tmp_path_factory):
    """``thermosgd sweep`` of two isotropic studies (seeds 0, 1): its directory and output."""
    d = tmp_path_factory.mktemp("iso-sweep")
    cfg = d / "sweep.json"
    cfg.write_text(json.dumps({"kind": "isotropic", "name": "iso", "base": ISO_BASE,
                               "grid": {"elr": [[0.05]], "seed": [0, 1]}}))
    res = run_main(["sweep", str(cfg), "--out", str(d / "out"), "--no-progress"])
    return SimpleNamespace(config=cfg, dir=d / "out", res=res)
