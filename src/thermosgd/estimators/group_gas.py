"""The equilibrium of one parameter group (one weight matrix, a block, a row) as its own gas
(pure: arrays in, a dict out).

A group w of d weights trained with weight decay by SGD, heavy ball or AdamW relaxes to an
equilibrium norm where the decay balances the gradient updates; on a scale-invariant (SI)
group the closed forms of `thermosgd.theory.predict.fixed_lr_forms` predict that norm, the
angular update per step and the relaxation time. `group_state` compares a window of a
group's per-step records with them:

* records (one row per recorded step): ``norm2`` = ||w_t||^2 before the step, ``grad2`` =
  ||g_t||^2 ||w_t||^2 (the minibatch gradient's squared norm on the unit sphere, Q = tr Sigma
  + ||grad L||^2 per step), ``radial`` = <g_t, w_t> / (||g_t|| ||w_t||) (0 on an SI group),
  ``update2`` = ||w_{t+1} - w_t||^2;
* norm = sqrt(mean norm2) against the prediction at the window's Q (all noise:
  `radius_discrete(lr, wd, d, Q, 0, beta)`; with noise probes, their tr Sigma and ||grad L||^2);
* angular update sqrt(sum update2 / sum norm2) (the ratio of means in which the closed forms
  are exact for SGD and heavy ball) against `angular_update(lr, wd, beta)`;
* temperature and pressure of the group from its noise (`temperature`, `pressure` at sigma^2 =
  tr Sigma / (d-1)); relaxation time tau and the time to equilibrium tau ln(delta / tol),
  delta = |(r_last / r*)^k - 1| (r*^k relaxes exponentially: k = 4 SGD / heavy ball, 2 AdamW);
* the verdict: equilibrated when the hyperparameters were constant for >= 3 tau, the norm's
  window halves agree within 4 SE and 2% and the group is SI (|radial| <= ``si_tolerance``),
  else the reasons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from thermosgd.estimators.stationarity import (
    _batch_means,
    _combine_probes,
    _mean_se,
    even_blocks,
    halves_difference,
    window_mean_se,
)
from thermosgd.theory.predict import fixed_lr_forms

__all__ = ["RECORD_KEYS", "group_state"]

#: the per-step records of a group (see the module doc), beside "step"
RECORD_KEYS = ("norm2", "grad2", "radial", "update2")
_NAN = float("nan")
#: blocks of the batch means; relaxation times the hyperparameters must have been constant;
#: the z of the norm's window halves above which it is drifting (8 blocks a half: z is
#: t-distributed with ~7 df, P(|z| > 4) ~ 0.5% for an equilibrated group, so a model of 50
#: matrices rarely flags one wrongly), and their relative difference (a steady decay inflates
#: the block spread the z is measured against)
_N_BLOCKS, _RELAXATION_TIMES, _DRIFT_Z, _DRIFT_REL = 16, 3.0, 4.0, 0.02


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else _NAN


def _time_to_equilibrium(norm_last: float, norm_pred: float, power: int, tau: float,
                         tol: float) -> float:
    """tau ln(delta / delta_tol), delta = |(r / r*)^k - 1|, delta_tol = (1 + tol)^k - 1: the
    steps until the norm is within ``tol`` (relative) of r* (0 if it is)."""
    delta = abs(_ratio(norm_last, norm_pred) ** power - 1.0)
    delta_tol = (1.0 + tol) ** power - 1.0
    if not math.isfinite(delta) or not math.isfinite(tau):
        return _NAN
    return tau * math.log(delta / delta_tol) if delta > delta_tol else 0.0


def group_state(records: Mapping[str, np.ndarray], *, dim: int, optimizer: str, lr: float,
                wd: float, momentum: float | None = None, beta2: float | None = None,
                since: int = 0, noise: Mapping[str, np.ndarray] | None = None,
                si_tolerance: float = 1e-3, tol: float = 0.01) -> dict[str, Any]:
    """The group's measured equilibrium against the closed forms (see the module doc).

    ``records``: "step" and `RECORD_KEYS`, one row per recorded step; ``since``: the step of
    the last hyperparameter change (the window is the second half of the records from there);
    ``noise``: probes of the group (columns "step", "trace_sigma", "trace_sigma_se",
    "grad_norm2", "grad_norm2_se"; those in the window replace the all-noise Q);
    ``momentum``: heavy-ball beta / AdamW beta1; ``beta2``: AdamW's (relaxation time).
    """
    forms = fixed_lr_forms(optimizer)
    steps = np.asarray(records["step"], dtype=float)
    sel = steps >= since
    n_const = int(sel.sum())
    out: dict[str, Any] = {"dim": dim, "optimizer": optimizer, "lr": lr, "wd": wd,
                           "momentum": momentum, "since": since,
                           "steps_constant": float(steps[-1] - since + 1) if n_const else 0.0}
    reasons: list[str] = []
    tau = float(forms.relaxation_time(lr, wd, momentum, beta2))
    out["relaxation_time"] = tau
    if n_const < 2:
        reasons.append("the hyperparameters changed at the last recorded step "
                       f"({since}): no window at constant values")
    idx = np.flatnonzero(sel)
    start = idx[len(idx) // 2] if n_const >= 2 else (idx[-1] if n_const else len(steps) - 1)
    w = slice(int(start), None)
    t = steps[w]
    r2, q = (np.asarray(records[k], dtype=float)[w] for k in ("norm2", "grad2"))
    u2, rad = (np.asarray(records[k], dtype=float)[w] for k in ("update2", "radial"))
    norm_last = float(math.sqrt(records["norm2"][-1]))
    k = even_blocks(t.size, _N_BLOCKS)
    window = float(t[-1] - t[0]) * t.size / (t.size - 1) if t.size >= 2 else 0.0
    norm = np.sqrt(r2)
    out["norm"] = float(math.sqrt(r2.mean()))
    out["norm_last"] = norm_last
    out["window_start"] = int(t[0])
    out["records"] = int(t.size)
    if k >= 4:
        nb, _ = _batch_means(norm, t, k)
        out["norm_se"] = window_mean_se(nb, window, tau)
        m1, m2, dse = halves_difference(nb, window, tau)
        out["norm_drift_z"] = (m2 - m1) / dse if dse > 0 else _NAN
        out["norm_drift"] = _ratio(m2, m1) - 1.0
        qb, _ = _batch_means(q, t, k)
        q_se = window_mean_se(qb, window)
        ub, _ = _batch_means(u2, t, k)
        rb, _ = _batch_means(r2, t, k)
        ang_se = _mean_se(np.sqrt(ub / rb))
    else:
        out["norm_se"] = out["norm_drift_z"] = out["norm_drift"] = q_se = ang_se = _NAN
        reasons.append(f"too few records in the window ({t.size} < 4)")
    ts, gn, ts_se, source = float(q.mean()), 0.0, q_se, "steps"
    if noise is not None and np.size(noise["step"]):
        ns = np.asarray(noise["step"]) >= t[0]
        if ns.sum() >= 1:
            ts, ts_se = _combine_probes(np.asarray(noise["trace_sigma"])[ns],
                                        np.asarray(noise["trace_sigma_se"])[ns])
            gn, _ = _combine_probes(np.asarray(noise["grad_norm2"])[ns],
                                    np.asarray(noise["grad_norm2_se"])[ns])
            gn, source = max(gn, 0.0), "probes"
    out["noise_source"] = source
    out["trace_sigma"], out["trace_sigma_se"], out["grad_norm2"] = ts, ts_se, gn
    sigma2 = ts / (dim - 1)
    ok = ts > 0 and math.isfinite(ts)
    pred = float(forms.radius_discrete(lr, wd, dim, ts, gn, momentum)) if ok else _NAN
    out["norm_predicted"] = pred
    # r*^k is linear in the noise: its relative SE over k
    out["norm_predicted_se"] = pred * ts_se / ts / forms.radius_power if ok else _NAN
    out["norm_ratio"] = _ratio(out["norm"], pred)
    out["norm_ratio_se"] = out["norm_ratio"] * math.hypot(
        _ratio(out["norm_se"], out["norm"]), _ratio(out["norm_predicted_se"], pred))
    out["angular_update"] = float(math.sqrt(u2.sum() / r2.sum())) if r2.sum() > 0 else _NAN
    out["angular_update_se"] = ang_se
    out["angular_update_predicted"] = float(forms.angular_update(lr, wd, momentum))
    out["angular_ratio"] = _ratio(out["angular_update"], out["angular_update_predicted"])
    out["temperature"] = float(forms.temperature(lr, wd, sigma2, dim, momentum)) if ok else _NAN
    out["pressure"] = (float(forms.pressure(wd, out["norm"], sigma2, dim)) if ok else _NAN)
    out["time_to_equilibrium"] = _time_to_equilibrium(norm_last, pred, forms.radius_power, tau,
                                                      tol)
    out["radial_gradient"] = float(np.abs(rad).mean())
    out["scale_invariant"] = bool(out["radial_gradient"] <= si_tolerance)
    if not out["scale_invariant"]:
        reasons.append(f"not scale-invariant: mean |radial gradient| {out['radial_gradient']:.3g}"
                       f" > {si_tolerance:g} (the closed forms assume an SI group)")
    if out["steps_constant"] < _RELAXATION_TIMES * tau:
        reasons.append(f"{out['steps_constant']:.0f} steps at constant hyperparameters < "
                       f"{_RELAXATION_TIMES:g} relaxation times ({_RELAXATION_TIMES * tau:.0f})")
    if abs(out["norm_drift_z"]) > _DRIFT_Z or abs(out["norm_drift"]) > _DRIFT_REL:
        reasons.append(f"norm drifting: window halves differ by {out['norm_drift']:+.1%} "
                       f"({out['norm_drift_z']:+.1f} SE)")
    out["equilibrated"] = not reasons
    out["reasons"] = reasons
    return out
