# transition shim (issue 14): removed in the final import pass
"""Moved: the simulator to `thermosgd.sim.momentum`, the study on disk to
`thermosgd.workflows.isotropic` (`run_momentum_study`)."""
from thermosgd.sim.momentum import *  # noqa: F403
from thermosgd.workflows.isotropic import run_momentum_study as run_study  # noqa: F401
