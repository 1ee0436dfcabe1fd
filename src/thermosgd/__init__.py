"""thermosgd: the thermodynamics of SGD on scale-invariant networks.

Temperature T (learning rate and gradient noise), pressure p (weight decay), volume
V = r^2/2 (half the squared norm of the scale-invariant weights), energy U (training loss)
and entropy S (spread of the stationary weight distribution), measured and predicted.

The subpackages, from the bottom layer up (each imports only those before it;
docs/CONTRIBUTING.md draws the layers); they are imported on first access, so
``import thermosgd`` is cheap:

* `spec` (protocols, optimizers, names), `io` (atomic writes), `records` (the record schema and
  the table builder);
* `theory`: closed forms (SGD, heavy ball, AdamW), exact vMF, `theory.predict`;
* `estimators`: entropy, gradient noise, stationarity, generalization;
* `sim`: the isotropic-noise simulators;
* `nn`: protocol optimizers, batched steps, models, data, scale invariance, probes, attach;
* `monitor`: `ThermoMonitor` for any training loop;
* `train`: training single and batched networks; `sweep`: grids, store, executors;
* `analysis`: equation of state, Maxwell relations, collapse, potentials;
* `schedules`: schedules as thermodynamic processes;
* `viz`: figures and the HTML report; `workflows`: studies, presets, run directories;
  `cli`: the ``thermosgd`` command.
"""

from thermosgd._lazy import lazy_submodules

__version__ = "0.1.0"

__all__ = [
    "analysis", "cli", "estimators", "io", "monitor", "nn", "records", "schedules", "sim",
    "spec", "sweep", "theory", "train", "viz", "workflows",
]

__getattr__, __dir__ = lazy_submodules(__name__, __all__)
