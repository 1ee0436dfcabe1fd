"""`thermosgd.workflows.train`: the configs of a grid, the grid trained into one directory
with its results table."""

from __future__ import annotations

import json

import pytest

from thermosgd.io import read_csv
from thermosgd.workflows.train import grid_configs, run_grid, write_grid_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"hidden": (8, 8), "steps": 60, "log_every": 5, "noise_every": 20, "noise_batches": 4,
        "queue_size": 10, "test_evals": 0, "device": "cpu"}


def test_grid_configs_outer_product_in_order():
    cs = grid_configs("elr", {"elr": (0.01, 0.02), "wd": (0.1, 0.2), "lr": None},
                      ("si", "bias"), steps=100)
    assert [(c.variant, c.elr, c.wd) for c in cs] == [
        (v, e, w) for v in ("si", "bias") for e in (0.01, 0.02) for w in (0.1, 0.2)]
    assert all(c.steps == 100 and c.lr is None and c.radius is None for c in cs)
    with pytest.raises(ValueError, match="wd"):
        grid_configs("elr", {"elr": (0.01,)})


def test_run_grid_writes_runs_and_the_table_of_the_directory(tmp_path):
    assert write_grid_table(tmp_path) is None
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "stationary.json").write_text("{not json")  # skipped
    done = run_grid(grid_configs("elr", {"elr": (0.02,), "wd": (0.01,)}, **TINY), tmp_path,
                    progress=False)
    assert [(n, d["status"]) for n, d in done] == [("elr2.00e-02_wd1.00e-02", "complete")]
    doc = json.loads((tmp_path / "elr2.00e-02_wd1.00e-02" / "stationary.json").read_text())
    assert doc["status"] == "complete"
    # a second grid in the same directory: the table holds both
    run_grid(grid_configs("elr", {"elr": (0.01,), "wd": (0.01,)}, **TINY), tmp_path,
             progress=False)
    assert list(read_csv(tmp_path / "results.csv")["name"]) == ["elr1.00e-02_wd1.00e-02",
                                                                "elr2.00e-02_wd1.00e-02"]


def test_run_grid_refuses_two_configs_with_one_name(tmp_path):
    with pytest.raises(ValueError, match="the grid lists a hyperparameter value twice"):
        run_grid(grid_configs("elr", {"elr": (0.01, 0.01), "wd": (0.1,)}, **TINY),
                 tmp_path / "o")
    assert not (tmp_path / "o").exists()
