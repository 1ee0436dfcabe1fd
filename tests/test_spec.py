"""The registry: every protocol's hyperparameters and every optimizer's protocols."""

import subprocess
import sys

import pytest

from thermosgd import spec


def test_every_protocol_has_two_hyperparameters_and_axes():
    for p in spec.PROTOCOLS:
        rate, second = spec.hyperparameters(p)
        assert rate == spec.rate_name(p) in ("lr", "elr")
        assert spec.axes(p)[0] == rate
        assert second in ("wd", "radius")
    assert spec.axes("sphere") == ("elr", "radius_set")


def test_optimizers_and_their_protocols():
    assert spec.check_optimizer("adamw", "lr") == "adamw"
    with pytest.raises(ValueError, match="optimizer 'momentum' runs the protocol"):
        spec.check_optimizer("momentum", "elr")
    with pytest.raises(ValueError, match=r"optimizer == 'adam', must be one of sgd"):
        spec.check_optimizer("adam")
    with pytest.raises(ValueError, match=r"protocol == 'fixed', must be one of lr, elr"):
        spec.check_protocol("fixed")
    assert set(spec.OPTIMIZER_PROTOCOLS) == set(spec.OPTIMIZERS) == set(
        spec.OPTIMIZER_HYPERPARAMETERS)


def test_optimizer_settings_and_torch_defaults():
    assert spec.optimizer_betas("sgd", None, None) == (None, None)
    assert spec.optimizer_betas("momentum") == (spec.DEFAULT_MOMENTUM, None)
    assert spec.optimizer_betas("adamw", 0.8) == (0.8, spec.DEFAULT_BETA2)
    spec.check_optimizer_settings("lr", "adamw", 0.5, 0.99)
    with pytest.raises(ValueError, match=r"beta2 == 0.9, must be None for optimizer 'momentum'"):
        spec.check_optimizer_settings("lr", "momentum", 0.9, 0.9)
    with pytest.raises(ValueError, match=r"momentum == 1.0, must be < 1.0"):
        spec.check_optimizer_settings("lr", "momentum", 1.0)


def test_wd_protocols_and_schedule_shapes():
    # the protocols whose second hyperparameter is the weight decay (module docstring)
    assert spec.WD_PROTOCOLS == ("lr", "elr")
    from thermosgd.schedules import make_schedule

    for kind in spec.SCHEDULES:  # every registered shape is one make_schedule builds
        v = make_schedule(kind, 10, 2.0, milestones=(5,), final=0.5)
        assert v.shape == (10,) and v[0] == 2.0
    with pytest.raises(ValueError, match="schedule == 'linear'"):
        make_schedule("linear", 10, 2.0)


def test_registry_names_reexported_by_their_old_modules_wiring():
    from thermosgd import train
    from thermosgd.nn import models
    from thermosgd.schedules import shapes
    from thermosgd.train import config

    for module, names in ((models, ("MLP_VARIANTS", "CONVNET_VARIANTS")),
                          (config, ("MODELS", "DATASETS", "DEVICES")),
                          (train, ("MODELS", "DATASETS", "DEVICES")),
                          (shapes, ("SCHEDULES", "WD_PROTOCOLS"))):
        for name in names:
            assert name in module.__all__ and getattr(module, name) is getattr(spec, name)
    assert set(spec.CONVNET_VARIANTS) < set(spec.MLP_VARIANTS)


def test_spec_imports_no_heavy_module():
    # a fresh interpreter: the command line builds its parser from spec
    code = ("import sys, thermosgd.spec; print([m for m in ('torch', 'numba', 'scipy', "
            "'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == "[]", out
