# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.estimators.entropy`."""
from thermosgd.estimators.entropy import *  # noqa: F403
