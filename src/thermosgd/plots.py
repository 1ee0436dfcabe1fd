# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.viz.plots`."""
from thermosgd.viz.plots import *  # noqa: F403
from thermosgd.viz.plots import (  # noqa: F401
    isotropic_figures,
    nn_figures,
    non_si_figure,
    optimizer_figures,
    optimizer_slug,
    prediction_figure,
    schedule_figures,
)
