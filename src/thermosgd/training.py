"""Training runs of scale-invariant networks with thermodynamic measurements, resumable.

`train(config, out_dir)` trains one `TrainConfig` and writes a run directory:

* ``config.json``     the `TrainConfig` (``TrainConfig.from_dict`` reads it back);
* ``metrics.csv``     one row every ``log_every`` steps: step, the minibatch loss, the radius r at
  which the gradient was taken and (sphere) the pre-projection norm r' and the pressure
  (r' - r) / (elr r^3), each averaged over the ``log_every`` steps ending at ``step``; at noise
  probes also tr Sigma, ||grad L||^2 (unit sphere, with standard errors), sigma2 and the
  temperature of the protocol;
* ``stationary.json`` ``status`` ("complete" or "diverged"), the monitor's stationary state over
  the stationary window (measured T, p, V, U, S_dir, S, sigma2, tr Sigma, ||grad L||^2, radius
  and its SDE and discretization-corrected predictions, the stationarity verdict and its
  reasons), the distance of the trained group from scale invariance (``si_radial_gradient``
  and ``si_radial_gradient_rms``, window means of the probes' relative radial gradient
  components; ``si_loss_change``, the relative loss change under scaling the group by 1/2 or
  2 at the end) and its text summary;
* ``checkpoint.pt``   everything needed to continue (model, optimizer, generator states,
  monitor with its snapshot queue, metrics rows, partial-block sums, step), written atomically
  every ``checkpoint_every`` steps: an interrupted run resumes and ends exactly as an
  uninterrupted one would.

`train_grid(configs, out_dirs)` trains many configs and writes the same directories. BN-MLP
configs that share data, architecture, protocol and schedule train at once as one
`thermosgd.models.BatchedBNMLP` stepped by `thermosgd.protocols.BatchedProtocol` (each config
its own hyperparameters, init seed and training seed; configs with equal training seeds share
the minibatch of every step, as every run of the paper does). Everything else trains one config
at a time. A diverging config (non-finite loss or radius) is recorded as diverged, frozen, and
the others keep training.

Dynamics, as in the paper's code (reference-implementation 3): data on the device, batches of
``batch_size`` drawn i.i.d. with replacement from the training set, cross-entropy, float32
weights, the SI vector scaled to ``init_radius`` (1; the sphere: ``radius``) before the first
step. Statistics accumulate in float64.

Noise probes: every ``noise_every`` steps, ``noise_batches`` extra minibatch gradients at the
current weights (train-mode BN, batch statistics restored afterwards, a separate generator, so
the training trajectory does not depend on the probes) give tr Sigma and ||grad L||^2 on the
unit sphere through `thermosgd.monitor.noise_from_gradients`. The default spacing keeps the
extra compute at noise_batches / noise_every = 10% (fewer probes, at most ~64 in the window,
for long runs): the probe mean over the window is limited by the genuine fluctuation of the noise
along the trajectory (~10% from probe to probe on digits) more than by the 64 gradients of one
probe (~3%), so many probes beat large ones.

Every training step also yields Q = r^2 ||g_B||^2 of its own minibatch gradient at no extra cost
(an unbiased sample of Q = tr Sigma + ||grad L||^2 on the unit sphere, the quantity in the
discretization-corrected predictions). Its block means are the ``trace_total_steps`` column of
``metrics.csv``; stationary.json adds its window mean (``trace_total_steps``, with a batch-means
standard error) and the predictions from it (``radius_discrete_steps``,
``pressure_discrete_steps``), a cross-check of the probe-based ``radius_discrete`` /
``pressure_discrete``: the probes alone split Q into tr Sigma and ||grad L||^2 (temperature, SDE
predictions).

The snapshot queue holds ``queue_size`` SI vectors evenly spaced over the stationary window
(the last ``window`` steps, by default the last half of the run).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from thermosgd import optimizers, theory
from thermosgd._progress import progress_disabled
from thermosgd.data import (
    FASHION_MNIST_DIR,
    Dataset,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
    make_teacher_student,
)
from thermosgd.io import write_csv, write_json
from thermosgd.models import (
    BNMLP,
    CONVNET_VARIANTS,
    MLP_VARIANTS,
    BatchedBNMLP,
    batched_cross_entropy,
    convnet,
    preact_resnet18,
    thermo_named_parameters,
    variant_mlp,
)
from thermosgd.monitor import ThermoMonitor, noise_from_gradients
from thermosgd.protocols import (
    BUFFERS,
    DEFAULT_BETA2,
    DEFAULT_MOMENTUM,
    OPTIMIZERS,
    PROTOCOLS,
    BatchedProtocol,
    _check_optimizer,
    make_optimizer,
)
from thermosgd.scale_invariance import (
    SIDistance,
    batched_group_radius,
    check_scale_invariance,
    group_radius,
    radial_gradient_stats,
    set_batched_group_radius,
    set_group_radius,
    si_distance,
)

__all__ = [
    "DATASETS",
    "DEVICES",
    "MODELS",
    "Schedule",
    "TrainConfig",
    "build_model",
    "grid_table",
    "load_data",
    "resolve_device",
    "run_name",
    "train",
    "train_grid",
]

MODELS = ("mlp", "convnet", "resnet18")
DATASETS = ("digits", "fashion-mnist", "cifar10", "cifar100", "synthetic")
DEVICES = ("auto", "cpu", "cuda")
#: the hyperparameters of each protocol
HYPER = {"lr": ("lr", "wd"), "elr": ("elr", "wd"), "sphere": ("elr", "radius")}
#: mlp variants that are scale-invariant (checked before training; the others are not)
SI_VARIANTS = ("si", "layernorm")
#: default widths of the convolutional models (the paper's ConvNet-8 and ResNet-18 with k = 4)
DEFAULT_WIDTH = {"convnet": 8, "resnet18": 4}
CHECKPOINT_FORMAT = 1
_FILES = ("checkpoint.pt", "metrics.csv", "stationary.json")
METRIC_COLUMNS = (
    "step",
    "loss",
    "radius",
    "preprojection_norm",
    "pressure",
    "trace_total_steps",
    "trace_sigma",
    "trace_sigma_se",
    "grad_norm2",
    "grad_norm2_se",
    "sigma2",
    "temperature",
)


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_int(name: str, v: Any, minimum: int = 1) -> None:
    if not _is_int(v) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")


def _check_positive(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")


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
        the last one at ``steps``."""
        k = np.arange(1, self.queue_size + 1)
        return self.window_start + (k * self.window) // self.queue_size

    def eval_steps(self, steps: int) -> np.ndarray:
        """Steps after which train and test loss/accuracy are evaluated: ``test_evals`` evenly
        spaced over the window, the last one at ``steps``."""
        k = np.arange(1, self.test_evals + 1)
        return self.window_start + (k * self.window) // max(1, self.test_evals)

    def noise_fraction(self) -> float:
        """Extra gradient evaluations per training step spent on noise probes."""
        return self.noise_batches / self.noise_every


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Frozen; ``to_dict``/``from_dict`` round-trip through JSON.

    * protocol "lr" takes ``lr`` and ``wd``; "elr" takes ``elr`` and ``wd``; "sphere" takes
      ``elr`` and ``radius`` (no weight decay).
    * model "mlp" (BN-MLP with hidden widths ``hidden``), "convnet" (width ``width``, default
      8) or "resnet18" (pre-activation, width ``width``, default 4); every head frozen.
    * ``variant`` (see `thermosgd.models.MLP_VARIANTS`): "si" (the paper's networks),
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
        if not isinstance(hidden, (tuple, list)) or not all(_is_int(h) for h in hidden):
            raise ValueError(f"hidden must be a sequence of positive ints, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))
        for name in ("lr", "elr", "wd", "radius", "init_radius", "label_noise", "test_fraction",
                     "momentum", "beta2"):
            v = getattr(self, name)
            if _is_int(v):
                object.__setattr__(self, name, float(v))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", str(self.data_dir))
        validate_config(self)

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**{k: (tuple(v) if k == "hidden" else v) for k, v in d.items()})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))

    # -- derived ------------------------------------------------------------------------------

    @property
    def hyperparameters(self) -> dict[str, float]:
        """The protocol's two hyperparameters, e.g. {"elr": 0.01, "wd": 0.03}."""
        return {k: getattr(self, k) for k in HYPER[self.protocol]}

    @property
    def optimizer_kwargs(self) -> dict[str, Any]:
        """{"optimizer", "momentum", "beta2"} with the defaults filled in (None where the
        optimizer has no such setting), as `make_optimizer` and `ThermoMonitor` take them."""
        if self.optimizer == "sgd":
            return {"optimizer": "sgd", "momentum": None, "beta2": None}
        b1 = DEFAULT_MOMENTUM if self.momentum is None else self.momentum
        b2 = (DEFAULT_BETA2 if self.beta2 is None else self.beta2) if self.optimizer == "adamw" \
            else None
        return {"optimizer": self.optimizer, "momentum": b1, "beta2": b2}

    @property
    def model_width(self) -> int | None:
        return self.width if self.width is not None else DEFAULT_WIDTH.get(self.model)

    @property
    def schedule(self) -> Schedule:
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


