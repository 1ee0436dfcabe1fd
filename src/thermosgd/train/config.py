"""The configuration of one training run: `TrainConfig`, its resolved `Schedule`, validation
and the run's directory name.

`TrainConfig` is frozen and round-trips through JSON (``to_dict``/``from_dict``); every
default of the measurement schedule is resolved by `Schedule` (``config.schedule``). Which
hyperparameters a protocol takes, the optimizers and their defaults come from
`thermosgd.spec`; every argument check from `thermosgd._validate`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from thermosgd._validate import check_choice, check_fraction, check_int, check_number
from thermosgd.spec import (
    CONVNET_VARIANTS,
    DATASETS,
    DEFAULT_BETA2,
    DEVICES,
    HYPERPARAMETERS,
    MEMORY_FORMATS,
    MLP_VARIANTS,
    MODELS,
    check_optimizer_settings,
    check_protocol,
    optimizer_betas,
)

__all__ = [
    "DATASETS",
    "DEFAULT_WIDTH",
    "DEVICES",
    "MODELS",
    "SI_VARIANTS",
    "Schedule",
    "TrainConfig",
    "run_name",
    "validate_config",
]

#: mlp variants that are scale-invariant (checked before training; the others are not)
SI_VARIANTS = ("si", "layernorm")
#: default widths of the convolutional models (the paper's ConvNet-8 and ResNet-18 with k = 4)
DEFAULT_WIDTH = {"convnet": 8, "resnet18": 4}


@dataclass(frozen=True)
class Schedule:
    """The resolved schedule of a `TrainConfig` (every default filled in)."""

    log_every: int
    noise_every: int
    noise_batches: int
    window: int
    window_start: int
    queue_size: int
    checkpoint_every: int
    init_radius: float
    test_evals: int = 0

    def snapshot_steps(self, steps: int) -> np.ndarray:
        """Steps after which a snapshot is pushed: ``queue_size`` evenly spaced over the window,
        the last one at ``steps``: window_start + floor(k window / queue_size), k = 1..queue."""
        k = np.arange(1, self.queue_size + 1)
        return self.window_start + (k * self.window) // self.queue_size

    def eval_steps(self, steps: int) -> np.ndarray:
        """Steps after which train and test loss/accuracy are evaluated: ``test_evals`` evenly
        spaced over the window, the last one at ``steps``."""
        k = np.arange(1, self.test_evals + 1)
        return self.window_start + (k * self.window) // max(1, self.test_evals)

    def noise_fraction(self) -> float:
        """Extra gradient evaluations per training step spent on noise probes:
        noise_batches / noise_every."""
        return self.noise_batches / self.noise_every


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Frozen; ``to_dict``/``from_dict`` round-trip through JSON.

    * protocol "lr" takes ``lr`` and ``wd``; "elr" takes ``elr`` and ``wd``; "sphere" takes
      ``elr`` and ``radius`` (no weight decay) (`thermosgd.spec.HYPERPARAMETERS`).
    * model "mlp" (BN-MLP with hidden widths ``hidden``), "convnet" (width ``width``, default
      8) or "resnet18" (pre-activation, width ``width``, default 4); every head frozen.
      ``memory_format`` of the conv models (`thermosgd.spec.MEMORY_FORMATS`): "contiguous" or
      "channels_last" (about 1.4-1.6x faster steps on CPU, the same function to float32
      round-off; such configs train one at a time, never batched).
    * ``variant`` (see `thermosgd.nn.models.MLP_VARIANTS`): "si" (the paper's networks),
      "layernorm" (mlp; also SI), or a model that breaks scale invariance: "bn-affine", "bias",
      "head" (mlp and convnet), "layernorm-affine" (mlp). For those the protocol trains *all*
      trainable parameters as one group (radius, volume and noise are measured on it), no SI
      check refuses them, and stationary.json reports the distance from SI
      (``si_radial_gradient``, ``si_loss_change``).
    * data "digits", "fashion-mnist" (``data_dir``, default the Debian package's directory),
      "cifar10"/"cifar100" (``data_dir`` required, no download) or "synthetic"
      (teacher-student, vectors: mlp only); ``label_noise`` randomizes that fraction of the
      training labels with ``data_seed``; ``test_fraction`` (digits only, default 0 = train on
      all 1797 as the paper's pilot does) holds out that fraction as the test set.
    * ``seed`` drives the minibatch sequence (and, derived from it, the noise probes);
      ``init_seed`` the initial weights (1, the same for every run, as in the paper).
    * ``init_radius``: r of the SI vector before the first step (default 1; the sphere starts
      on its sphere of radius ``radius`` and takes no ``init_radius``).
    * schedule (None = default, see `Schedule`): ``log_every`` = steps // 1000;
      ``window`` = steps // 2 (the stationary window is the last ``window`` steps);
      ``queue_size`` = min(1000, window); ``noise_every`` = a multiple of ``log_every`` that is
      at least 10 * noise_batches (<= 10% extra compute) and at least window / 64;
      ``checkpoint_every`` = about steps / 10.
    * ``test_evals``: evaluations of the loss and accuracy on the whole training and test sets
      (BN in eval mode, running statistics), evenly spaced over the stationary window (0: none).
      Their means give the generalization gap of the stationary state.
    * ``device``: "auto" (CUDA when available), "cpu" or "cuda".
    * ``optimizer`` (protocol "lr" only for the last two): "sgd" (the paper), "momentum"
      (heavy ball with coupled WD, torch SGD semantics; ``momentum`` = beta, default 0.9) or
      "adamw" (decoupled WD, torch AdamW semantics; ``momentum`` = beta1, default 0.9,
      ``beta2`` default 0.999). None = the default; `optimizer_kwargs` resolves them.
    """

    protocol: str = "elr"
    lr: float | None = None
    elr: float | None = None
    wd: float | None = None
    radius: float | None = None
    optimizer: str = "sgd"
    momentum: float | None = None
    beta2: float | None = None
    steps: int = 50_000
    model: str = "mlp"
    hidden: tuple[int, ...] = (32, 32)
    width: int | None = None
    memory_format: str = "contiguous"
    variant: str = "si"
    data: str = "digits"
    data_dir: str | None = None
    label_noise: float = 0.0
    test_fraction: float = 0.0
    batch_size: int = 128
    seed: int = 1
    data_seed: int = 1
    init_seed: int = 1
    init_radius: float | None = None
    log_every: int | None = None
    noise_every: int | None = None
    noise_batches: int = 64
    queue_size: int | None = None
    window: int | None = None
    checkpoint_every: int | None = None
    test_evals: int = 8
    device: str = "auto"

    def __post_init__(self) -> None:
        hidden = self.hidden
        if isinstance(hidden, (int, np.integer)):
            hidden = (hidden,)
        if not isinstance(hidden, (tuple, list)):
            raise ValueError(f"hidden == {self.hidden!r}, must be a sequence of positive ints")
        object.__setattr__(self, "hidden", tuple(check_int("hidden", h) for h in hidden))
        for name in ("lr", "elr", "wd", "radius", "init_radius", "label_noise", "test_fraction",
                     "momentum", "beta2"):
            v = getattr(self, name)  # integers (not bools) are stored as floats
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                object.__setattr__(self, name, float(v))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", str(self.data_dir))
        validate_config(self)

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (``hidden`` as a list)."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config of a `to_dict` mapping (missing fields take their defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**{k: (tuple(v) if k == "hidden" else v) for k, v in d.items()})

    def to_json(self) -> str:
        """`to_dict` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """The config of a `to_json` text."""
        return cls.from_dict(json.loads(text))

    # -- derived ------------------------------------------------------------------------------

    @property
    def hyperparameters(self) -> dict[str, float]:
        """The protocol's two hyperparameters, e.g. {"elr": 0.01, "wd": 0.03}."""
        return {k: getattr(self, k) for k in HYPERPARAMETERS[self.protocol]}

    @property
    def optimizer_kwargs(self) -> dict[str, Any]:
        """{"optimizer", "momentum", "beta2"} with the defaults filled in (None where the
        optimizer has no such setting), as `make_optimizer` and `ThermoMonitor` take them."""
        b1, b2 = optimizer_betas(self.optimizer, self.momentum, self.beta2)
        return {"optimizer": self.optimizer, "momentum": b1, "beta2": b2}

    @property
    def model_width(self) -> int | None:
        """``width``, or the model's default width (None for the mlp)."""
        return self.width if self.width is not None else DEFAULT_WIDTH.get(self.model)

    @property
    def schedule(self) -> Schedule:
        """The resolved measurement schedule (every default filled in)."""
        return _schedule(self)


