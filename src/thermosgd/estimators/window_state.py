"""The measured state of a window of a monitored run's records (pure: arrays in, dicts out).

`measure_window` turns step records (step, radius, loss, pre-projection norm) and noise
probes (the columns of `thermosgd.monitor.ThermoMonitor.noise_history`) into the window's
measured means with standard errors, the theory's prediction at the measured noise
(`thermosgd.theory.predict`) and what `thermosgd.estimators.stationarity.verdict` needs.
`ThermoMonitor.stationary_state` adds the entropy, the distance from scale invariance and the
verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from thermosgd.estimators.stationarity import (
    StationarityCriteria,
    _batch_means,
    _combine_probes,
    _mean_se,
    divergence,
    even_blocks,
    select_window,
    step_blocks,
    window_mean_se,
)
from thermosgd.theory.predict import predict

__all__ = ["measure_window"]

_NAN = float("nan")


def measure_window(history: Mapping[str, np.ndarray], noise: Mapping[str, np.ndarray], *,
                   protocol: str, optimizer: str, dim: int, hyper: Mapping[str, float],
                   momentum: float | None, beta2: float | None,
                   criteria: StationarityCriteria, since: int = 0,
                   window_start: int | None = None, n_snapshots: int = 0
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The window's measured means (the stationary state's first keys), the prediction at the
    measured noise and what the verdict needs (``noise`` means, ``probes``, ``blocks``,
    ``pressure_blocks``, ``reasons`` and ``warnings`` so far, ``prediction``).

    The window is [window_start, last step] (`select_window`: default the second half of
    the records since ``since``, the last hyperparameter change). Means: radius r, volume
    r^2 / 2, energy U (mean loss); the probes' trace_sigma, grad_norm2, trace_total Q combined
    (`_combine_probes`), sigma2 = trace_sigma / (d-1). radius_se: `window_mean_se` of the
    radius block means with the predicted relaxation time (an exp(-|t|/tau) autocorrelation;
    batch means where it is unknown and on the sphere), volume_se = r radius_se."""
    c, h, nz = criteria, history, noise
    steps = h["step"]
    start = select_window(steps, window_start, since)
    sel = steps >= start
    nsel = (nz["step"] >= start) if nz["step"].size else np.zeros(0, bool)
    sphere = protocol == "sphere"
    diverged, reasons = divergence(steps, h["radius"], h["loss"], nz["step"],
                                   nz["trace_sigma"], nz["grad_norm2"],
                                   h["preprojection_norm"] if sphere else None)
    t, r, loss = steps[sel].astype(np.float64), h["radius"][sel], h["loss"][sel]
    blocks, why = step_blocks(t, r, loss, c)
    reasons += why
    rbar = float(r.mean())
    out: dict[str, Any] = {
        "protocol": protocol, "optimizer": optimizer, "momentum": momentum,
        "beta2": beta2, "dim": dim, **hyper, "window_start": start,
        "window_end": int(steps[-1]), "n_records": int(sel.sum()),
        "n_noise": int(nsel.sum()), "n_snapshots": n_snapshots, "diverged": diverged,
        "radius": rbar, "volume": rbar**2 / 2, "energy": float(loss.mean()),
        "radius_se": _NAN, "energy_se": _NAN if blocks is None else _mean_se(blocks.loss),
        "volume_se": _NAN,  # radius_se and volume_se: below, with the relaxation time
    }
    means = {}
    for k in ("trace_sigma", "grad_norm2", "trace_total"):
        means[k], means[k + "_se"] = (
            _combine_probes(nz[k][nsel], nz[k + "_se"][nsel]) if nsel.any() else (_NAN, _NAN)
        )
    if not nsel.any():
        # the fixed-LR relaxation time 1/(4 eta lambda) needs no noise; the ELR one does
        unknown = "T and the relaxation time are" if protocol == "elr" else "T is"
        reasons.append(f"no gradient-noise probe in the window ({unknown} unknown)")
    out.update(means)
    out["sigma2"] = means["trace_sigma"] / (dim - 1)
    out["sigma2_se"] = means["trace_sigma_se"] / (dim - 1)
    w = {"noise": {k: v for k, v in means.items() if k != "grad_norm2_se"},
         "blocks": blocks, "reasons": reasons, "warnings": [], "pressure_blocks": None,
         "preprojection": {},
         "probes": {"noise_steps": nz["step"][nsel], "trace_sigma": nz["trace_sigma"][nsel],
                    "trace_sigma_se": nz["trace_sigma_se"][nsel]}}
    if sphere:  # the measured pressure: block means of the pre-projection norm r'
        pn = h["preprojection_norm"][sel]
        fin = np.isfinite(pn)
        if not fin.any():
            w["warnings"].append(
                "no pre-projection norms recorded: the sphere's pressure is unknown")
        else:
            kp = even_blocks(int(fin.sum()), c.n_blocks)
            if kp >= 4:
                w["pressure_blocks"], _ = _batch_means(pn[fin], t[fin], kp)
            w["preprojection"] = {"preprojection_norm": pn[fin].mean(), "preprojection_norm_se":
                                  None if kp < 4 else _mean_se(w["pressure_blocks"])}
    w["prediction"] = pred = predict(
        protocol, optimizer, dim=dim, **hyper, momentum=momentum,
        beta2=beta2, **w["noise"], radius_measured=rbar, **w["preprojection"])
    # the radius relaxes over tau = the prediction's relaxation time: its block means are
    # correlated when tau reaches the block (exp(-|t|/tau) model; the sphere: no dynamics)
    tau = None if sphere else pred.relaxation_time
    out["radius_se"] = _NAN if blocks is None else window_mean_se(blocks.radius,
                                                                   blocks.window, tau)
    out["volume_se"] = rbar * out["radius_se"]
    return out, w
