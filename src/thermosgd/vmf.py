# transition shim (issue 14): removed in the final import pass
"""Transition shim: the von Mises-Fisher quantities live in `thermosgd.theory.vmf`."""

from thermosgd.theory.vmf import (
    energy_variance,
    entropy,
    entropy_slope,
    log_bessel_i,
    log_normalizer,
    mean_energy,
    mean_resultant_length,
    sample,
)

__all__ = [
    "energy_variance",
    "entropy",
    "entropy_slope",
    "log_bessel_i",
    "log_normalizer",
    "mean_energy",
    "mean_resultant_length",
    "sample",
]
