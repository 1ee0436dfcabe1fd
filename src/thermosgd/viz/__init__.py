"""Figures and the HTML report: draw what they are given, never compute physics.

`plots` (PNG figures from the arrays the analysis returns) and `report` (the self-contained
HTML page); both import matplotlib only when they draw.
"""

__all__ = ["plots", "report"]
