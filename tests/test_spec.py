"""The registry: every protocol's hyperparameters and every optimizer's protocols."""

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
