# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.estimators.entropy`."""

from thermosgd.estimators.entropy import *  # noqa: F403
from thermosgd.estimators.entropy import (  # noqa: F401
    __all__,
    _knn_gram,
    _row_norms,
)