def _schedule(c: TrainConfig) -> Schedule:
    log_every = c.log_every if c.log_every is not None else max(1, c.steps // 1000)
    window = c.window if c.window is not None else c.steps // 2
    queue = c.queue_size if c.queue_size is not None else min(1000, window)
    if c.noise_every is not None:
        noise_every = c.noise_every
    else:
        target = max(10 * c.noise_batches, window // 64)
        noise_every = -(-target // log_every) * log_every
    if c.checkpoint_every is not None:
        ckpt = c.checkpoint_every
    else:
        ckpt = -(-max(1, c.steps // 10) // log_every) * log_every
    if c.init_radius is not None:
        r0 = c.init_radius
    else:
        r0 = c.radius if c.protocol == "sphere" else 1.0
    return Schedule(
        log_every,
        noise_every,
        c.noise_batches,
        window,
        c.steps - window,
        queue,
        ckpt,
        float(r0),
        c.test_evals,
    )


def _check_hyperparameters(c: TrainConfig) -> None:
    need = HYPERPARAMETERS[c.protocol]
    for name in ("lr", "elr", "wd", "radius"):
        v = getattr(c, name)
        if name in need and v is None:
            raise ValueError(
                f"protocol {c.protocol!r} needs {name} (it takes {' and '.join(need)})"
            )
        if name not in need and v is not None:
            hint = " (the sphere has no weight decay)" if name == "wd" else ""
            raise ValueError(
                f"protocol {c.protocol!r} takes no {name}{hint}; it takes {' and '.join(need)}"
            )
        if v is not None:
            check_number(name, v, min_val=0.0, include_min=False)


def _check_model_and_data(c: TrainConfig) -> None:
    check_choice("model", c.model, MODELS)
    check_choice("variant", c.variant, MLP_VARIANTS)
    if c.model == "convnet" and c.variant not in CONVNET_VARIANTS:
        raise ValueError(
            f"variant == {c.variant!r}, the convnet takes variant {', '.join(CONVNET_VARIANTS)}"
        )
    if c.variant != "si" and c.model == "resnet18":
        raise ValueError(f"variant {c.variant!r} is for the mlp and convnet; resnet18 takes 'si'")
    check_choice("data", c.data, DATASETS)
    check_choice("device", c.device, DEVICES)
    if not c.hidden or any(h < 1 for h in c.hidden):
        raise ValueError(f"hidden == {c.hidden!r}, must list positive widths")
    if c.width is not None:
        if c.model == "mlp":
            raise ValueError("width is for the convnet and resnet18 models; the mlp takes hidden")
        check_int("width", c.width, min_val=1)
    check_choice("memory_format", c.memory_format, MEMORY_FORMATS)
    if c.memory_format != "contiguous" and c.model == "mlp":
        raise ValueError("memory_format is for the convnet and resnet18 models; the mlp has no "
                         "image layout")
    if c.data == "synthetic" and c.model != "mlp":
        raise ValueError("the synthetic teacher-student data are vectors: use model 'mlp'")
    if c.data in ("cifar10", "cifar100") and not c.data_dir:
        raise ValueError(f"data {c.data!r} needs data_dir (the directory of the CIFAR archive)")
    check_fraction("label_noise", c.label_noise, include_one=True)
    check_fraction("test_fraction", c.test_fraction)
    if c.test_fraction and c.data != "digits":
        raise ValueError(
            f"test_fraction is for digits (a held-out split); {c.data!r} has its own test set"
        )


def _check_schedule(c: TrainConfig) -> None:
    check_int("steps", c.steps, min_val=1)
    check_int("batch_size", c.batch_size, min_val=1)
    for name in ("seed", "data_seed", "init_seed"):
        check_int(name, getattr(c, name), min_val=0)
    if c.init_radius is not None:
        if c.protocol == "sphere":
            raise ValueError(
                "the sphere protocol starts at its radius: give radius, not init_radius"
            )
        check_number("init_radius", c.init_radius, min_val=0.0, include_min=False)
    check_int("noise_batches", c.noise_batches, min_val=3)
    check_int("test_evals", c.test_evals, min_val=0)
    for name in ("log_every", "noise_every", "queue_size", "window", "checkpoint_every"):
        v = getattr(c, name)
        if v is not None:
            check_int(name, v, min_val=1)
    s = _schedule(c)
    if s.log_every > c.steps:
        raise ValueError(f"log_every == {s.log_every}, must be <= steps ({c.steps})")
    if s.window < 3 or s.window > c.steps:
        raise ValueError(f"window == {s.window}, must be in [3, steps={c.steps}]")
    if s.noise_every % s.log_every:
        raise ValueError(
            f"noise_every == {s.noise_every}, must be a multiple of log_every ({s.log_every})"
        )
    if s.queue_size < 3 or s.queue_size > s.window:
        raise ValueError(
            f"queue_size == {s.queue_size}, must be in [3, window={s.window}] (one snapshot "
            "per step at most); raise steps or window"
        )
    if s.test_evals > s.window:
        raise ValueError(f"test_evals == {s.test_evals}, must be <= window ({s.window})")


def validate_config(c: TrainConfig) -> None:
    """Raise ValueError with a one-line message for any invalid field or combination."""
    check_protocol(c.protocol)
    check_optimizer_settings(c.protocol, c.optimizer, c.momentum, c.beta2)
    _check_hyperparameters(c)
    _check_model_and_data(c)
    _check_schedule(c)


def run_name(c: TrainConfig) -> str:
    """Directory name of a run in a grid, as in the reference code: elr2.00e-03_wd3.00e-03,
    lr1.00e-01_wd1.00e-03, elr1.00e-02_r1.00e+00 (sphere); ``_<variant>`` for variants other
    than "si", then ``_seed{k}`` for seeds other than 1."""
    a, b = HYPERPARAMETERS[c.protocol]
    tag = {"wd": "wd", "radius": "r"}[b]
    name = f"{a}{getattr(c, a):.2e}_{tag}{getattr(c, b):.2e}"
    if c.variant != "si":
        name = f"{name}_{c.variant}"
    if c.optimizer != "sgd":
        kw = c.optimizer_kwargs
        name = f"{c.optimizer}{kw['momentum']:g}_{name}"
        if kw["beta2"] is not None and kw["beta2"] != DEFAULT_BETA2:
            name = f"{name}_b2{kw['beta2']:g}"
    return name if c.seed == 1 else f"{name}_seed{c.seed}"
