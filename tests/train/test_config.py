"""train.config: TrainConfig JSON round trip, the resolved schedule, validation messages
(one line, "name == value, must be ..."), run names, old config files."""

import json

import numpy as np
import pytest

from tests.train.common import OPT_HYPER, tiny
from thermosgd.train import TrainConfig, run_name
from thermosgd.train.checkpoint import config_diff
from thermosgd.train.engine import hook_keys


def test_config_json_round_trip_and_default_schedule():
    c = TrainConfig(protocol="elr", elr=2e-3, wd=3e-3, steps=50_000, label_noise=0.3)
    assert TrainConfig.from_json(c.to_json()) == c
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    s = c.schedule
    assert (s.log_every, s.window, s.window_start, s.queue_size) == (50, 25_000, 25_000, 1000)
    # probes: a multiple of log_every, ~10% extra gradients, at most ~64 in the window
    assert s.noise_every % s.log_every == 0 and 0.09 <= s.noise_fraction() <= 0.1
    assert 30 <= s.window // s.noise_every <= 64
    long = TrainConfig(protocol="elr", elr=2e-3, wd=3e-3, steps=1_000_000).schedule
    assert long.window // long.noise_every == 62 and long.noise_fraction() < 0.01
    snaps = s.snapshot_steps(c.steps)
    assert len(np.unique(snaps)) == 1000 and snaps[0] > s.window_start and snaps[-1] == c.steps
    assert TrainConfig(protocol="sphere", elr=0.01, radius=2.0).schedule.init_radius == 2.0
    assert run_name(c) == "elr2.00e-03_wd3.00e-03"
    assert run_name(tiny("sphere", seed=3)) == "elr1.00e-02_r2.00e+00_seed3"


@pytest.mark.parametrize(
    "kw,msg",
    [
        (dict(protocol="sgd", lr=0.1, wd=0.1), "protocol == 'sgd', must be one of"),
        (dict(protocol="elr", elr=0.1), "needs wd"),
        (dict(protocol="sphere", elr=0.1, radius=1.0, wd=0.1), "takes no wd"),
        (dict(protocol="lr", lr=-0.1, wd=0.1), "lr == -0.1, must be > 0"),
        (dict(protocol="elr", elr=0.1, wd=0.1, model="vgg"), "model == 'vgg', must be one of"),
        (dict(protocol="elr", elr=0.1, wd=0.1, data="mnist"), "data == 'mnist', must be one of"),
        (dict(protocol="elr", elr=0.1, wd=0.1, data="cifar10"), "needs data_dir"),
        (dict(protocol="elr", elr=0.1, wd=0.1, data="synthetic", model="convnet"), "vectors"),
        (dict(protocol="elr", elr=0.1, wd=0.1, width=8), "width is for"),
        (dict(protocol="elr", elr=0.1, wd=0.1, label_noise=1.5),
         "label_noise == 1.5, must be <= 1"),
        (dict(protocol="elr", elr=0.1, wd=0.1, steps=0), "steps == 0, must be >= 1"),
        (dict(protocol="sphere", elr=0.1, radius=1.0, init_radius=2.0), "init_radius"),
        (dict(protocol="elr", elr=0.1, wd=0.1, steps=100, log_every=10, noise_every=15),
         "noise_every == 15, must be a multiple of log_every"),
        (dict(protocol="elr", elr=0.1, wd=0.1, steps=100, queue_size=80),
         r"queue_size == 80, must be in \[3, window=50\]"),
        (dict(protocol="elr", elr=0.1, wd=0.1, device="tpu"), "device == 'tpu', must be one of"),
        (dict(protocol="elr", elr=0.1, wd=0.1, noise_batches=2),
         "noise_batches == 2, must be >= 3"),
    ],
)
def test_bad_config_is_a_one_line_value_error(kw, msg):
    with pytest.raises(ValueError, match=msg) as e:
        TrainConfig(**kw)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kw,msg", [
    (dict(test_fraction=1.0), r"test_fraction == 1.0, must be < 1"),
    (dict(test_fraction=0.2, data="synthetic"), "has its own test set"),
    (dict(test_evals=-1), "test_evals == -1, must be >= 0"),
    (dict(test_evals=100), r"test_evals == 100, must be <= window \(60\)"),
])
def test_bad_evaluation_settings_are_one_line_errors(kw, msg):
    with pytest.raises(ValueError, match=msg) as e:
        tiny(**kw)
    assert "\n" not in str(e.value)