def validate_config(c: TrainConfig) -> None:
    """Raise ValueError with a one-line message for any invalid field or combination."""
    if c.protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {c.protocol!r}")
    if c.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {c.optimizer!r}")
    _check_optimizer(c.protocol, c.optimizer, c.momentum, c.beta2)
    need = HYPER[c.protocol]
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
            _check_positive(name, v)
    if c.model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {c.model!r}")
    if c.variant not in MLP_VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(MLP_VARIANTS)}, got {c.variant!r}")
    if c.model == "convnet" and c.variant not in CONVNET_VARIANTS:
        raise ValueError(
            f"the convnet takes variant {', '.join(CONVNET_VARIANTS)}, got {c.variant!r}"
        )
    if c.variant != "si" and c.model == "resnet18":
        raise ValueError(f"variant {c.variant!r} is for the mlp and convnet; resnet18 takes 'si'")
    if c.data not in DATASETS:
        raise ValueError(f"data must be one of {', '.join(DATASETS)}, got {c.data!r}")
    if c.device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {c.device!r}")
    if not c.hidden or any(h < 1 for h in c.hidden):
        raise ValueError(f"hidden must list positive widths, got {c.hidden!r}")
    if c.width is not None:
        if c.model == "mlp":
            raise ValueError("width is for the convnet and resnet18 models; the mlp takes hidden")
        _check_int("width", c.width)
    if c.data == "synthetic" and c.model != "mlp":
        raise ValueError("the synthetic teacher-student data are vectors: use model 'mlp'")
    if c.data in ("cifar10", "cifar100") and not c.data_dir:
        raise ValueError(f"data {c.data!r} needs data_dir (the directory of the CIFAR archive)")
    if (
        isinstance(c.label_noise, bool)
        or not isinstance(c.label_noise, (int, float))
        or not 0.0 <= c.label_noise <= 1.0
    ):
        raise ValueError(f"label_noise must be a fraction in [0, 1], got {c.label_noise!r}")
    tf = c.test_fraction
    if isinstance(tf, bool) or not isinstance(tf, (int, float)) or not 0.0 <= tf < 1.0:
        raise ValueError(f"test_fraction must be a fraction in [0, 1), got {tf!r}")
    if tf and c.data != "digits":
        raise ValueError(
            f"test_fraction is for digits (a held-out split); {c.data!r} has its own test set"
        )
    _check_int("steps", c.steps)
    _check_int("batch_size", c.batch_size)
    for name in ("seed", "data_seed", "init_seed"):
        _check_int(name, getattr(c, name), 0)
    if c.init_radius is not None:
        if c.protocol == "sphere":
            raise ValueError(
                "the sphere protocol starts at its radius: give radius, not init_radius"
            )
        _check_positive("init_radius", c.init_radius)
    _check_int("noise_batches", c.noise_batches, 3)
    _check_int("test_evals", c.test_evals, 0)
    for name in ("log_every", "noise_every", "queue_size", "window", "checkpoint_every"):
        v = getattr(c, name)
        if v is not None:
            _check_int(name, v)
    s = _schedule(c)
    if s.log_every > c.steps:
        raise ValueError(f"log_every ({s.log_every}) must be <= steps ({c.steps})")
    if s.window < 3 or s.window > c.steps:
        raise ValueError(f"window must be in [3, steps={c.steps}], got {s.window}")
    if s.noise_every % s.log_every:
        raise ValueError(
            f"noise_every ({s.noise_every}) must be a multiple of log_every ({s.log_every})"
        )
    if s.queue_size < 3 or s.queue_size > s.window:
        raise ValueError(
            f"queue_size must be in [3, window={s.window}] (one snapshot per step at most), "
            f"got {s.queue_size}; raise steps or window"
        )
    if s.test_evals > s.window:
        raise ValueError(f"test_evals ({s.test_evals}) must be <= window ({s.window})")


def run_name(c: TrainConfig) -> str:
    """Directory name of a run in a grid, as in the reference code: elr2.00e-03_wd3.00e-03,
    lr1.00e-01_wd1.00e-03, elr1.00e-02_r1.00e+00 (sphere); ``_<variant>`` for variants other
    than "si", then ``_seed{k}`` for seeds other than 1."""
    a, b = HYPER[c.protocol]
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


