"""Workflows: the only place that chains stages and writes run directories."""
