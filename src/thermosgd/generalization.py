# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.estimators.generalization`."""
from thermosgd.estimators.generalization import *  # noqa: F403
