"""Live readouts of a monitored run: the latest records as a flat dict of floats for a logger.

`live_scalars` turns the latest step record (radius, minibatch loss, the sphere's
pre-projection norm), the latest noise probe and the hyperparameters in force into the state a
logger plots at every step: T, p, V = r^2 / 2, the norms, the hyperparameters and betas. It is
O(1): no window statistics, no entropy, no block means; T and p come from
`thermosgd.theory.predict` at the latest probe's noise (so they move only when a probe is
taken; ``noise_step`` says which). `thermosgd.monitor.ThermoMonitor.scalars` calls it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from thermosgd.theory.predict import predict

__all__ = ["live_scalars"]

_NAN = float("nan")
#: the noise-probe fields `theory.predict` takes
_NOISE_FIELDS = ("trace_sigma", "trace_sigma_se", "grad_norm2", "trace_total", "trace_total_se")


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def live_scalars(
    protocol: str,
    optimizer: str,
    *,
    dim: int,
    hyper: Mapping[str, float],
    momentum: float | None,
    beta2: float | None,
    step: int,
    radius: float,
    loss: float,
    preprojection_norm: float = _NAN,
    noise: Mapping[str, float] | None = None,
    si_radial: float = _NAN,
) -> dict[str, float]:
    """The current state as floats: ``step``; the hyperparameters in force (``lr`` / ``elr``,
    ``wd``; the sphere's radius as ``radius_set``) and ``momentum`` / ``beta2`` where the
    optimizer has them; ``radius`` r = |w| and ``volume`` r^2 / 2 of the latest record,
    ``energy`` (its minibatch loss), ``preprojection_norm`` (sphere); from the latest probe
    ``noise`` (a mapping with step, trace_sigma(_se), grad_norm2, trace_total(_se); None: no
    probe yet, then T and the noise are NaN): ``noise_step``, ``trace_sigma``, ``sigma2`` =
    trace_sigma / (d - 1), ``grad_norm2``, and `thermosgd.theory.predict`'s ``temperature``,
    ``temperature_measured``, ``pressure`` and ``elr_measured`` at that noise and radius r
    (e.g. fixed LR, SGD: T = sqrt(eta lambda sigma2 / (2 (d-1))), p = lambda);
    ``si_radial_gradient``: the latest probe's relative radial gradient (NaN: none)."""
    out: dict[str, float] = {"step": float(step)}
    for k, v in hyper.items():
        out["radius_set" if k == "radius" else k] = float(v)
    for k, v in (("momentum", momentum), ("beta2", beta2)):
        if v is not None:
            out[k] = float(v)
    out.update(radius=float(radius), volume=float(radius) ** 2 / 2, energy=float(loss))
    if protocol == "sphere":
        out["preprojection_norm"] = float(preprojection_norm)
    given = {k: float(noise[k]) for k in _NOISE_FIELDS} if noise else {}
    out["noise_step"] = float(noise["step"]) if noise else _NAN
    out["trace_sigma"] = given.get("trace_sigma", _NAN)
    out["sigma2"] = out["trace_sigma"] / (dim - 1)
    out["grad_norm2"] = given.get("grad_norm2", _NAN)
    extra = {"radius_measured": float(radius)} if _finite(radius) and radius > 0 else {}
    if protocol == "sphere" and _finite(preprojection_norm) and preprojection_norm > 0:
        extra["preprojection_norm"] = float(preprojection_norm)
    if not all(_finite(v) for v in given.values()):
        given = {}  # a diverged probe: T and p unknown
    try:
        pred = predict(protocol, optimizer, dim=dim, **hyper, momentum=momentum, beta2=beta2,
                       **given, **extra)
    except ValueError:  # e.g. a negative noise estimate of a diverged run
        pred = None
    for k in ("temperature", "temperature_measured", "pressure", "elr_measured"):
        out[k] = _NAN if pred is None else float(getattr(pred, k))
    out["si_radial_gradient"] = float(si_radial)
    return out
