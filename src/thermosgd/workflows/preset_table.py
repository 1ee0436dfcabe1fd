"""The preset tables of `thermosgd.workflows.presets`: the named studies that reproduce the
paper, as plain data (no simulator or training code is imported here, so the command line
builds its ``--preset`` choices and help from this module alone).

* `ISOTROPIC_PRESETS`: isotropic-model studies, per-protocol grids in the LIST syntax
  (`thermosgd.sweep.parse_list`) and shared settings;
* `PRESETS`: a `Preset` per name, an isotropic study (or None) and a network sweep (base
  settings and one grid per protocol or optimizer).

`thermosgd.workflows.presets` turns them into configs (`isotropic_configs`, `nn_spec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ISOTROPIC_PRESETS", "PRESETS", "Preset"]

#: isotropic-model studies: per-protocol grids (LIST syntax of the CLI) and shared settings
ISOTROPIC_PRESETS = {
    # the paper's study (paper.md section 8): 17x17 grids, 2e6 steps, d=3, sigma=1
    "paper": {
        "lr": {"lr": "log:1e-3:1e-1:17", "wd": "log:1e-3:1e-1:17"},
        "elr": {"elr": "log:1e-3:1e-1:17", "wd": "log:1e-3:1e-1:17"},
        "sphere": {"elr": "log:1e-3:1e-1:17", "radius": "log:1e-1:1e1:17"},
        # 4000 direction snapshots over the stationary window (the paper's NN queue size; its
        # toy averaged ten overlapping 1000-snapshot windows): halves the entropy noise, which
        # sets the precision of the Gibbs-potential argmin on a 1/8-decade grid
        "steps": 2_000_000, "dim": 3, "sigma": 1.0, "queue_size": 4000,
    },
    # a reduced study that runs in about 15 seconds on 2 cores
    "quick": {
        "lr": {"lr": "log:1e-2:1e-1:5", "wd": "log:1e-2:1e-1:5"},
        "elr": {"elr": "log:1e-2:1e-1:5", "wd": "log:1e-2:1e-1:5"},
        "sphere": {"elr": "log:1e-2:1e-1:5", "radius": "log:1e-1:1e1:5"},
        "steps": 300_000, "dim": 3, "sigma": 1.0, "queue_size": 1000,
    },
}


def _geom(start: float, stop: float, num: int) -> list[float]:
    return [float(f"{v:.4g}") for v in np.geomspace(start, stop, num)]


def _nn_grids(elr: list, wd_elr: list, lr: list, wd_lr: list, elr_sphere: list,
              radius: list) -> list[dict]:
    return [{"protocol": ["elr"], "elr": elr, "wd": wd_elr},
            {"protocol": ["lr"], "lr": lr, "wd": wd_lr},
            {"protocol": ["sphere"], "elr": elr_sphere, "radius": radius}]


@dataclass(frozen=True)
class Preset:
    """An isotropic study (or None) and a network sweep (base settings + grids) with a note."""

    description: str
    isotropic: str | None
    base: dict = field(default_factory=dict)
    grid: list = field(default_factory=list)
    needs_data_dir: bool = False


# Digits grids: effective rates >= 4e-3 so that 2e4-6e4 steps reach stationarity (at 2e-3 the
# loss still falls by 2-4% over the window); radii >= 1 because at r = 0.5 BatchNorm's eps
# breaks scale invariance by ~3% (measured, docs/results.md).
_DIGITS = {"model": "mlp", "hidden": [32, 32], "data": "digits", "label_noise": 0.3,
           "batch_size": 128, "device": "cpu"}

PRESETS: dict[str, Preset] = {
    "quick": Preset(
        "isotropic study at reduced size + BN-MLP 64-32-32 on digits with 30% random labels, "
        "3x3 grids per protocol, 2e4 steps, 20% of the samples held out for the "
        "generalization section: every result of the paper in a few minutes "
        "(too small for precise Maxwell fits; see the cpu preset)",
        isotropic="quick",
        base={**_DIGITS, "steps": 20_000, "test_fraction": 0.2},
        grid=_nn_grids(_geom(5e-3, 4.5e-2, 3), _geom(3e-3, 3e-2, 3), _geom(0.3, 3.0, 3),
                       _geom(3e-3, 3e-2, 3), _geom(5e-3, 4.5e-2, 3), [1.0, 2.0, 4.0]),
    ),
    "cpu": Preset(
        "the paper's isotropic study + BN-MLP 64-32-32 on digits with 30% random labels, "
        "5x5 grids per protocol, 6e4 steps: the paper's network fits on 2 CPU cores "
        "(about 13 minutes measured)",
        isotropic="paper",
        base={**_DIGITS, "steps": 60_000},
        grid=_nn_grids(_geom(4e-3, 4e-2, 5), _geom(3e-3, 3e-2, 5), _geom(0.3, 3.0, 5),
                       _geom(3e-3, 3e-2, 5), _geom(4e-3, 4e-2, 5), [1.0, 1.41, 2.0, 2.83, 4.0]),
    ),
    "cpu-optimizers": Preset(
        "fixed-LR protocol under plain SGD, heavy-ball momentum 0.9 (coupled WD) and AdamW "
        "(decoupled WD, betas 0.9/0.999): BN-MLP 64-32-32 on digits with 30% random labels, "
        "4x3 (lr, wd) grid per optimizer over the same eta*lambda range (heavy ball: its long-"
        "time step eta/(1-beta) times lambda), 2e4 steps, each grid batched",
        isotropic=None,
        base={**_DIGITS, "steps": 20_000, "protocol": "lr"},
        grid=[{"optimizer": ["sgd"], "lr": _geom(0.3, 3.0, 4), "wd": _geom(3e-3, 3e-2, 3)},
              {"optimizer": ["momentum"], "momentum": [0.9], "lr": _geom(0.03, 0.3, 4),
               "wd": _geom(3e-3, 3e-2, 3)},
              {"optimizer": ["adamw"], "momentum": [0.9], "beta2": [0.999],
               "lr": _geom(3e-3, 3e-2, 4), "wd": _geom(0.3, 3.0, 3)}],
    ),
    "cpu-generalization": Preset(
        "entropy and temperature against generalization: BN-MLP 64-32-32 on digits with 30% "
        "random labels and 20% of the samples held out as a clean test set, 5x5 ELR and LR "
        "grids, 3e4 steps, train/test loss and accuracy evaluated 8 times over the window",
        isotropic=None,
        base={**_DIGITS, "steps": 30_000, "test_fraction": 0.2},
        grid=_nn_grids(_geom(4e-3, 4e-2, 5), _geom(3e-3, 3e-2, 5), _geom(0.3, 3.0, 5),
                       _geom(3e-3, 3e-2, 5), [], [])[:2],
    ),
    "cpu-nonsi": Preset(
        "BN-MLP 64-32-32 on digits (30% random labels) in six variants, the SI baseline, "
        "LayerNorm (also SI) and four that break scale invariance (BatchNorm affine trained, "
        "biases after BatchNorm and in the head, a trainable head, LayerNorm affine), each on a "
        "3x3 (elr, wd) grid, 6e3 steps: how the gas-law and Maxwell errors grow with the "
        "distance from scale invariance (6.8 min of single-thread training, 8 min wall, "
        "measured)",
        isotropic=None,
        base={**_DIGITS, "steps": 6_000},
        grid=[{"protocol": ["elr"],
               "variant": ["si", "layernorm", "bias", "bn-affine", "layernorm-affine", "head"],
               "elr": [1e-2, 2e-2, 4e-2], "wd": [5e-3, 1e-2, 2e-2]}],
    ),
}
# fmnist-convnet (issue 10, item 4): pilots (2026-12-04, load 3-6 on the 2 cores) on ConvNet
# width 2 (d = 1530; width 1 stalls at loss 1.7, width 4 costs ~1.5x per step): ~30-35 ms of CPU
# per config-step (batched 4 at a time, probes and evaluations included); ELR >= 2.5e-2 diverges
# and ELR 1e-2 has gradient spikes; the ELR radius relaxes over 1/(elr^2 Q) steps (Q ~ 80-110
# measured: 600 steps at elr 4e-3), fixed LR over 1/(4 lr wd) <= 625; training loss 0.5-0.8,
# far from interpolation (no label noise needed). Probes: 8 gradients every 90 steps (~33 in
# the window), since the window's Q has spikes that the default 4-5 probes miss.
_FMNIST = {"model": "convnet", "width": 2, "data": "fashion-mnist", "batch_size": 128,
           "device": "cpu", "steps": 6_000, "noise_batches": 8, "noise_every": 90,
           "test_evals": 2}
PRESETS["fmnist-convnet"] = Preset(
    "the paper's ConvNet (width 2, d = 1530) on the full Fashion-MNIST training set (per-channel "
    "normalized, no augmentation, no label noise: the training loss stays 0.5-0.8), i.i.d. "
    "batches of 128, 4x4 grids per protocol (ELR 4e-3..8e-3 x WD 3e-3..3e-2, ELR runs start at "
    "r = 5 near their stationary radii; LR 0.1..0.4 x WD 4e-3..1.6e-2; sphere ELR 4e-3..8e-3 x "
    "r 1..8), 6e3 steps: about 72 minutes of CPU on 2 free cores with 2 workers in batches of "
    "8 (benchmarks/fmnist_convnet_acceptance.py; pilots measured, the full run's wall time is "
    "in docs/results.md)",
    isotropic=None,
    base=dict(_FMNIST),
    grid=[{**g, "init_radius": [5.0]} if g["protocol"] == ["elr"] else g
          for g in _nn_grids(_geom(4e-3, 8e-3, 4), _geom(3e-3, 3e-2, 4), _geom(0.1, 0.4, 4),
                             _geom(4e-3, 1.6e-2, 4), _geom(4e-3, 8e-3, 4), [1.0, 2.0, 4.0, 8.0])],
)
# the paper's network grids (paper.md 9.3), for users with a GPU and CIFAR on disk
_PAPER_ELR = _geom(1e-4, 1e-2, 13)
_PAPER_R = [0.25, 0.5, 1.0, 2.0, 4.0]
for _name, _model, _width, _data, _lr, _wd_lr, _wd_elr in (
    ("paper-convnet-cifar10", "convnet", 8, "cifar10", _geom(1e-3, 1e-1, 13),
     _geom(1e-3, 1e-1, 9), _geom(1e-3, 1e-1, 9)),
    ("paper-convnet-cifar100", "convnet", 16, "cifar100", _geom(1e-3, 1e-1, 13),
     _geom(1e-2, 1.0, 9), _geom(1e-3, 1e-1, 9)),
    ("paper-resnet18-cifar10", "resnet18", 4, "cifar10", _geom(1e-3, 1.0, 19),
     _geom(1e-3, 1e-1, 5), _geom(1e-3, 1e-1, 5)),
    ("paper-resnet18-cifar100", "resnet18", 4, "cifar100", _geom(1e-3, 1.0, 19),
     _geom(1e-3, 1e-1, 5), _geom(1e-3, 1e-1, 5)),
):
    PRESETS[_name] = Preset(
        f"the paper's {_model} (width {_width}) on {_data}: 1e6 steps per run, batch 128, "
        "no augmentation; needs a GPU (about an hour per run on an H200) and the dataset in "
        "--data-dir",
        isotropic=None,
        base={"model": _model, "width": _width, "data": _data, "steps": 1_000_000,
              "batch_size": 128, "device": "auto"},
        grid=_nn_grids(_PAPER_ELR, _wd_elr, _lr, _wd_lr, _PAPER_ELR, _PAPER_R),
        needs_data_dir=True,
    )
