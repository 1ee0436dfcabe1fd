# transition shim (issue 14): removed in the final import pass
"""Moved: rendering to `thermosgd.viz.report`, finding and analyzing the sections of a
directory and writing the page to `thermosgd.workflows.analyze`."""
from thermosgd.viz.report import *  # noqa: F403
from thermosgd.viz.report import PAPER_NN_RESULTS  # noqa: F401
from thermosgd.workflows.analyze import find_sections, render_report, write_report  # noqa: F401
