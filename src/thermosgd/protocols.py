# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.nn.optim`."""
from thermosgd.nn.optim import *  # noqa: F403
