"""The registry: protocols, their hyperparameters, optimizers, defaults and canonical names.

Every other module asks this one which hyperparameters a protocol takes, which optimizers run
which protocols, and what a column or grid axis is called; nothing else keeps such a table.
It also names the models, data sets, devices, model variants and schedule shapes the package
knows (their implementations live in nn/, train/, schedules/): the command line builds its
options from this light module alone.

Protocols (design.md):

* ``lr``: fixed learning rate eta and weight decay lambda (``lr``, ``wd``);
* ``elr``: fixed effective learning rate eta-tilde = eta / r^2 and weight decay (``elr``, ``wd``);
* ``sphere``: fixed effective learning rate on the sphere of fixed radius r (``elr``, ``radius``).

Naming convention of hyperparameters and measurements (tables, records, configs): a
hyperparameter column carries the value as set (``lr``, ``elr``, ``wd``); a measured quantity
that shares a name with a hyperparameter carries the suffix ``_measured`` (``elr_measured`` =
eta / r^2 along a fixed-LR run), and a set value that shares a name with a measured state
variable carries ``_set`` (``radius_set``: the sphere's radius, while ``radius`` is the measured
mean |w|). Predictions carry ``_sde`` / ``_discrete`` (the closed form used) or ``_predicted``
(``elr_predicted``: the stationary eta / r^2 predicted for a fixed-LR run). The effective
learning rate is ``elr`` everywhere.
"""

from __future__ import annotations

from thermosgd._validate import check_fraction

__all__ = [
    "AXIS_COLUMNS",
    "CONVNET_VARIANTS",
    "DATASETS",
    "DEFAULT_BETA2",
    "DEFAULT_EPS",
    "DEFAULT_MOMENTUM",
    "DEVICES",
    "HYPERPARAMETERS",
    "MEMORY_FORMATS",
    "MLP_VARIANTS",
    "MODELS",
    "OPTIMIZERS",
    "OPTIMIZER_HYPERPARAMETERS",
    "OPTIMIZER_PROTOCOLS",
    "PROTOCOLS",
    "SCHEDULES",
    "WD_PROTOCOLS",
    "axes",
    "check_optimizer",
    "check_optimizer_settings",
    "check_protocol",
    "hyperparameters",
    "optimizer_betas",
    "rate_name",
]

#: the three protocols of the paper
PROTOCOLS: tuple[str, ...] = ("lr", "elr", "sphere")

#: the two hyperparameters of each protocol: (rate, second); also its two grid axes
HYPERPARAMETERS: dict[str, tuple[str, str]] = {
    "lr": ("lr", "wd"),
    "elr": ("elr", "wd"),
    "sphere": ("elr", "radius"),
}

#: the grid-axis columns of a results table: the sphere's set radius is ``radius_set``
AXIS_COLUMNS: dict[str, tuple[str, str]] = {
    "lr": ("lr", "wd"),
    "elr": ("elr", "wd"),
    "sphere": ("elr", "radius_set"),
}

#: optimizers: SGD (coupled weight decay), heavy-ball momentum (torch SGD semantics, coupled
#: weight decay) and AdamW (torch semantics, decoupled weight decay)
OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adamw")

#: the protocols each optimizer runs (momentum and AdamW: the fixed-LR protocol only)
OPTIMIZER_PROTOCOLS: dict[str, tuple[str, ...]] = {
    "sgd": PROTOCOLS,
    "momentum": ("lr",),
    "adamw": ("lr",),
}

#: the optimizer's own hyperparameters beyond the protocol's (``momentum`` is AdamW's beta1)
OPTIMIZER_HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "momentum": ("momentum",),
    "adamw": ("momentum", "beta2"),
}

#: torch's defaults: heavy-ball beta / AdamW beta1, AdamW beta2 and epsilon
DEFAULT_MOMENTUM = 0.9
DEFAULT_BETA2 = 0.999
DEFAULT_EPS = 1e-8

#: the protocols whose second hyperparameter is the weight decay (a rate and wd per step):
#: the ones a schedule of (rate, wd) can drive (`thermosgd.schedules`)
WD_PROTOCOLS: tuple[str, ...] = tuple(p for p in PROTOCOLS if HYPERPARAMETERS[p][1] == "wd")

#: the schedule shapes `thermosgd.schedules.make_schedule` knows by name
SCHEDULES: tuple[str, ...] = ("constant", "step", "cosine")

#: the networks `thermosgd.train` trains (`thermosgd.nn.models`: BN-MLP;
#: `thermosgd.nn.conv_models`: the paper's ConvNet, pre-activation ResNet-18)
MODELS: tuple[str, ...] = ("mlp", "convnet", "resnet18")

