"""Analysis of grids of stationary states: the paper's neural-network section (9.6-9.8).

Arrays and JSON-able dicts in and out; no files are written and nothing is drawn here.

* `thermosgd.analysis.table`: read a results table, normalize its columns, pick the
  stationary rows of a protocol (`load_table`, `as_columns`, `split_rows`);
* `thermosgd.analysis.thermo`: the checks of one protocol's grid (`analyze_protocol`):
  equation of state, quadratic entropy fit and Maxwell relations, collapse, and the Gibbs /
  Helmholtz potential (through `thermosgd.theory`), its argmin and its map;
* `thermosgd.analysis.grids`: a whole table (`analyze`): per protocol, per optimizer group
  (`analyze_optimizers`), per model variant (`analyze_non_si`), against generalization
  (`generalization_groups`), and the acceptance checks for given thresholds;
* `thermosgd.analysis.isotropic`: the summaries of an isotropic-model study (Maxwell slopes,
  worst errors, potential minima and maps);
* `thermosgd.analysis.figure_data`: the arrays the figures of `thermosgd.viz.plots` draw.

Analyzing a directory (load, analyze, draw, write ``analysis.json``) is
`thermosgd.workflows.analyze.run_analysis`; the acceptance thresholds live there too.
"""

from thermosgd.analysis import figure_data, grids, isotropic, table, thermo
from thermosgd.analysis.figure_data import (
    figure_arrays,
    generalization_figure_arrays,
    optimizer_figure_arrays,
    protocol_figure_arrays,
)
from thermosgd.analysis.grids import (
    SI_DISTANCES,
    acceptance_checks,
    analyze,
    analyze_non_si,
    analyze_optimizers,
    generalization_groups,
    optimizer_checks,
    optimizer_column,
    optimizer_groups,
    paper_rows,
    variant_column,
)
from thermosgd.analysis.table import (
    EOS_COLUMNS,
    NUMERIC_COLUMNS,
    as_columns,
    load_table,
    second_axis,
    split_rows,
)
from thermosgd.analysis.thermo import (
    COLLAPSE_QUANTITIES,
    EOS_TOLERANCE,
    QuadraticFit,
    analyze_protocol,
    collapse_ratio,
    collapse_variable,
    equation_of_state,
    fit_quadratic,
    grid_cells,
    maxwell_checks,
    potential_argmin,
    potential_map,
    potential_states,
    potential_targets,
    potential_values,
)

__all__ = [
    "COLLAPSE_QUANTITIES",
    "EOS_COLUMNS",
    "EOS_TOLERANCE",
    "NUMERIC_COLUMNS",
    "SI_DISTANCES",
    "QuadraticFit",
    "acceptance_checks",
    "analyze",
    "analyze_non_si",
    "analyze_optimizers",
    "analyze_protocol",
    "as_columns",
    "collapse_ratio",
    "collapse_variable",
    "equation_of_state",
    "figure_arrays",
    "figure_data",
    "fit_quadratic",
    "generalization_figure_arrays",
    "generalization_groups",
    "grid_cells",
    "grids",
    "isotropic",
    "load_table",
    "maxwell_checks",
    "optimizer_checks",
    "optimizer_column",
    "optimizer_figure_arrays",
    "optimizer_groups",
    "paper_rows",
    "potential_argmin",
    "potential_map",
    "potential_states",
    "potential_targets",
    "potential_values",
    "protocol_figure_arrays",
    "second_axis",
    "split_rows",
    "table",
    "thermo",
    "variant_column",
]
