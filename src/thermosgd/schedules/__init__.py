"""Schedules as thermodynamic processes (being split into modules, issue 14)."""

from thermosgd.schedules.paths import *  # noqa: F403
from thermosgd.schedules.paths import __all__  # noqa: F401
