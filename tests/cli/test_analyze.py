"""``thermosgd analyze``: an ideal-gas table analyzed; too few stationary runs: what can be
computed, the rest listed with the reason; runs that cannot be analyzed together: one line,
exit 2 (``--lenient``: recorded instead)."""

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


def test_too_few_stationary_runs_give_what_they_can(tmp_path):
    t = ideal_gas_table("elr")
    t["stationary"][3:] = False
    write_csv(tmp_path / "results.csv", t)
    res = run_main(["analyze", str(tmp_path)])
    assert res.rc == 0, res.err
    assert "== elr: 3/30 stationary runs, d=" in res.out and "radius: worst rel. error" in res.out
    assert ("not computed: Maxwell relation (quadratic entropy fit): needs >= 6 stationary runs "
            "on a 2-D grid (>= 3 values per axis), have 3") in res.out
    doc = json.loads((tmp_path / "analysis.json").read_text())
    assert doc["figures"] == ["elr-nn-equation-of-state.png"]
    assert (tmp_path / "elr-nn-equation-of-state.png").is_file()


def test_runs_of_several_dims_are_refused_unless_lenient(tmp_path):
    t = ideal_gas_table("elr")
    t["dim"][0] = 7.0
    write_csv(tmp_path / "results.csv", t)
    assert_usage_error(run_main(["analyze", str(tmp_path)]), "the runs have dim")
    assert not (tmp_path / "analysis.json").exists()
    res = run_main(["analyze", str(tmp_path), "--lenient", "--no-figures"])
    assert res.rc == 0 and "not analyzed" in res.out


def test_truncated_table_names_the_file_and_the_fix(tmp_path):
    write_csv(tmp_path / "results.csv", ideal_gas_table("elr"))
    (tmp_path / "runs").mkdir()  # a sweep directory: the table is rebuilt with collect
    text = (tmp_path / "results.csv").read_text()
    (tmp_path / "results.csv").write_text(text[: len(text) // 2])
    for command in ("analyze", "schedule"):
        if command == "schedule":
            res = run_main(["schedule", "predict", "--table", str(tmp_path), "--protocol", "lr",
                            "--lr", "0.1",
                            "--wd", "0.01"])
        else:
            res = run_main(["analyze", str(tmp_path)])
        assert_usage_error(res, "the table is truncated or corrupt; rebuild it with "
                                f"'thermosgd collect {tmp_path}'")