#: the data sets of `thermosgd.train` (`thermosgd.train.nets`)
DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "cifar10", "cifar100", "synthetic")

#: the devices a training run takes ("auto": CUDA when available)
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

#: BN-MLP variants (`thermosgd.nn.models.variant_mlp`), issue 6: non-SI networks.
#: variant -> (normalization, trainable norm affine, trainable biases, trainable head, note)
MLP_VARIANTS: dict[str, tuple[str, bool, bool, bool, str]] = {
    "si": ("batch", False, False, False, "the paper's BN-MLP: every trainable weight SI"),
    "bn-affine": ("batch", True, False, False, "BatchNorm gamma, beta trained"),
    "bias": (
        "batch",
        False,
        True,
        False,
        "a trainable bias after every BatchNorm and in the head (a bias before a BatchNorm "
        "would be cancelled by its mean subtraction)",
    ),
    "head": ("batch", False, False, True, "the Linear head (no bias) trained"),
    "layernorm": ("layer", False, False, False, "LayerNorm without affine: still SI"),
    "layernorm-affine": ("layer", True, False, False, "LayerNorm gamma, beta trained"),
}

#: ConvNet variants (the BN-MLP's without the LayerNorm ones)
CONVNET_VARIANTS: tuple[str, ...] = ("si", "bn-affine", "bias", "head")

#: the memory layouts a conv model runs in (`thermosgd.nn.conv_layout`): NCHW, or NHWC strides
#: (channels_last: faster oneDNN convolutions on CPU, equal to float32 round-off)
MEMORY_FORMATS: tuple[str, ...] = ("contiguous", "channels_last")


def check_protocol(protocol) -> str:
    """``protocol`` if it is one of `PROTOCOLS`, else ValueError."""
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise ValueError(f"protocol == {protocol!r}, must be one of {', '.join(PROTOCOLS)}")
    return protocol


def check_optimizer(optimizer, protocol: str | None = None) -> str:
    """``optimizer`` if it is one of `OPTIMIZERS` (and runs ``protocol``), else ValueError."""
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer == {optimizer!r}, must be one of {', '.join(OPTIMIZERS)}")
    if protocol is not None and check_protocol(protocol) not in OPTIMIZER_PROTOCOLS[optimizer]:
        raise ValueError(
            f"optimizer {optimizer!r} runs the protocol(s) "
            f"{', '.join(OPTIMIZER_PROTOCOLS[optimizer])}, not {protocol!r}")
    return optimizer


def check_optimizer_settings(protocol: str, optimizer: str, momentum=None, beta2=None) -> None:
    """One-line ValueErrors for a bad optimizer / protocol / betas combination: the optimizer
    must run the protocol (`check_optimizer`) and take the betas given
    (`OPTIMIZER_HYPERPARAMETERS`: ``momentum``, the heavy-ball beta or AdamW's beta1, for
    momentum and AdamW; ``beta2`` for AdamW); plain numbers must lie in [0, 1) (arrays and
    tensors of per-config values are checked by their callers)."""
    check_optimizer(optimizer, protocol)
    given = {"momentum": momentum, "beta2": beta2}
    takes = OPTIMIZER_HYPERPARAMETERS[optimizer]
    for name, v in given.items():
        if v is not None and name not in takes:
            what = f"takes {' and '.join(takes)}" if takes else "takes neither"
            raise ValueError(f"{name} == {v!r}, must be None for optimizer {optimizer!r} "
                             f"(it {what} of momentum, beta2)")
    for name, v in given.items():
        if v is not None and not hasattr(v, "shape"):
            check_fraction(name, v)


def optimizer_betas(optimizer: str, momentum=None, beta2=None) -> tuple:
    """(momentum, beta2) of ``optimizer`` with torch's defaults filled in, None where the
    optimizer has no such setting (SGD: (None, None); heavy ball: (beta, None))."""
    takes = OPTIMIZER_HYPERPARAMETERS[check_optimizer(optimizer)]
    b1 = (DEFAULT_MOMENTUM if momentum is None else momentum) if "momentum" in takes else None
    b2 = (DEFAULT_BETA2 if beta2 is None else beta2) if "beta2" in takes else None
    return b1, b2


def hyperparameters(protocol: str) -> tuple[str, str]:
    """The two hyperparameters of ``protocol``: (rate, second)."""
    return HYPERPARAMETERS[check_protocol(protocol)]


def rate_name(protocol: str) -> str:
    """The rate hyperparameter of ``protocol``: ``lr`` or ``elr``."""
    return hyperparameters(protocol)[0]


def axes(protocol: str) -> tuple[str, str]:
    """The grid-axis columns of ``protocol`` in a results table (see `AXIS_COLUMNS`)."""
    return AXIS_COLUMNS[check_protocol(protocol)]
