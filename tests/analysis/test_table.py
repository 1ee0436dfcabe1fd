"""Reading and normalizing results tables (`thermosgd.analysis.table`): input formats, column
spellings, which rows are used and why the others are excluded, bad input."""

import json

import numpy as np
import pytest

from tests.analysis.tables import ideal_gas_table
from thermosgd import analysis as A
from thermosgd.io import write_csv


def test_non_stationary_runs_are_excluded_and_listed():
    t = ideal_gas_table("elr")
    ref = A.analyze(t)["protocols"]["elr"]
    # corrupt three runs; flag them: the analysis must not change
    t["stationary"][[2, 9]] = False
    t["reasons"][2] = "radius drifting (2.1% over the window)"
    t["entropy"][[2, 9]] += 1e6
    t["radius"][[2, 9]] *= 3
    t["diverged"][20], t["stationary"][20] = True, False
    for k in ("entropy", "energy", "radius", "temperature"):
        t[k][20] = np.nan
    t["entropy"][25] = np.nan  # stationary but no entropy estimate
    r = A.analyze(t)
    p = r["protocols"]["elr"]
    assert p["stationary_runs"] == 26 and p["runs"] == 30
    why = {e["run"]: e["reasons"] for e in p["excluded"]}
    assert why == {"elr/run002": "radius drifting (2.1% over the window)",
                   "elr/run009": "flagged non-stationary",
                   "elr/run020": "diverged; flagged non-stationary",
                   "elr/run025": "missing or invalid entropy"}
    assert [e["run"] for e in r["excluded"]] == list(why)
    assert p["excluded"][0]["elr"] == pytest.approx(t["elr"][2])
    assert p["maxwell"]["max_rel_error"] < 1e-8
    assert p["equation_of_state"]["max_rel_error_discrete"] == pytest.approx(0, abs=1e-12)
    assert p["entropy_fit"]["r2"] == pytest.approx(ref["entropy_fit"]["r2"])


def test_pandas_dataframe_and_csv_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    t = ideal_gas_table("lr", eos_noise=0.01, entropy_noise=0.01)
    t["stationary"][3] = False
    ref = json.dumps(A.analyze(t), sort_keys=True, default=str)
    assert json.dumps(A.analyze(pd.DataFrame(t)), sort_keys=True, default=str) == ref
    write_csv(tmp_path / "results.csv", t)  # booleans as "true"/"false", empty reasons
    back = A.load_table(tmp_path)
    assert back["stationary"].dtype == bool and not back["stationary"][3]
    got = A.analyze(back)["protocols"]["lr"]["maxwell"]
    want = A.analyze(t)["protocols"]["lr"]["maxwell"]
    assert got["max_rel_error"] == pytest.approx(want["max_rel_error"], rel=1e-12)
    assert got["coefficients"] == pytest.approx(want["coefficients"], rel=1e-12)
    pd.DataFrame(t).to_parquet(tmp_path / "t.parquet")
    assert A.analyze(A.load_table(tmp_path / "t.parquet"))["protocols"]["lr"]["runs"] == 35


def test_isotropic_column_names_are_accepted():
    t = ideal_gas_table("elr", grad_ratio=0.3)
    t["radius_theory"] = t.pop("radius_sde")
    t["pressure_theory"] = t.pop("pressure_sde")
    r = A.analyze(t)["protocols"]["elr"]
    assert r["equation_of_state"]["max_rel_error_sde"] > 0.01


def test_flattened_sweep_table():
    # a sweep's collected table: prefixed names, 'name' for the run id, reasons as a JSON
    # list, an 'error' column, and a run that failed before it had a protocol
    t = ideal_gas_table("elr")
    t["record.energy"] = t.pop("energy")
    t["name"] = t.pop("run")
    t["reasons"] = t["reasons"].astype(object)
    t["stationary"][4] = False
    t["reasons"][4] = '["radius drifting", "loss trending"]'
    t["error"] = np.full(30, None, dtype=object)
    t["error"][6] = "RuntimeError: out of memory"
    t["protocol"][7] = ""
    t["error"][7] = "ValueError: unknown model"
    r = A.analyze(t)
    why = {e["run"]: e["reasons"] for e in r["excluded"]}
    assert why == {"elr/run004": "radius drifting; loss trending",
                   "elr/run006": "failed: RuntimeError: out of memory",
                   "elr/run007": "failed: ValueError: unknown model"}
    assert r["protocols"]["elr"]["stationary_runs"] == 27
    assert r["protocols"]["elr"]["maxwell"]["max_rel_error"] < 1e-8


@pytest.mark.parametrize("edit,msg", [
    (lambda t: t.pop("entropy"), "needs column.*entropy"),
    (lambda t: t.pop("protocol"), "no 'protocol' column"),
    (lambda t: t["protocol"].__setitem__(0, "adam"), "unknown protocol"),
    (lambda t: t["dim"].__setitem__(0, 10.0), "analyze one model at a time"),
    (lambda t: t.__setitem__("energy", t["energy"].astype(object)) or
     t["energy"].__setitem__(1, "abc"), "'energy': 'abc'"),
    (lambda t: t.__setitem__("stationary", t["stationary"].astype(object)) or
     t["stationary"].__setitem__(1, "maybe"), "true/false"),
    (lambda t: t.__setitem__("wd", t["wd"][:-1]), "different lengths"),
])
def test_bad_tables(edit, msg):
    t = ideal_gas_table("elr")
    edit(t)
    with pytest.raises(ValueError, match=msg):
        A.analyze(t)


def test_bad_table_types_and_paths(tmp_path):
    with pytest.raises(ValueError, match="dict of columns or a pandas DataFrame"):
        A.analyze([1, 2, 3])
    with pytest.raises(ValueError, match="thermosgd collect"):
        A.load_table(tmp_path)
    with pytest.raises(ValueError, match="rank"):
        A.fit_quadratic([1, 2, 3, 1, 2, 3], [1, 2, 3, 1, 2, 3], np.arange(6.0))


def test_a_sequence_of_stationary_records_is_a_table():
    # the rows of stationary.json documents (lists of reasons, nested schedules) go through
    # thermosgd.records.stationary_table: the same analysis as the columns
    t = ideal_gas_table("elr")
    t["stationary"][4] = False
    docs = [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in t.items()}
            for i in range(len(t["run"]))]
    for i, d in enumerate(docs):
        d["reasons"] = ["radius drifting", "loss trending"] if i == 4 else []
        d["schedule"] = {"window": [0, 10]}
    got = A.analyze(docs)
    want = A.analyze(t)
    assert got["protocols"]["elr"]["maxwell"] == want["protocols"]["elr"]["maxwell"]
    assert got["excluded"][0]["reasons"] == "radius drifting; loss trending"
    with pytest.raises(ValueError, match="dict of columns"):
        A.as_columns([])


def test_split_rows_of_a_sweep_state():
    # a sweep's run states other than done/diverged/complete exclude a row, an error first
    t = ideal_gas_table("elr")
    n = len(t["run"])
    t["state"] = np.full(n, "done", dtype=object)
    t["state"][[1, 2]] = ["running", "failed"]
    t["error"] = np.full(n, None, dtype=object)
    t["error"][2] = "RuntimeError: boom"
    used, excluded = A.split_rows(A.as_columns(t), "elr")
    assert used.size == n - 2
    assert [e["reasons"] for e in excluded] == ["run running", "failed: RuntimeError: boom"]
    assert set(excluded[0]) == {"run", "row", "elr", "wd", "reasons"}
