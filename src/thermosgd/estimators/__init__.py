"""Estimators, arrays in, arrays out (numpy; no torch at import time).

Submodules (imported on first access, ``thermosgd.estimators.entropy`` or ``from
thermosgd.estimators import entropy``):

* `entropy`: exact k-NN (Kozachenko-Leonenko) entropies of weight clouds and of their
  directions on the sphere, with jackknife errors;
* `snapshots`: `EntropyQueue`, the weight snapshots of a run within a memory budget (exact, or
  CountSketches of the directions);
* `noise`: the per-direction gradient-noise variance sigma^2 from minibatch gradients;
* `stationarity`: window statistics and the stationarity tests of a trace;
* `window_state`: the measured state and prediction of a window of a monitored run's records;
* `generalization`: rank correlations of the stationary state with generalization;
* `readout`: the latest records of a monitored run as a flat dict of floats for a logger.
"""

from thermosgd._lazy import lazy_submodules

__all__ = ["entropy", "generalization", "noise", "readout", "snapshots", "stationarity",
           "window_state"]

__getattr__, __dir__ = lazy_submodules(__name__, __all__)
