"""Isotropic-noise simulators (numba): simulate and tabulate; no analysis, files or figures.

* `thermosgd.sim.isotropic`: SGD under the paper's three protocols (lr, elr, sphere) on a grid
  of hyperparameters (`IsotropicConfig`, `simulate`, `stationary_table`);
* `thermosgd.sim.momentum`: heavy-ball momentum and AdamW at a fixed learning rate;
* `thermosgd.sim.blocks`: window means and error bars from the kernels' block sums;
* ``thermosgd.sim._kernels`` (private): the numba kernels and the block-sum column layout.

The summaries of a study are `thermosgd.analysis.isotropic`; a study on disk (results.csv,
summary.json, figures) is `thermosgd.workflows.isotropic`.
"""

from thermosgd.sim import blocks, isotropic, momentum

__all__ = ["blocks", "isotropic", "momentum"]
