# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.nn.data`."""

from thermosgd.nn.data import *  # noqa: F403
from thermosgd.nn.data import __all__  # noqa: F401
