"""`thermosgd.workflows.presets`: every preset expands to a valid sweep of the package's run
kinds; the isotropic presets to their three studies."""

from __future__ import annotations

import pytest

from thermosgd.nn.models import MLP_VARIANTS
from thermosgd.sweep import expand
from thermosgd.workflows import presets as P
from thermosgd.workflows.runners import RUNNERS


def test_presets_expand_to_valid_sweeps():
    for name, p in P.PRESETS.items():
        spec = P.nn_spec(name, data_dir="/data" if p.needs_data_dir else None)
        assert spec.kind == "train" and spec.name == f"{name}-nn"
        runs = expand(spec, RUNNERS)
        protocols = {c["protocol"] for _, c in runs}
        if name == "cpu-nonsi":  # one protocol, every mlp variant
            assert protocols == {"elr"} and len(runs) == 6 * 9
            assert {c["variant"] for _, c in runs} == set(MLP_VARIANTS)
            continue
        if name == "cpu-optimizers":  # fixed LR under SGD, heavy ball and AdamW, 4x3 each
            assert protocols == {"lr"} and len(runs) == 36
            assert {c["optimizer"] for _, c in runs} == {"sgd", "momentum", "adamw"}
            assert {c.get("momentum") for _, c in runs} == {None, 0.9}
            continue
        if name == "cpu-generalization":  # ELR and LR grids on digits with a held-out split
            assert protocols == {"elr", "lr"} and len(runs) == 50
            assert {c["test_fraction"] for _, c in runs} == {0.2}
            continue
        assert protocols == {"lr", "elr", "sphere"}, name
    assert len(expand(P.nn_spec("cpu"), RUNNERS)) == 75
    with pytest.raises(ValueError, match="needs --data-dir"):
        P.nn_spec("paper-convnet-cifar10")


def test_nn_spec_options():
    spec = P.nn_spec("quick", data_dir="/d", executor="ray", workers=3, steps=500)
    assert spec.base["data_dir"] == "/d" and spec.base["steps"] == 500
    assert (spec.executor, spec.workers, spec.gpus_per_task) == ("ray", 3, 0.0)
    assert P.nn_spec("paper-convnet-cifar10", data_dir="/d", executor="ray").gpus_per_task == 1.0


def test_isotropic_configs():
    configs = P.isotropic_configs("paper")
    assert [c.protocol for c in configs] == ["elr", "lr", "sphere"]
    assert configs[0].grid_shape == (17, 17) and configs[0].queue_size == 4000
    quick = P.isotropic_configs("quick", seed=3, replicas=None)
    assert {(c.seed, c.replicas, c.steps) for c in quick} == {(3, 1, 300_000)}
