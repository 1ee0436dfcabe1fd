"""Estimators, arrays in, arrays out (numpy; no torch at import time).

Submodules (imported on first access, ``thermosgd.estimators.entropy`` or ``from
thermosgd.estimators import entropy``):

* `entropy`: exact k-NN (Kozachenko-Leonenko) entropies of weight clouds and of their
  directions on the sphere, with jackknife errors; `EntropyQueue` of weight snapshots;
* `noise`: the per-direction gradient-noise variance sigma^2 from minibatch gradients;
* `stationarity`: window statistics and the stationarity tests of a trace;
* `generalization`: rank correlations of the stationary state with generalization.
"""

import importlib

__all__ = ["entropy", "generalization", "noise", "stationarity"]


def __getattr__(name: str):
    # lazily: `entropy` compiles numba kernels, `noise` needs only numpy / scipy
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
