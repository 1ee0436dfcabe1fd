"""`thermosgd.workflows.sweep`: loading a spec with the package's run kinds, the train
overrides of the command line, a sweep run and collected."""

from __future__ import annotations

import json

import pytest

from thermosgd.sweep import SweepSpec
from thermosgd.workflows.sweep import override_train_spec, run_sweep, sweep_spec

TRAIN_BASE = {"protocol": "lr", "steps": 60, "optimizer": "momentum", "variant": "si"}


def test_sweep_spec_checks_the_kind_and_replaces_executor_settings(tmp_path):
    cfg = tmp_path / "s.json"
    cfg.write_text(json.dumps({"kind": "train", "base": TRAIN_BASE, "workers": 2,
                               "grid": {"lr": [0.1], "wd": [0.01]}}))
    spec = sweep_spec(cfg, workers=3, executor=None)
    assert (spec.kind, spec.workers, spec.executor) == ("train", 3, "local")
    cfg.write_text(json.dumps({"kind": "nope", "grid": {"x": [1]}}))
    with pytest.raises(ValueError, match="unknown run kind 'nope'; choose one of train, "
                                         "isotropic"):
        sweep_spec(cfg)


def test_override_train_spec():
    spec = SweepSpec(kind="train", base={**TRAIN_BASE, "beta2": 0.9},
                     grid=[{"lr": [0.1], "wd": [0.01], "momentum": [0.5]}, {"lr": [0.2]}])
    assert override_train_spec(spec) == spec
    new = override_train_spec(spec, variant=("si", "head"), optimizer="adamw",
                              momentum=(0.9, 0.8), beta2=0.99)
    assert new.base == {"protocol": "lr", "steps": 60, "optimizer": "adamw", "beta2": 0.99}
    assert new.grid == [{"lr": [0.1], "wd": [0.01], "variant": ["si", "head"],
                         "momentum": [0.9, 0.8]},
                        {"lr": [0.2], "variant": ["si", "head"], "momentum": [0.9, 0.8]}]
    only = override_train_spec(spec, beta2=0.95)  # the others stay where the config has them
    assert only.base["beta2"] == 0.95 and only.base["optimizer"] == "momentum"
    assert only.grid == spec.grid
    with pytest.raises(ValueError, match="kind == 'isotropic', must be 'train'"):
        override_train_spec(SweepSpec(kind="isotropic", grid={"seed": [0]}), variant=("si",))


def test_run_sweep_executes_and_collects(tmp_path):
    spec = SweepSpec(kind="isotropic", name="iso",
                     base={"protocol": "elr", "wd": [0.05], "steps": 4000, "queue_size": 50,
                           "n_blocks": 4}, grid={"elr": [[0.05]], "seed": [0]})
    assert run_sweep(spec, tmp_path, progress=False) == {"done": 1}
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "sweep.json").is_file()
