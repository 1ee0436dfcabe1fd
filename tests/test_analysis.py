# transition shim (issue 14): removed in the final import pass
"""Moved: the table fixtures to `tests.analysis.tables`, the tests to tests/analysis/
(test_table, test_thermo, test_grids, test_figure_data) and tests/workflows/test_analyze.py."""
from tests.analysis.tables import *  # noqa: F403
from tests.analysis.tables import (  # noqa: F401
    DIM,
    HALF,
    VARIANTS,
    _merge,
    _variant_table,
    ideal_gas_table,
    optimizer_gas_table,
)