def test_variant_config_validation_names_and_old_configs():
    c = tiny(variant="bn-affine")
    assert TrainConfig.from_json(c.to_json()) == c
    assert run_name(c) == "elr1.00e-02_wd1.00e-02_bn-affine"
    assert run_name(tiny(variant="head", seed=2)) == "elr1.00e-02_wd1.00e-02_head_seed2"
    cfg = tiny().to_dict()
    del cfg["variant"]  # a config.json written before the field existed
    assert config_diff(cfg, tiny()) == []
    assert config_diff(cfg, c) == ["variant: 'si' != 'bn-affine'"]
    for kw, msg in ((dict(variant="dropout"), "variant == 'dropout', must be one of"),
                    (dict(variant="bias", model="resnet18"), "resnet18 takes 'si'"),
                    (dict(variant="layernorm", model="convnet"), "the convnet takes variant")):
        with pytest.raises(ValueError, match=msg) as e:
            TrainConfig(protocol="elr", elr=0.1, wd=0.1, **kw)
        assert "\n" not in str(e.value)


def test_optimizer_config_validation_round_trip_and_name():
    c = tiny("lr", optimizer="adamw", momentum=0.8, **OPT_HYPER["adamw"])
    assert TrainConfig.from_json(c.to_json()) == c
    assert c.optimizer_kwargs == {"optimizer": "adamw", "momentum": 0.8, "beta2": 0.999}
    assert run_name(c) == "adamw0.8_lr3.00e-03_wd1.00e-01"
    assert run_name(tiny("lr", optimizer="momentum", **OPT_HYPER["momentum"])).startswith(
        "momentum0.9_lr3.00e-02")
    old = tiny("lr").to_dict()  # a config.json written before the optimizer fields existed
    for k in ("optimizer", "momentum", "beta2"):
        old.pop(k)
    assert TrainConfig.from_dict(old).optimizer == "sgd"
    for kw, match in (
        ({"protocol": "elr", "elr": 0.1, "wd": 0.1, "optimizer": "momentum"},
         r"optimizer 'momentum' runs the protocol\(s\) lr, not 'elr'"),
        ({"protocol": "lr", "lr": 0.1, "wd": 0.1, "optimizer": "adam"},
         "optimizer == 'adam', must be one of"),
        ({"protocol": "lr", "lr": 0.1, "wd": 0.1, "optimizer": "momentum", "momentum": 1.0},
         "momentum == 1.0, must be < 1"),
        ({"protocol": "lr", "lr": 0.1, "wd": 0.1, "momentum": 0.9},
         "momentum == 0.9, must be None for optimizer 'sgd'"),
        ({"protocol": "lr", "lr": 0.1, "wd": 0.1, "optimizer": "momentum", "beta2": 0.9},
         "beta2 == 0.9, must be None for optimizer 'momentum'"),
    ):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**kw)


def test_hook_keys_are_the_protocol_rate_and_weight_decay():
    assert hook_keys("lr") == ("lr", "wd") and hook_keys("elr") == ("elr", "wd")
    assert hook_keys("sphere") == ("elr",)  # the sphere's radius is fixed


@pytest.mark.parametrize("hidden,msg", [
    ((16, "a"), "hidden == 'a', must be an integer"),
    ((16, True), "hidden == True, must be an integer"),
    (3.5, "hidden == 3.5, must be a sequence of positive ints"),
    ((16, 0), r"hidden == \(16, 0\), must list positive widths"),
])
def test_bad_hidden_widths(hidden, msg):
    with pytest.raises(ValueError, match=msg):
        TrainConfig(protocol="elr", elr=0.1, wd=0.1, hidden=hidden)
    assert TrainConfig(protocol="elr", elr=1, wd=0.1, hidden=np.int64(8)).hidden == (8,)


def test_memory_format_reaches_the_conv_model_and_is_not_batched():
    """channels_last is a conv option: the built model runs channels-last (its 4-d weights
    have NHWC strides), the mlp refuses it, and such configs train one at a time."""
    import torch

    from thermosgd.train import build_model, load_data
    from thermosgd.train.engine import batch_limit

    c = TrainConfig(protocol="elr", elr=0.01, wd=0.01, model="convnet", width=2,
                    memory_format="channels_last", steps=100, device="cpu")
    model = build_model(c, load_data(c))
    # the second conv (C_in = 2): with one input channel NHWC and NCHW strides coincide
    conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][1]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    assert batch_limit(c, "cpu", "always") == 1
    assert batch_limit(TrainConfig(protocol="elr", elr=0.01, wd=0.01, model="convnet", width=2,
                                   steps=100, device="cpu"), "cpu", "always") == 0
    with pytest.raises(ValueError, match="memory_format is for the convnet and resnet18"):
        TrainConfig(protocol="elr", elr=0.01, wd=0.01, memory_format="channels_last")
    with pytest.raises(ValueError, match="memory_format == 'nhwc'"):
        TrainConfig(protocol="elr", elr=0.01, wd=0.01, model="convnet", memory_format="nhwc")
