"""Isotropic-noise simulators (numba): simulate and tabulate; no analysis, files or figures.

Submodules (imported on first access, ``thermosgd.sim.isotropic`` or ``from thermosgd.sim
import isotropic``):

* `isotropic`: SGD under the paper's three protocols (lr, elr, sphere) on a grid of
  hyperparameters (`IsotropicConfig`, `simulate`, `stationary_table`);
* `momentum`: heavy-ball momentum and AdamW at a fixed learning rate;
* `blocks`: window means and error bars from the kernels' block sums;
* ``_kernels`` (private): the numba kernels and the block-sum column layout.

The summaries of a study are `thermosgd.analysis.isotropic`; a study on disk (results.csv,
summary.json, figures) is `thermosgd.workflows.isotropic`.
"""

import importlib

__all__ = ["blocks", "isotropic", "momentum"]


def __getattr__(name: str):
    # lazily, as thermosgd.estimators: importing a kernel module need not load the drivers
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
