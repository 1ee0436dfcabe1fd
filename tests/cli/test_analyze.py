"""``thermosgd analyze``: an ideal-gas table analyzed; too few stationary runs: one line, exit
2 (``--lenient``: recorded instead)."""

from __future__ import annotations

import json

from tests.analysis.tables import ideal_gas_table
from tests.cli.conftest import assert_usage_error, run_main
from thermosgd.io import write_csv


def test_analyze_writes_analysis_json(gas_dir, tmp_path):
    res = run_main(["analyze", str(gas_dir), "--out", str(tmp_path), "--no-figures"])
    assert res.rc == 0, res.err
    assert "== elr: 30/30 stationary runs" in res.out
    assert "acceptance: all checks passed" in res.out
    assert json.loads((tmp_path / "analysis.json").read_text())["n_runs"] == 65
    assert not (gas_dir / "analysis.json").exists()


def test_too_few_stationary_runs(tmp_path):
    t = ideal_gas_table("elr")
    t["stationary"][3:] = False
    write_csv(tmp_path / "results.csv", t)
    assert_usage_error(run_main(["analyze", str(tmp_path)]),
                       "protocol 'elr': only 3 stationary run(s)")
    assert not (tmp_path / "analysis.json").exists()
    res = run_main(["analyze", str(tmp_path), "--lenient", "--no-figures"])
    assert res.rc == 0 and "not analyzed" in res.out
