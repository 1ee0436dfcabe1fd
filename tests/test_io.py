"""Atomic CSV/JSON writers."""

import json

import numpy as np
import pytest

from thermosgd.io import atomic_write_text, read_csv, write_csv, write_json


def test_csv_round_trip(tmp_path):
    cols = {"a": np.array([1.0, np.nan, 3.5]), "name": np.array(["x", "y", "z"], dtype=object),
            "flag": np.array([True, False, True])}
    write_csv(tmp_path / "t.csv", cols)
    back = read_csv(tmp_path / "t.csv")
    np.testing.assert_array_equal(back["a"], cols["a"])
    assert back["name"].tolist() == ["x", "y", "z"]
    assert (tmp_path / "t.csv").read_text().splitlines()[2].startswith(",y,false")


def test_mismatched_columns(tmp_path):
    with pytest.raises(ValueError, match="different lengths"):
        write_csv(tmp_path / "t.csv", {"a": [1, 2], "b": [1]})


def test_json_nan_is_null_and_numpy_types(tmp_path):
    write_json(tmp_path / "s.json", {"x": np.float64("nan"), "y": np.int64(3), "z": [np.inf]})
    assert json.loads((tmp_path / "s.json").read_text()) == {"x": None, "y": 3, "z": [None]}


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")

    with pytest.raises(TypeError):
        atomic_write_text(p, object())  # not a string: the write fails before the rename
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["f.txt"]  # no temp files left behind


def test_truncated_or_corrupt_table_is_one_line_error(tmp_path):
    p = tmp_path / "t.csv"
    write_csv(p, {"a": np.arange(4.0), "b": np.arange(4.0)})
    text = p.read_text()
    p.write_text(text[: text.rindex(",")])  # cut inside the last row: it loses a cell
    with pytest.raises(ValueError, match=r"t.csv: line 5 has 1 cells, the header 2: the table "
                                         r"is truncated or corrupt"):
        read_csv(p)
    p.write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(ValueError, match="cannot read the table"):
        read_csv(p)
