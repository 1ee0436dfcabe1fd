# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.nn.models`."""

from thermosgd.nn.models import *  # noqa: F403
from thermosgd.nn.models import __all__  # noqa: F401
