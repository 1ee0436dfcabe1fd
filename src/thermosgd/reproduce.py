# transition shim (issue 14): removed in the final import pass
"""Moved: the presets to `thermosgd.workflows.presets`, `reproduce` to
`thermosgd.workflows.reproduce`, `parse_list` (the LIST syntax) to `thermosgd.sweep`."""
from thermosgd.sweep import parse_list  # noqa: F401
from thermosgd.workflows.presets import (  # noqa: F401
    ISOTROPIC_PRESETS,
    PRESETS,
    Preset,
    _geom,
    _nn_grids,
    isotropic_configs,
    nn_spec,
)
from thermosgd.workflows.reproduce import _study_done, reproduce  # noqa: F401
