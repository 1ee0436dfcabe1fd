# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.sim.momentum`."""
from thermosgd.sim.momentum import *  # noqa: F403