def resolve_device(device: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; "cuda" without CUDA is a ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available (use auto or cpu)")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    return torch.device(device)


# --------------------------------------------------------------------------------------------
# data and models
# --------------------------------------------------------------------------------------------


def load_data(c: TrainConfig, device: str | torch.device = "cpu") -> Dataset:
    """The training data of ``c`` on ``device`` (vectors for the mlp, images otherwise)."""
    images = c.model != "mlp"
    kw = {"label_noise": c.label_noise, "seed": c.data_seed, "device": device}
    if c.data == "digits":
        ds = load_digits(as_images=images, test_fraction=c.test_fraction, **kw)
    elif c.data == "fashion-mnist":
        ds = load_fashion_mnist(c.data_dir or FASHION_MNIST_DIR, flatten=not images, **kw)
    elif c.data == "cifar10":
        ds = load_cifar10(c.data_dir, **kw)
    elif c.data == "cifar100":
        ds = load_cifar100(c.data_dir, **kw)
    else:
        ds = make_teacher_student(**kw)
    if not images and len(ds.input_shape) > 1:
        ds = ds.flatten()
    return ds


def build_model(c: TrainConfig, ds: Dataset) -> nn.Module:
    """The model of ``c`` for the data ``ds`` (init seed ``c.init_seed``): SI with a frozen head,
    or the mlp ``variant``."""
    shape = ds.input_shape
    if c.model == "mlp":
        return variant_mlp(
            c.variant, int(np.prod(shape)), c.hidden, ds.num_classes, init_seed=c.init_seed
        )
    if len(shape) != 3:
        raise ValueError(f"model {c.model!r} needs images (C, H, W), the data have shape {shape}")
    if c.model == "convnet":
        return convnet(
            c.model_width,
            shape[0],
            ds.num_classes,
            input_size=shape[1:],
            init_seed=c.init_seed,
            variant=c.variant,
        )
    return preact_resnet18(
        c.model_width, shape[0], ds.num_classes, input_size=shape[1:], init_seed=c.init_seed
    )


def _si_params(model: nn.Module) -> list[nn.Parameter]:
    fn = getattr(model, "si_parameters", None)
    if callable(fn):
        return list(fn())
    return [p for p in model.parameters() if p.requires_grad]


def _opt_args(c: TrainConfig) -> dict[str, Any]:
    """The optimizer arguments of `make_optimizer` / `ThermoMonitor` (none for SGD)."""
    return {} if c.optimizer == "sgd" else c.optimizer_kwargs


def _probe_seed(seed: int) -> int:
    """Seed of the noise-probe generator, derived from the training seed (a different stream)."""
    return int(np.random.SeedSequence([int(seed), 0x7E57]).generate_state(1)[0])


def _verify_si(model: nn.Module, params, ds: Dataset, batch_size: int) -> None:
    """check_scale_invariance on one batch drawn by a private generator (seed 0)."""
    gen = torch.Generator(device=ds.device).manual_seed(0)
    idx = torch.randint(0, ds.n_train, (batch_size,), generator=gen, device=ds.device)
    try:
        check_scale_invariance(
            model, F.cross_entropy, (ds.x_train[idx], ds.y_train[idx]), params, name="SI weights"
        )
    except ValueError as e:
        raise ValueError(f"the model is not scale-invariant, refusing to train it: {e}") from None


# --------------------------------------------------------------------------------------------
# networks: one model, or G configs batched
# --------------------------------------------------------------------------------------------


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@torch.no_grad()
def _evaluate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    as_batched: Callable[[Tensor], Tensor],
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean cross-entropy and accuracy per config over (x, y), BN in eval mode (running
    statistics), in chunks of ``chunk`` samples; ``as_batched`` maps logits to (G, B, K)."""
    was_training = model.training
    model.eval()
    try:
        loss = correct = None
        for i in range(0, x.shape[0], chunk):
            logits = as_batched(model(x[i : i + chunk])).double()
            t = y[i : i + chunk]
            lk = F.cross_entropy(
                logits.transpose(1, 2), t.expand(logits.shape[0], -1), reduction="none"
            ).sum(dim=1)
            ck = (logits.argmax(dim=2) == t).sum(dim=1, dtype=torch.float64)
            loss = lk if loss is None else loss + lk
            correct = ck if correct is None else correct + ck
    finally:
        model.train(was_training)
    n = x.shape[0]
    return (loss / n).cpu().numpy(), (correct / n).cpu().numpy()


def _si_distance64(model: nn.Module, params, x: Tensor, y: Tensor) -> SIDistance:
    """`si_distance` of a float64 copy of ``model`` (the group ``params`` mapped by name): the
    loss change of an SI model under scaling is O(normalization eps) ~ 1e-4, which float32
    round-off of the forward pass (~1e-7 of the loss, kernel-choice dependent) would blur."""
    names = {id(p): n for n, p in model.named_parameters()}
    m64 = copy.deepcopy(model).double()
    by_name = dict(m64.named_parameters())
    group = [by_name[names[id(p)]] for p in params]
    return si_distance(m64, F.cross_entropy, (x.double(), y), group)


class _SingleNet:
    """One model + one protocol optimizer, seen as G = 1 configs."""

    G = 1

    def __init__(self, model: nn.Module, params: list[nn.Parameter], opt) -> None:
        self.model, self.params, self.opt = model, params, opt

    def train_step(self, x: Tensor, y: Tensor):
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        g = self.opt.param_groups[0]
        pre = g["last_norm"]
        r = g["last_radius"].reshape(1)
        gn2 = sum(
            torch.linalg.vector_norm(p.grad, dtype=torch.float64).square()
            for p in self.params
            if p.grad is not None
        )
        return (
            loss.detach().reshape(1),
            r,
            (None if pre is None else pre.reshape(1)),
            r.square() * gn2,
        )

    def evaluate(self, x: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray]:
        return _evaluate(self.model, x, y, lambda logits: logits.unsqueeze(0))

    def grads(self, x: Tensor, y: Tensor) -> Tensor:
        loss = F.cross_entropy(self.model(x), y)
        return _flat(torch.autograd.grad(loss, self.params)).unsqueeze(0)

    def weights(self) -> Tensor:
        return _flat([p.detach() for p in self.params]).unsqueeze(0)

    def radius(self) -> Tensor:
        return torch.tensor([group_radius(self.params)], dtype=torch.float64)

    def buffers(self) -> list[Tensor]:
        return list(self.model.buffers())

    def model_state(self, g: int) -> dict:
        return self.model.state_dict()

    def si_distance(self, g: int, x: Tensor, y: Tensor) -> SIDistance:
        return _si_distance64(self.model, self.params, x, y)

    def opt_state(self, g: int) -> dict:
        return self.opt.state_dict()

    def freeze(self, g: int) -> None:  # a single run stops instead
        pass


class _BatchedNet:
    """G BN-MLP configs as one `BatchedBNMLP` stepped by `BatchedProtocol`."""

    def __init__(self, model: BatchedBNMLP, opt: BatchedProtocol, configs) -> None:
        self.model, self.opt, self.configs = model, opt, configs
        self.G = model.num_configs
        self.params = model.si_parameters()
        self._finite = [w.detach().clone() for w in self.params]

    def train_step(self, x: Tensor, y: Tensor):
        self.opt.zero_grad(set_to_none=True)
        losses = batched_cross_entropy(self.model(x), y)
        losses.sum().backward()
        self.opt.step()
        g = self.opt.param_groups[0]
        r = g["last_radius"]
        gn2 = sum(
            torch.linalg.vector_norm(p.grad.reshape(self.G, -1), dim=1).double().square()
            for p in self.params
        )
        return losses.detach(), r, g["last_norm"], r.square() * gn2

    def evaluate(self, x: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray]:
        return _evaluate(self.model, x, y, lambda logits: logits)

    def grads(self, x: Tensor, y: Tensor) -> Tensor:
        losses = batched_cross_entropy(self.model(x), y)
        gs = torch.autograd.grad(losses.sum(), self.params)
        # config g's gradient in BNMLP order: each layer's (out, in) weight flattened
        return torch.cat([t.transpose(1, 2).reshape(self.G, -1) for t in gs], dim=1)

    def weights(self) -> Tensor:
        return torch.cat(
            [w.detach().transpose(1, 2).reshape(self.G, -1) for w in self.params], dim=1
        )

    def radius(self) -> Tensor:
        return batched_group_radius(self.params).cpu()

    def buffers(self) -> list[Tensor]:
        return list(self.model.buffers())

    def model_state(self, g: int) -> dict:
        return self.model.to_model(g).state_dict()

    def si_distance(self, g: int, x: Tensor, y: Tensor) -> SIDistance:
        m = self.model.to_model(g)
        return _si_distance64(m, m.si_parameters(), x, y)

    def opt_state(self, g: int) -> dict:
        c = self.configs[g]
        m = self.model.to_model(g)
        opt = make_optimizer(
            c.protocol, m.si_parameters(), **c.hyperparameters, **_opt_args(c)
        )
        group = self.opt.param_groups[0]
        for key in ("last_radius", "last_norm"):
            if group[key] is not None:
                opt.param_groups[0][key] = group[key][g].clone()
        names = BUFFERS[self.opt.optimizer]
        started = group["last_radius"] is not None  # torch makes buffers at the first step
        for p, q in zip(self.params, m.si_parameters(), strict=True):
            if started and names:  # config g's (in, out) buffers as the model's (out, in)
                st = {n: self.opt.state[p][n][g].T.contiguous() for n in names}
                if self.opt.optimizer == "adamw":
                    st["step"] = torch.tensor(float(group["step"]), dtype=torch.float32)
                opt.state[q] = st
        return opt.state_dict()

    @torch.no_grad()
    def freeze(self, g: int) -> None:
        """Stop config g: rate 0 (no update) and finite weights, so it cannot disturb others."""
        group = self.opt.param_groups[0]
        for key in ("lr", "elr"):
            if key in group:
                group[key][g] = 0.0
        for w, w0 in zip(self.params, self._finite, strict=True):
            w[g] = w0[g]
            for name in BUFFERS[self.opt.optimizer]:  # lr 0 times a NaN buffer is NaN
                self.opt.state[w][name][g] = 0.0


# --------------------------------------------------------------------------------------------
# per-run book-keeping
# --------------------------------------------------------------------------------------------


class _Run:
    """One config inside an engine: monitor, metrics rows, status, output directory."""

    def __init__(self, config: TrainConfig, out: Path, dim: int, ckpt: dict | None) -> None:
        self.config, self.out, self.dim = config, out, dim
        self.schedule = config.schedule
        self.monitor = ThermoMonitor(
            config.protocol,
            dim,
            queue_capacity=self.schedule.queue_size,
            **config.hyperparameters,
            **_opt_args(config),
        )
        if ckpt is None:
            self.rows: list[dict] = []
            self.evals: list[dict] = []
            self.diverged_at: int | None = None
            self.seconds = 0.0
            self.si_loss: dict[str, float] = {}
        else:
            self.monitor.load_state_dict(ckpt["monitor"])
            self.rows = [dict(r) for r in ckpt["metrics"]]
            self.evals = [dict(r) for r in ckpt.get("evals", [])]
            self.diverged_at = ckpt["diverged_at"]
            self.seconds = float(ckpt["seconds"])
            self.si_loss = dict(ckpt.get("si_loss", {}))

    @property
    def active(self) -> bool:
        return self.diverged_at is None


def _read_checkpoint(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(
            f"cannot read checkpoint {path} ({type(e).__name__}); pass resume=False "
            "(--no-resume) to start over"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a thermosgd training checkpoint (format {CHECKPOINT_FORMAT})"
        )
    return ckpt


def _config_diff(saved: dict, config: TrainConfig) -> list[str]:
    """Differences between a saved config dict and ``config``; a field missing from the saved
    dict (written before the field existed) counts as its default."""
    mine = config.to_dict()
    defaults = {
        f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name not in saved
    }
    saved = {**defaults, **saved}
    keys = sorted((set(saved) | set(mine)) - {"device"})
    return [
        f"{k}: {saved.get(k)!r} != {mine.get(k)!r}" for k in keys if saved.get(k) != mine.get(k)
    ]


def _inspect_dir(config: TrainConfig, out: Path, resume: bool, overwrite: bool) -> dict | None:
    """The checkpoint to resume from (None: start fresh). Reads only; raises on a conflict."""
    cfg_path = out / "config.json"
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {out} exists and is not a directory")
    if not cfg_path.is_file():
        if any((out / f).exists() for f in _FILES) and not overwrite:
            raise ValueError(
                f"{out} holds run files but no config.json; refusing to overwrite them "
                "(use another directory or overwrite=True / --overwrite)"
            )
        return None
    try:
        saved = json.loads(cfg_path.read_text())
    except (OSError, ValueError):
        saved = {}
    diff = _config_diff(saved, config) if isinstance(saved, dict) else ["unreadable config.json"]
    if diff:
        if overwrite:
            return None
        raise ValueError(
            f"{out} holds a run with a different config ({'; '.join(diff[:3])}); use another "
            "directory or overwrite=True (--overwrite)"
        )
    if not resume or not (out / "checkpoint.pt").is_file():
        return None
    ckpt = _read_checkpoint(out / "checkpoint.pt")
    if _config_diff(ckpt.get("config", {}), config):
        raise ValueError(f"{out}/checkpoint.pt belongs to a different config than config.json")
    return ckpt


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _metrics_columns(rows: list[dict]) -> dict[str, np.ndarray]:
    return {
        k: np.array([r.get(k, np.nan) for r in rows], dtype=np.float64 if k != "step" else np.int64)
        for k in METRIC_COLUMNS
    }


def _steps_noise(run: _Run) -> dict[str, float]:
    """Q from the training steps' own gradients over the window (block means of r^2 ||g_B||^2,
    standard error from 20 batch means) and the discretization-corrected predictions from it."""
    c = run.config
    nan = math.nan
    rows = [r for r in run.rows if r["step"] >= run.schedule.window_start]
    q = np.array([r.get("trace_total_steps", nan) for r in rows], dtype=np.float64)
    out = {"trace_total_steps": nan, "trace_total_steps_se": nan}
    if q.size and np.isfinite(q).all():
        out["trace_total_steps"] = float(q.mean())
        if q.size >= 8:
            b = np.array([part.mean() for part in np.array_split(q, min(20, q.size // 2))])
            out["trace_total_steps_se"] = float(b.std(ddof=1) / math.sqrt(b.size))
    Q, rel = out["trace_total_steps"], out["trace_total_steps_se"] / out["trace_total_steps"]
    if c.protocol == "sphere":
        p = float(theory.sphere_pressure_discrete(c.elr, c.radius, Q, 0.0)) if Q > 0 else nan
        out["pressure_discrete_steps"], out["pressure_discrete_steps_se"] = p, p * rel
    else:
        kw = c.optimizer_kwargs
        if kw["optimizer"] != "sgd":  # Q alone: the noise bound (grad_norm2 counted as noise)
            r = (
                float(
                    optimizers.lr_radius_discrete(
                        kw["optimizer"], lr=c.lr, wd=c.wd, dim=run.dim, trace_sigma=Q,
                        grad_norm2=0.0, momentum=kw["momentum"],
                    )
                )
                if Q > 0
                else nan
            )
        else:
            r = (
                float(
                    theory.radius_discrete(
                        c.protocol, trace_sigma=Q, grad_norm2=0.0, **c.hyperparameters
                    )
                )
                if Q > 0
                else nan
            )
        power = optimizers.lr_radius_power(kw["optimizer"]) if c.protocol == "lr" else 2
        out["radius_discrete_steps"], out["radius_discrete_steps_se"] = r, r * rel / power
    return out


_EVAL_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")


def _generalization(run: _Run) -> dict[str, float]:
    """Window means of the whole-set evaluations (``eval_<key>``, with the standard error of
    the mean over the ``n_evals`` evaluations, spaced over the window and treated as
    independent) and the generalization gaps gap_loss = test - train loss, gap_acc = train -
    test accuracy (the SE of a gap comes from the per-evaluation differences)."""
    nan = math.nan
    ev = [e for e in run.evals if e["step"] >= run.schedule.window_start]
    out: dict[str, float] = {"n_evals": len(ev)}
    cols = {k: np.array([e[k] for e in ev], dtype=np.float64) for k in _EVAL_KEYS}
    cols["gap_loss"] = cols["test_loss"] - cols["train_loss"]
    cols["gap_acc"] = cols["train_acc"] - cols["test_acc"]
    for k, v in cols.items():
        name = k if k.startswith("gap") else f"eval_{k}"
        out[name] = float(v.mean()) if v.size else nan
        out[f"{name}_se"] = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else nan
    return out


_SI_LOSS_KEYS = (
    "si_loss_change",
    "si_loss_change_half",
    "si_loss_change_double",
    "si_radial_gradient_end",
)


def _stationary_doc(run: _Run, steps_done: int, device: torch.device) -> dict:
    c = run.config
    status = "diverged" if run.diverged_at is not None else "complete"
    try:
        state = dict(run.monitor.stationary_state(window_start=run.schedule.window_start))
    except ValueError as e:  # a divergence before the window: describe what was recorded
        try:
            state = dict(run.monitor.stationary_state())
        except ValueError:
            state = {"stationary": False, "reasons": [str(e)]}
        state["window_start"] = run.schedule.window_start
    if run.diverged_at is not None:
        state["diverged"] = True
        state["stationary"] = False
        reasons = list(state.get("reasons") or [])
        reasons.append(f"diverged (non-finite loss or radius) by step {run.diverged_at}")
        state["reasons"] = reasons
    try:
        summary = run.monitor.summary(
            run.schedule.window_start if run.diverged_at is None else None
        )
    except ValueError as e:
        summary = f"no summary: {e}"
    if run.diverged_at is not None:
        summary = f"DIVERGED by step {run.diverged_at}\n{summary}"
    return {
        "status": status,
        "name": run.out.name,
        "protocol": c.protocol,
        "variant": c.variant,
        **{f"{k}_set": v for k, v in c.hyperparameters.items()},
        "dim": run.dim,
        "steps": c.steps,
        "steps_done": steps_done,
        "diverged_at": run.diverged_at,
        "window_start": run.schedule.window_start,
        "schedule": dataclasses.asdict(run.schedule),
        "noise_fraction": run.schedule.noise_fraction(),
        "device": str(device),
        "seconds": run.seconds,
        **state,
        **_steps_noise(run),
        **_generalization(run),
        **{k: run.si_loss.get(k, math.nan) for k in _SI_LOSS_KEYS},
        "summary": summary,
    }


def _write_doc(out: Path, doc: dict) -> dict:
    """Write stationary.json; return it as read back (NaN -> None), what callers see later."""
    write_json(out / "stationary.json", doc)
    return json.loads((out / "stationary.json").read_text())


# --------------------------------------------------------------------------------------------
# the engine: G configs advanced together
# --------------------------------------------------------------------------------------------


class _Engine:
    """Steps G configs together (G = 1 for a single model) and measures each of them."""

    def __init__(self, net, runs: list[_Run], ds: Dataset, ckpts: list[dict | None], device):
        self.net, self.runs, self.ds, self.device = net, runs, ds, device
        c0 = runs[0].config
        self.c0, self.s = c0, runs[0].schedule
        self.G = len(runs)
        self.sphere = c0.protocol == "sphere"
        seeds = [r.config.seed for r in runs]
        self.shared = len(set(seeds)) == 1
        uniq = seeds[:1] if self.shared else seeds
        self.train_gens = [torch.Generator(device=device).manual_seed(int(s)) for s in uniq]
        self.probe_gens = [torch.Generator(device=device).manual_seed(_probe_seed(s)) for s in uniq]
        zeros = torch.zeros(self.G, dtype=torch.float64, device=device)
        self.acc = {k: zeros.clone() for k in ("loss", "radius", "pre", "q")}
        self.block_n = 0
        self.step = 0
        self.docs: dict[int, dict] = {}
        if ckpts[0] is not None:
            self._restore(ckpts)
        self.snap_steps = self.s.snapshot_steps(c0.steps)
        self.snap_i = int(np.searchsorted(self.snap_steps, self.step, side="right"))
        self.eval_steps = self.s.eval_steps(c0.steps)
        self.eval_i = int(np.searchsorted(self.eval_steps, self.step, side="right"))

    # -- state ------------------------------------------------------------------------------

    def _restore(self, ckpts: list[dict]) -> None:
        self.step = int(ckpts[0]["step"])
        src = ckpts[:1] if self.shared else ckpts
        for gens, key in ((self.train_gens, "train"), (self.probe_gens, "probe")):
            for gen, ck in zip(gens, src, strict=True):
                gen.set_state(ck["rng"][key])
        for k in self.acc:
            self.acc[k] = torch.tensor(
                [ck["block"][k] for ck in ckpts], dtype=torch.float64, device=self.device
            )
        self.block_n = int(ckpts[0]["block"]["n"])
        torch.set_rng_state(ckpts[0]["rng"]["torch"])

    def _checkpoint(self, g: int) -> dict:
        run = self.runs[g]
        j = 0 if self.shared else g
        status = (
            "diverged"
            if run.diverged_at is not None
            else ("complete" if self.step >= run.config.steps else "running")
        )
        return {
            "format": CHECKPOINT_FORMAT,
            "config": run.config.to_dict(),
            "step": self.step,
            "status": status,
            "diverged_at": run.diverged_at,
            "dim": run.dim,
            "model": self.net.model_state(g),
            "optimizer": self.net.opt_state(g),
            "rng": {
                "train": self.train_gens[j].get_state(),
                "probe": self.probe_gens[j].get_state(),
                "torch": torch.get_rng_state(),
            },
            "block": {"n": self.block_n, **{k: float(v[g]) for k, v in self.acc.items()}},
            "monitor": run.monitor.state_dict(),
            "metrics": [dict(r) for r in run.rows],
            "evals": [dict(r) for r in run.evals],
            "seconds": run.seconds,
            "si_loss": dict(run.si_loss),
        }

    def save(self, g: int) -> None:
        run = self.runs[g]
        _atomic_torch_save(self._checkpoint(g), run.out / "checkpoint.pt")
        write_csv(run.out / "metrics.csv", _metrics_columns(run.rows))

    def finish(self, g: int) -> dict:
        """Write stationary.json, metrics.csv and the final checkpoint of config g."""
        run = self.runs[g]
        if run.active and self.step >= run.config.steps and not run.si_loss:
            run.si_loss = self._si_loss_change(g)
        self.save(g)
        doc = _write_doc(run.out, _stationary_doc(run, self.step, self.device))
        self.docs[g] = doc
        return doc

    def _si_loss_change(self, g: int) -> dict[str, float]:
        """|L(c w) - L(w)| / |L(w)| for c = 1/2, 2 of config g's trained group at the end of the
        window, on one training batch drawn by a private generator (seed 0), the model as it
        runs (normalization eps included; train-mode BN; state restored)."""
        gen = torch.Generator(device=self.device).manual_seed(0)
        idx = torch.randint(
            0, self.ds.n_train, (self.c0.batch_size,), generator=gen, device=self.device
        )
        try:
            d = self.net.si_distance(g, self.ds.x_train[idx], self.ds.y_train[idx])
        except ValueError:  # a non-finite loss: nothing to measure
            return {}
        return {
            "si_loss_change": d.loss_change_max,
            "si_loss_change_half": d.loss_change[0.5],
            "si_loss_change_double": d.loss_change[2.0],
            "si_radial_gradient_end": d.radial,
        }

    # -- sampling ----------------------------------------------------------------------------

    def _draw(self, gens: list[torch.Generator]) -> Tensor:
        n, b = self.ds.n_train, self.c0.batch_size
        if len(gens) == 1:
            return torch.randint(0, n, (b,), generator=gens[0], device=self.device)
        return torch.stack(
            [torch.randint(0, n, (b,), generator=g, device=self.device) for g in gens]
        )

    # -- measurements -------------------------------------------------------------------------

    def _flush(self, active: list[int]) -> list[int]:
        """End of a logging block: metrics rows, monitor records, divergence. Returns the
        configs that diverged in this block."""
        vals = (
            (torch.stack([self.acc[k] for k in ("loss", "radius", "pre", "q")]) / self.block_n)
            .cpu()
            .numpy()
        )
        for v in self.acc.values():
            v.zero_()
        self.block_n = 0
        diverged = []
        for g in active:
            run = self.runs[g]
            loss, r, pre, q = (float(x) for x in vals[:, g])
            row = {"step": self.step, "loss": loss, "radius": r, "trace_total_steps": q}
            if self.sphere:
                c = run.config
                row["preprojection_norm"] = pre
                row["pressure"] = (
                    theory.sphere_pressure_from_norm(pre, c.radius, c.elr)
                    if math.isfinite(pre)
                    else math.nan
                )
            run.rows.append(row)
            if not r <= 0:  # the monitor records non-finite values and reports divergence
                run.monitor.record_step(
                    self.step, radius=r, loss=loss, preprojection_norm=pre if self.sphere else None
                )
            finite = math.isfinite(loss) and math.isfinite(r) and r > 0
            if not finite or (self.sphere and not math.isfinite(pre)):
                run.diverged_at = self.step
                diverged.append(g)
        return diverged

    @torch.no_grad()
    def _snapshot(self, active: list[int]) -> None:
        w = self.net.weights().cpu().numpy()
        for g in active:
            if np.isfinite(w[g]).all():  # a diverging config is caught at the block's end
                self.runs[g].monitor.push_snapshot(w[g])

    def _evaluate(self, active: list[int]) -> None:
        """Loss and accuracy of every active config on the whole training and test sets."""
        ds = self.ds
        train = self.net.evaluate(ds.x_train, ds.y_train)
        nan = np.full(self.G, np.nan)
        test = self.net.evaluate(ds.x_test, ds.y_test) if ds.n_test else (nan, nan)
        for g in active:
            self.runs[g].evals.append(
                {
                    "step": self.step,
                    "train_loss": float(train[0][g]),
                    "train_acc": float(train[1][g]),
                    "test_loss": float(test[0][g]),
                    "test_acc": float(test[1][g]),
                }
            )

    def _probe(self, active: list[int]) -> None:
        """noise_batches extra minibatch gradients per config at the current weights (probe
        generator; BN running statistics restored) -> `noise_from_gradients` per config."""
        n = self.s.noise_batches
        saved = [b.detach().clone() for b in self.net.buffers()]
        x_all, y_all = self.ds.x_train, self.ds.y_train
        grads = None
        for k in range(n):
            idx = self._draw(self.probe_gens)
            gk = self.net.grads(x_all[idx], y_all[idx]).detach()
            if grads is None:
                grads = torch.empty((self.G, n, gk.shape[1]), dtype=gk.dtype, device=gk.device)
            grads[:, k] = gk
        with torch.no_grad():
            for b, sb in zip(self.net.buffers(), saved, strict=True):
                b.copy_(sb)
        radius = self.net.radius()
        ok = torch.isfinite(radius) & (radius > 0)
        est_all = noise_from_gradients(grads, torch.where(ok, radius, 1.0))
        si_mean, si_rms = radial_gradient_stats(grads, self.net.weights())
        for g in active:
            if not bool(ok[g]):
                continue
            est = est_all[g]
            run = self.runs[g]
            run.monitor.record_noise(self.step, est)
            if math.isfinite(float(si_mean[g])) and math.isfinite(float(si_rms[g])):
                run.monitor.record_si_distance(self.step, float(si_mean[g]), float(si_rms[g]))
            c = run.config
            sigma2 = float(est.sigma2(run.dim))
            row = run.rows[-1]
            row.update(
                trace_sigma=float(est.trace_sigma),
                trace_sigma_se=float(est.trace_sigma_se),
                grad_norm2=float(est.grad_norm2),
                grad_norm2_se=float(est.grad_norm2_se),
                sigma2=sigma2,
            )
            if sigma2 > 0 and c.optimizer != "sgd":
                row["temperature"] = float(
                    optimizers.lr_temperature(
                        c.optimizer, lr=c.lr, wd=c.wd, sigma2=sigma2, dim=run.dim,
                        momentum=c.optimizer_kwargs["momentum"],
                    )
                )
            elif sigma2 > 0:
                hyper = {"lr": c.lr, "wd": c.wd} if c.protocol == "lr" else {"elr": c.elr}
                row["temperature"] = float(
                    theory.temperature(c.protocol, sigma2=sigma2, dim=run.dim, **hyper)
                )

    # -- loop ----------------------------------------------------------------------------------

    def run(self, max_steps: int | None, progress: bool | None, desc: str) -> str:
        """Train until the end (or ``max_steps`` more steps). Returns "done" or "interrupted"."""
        c0, s = self.c0, self.s
        steps = c0.steps
        target = steps if max_steps is None else min(steps, self.step + max_steps)
        x_all, y_all = self.ds.x_train, self.ds.y_train
        active = [g for g in range(self.G) if self.runs[g].active]
        bar = tqdm(
            total=steps,
            initial=self.step,
            unit="step",
            unit_scale=True,
            desc=desc,
            disable=progress_disabled(progress),
            leave=False,
        )
        t0 = time.perf_counter()
        try:
            while self.step < target and active:
                idx = self._draw(self.train_gens)
                loss, r_before, pre, q = _training_step(self.net, x_all[idx], y_all[idx])
                self.step += 1
                self.block_n += 1
                self.acc["loss"] += loss.double()
                self.acc["radius"] += r_before
                if pre is not None:
                    self.acc["pre"] += pre
                self.acc["q"] += q
                step = self.step
                if self.snap_i < len(self.snap_steps) and step == self.snap_steps[self.snap_i]:
                    self.snap_i += 1
                    self._snapshot(active)
                if self.eval_i < len(self.eval_steps) and step == self.eval_steps[self.eval_i]:
                    self.eval_i += 1
                    self._evaluate(active)
                if step % s.log_every == 0 or step == steps:
                    for g in self._flush(active):
                        self.net.freeze(g)
                        self._add_time(t0)
                        t0 = time.perf_counter()
                        self.finish(g)
                    active = [g for g in active if self.runs[g].active]
                    if step % s.noise_every == 0 and active:
                        self._probe(active)
                if step % s.checkpoint_every == 0 and step < steps and active:
                    self._add_time(t0)
                    t0 = time.perf_counter()
                    for g in active:
                        self.save(g)
                bar.update(1)
        finally:
            bar.close()
        self._add_time(t0)
        if self.step < steps and active:
            for g in active:
                self.save(g)
            return "interrupted"
        for g in active:
            self.finish(g)
        return "done"

    def _add_time(self, t0: float) -> None:
        dt = time.perf_counter() - t0
        for g in range(self.G):
            if self.runs[g].active:
                self.runs[g].seconds += dt / max(1, sum(r.active for r in self.runs))


def _training_step(net, x: Tensor, y: Tensor):
    """One optimizer step of every config (a module-level hook: tests inject crashes here)."""
    return net.train_step(x, y)


# --------------------------------------------------------------------------------------------
# building engines
# --------------------------------------------------------------------------------------------


def _single_engine(
    c: TrainConfig,
    out: Path,
    ds: Dataset,
    ckpt: dict | None,
    device,
    model_fn: Callable[[TrainConfig, Dataset], nn.Module] | None,
) -> _Engine:
    model = (model_fn(c, ds) if model_fn is not None else build_model(c, ds)).to(device)
    si = c.variant in SI_VARIANTS
    params = _si_params(model) if si else [p for _, p in thermo_named_parameters(model)]
    if not params:
        raise ValueError("the model has no trainable (scale-invariant) parameters")
    if si:  # a non-SI variant is trained as it is: all its trainable parameters, one group
        _verify_si(model, params, ds, c.batch_size)
    s = c.schedule
    if c.protocol != "sphere":
        set_group_radius(params, s.init_radius)
    opt = make_optimizer(c.protocol, params, **c.hyperparameters, **_opt_args(c))
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
    dim = sum(p.numel() for p in params)
    run = _Run(c, out, dim, ckpt)
    return _Engine(_SingleNet(model, params, opt), [run], ds, [ckpt], device)


def _batched_engine(
    cs: list[TrainConfig], outs: list[Path], ds: Dataset, ckpts: list[dict | None], device
) -> _Engine:
    c0 = cs[0]
    G = len(cs)
    in_features = int(np.prod(ds.input_shape))
    if ckpts[0] is not None:
        models = []
        for ck in ckpts:
            m = BNMLP(in_features, c0.hidden, ds.num_classes)
            m.load_state_dict(ck["model"])
            models.append(m)
        bm = BatchedBNMLP.from_models(models).to(device)
    else:
        bm = BatchedBNMLP(
            G, in_features, c0.hidden, ds.num_classes, init_seed=[c.init_seed for c in cs]
        ).to(device)
    m0 = bm.to_model(0)
    _verify_si(m0, m0.si_parameters(), ds, c0.batch_size)
    hyper = {
        k: torch.tensor([getattr(c, k) for c in cs], dtype=torch.float64, device=device)
        for k in HYPER[c0.protocol]
    }
    params = bm.si_parameters()
    if ckpts[0] is None and c0.protocol != "sphere":
        set_batched_group_radius(
            params,
            torch.tensor([c.schedule.init_radius for c in cs], dtype=torch.float64).to(device),
        )
    saved = [w.detach().clone() for w in params]
    if c0.optimizer != "sgd":  # per-config betas
        kws = [c.optimizer_kwargs for c in cs]
        hyper["optimizer"] = c0.optimizer
        for k in ("momentum", "beta2"):
            if kws[0][k] is not None:
                hyper[k] = torch.tensor([kw[k] for kw in kws], dtype=torch.float64, device=device)
    opt = BatchedProtocol(params, c0.protocol, **hyper)  # the sphere: projects every config
    if ckpts[0] is not None:
        with torch.no_grad():  # resume bit-exactly: undo the constructor's projection
            for w, sw in zip(params, saved, strict=True):
                w.copy_(sw)
        group = opt.param_groups[0]
        for key in ("last_radius", "last_norm"):
            vals = [ck["optimizer"]["param_groups"][0].get(key) for ck in ckpts]
            if all(v is not None for v in vals):
                group[key] = torch.stack(
                    [torch.as_tensor(v, dtype=torch.float64) for v in vals]
                ).to(device)
        states = [ck["optimizer"].get("state", {}) for ck in ckpts]
        if all(states):  # the buffers: the single models' (out, in) as config g's (in, out)
            for i, p in enumerate(params):
                for name in BUFFERS[opt.optimizer]:
                    opt.state[p][name] = torch.stack(
                        [st[i][name].T for st in states]
                    ).to(device=device, dtype=p.dtype)
            if opt.optimizer == "adamw":
                group["step"] = int(float(states[0][0]["step"]))
    runs = [_Run(c, o, bm.dim, ck) for c, o, ck in zip(cs, outs, ckpts, strict=True)]
    return _Engine(_BatchedNet(bm, opt, cs), runs, ds, ckpts, device)


# --------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------


def _finished_doc(c: TrainConfig, out: Path, ckpt: dict) -> dict:
    """The result of a run that has already ended (read back, or rebuilt from its checkpoint)."""
    path = out / "stationary.json"
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
            if doc.get("status") == ckpt["status"]:
                return doc
        except (OSError, ValueError):
            pass
    run = _Run(c, out, int(ckpt["dim"]), ckpt)
    return _write_doc(out, _stationary_doc(run, int(ckpt["step"]), torch.device("cpu")))


def _data_key(c: TrainConfig, device: torch.device) -> tuple:
    return (
        c.data,
        c.data_dir,
        c.label_noise,
        c.test_fraction,
        c.data_seed,
        c.model == "mlp",
        str(device),
    )


def _batch_key(c: TrainConfig, device: torch.device, ckpt: dict | None) -> tuple:
    s = c.schedule
    return (
        *_data_key(c, device),
        c.hidden,
        c.protocol,
        c.optimizer,
        c.steps,
        c.batch_size,
        s.log_every,
        s.noise_every,
        s.noise_batches,
        s.window,
        s.queue_size,
        s.checkpoint_every,
        s.test_evals,
        0 if ckpt is None else int(ckpt["step"]),
    )


def _start_fresh(c: TrainConfig, out: Path) -> None:
    """Clear a previous run's files from ``out`` and write config.json (only after every check
    has passed)."""
    out.mkdir(parents=True, exist_ok=True)
    for f in _FILES:
        (out / f).unlink(missing_ok=True)
    write_json(out / "config.json", c.to_dict())


def train_grid(
    configs: Sequence[TrainConfig],
    out_dirs: Sequence[str | os.PathLike],
    *,
    batched: bool = True,
    progress: bool | None = None,
    resume: bool = True,
    overwrite: bool = False,
    threads: int | None = 1,
    model_fn: Callable[[TrainConfig, Dataset], nn.Module] | None = None,
    max_steps_this_call: int | None = None,
) -> list[dict]:
    """Train every config into its directory; returns their stationary.json documents.

    BN-MLP configs sharing data, hidden widths, protocol, steps, batch size and schedule (and,
    when resuming, the step reached) train at once as one batched model (``batched=False``:
    one at a time). Every directory is written exactly as `train` writes it, so a grid can be
    resumed batched or not. Runs already complete or diverged are not retrained; their
    documents are returned. Everything is checked (configs, directories, data, SI) before any
    file is written; a directory holding a different config raises ValueError unless
    ``overwrite``. ``resume=False`` starts over from step 0. ``threads``: torch intra-op
    threads during training (1 suits small models on a shared CPU; None leaves the setting).
    ``max_steps_this_call`` stops after that many steps (with a checkpoint; the document then
    has ``status: "interrupted"``). ``model_fn(config, dataset)`` replaces the built-in model
    (trained one config at a time; its trainable parameters must be jointly SI).
    """
    configs = list(configs)
    outs = [Path(o) for o in out_dirs]
    if len(configs) != len(outs):
        raise ValueError(f"got {len(configs)} configs but {len(outs)} output directories")
    if any(not isinstance(c, TrainConfig) for c in configs):
        raise ValueError("configs must be TrainConfig instances")
    if len({o.resolve() for o in outs}) != len(outs):
        raise ValueError("output directories must be distinct")
    if threads is not None:
        _check_int("threads", threads)
    if max_steps_this_call is not None:
        _check_int("max_steps_this_call", max_steps_this_call)
    devices = [resolve_device(c.device) for c in configs]
    ckpts = [_inspect_dir(c, o, resume, overwrite) for c, o in zip(configs, outs, strict=True)]
    results: list[dict | None] = [None] * len(configs)
    todo = []
    for i, (c, o, ck) in enumerate(zip(configs, outs, ckpts, strict=True)):
        if ck is not None and ck["status"] in ("complete", "diverged"):
            results[i] = _finished_doc(c, o, ck)
        else:
            todo.append(i)
    data: dict[tuple, Dataset] = {}
    for i in todo:
        key = _data_key(configs[i], devices[i])
        if key not in data:
            data[key] = load_data(configs[i], devices[i])
    groups: dict[tuple, list[int]] = {}
    for i in todo:
        c = configs[i]
        if batched and model_fn is None and c.model == "mlp" and c.variant == "si":
            key = _batch_key(c, devices[i], ckpts[i])
        else:
            key = ("single", i)
        groups.setdefault(key, []).append(i)
    prev = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for idxs in groups.values():
            ds = data[_data_key(configs[idxs[0]], devices[idxs[0]])]
            dev = devices[idxs[0]]
            cs = [configs[i] for i in idxs]
            if len(idxs) == 1:
                engine = _single_engine(cs[0], outs[idxs[0]], ds, ckpts[idxs[0]], dev, model_fn)
                desc = outs[idxs[0]].name
            else:
                engine = _batched_engine(
                    cs, [outs[i] for i in idxs], ds, [ckpts[i] for i in idxs], dev
                )
                desc = f"{len(idxs)} configs"
            for i in idxs:
                if ckpts[i] is None:
                    _start_fresh(configs[i], outs[i])
            status = engine.run(max_steps_this_call, progress, desc)
            for g, i in enumerate(idxs):
                if engine.docs.get(g) is not None:
                    results[i] = engine.docs[g]
                else:
                    results[i] = {
                        "status": "interrupted",
                        "name": outs[i].name,
                        "steps_done": engine.step,
                        "steps": configs[i].steps,
                    }
            del status
    finally:
        torch.set_num_threads(prev)
    return results  # type: ignore[return-value]


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    progress: bool | None = None,
    resume: bool = True,
    overwrite: bool = False,
    threads: int | None = 1,
    model_fn: Callable[[TrainConfig, Dataset], nn.Module] | None = None,
    max_steps_this_call: int | None = None,
) -> dict:
    """Train one config into ``out_dir`` and return its stationary.json document.

    See the module docstring for the files; `train_grid` for the options. With ``resume`` (the
    default) a directory holding a checkpoint of the same config continues from it, and a
    finished run is not retrained. A run whose loss or radius becomes non-finite stops and is
    recorded with ``status: "diverged"``; it does not raise.
    """
    return train_grid(
        [config],
        [out_dir],
        batched=False,
        progress=progress,
        resume=resume,
        overwrite=overwrite,
        threads=threads,
        model_fn=model_fn,
        max_steps_this_call=max_steps_this_call,
    )[0]


_TABLE_SKIP = {"summary", "schedule", "reasons"}


def grid_table(results: Sequence[dict]) -> dict[str, np.ndarray]:
    """One row per run: name, status, the hyperparameters and every scalar of the stationary
    documents (reasons joined by '; '), ready for `thermosgd.io.write_csv`."""
    keys: list[str] = []
    for doc in results:
        for k, v in doc.items():
            if k in _TABLE_SKIP or k in keys:
                continue
            if v is None or isinstance(v, (bool, int, float, str, np.generic)):
                keys.append(k)
    cols = {k: np.array([doc.get(k) for doc in results], dtype=object) for k in keys}
    cols["reasons"] = np.array(
        ["; ".join(doc.get("reasons") or []) for doc in results], dtype=object
    )
    return cols
