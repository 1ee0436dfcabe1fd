"""records: the stationary-record schema and the one rows <-> columns table builder."""

import json

import numpy as np
import pytest

from thermosgd import records as R
from thermosgd.io import read_csv, write_csv


def test_schema_names_are_unique_grouped_and_described():
    names = [f.name for f in R.FIELDS]
    assert len(names) == len(set(names))
    assert {f.group for f in R.FIELDS} == set(R.GROUPS)
    assert R.field_names("predictions")[:3] == ("temperature", "pressure_sde",
                                                "pressure_discrete")
    assert "radius_se" in R.field_names("measured", with_se=True)
    assert "relaxation_time_se" not in R.field_names(with_se=True)
    assert R.describe("energy").startswith("U = ")
    assert R.describe("energy_se") == "standard error of energy"
    with pytest.raises(KeyError):
        R.describe("relaxation_time_se")
    with pytest.raises(ValueError, match="group == 'nope', must be one of"):
        R.field_names("nope")


def test_rows_to_columns_union_in_order_with_none_and_back():
    rows = [{"a": 1, "b": "x"}, {"b": "y", "c": [1, 2]}, {}]
    cols = R.rows_to_columns(rows)
    assert list(cols) == ["a", "b", "c"]
    assert all(v.dtype == object and v.shape == (3,) for v in cols.values())
    assert cols["a"].tolist() == [1, None, None]
    assert cols["c"][1] == [1, 2]  # a list stays one cell, never a second axis
    back = R.columns_to_rows(cols)
    assert back == [{"a": 1, "b": "x", "c": None}, {"a": None, "b": "y", "c": [1, 2]},
                    {"a": None, "b": None, "c": None}]
    assert R.columns_to_rows({"x": np.array([1.5, 2.5])}) == [{"x": 1.5}, {"x": 2.5}]
    assert type(R.columns_to_rows({"x": np.array([1.5])})[0]["x"]) is float
    assert R.rows_to_columns([]) == {} and R.columns_to_rows({}) == []
    with pytest.raises(ValueError, match="must be equal"):
        R.columns_to_rows({"x": [1], "y": [1, 2]})


def test_flatten_nested_documents():
    doc = {"a": 1, "m": {"x": 2.0, "n": {"y": None}}, "l": [1, 2], "t": ("u",)}
    assert R.flatten(doc) == {"a": 1, "m.x": 2.0, "m.n.y": None, "l": "[1, 2]", "t": '["u"]'}
    assert R.flatten({"k": 1}, "p.") == {"p.k": 1}


def test_stationary_table_keeps_scalars_and_joins_reasons(tmp_path):
    docs = [
        {"status": "complete", "name": "a", "elr": 0.01, "dim": 10, "stationary": True,
         "reasons": [], "schedule": {"window": 3}, "summary": "text", "warnings": ["w"],
         "momentum": None, "energy": np.float64(0.5)},
        {"status": "diverged", "name": "b", "elr": 0.02, "stationary": False,
         "reasons": ["r1", "r2"], "extra": 3.0},
    ]
    cols = R.stationary_table(docs)
    assert list(cols) == ["status", "name", "elr", "dim", "stationary", "momentum",
                          "energy", "extra", "reasons"]
    assert cols["reasons"].tolist() == ["", "r1; r2"]
    assert cols["dim"].tolist() == [10, None] and cols["extra"].tolist() == [None, 3.0]
    write_csv(tmp_path / "t.csv", cols)
    assert (tmp_path / "t.csv").read_text().splitlines() == [
        "status,name,elr,dim,stationary,momentum,energy,extra,reasons",
        "complete,a,0.01,10,true,,0.5,,",
        "diverged,b,0.02,,false,,,3.0,r1; r2",
    ]
    t = read_csv(tmp_path / "t.csv")
    assert np.isnan(t["dim"][1]) and t["name"].tolist() == ["a", "b"]
    assert json.loads(json.dumps(R.stationary_row(docs[1]))) == {
        "status": "diverged", "name": "b", "elr": 0.02, "stationary": False,
        "extra": 3.0, "reasons": "r1; r2"}
