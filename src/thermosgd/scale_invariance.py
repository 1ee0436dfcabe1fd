# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.nn.scale_invariance`."""

from thermosgd.nn.scale_invariance import *  # noqa: F403
from thermosgd.nn.scale_invariance import (  # noqa: F401
    __all__,
    _batched_radius_sq,
    _radius_sq,
)
