# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.viz.plots`, which only draws what it is given.

The old signatures, which computed what they drew from a table, are kept here: they compute
the arrays with `thermosgd.analysis` and call the new drawing functions.
"""
from thermosgd.viz import plots as _plots
from thermosgd.viz.plots import *  # noqa: F403
from thermosgd.viz.plots import (  # noqa: F401
    COLLAPSE_LABEL,
    LABEL,
    non_si_figure,
    optimizer_slug,
    prediction_figure,
    schedule_figures,
)


def isotropic_figures(table, config, out_dir, potentials=None):
    """`thermosgd.viz.plots.isotropic_figures`; without ``potentials`` the maps of the
    summary's targets are computed here (`thermosgd.analysis.isotropic`)."""
    if potentials is None:
        from thermosgd.analysis.isotropic import potential_argmin, potential_map

        potentials = [{"target": t["target"], "map": potential_map(table, config,
                                                                    tuple(t["target"]))}
                      for t in potential_argmin(table, config)]
    return _plots.isotropic_figures(table, config, out_dir, potentials)


def nn_figures(table, result, out_dir):
    """Old signature of `thermosgd.viz.plots.nn_figures` (table, result, out_dir)."""
    from thermosgd.workflows.analyze import draw_figures

    return draw_figures(table, result, out_dir)


def optimizer_figures(table, groups, out_dir):
    """Old signature of `thermosgd.viz.plots.optimizer_figures` (table, groups, out_dir)."""
    from thermosgd.analysis import optimizer_figure_arrays

    return _plots.optimizer_figures(groups, optimizer_figure_arrays(table, groups), out_dir)
