"""Analysis of grids of stationary states (being split into table, thermo, grids: issue 14)."""

from thermosgd.analysis.thermo import *  # noqa: F403
from thermosgd.analysis.thermo import ACCEPTANCE, EOS_TOLERANCE, format_analysis  # noqa: F401
from thermosgd.analysis.thermo import __all__  # noqa: F401
