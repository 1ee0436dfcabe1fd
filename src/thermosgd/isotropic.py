# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.sim.isotropic`."""
from thermosgd.sim.isotropic import *  # noqa: F403
from thermosgd.sim.isotropic import (  # noqa: F401
    MODE,
    _block_process_variance,
    _pooled_mean_and_stderr,
)
