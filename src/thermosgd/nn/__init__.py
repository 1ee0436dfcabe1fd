"""The torch side: protocol optimizers, batched steps, models, data, scale invariance, probes.

Submodules (imported on first access, ``thermosgd.nn.optim`` or ``from thermosgd.nn import
optim``):

* `optim`: the protocols (`FixedLR`, `FixedELR`, `FixedSphere`) and the optimizers running the
  fixed-LR protocol (`MomentumLR`, `AdamWLR`) as ``torch.optim.Optimizer``s; `make_optimizer`;
* `batched`: the same rules for G configs at once (`BatchedProtocol`, ``*_step_``);
* `models`: the scale-invariant MLPs with frozen heads and their variants, `BatchedBNMLP`, and
  the pieces every SI model shares;
* `conv_models`: the paper's ConvNet and pre-activation ResNet-18;
* `batched_convnet`: G conv models as one (grouped convolutions), the grid engine's conv path;
* `conv_layout`: memory formats of the conv models (channels_last, small-channel BatchNorm);
* `batched_conv`: G conv models as one module (vmap over stacked parameters and BN buffers);
* `data`: offline datasets (digits, Fashion-MNIST, CIFAR, teacher-student), `iid_batches`;
* `scale_invariance`: radius helpers, checking / finding SI groups, distance from SI;
* `probes`: gradient-noise and full-gradient probes of a network;
* `attach`: protocol, hyperparameters and SI group read from a torch optimizer (the only
  isinstance dispatch on optimizer classes), a monitor attached to a training loop.
"""

from thermosgd._lazy import lazy_submodules

__all__ = ["attach", "batched", "batched_conv", "batched_convnet", "conv_layout", "conv_models",
           "data", "models", "optim", "probes", "scale_invariance"]

__getattr__, __dir__ = lazy_submodules(__name__, __all__)
