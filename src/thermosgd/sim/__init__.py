"""Isotropic-noise simulators (numba): simulate and tabulate; no analysis, files or figures."""
