# transition shim (issue 14): removed in the final import pass
"""Moved: the simulator to `thermosgd.sim.isotropic` (block statistics `thermosgd.sim.blocks`),
the summaries to `thermosgd.analysis.isotropic`, the study on disk to
`thermosgd.workflows.isotropic`."""
from thermosgd.analysis.isotropic import (  # noqa: F401
    _label,
    _row_slopes,
    _slope_summary,
    _worst,
    maxwell_summary,
    potential_argmin,
    potential_map,
    summarize,
)
from thermosgd.sim.blocks import (  # noqa: F401
    block_process_variance as _block_process_variance,
)
from thermosgd.sim.blocks import (  # noqa: F401
    ou_adjacent_covariance,
    ou_mean_variance,
)
from thermosgd.sim.blocks import (  # noqa: F401
    pooled_mean_and_stderr as _pooled_mean_and_stderr,
)
from thermosgd.sim.isotropic import *  # noqa: F403
from thermosgd.sim.isotropic import _radius_relaxation, _validate_init_radius  # noqa: F401
from thermosgd.workflows.isotropic import run_study  # noqa: F401
