# transition shim (issue 14): removed in the final import pass
"""Moved to `thermosgd.viz.report`."""
from thermosgd.viz.report import *  # noqa: F403
from thermosgd.viz.report import find_sections, render_report, write_report  # noqa: F401
