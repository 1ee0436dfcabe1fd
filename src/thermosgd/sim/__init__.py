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

from thermosgd._lazy import lazy_submodules

__all__ = ["blocks", "isotropic", "momentum"]

__getattr__, __dir__ = lazy_submodules(__name__, __all__)
