# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.estimators.generalization`."""

from thermosgd.estimators.generalization import *  # noqa: F403
from thermosgd.estimators.generalization import __all__  # noqa: F401
