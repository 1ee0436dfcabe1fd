"""Window statistics and the stationarity verdict of a recorded run (arrays in, arrays out).

A window of step records (step t, radius r, loss) is cut into k consecutive, nearly
equal-count blocks; the block means carry the error bars (batch means: the SE of a mean is the
SD of the k block means over sqrt(k), valid when a block is longer than the correlation time).
When the relaxation time tau of a series is known and reaches the block length, its
autocorrelation is modelled as exp(-|t|/tau) (Ornstein-Uhlenbeck: `ou_mean_variance`,
`ou_adjacent_covariance`, `block_process_variance`) and the SE of the window mean
(`window_mean_se`) and of the difference between the window's halves (`halves_difference`)
follow from the block means without assuming the blocks independent.
Noise probes in the window are combined by `_combine_probes` (the larger of the propagated
estimator SE and the spread between probes). The verdict (`verdict`) applies the tests of
`StationarityCriteria` and returns each failing test as a reason (a sentence) and each test
that could not be run as a warning:

* window vs the relaxation time tau (when the radius has dynamics): burn-in and span in tau;
* drift of the mean radius (sphere: of the pressure) between the window's halves;
* trend of the loss (OLS slope of its block means);
* T -> 0: an interpolating loss, or tr Sigma falling across the window.

`thermosgd.monitor.ThermoMonitor.stationary_state` feeds its records through these functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from thermosgd._validate import check_int

__all__ = [
    "Blocks",
    "StationarityCriteria",
    "block_process_variance",
    "divergence",
    "even_blocks",
    "halves_difference",
    "ou_adjacent_covariance",
    "ou_mean_variance",
    "select_window",
    "step_blocks",
    "verdict",
    "window_mean_se",
]

_NAN = float("nan")


@dataclass(frozen=True)
class StationarityCriteria:
    """Thresholds of `ThermoMonitor.stationary_state`'s verdict; each failing test is a reason.

    * window vs relaxation time tau (lr, elr; the sphere's radius has no dynamics): the window
      must start at least ``burn_in_tau`` tau after step 0 and span ``min_window_tau`` tau;
    * drift: the window is cut into ``n_blocks`` blocks (block means carry the error bars);
      the mean radius (sphere: the pressure) of the second half differs from the first by more
      than ``max_radius_drift`` (sphere: ``max_pressure_drift``) relative and by more than
      ``z`` standard errors;
    * loss trend: OLS slope of the block means of the loss, |t| > ``z`` and the change over the
      window > ``max_loss_change`` of the mean loss;
    * T -> 0: mean loss < ``interpolation_loss``, or tr Sigma of the probes in the window's
      second half below the first half's by more than ``max_noise_drop`` (relative) and ``z``
      standard errors.
    """

    burn_in_tau: float = 3.0
    min_window_tau: float = 1.0
    min_records: int = 20
    n_blocks: int = 20
    z: float = 3.0
    max_radius_drift: float = 0.01
    max_pressure_drift: float = 0.05
    max_loss_change: float = 0.02
    max_noise_drop: float = 0.2
    interpolation_loss: float = 1e-3


@dataclass(frozen=True)
class Blocks:
    """Batch means of a window's step records: block-mean step, radius and loss (k,), and
    ``window``, the steps the records cover ((last - first) n / (n - 1) for n records; NaN:
    unknown, the block means are then treated as independent)."""

    step: np.ndarray
    radius: np.ndarray
    loss: np.ndarray
    window: float = _NAN


# --------------------------------------------------------------------------- series statistics


def _batch_means(v: np.ndarray, t: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of v and t over k consecutive, (nearly) equal-count blocks."""
    vb = np.array([b.mean() for b in np.array_split(v, k)])
    tb = np.array([b.mean() for b in np.array_split(t, k)])
    return vb, tb


def _mean_se(b: np.ndarray) -> float:
    """SE of the mean of the batch means b: SD(b) / sqrt(k) (NaN below 2 blocks)."""
    return float(b.std(ddof=1) / math.sqrt(b.size)) if b.size >= 2 else float("nan")


def _halves(b: np.ndarray) -> tuple[float, float, float]:
    """Mean of the first and second half of batch means and the SE of their difference."""
    h = b.size // 2
    b1, b2 = b[:h], b[h:]
    se = math.hypot(_mean_se(b1), _mean_se(b2))
    return float(b1.mean()), float(b2.mean()), se


def ou_mean_variance(length, tau) -> np.ndarray:
    """Variance of the mean over ``length`` steps of a stationary process with autocorrelation
    exp(-|t|/tau), in units of the process variance: v = 2 (y - 1 + e^{-y}) / y^2, y = L/tau
    (-> 2 tau/L for L >> tau, -> 1 - y/3 for L << tau; Taylor form below y = 1e-3)."""
    y = np.asarray(length, dtype=float) / np.asarray(tau, dtype=float)
    small = y < 1e-3
    ys = np.where(small, 1.0, y)
    with np.errstate(over="ignore", invalid="ignore"):
        big = 2.0 * (ys + np.expm1(-ys)) / ys**2
    return np.where(small, 1.0 - y / 3.0 + y * y / 12.0, big)


def ou_adjacent_covariance(length, tau) -> np.ndarray:
    """Covariance of the means over two adjacent windows of ``length`` steps of the same process,
    in units of its variance: (tau/L)^2 (1 - e^{-L/tau})^2."""
    y = np.asarray(length, dtype=float) / np.asarray(tau, dtype=float)
    return (np.expm1(-y) / y) ** 2


def block_process_variance(means: np.ndarray, window, tau) -> np.ndarray:
    """Process variance sigma^2 implied by n_b block means (last axis) over ``window`` steps
    when the autocorrelation is exp(-|t|/tau): E[s^2] = n_b/(n_b - 1) sigma^2 (v(B) - v(W)),
    B = W/n_b, exact for a stationary process (the blocks' mutual correlation included)."""
    n_b = means.shape[-1]
    tau = np.maximum(np.asarray(tau, dtype=float), 1e-12)
    gap = ou_mean_variance(np.asarray(window, dtype=float) / n_b, tau) - ou_mean_variance(
        window, tau)
    return means.var(axis=-1, ddof=1) * (n_b - 1) / (n_b * gap)


def _ou_known(window: float, tau: float | None) -> bool:
    """Whether the exp(-|t|/tau) model applies: a finite positive tau and window."""
    return (tau is not None and math.isfinite(tau) and tau > 0 and math.isfinite(window)
            and window > 0)


def window_mean_se(b: np.ndarray, window: float, tau: float | None = None) -> float:
    """SE of the mean of a window of ``window`` steps from its k block means b: with the
    relaxation time ``tau`` (steps), sqrt(sigma^2 v(W)), sigma^2 = `block_process_variance`
    (= SD(b)/sqrt(k), batch means, when tau << W/k; larger when tau reaches the block);
    without (None, NaN, <= 0): batch means SD(b)/sqrt(k). NaN below 2 blocks."""
    if b.size < 2:
        return _NAN
    if not _ou_known(window, tau):
        return _mean_se(b)
    return float(np.sqrt(block_process_variance(b, window, tau) * ou_mean_variance(window, tau)))


def halves_difference(b: np.ndarray, window: float, tau: float | None = None
                      ) -> tuple[float, float, float]:
    """Means m1, m2 of the first and second half of k block means b (k even) over ``window``
    steps and the SE of m2 - m1. With the relaxation time ``tau``: Var = sigma^2 2 (v(H) -
    c(H)), H = W/2, c = `ou_adjacent_covariance`, sigma^2 the mean of the halves'
    `block_process_variance` (-> the batch-means hypot(SE1, SE2) when tau << W/k); without:
    hypot of the halves' batch-means SEs."""
    m1, m2, se = _halves(b)
    if _ou_known(window, tau) and b.size >= 4:
        h, half = b.size // 2, window / 2.0
        s2 = (block_process_variance(b[:h], half, tau)
              + block_process_variance(b[h:], half, tau)) / 2.0
        se = float(np.sqrt(s2 * 2.0 * (ou_mean_variance(half, tau)
                                       - ou_adjacent_covariance(half, tau))))
    return m1, m2, se


def _slope(b: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """OLS slope of b on t and its standard error."""
    tc = t - t.mean()
    sxx = float(tc @ tc)
    if b.size < 3 or sxx == 0:
        return float("nan"), float("nan")
    slope = float(tc @ (b - b.mean())) / sxx
    resid = b - b.mean() - slope * tc
    se = math.sqrt(float(resid @ resid) / (b.size - 2) / sxx)
    return slope, se


def _combine_probes(v: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """Mean of m probe values and its SE: the larger of the propagated estimator SE and the
    spread between probes (which also holds the genuine fluctuation of the state)."""
    m = v.size
    mean = float(v.mean())
    prop = float(np.sqrt(np.square(se).sum()) / m)
    spread = float(v.std(ddof=1) / math.sqrt(m)) if m >= 3 else 0.0
    return mean, max(prop, spread)


# --------------------------------------------------------------------------- the window


def select_window(steps: np.ndarray, window_start: Any = None, since: int = 0) -> int:
    """The window's first step: ``window_start`` (an integer <= the last step) or, by default,
    the start of the second half of the recorded steps from ``since`` on (the last change of
    the hyperparameters; 0: all of them), (max(first, since) + last + 1) // 2."""
    if steps.size == 0:
        raise ValueError("no steps recorded: call record_step (an attached monitor: observe) "
                         "before stationary_state")
    first, last = max(int(steps[0]), since), int(steps[-1])
    if window_start is None:
        return (first + last + 1) // 2
    return check_int("window_start", window_start, max_val=last)


def even_blocks(n: int, n_blocks: int) -> int:
    """The number of blocks for n records: min(n_blocks, n), rounded down to an even number."""
    k = min(n_blocks, n)
    return k - k % 2


def step_blocks(
    t: np.ndarray, radius: np.ndarray, loss: np.ndarray, criteria: StationarityCriteria
) -> tuple[Blocks | None, list[str]]:
    """Batch means of the window's records (t, radius, loss), or None and the reason when the
    window holds fewer than max(min_records, 4) records (or fewer than 4 blocks)."""
    c = criteria
    k = even_blocks(t.size, c.n_blocks)
    if not (t.size >= max(c.min_records, 4) and k >= 4):
        return None, [f"too few step records in the window ({t.size} < {max(c.min_records, 4)})"]
    rb, tb = _batch_means(radius, t, k)
    lb, _ = _batch_means(loss, t, k)
    window = float(t[-1] - t[0]) * t.size / (t.size - 1)
    return Blocks(step=tb, radius=rb, loss=lb, window=window), []


def divergence(
    steps: np.ndarray,
    radius: np.ndarray,
    loss: np.ndarray,
    noise_steps: np.ndarray,
    trace_sigma: np.ndarray,
    grad_norm2: np.ndarray,
    preprojection_norm: np.ndarray | None = None,
) -> tuple[bool, list[str]]:
    """Whether any record is non-finite (anywhere: a diverged run is never stationary), with
    the reason naming the first such step. ``preprojection_norm`` (sphere): an infinite norm
    counts; NaN means "not recorded"."""
    bad = ~(np.isfinite(radius) & np.isfinite(loss))
    if preprojection_norm is not None:
        bad |= np.isinf(preprojection_norm)
    nbad = (
        ~np.isfinite(np.c_[trace_sigma, grad_norm2]).all(axis=1)
        if noise_steps.size
        else np.zeros(0, bool)
    )
    diverged = bool(bad.any() or nbad.any())
    if not diverged:
        return False, []
    at = [int(steps[bad][0])] if bad.any() else []
    at += [int(noise_steps[nbad][0])] if nbad.any() else []
    return True, [f"diverged: non-finite loss, radius or noise from step {min(at)}"]


# --------------------------------------------------------------------------- the verdict


def _window_checks(
    window_start: int, last: int, tau: float, dynamics: bool, c: StationarityCriteria,
    origin: int = 0,
) -> tuple[dict[str, float], list[str]]:
    """window_tau = (last - window_start) / tau and burn_in_tau = (window_start - origin) / tau
    (origin: the step from which the radius relaxes, 0 or the last hyperparameter change), and
    the reasons when the radius has dynamics and either is below its criterion."""
    reasons: list[str] = []
    span = float(last - window_start)
    out = {
        "window_tau": span / tau if tau and np.isfinite(tau) and tau > 0 else _NAN,
        "burn_in_tau": (window_start - origin) / tau if tau and np.isfinite(tau) and tau > 0
        else _NAN,
    }
    if dynamics and np.isfinite(tau) and tau > 0:
        if out["burn_in_tau"] < c.burn_in_tau:
            reasons.append(
                f"window starts too early: {out['burn_in_tau']:.2g} relaxation times after "
                f"step {origin} (< {c.burn_in_tau:g}; tau = {tau:.3g} steps)"
            )
        if out["window_tau"] < c.min_window_tau:
            reasons.append(
                f"window too short: {out['window_tau']:.2g} relaxation times "
                f"(< {c.min_window_tau:g}; tau = {tau:.3g} steps)"
            )
    return out, reasons


def _radius_drift(rb: np.ndarray, rbar: float, c: StationarityCriteria, window: float = _NAN,
                  tau: float | None = None) -> tuple[float, list]:
    """Relative change (m2 - m1) / rbar of the mean radius between the window's halves (its
    SE from `halves_difference` with the radius relaxation time ``tau``)."""
    m1, m2, se = halves_difference(rb, window, tau)
    drift = (m2 - m1) / rbar
    if abs(drift) > c.max_radius_drift and abs(m2 - m1) > c.z * se:
        return drift, [
            f"radius drifting: {100 * drift:+.2g}% between the window's halves "
            f"({abs(m2 - m1) / se:.1f} standard errors)"
        ]
    return drift, []


def _pressure_drift(
    pb: np.ndarray, radius_set: float, c: StationarityCriteria
) -> tuple[float, list]:
    """Relative change of the excess r' - r (proportional to the pressure) between halves."""
    exc = pb - radius_set  # r' - r, proportional to the pressure
    m1, m2, se = _halves(exc)
    mean_exc = float(exc.mean())
    if not mean_exc > 0:
        return _NAN, []
    drift = (m2 - m1) / mean_exc
    if abs(drift) > c.max_pressure_drift and abs(m2 - m1) > c.z * se:
        return drift, [
            f"pressure drifting: {100 * drift:+.2g}% between the window's halves "
            f"({abs(m2 - m1) / se:.1f} standard errors)"
        ]
    return drift, []


def _loss_trend(
    blocks: Blocks, span: float, energy: float, c: StationarityCriteria
) -> tuple[float, list]:
    """Change of the loss over the window (OLS slope of its block means x span), relative to
    the mean loss."""
    slope, sse = _slope(blocks.loss, blocks.step)
    change = slope * span
    scale = max(abs(energy), 1e-12)
    reasons = []
    if np.isfinite(slope) and abs(change) > c.max_loss_change * scale and abs(slope) > c.z * sse:
        reasons.append(
            f"loss trending: {100 * change / scale:+.2g}% over the window "
            f"(slope {slope / sse:+.1f} standard errors)"
        )
    return change / scale, reasons


def _noise_trend(
    noise_steps: np.ndarray,
    trace_sigma: np.ndarray,
    trace_sigma_se: np.ndarray,
    mid: float,
    c: StationarityCriteria,
) -> tuple[float, list, list]:
    """Relative change of tr Sigma between the probes before and after ``mid`` (the window's
    middle step); a reason when it fell significantly, a warning when it cannot be tested."""
    if noise_steps.size < 2:
        return _NAN, [], ["fewer than 2 noise probes in the window: no noise-trend test"]
    a_ = noise_steps < mid
    if not (a_.any() and (~a_).any()):
        return _NAN, [], ["noise probes in only one half of the window: no noise-trend test"]
    v, vse = trace_sigma, trace_sigma_se
    m1, s1 = _combine_probes(v[a_], vse[a_])
    m2, s2 = _combine_probes(v[~a_], vse[~a_])
    change = (m2 - m1) / m1 if m1 > 0 else _NAN
    if m1 > 0 and (m1 - m2) / m1 > c.max_noise_drop and m1 - m2 > c.z * math.hypot(s1, s2):
        return change, [
            f"temperature collapsing: tr Sigma fell {100 * (m1 - m2) / m1:.2g}% "
            f"across the window ({(m1 - m2) / math.hypot(s1, s2):.1f} standard errors)"
        ], []
    return change, [], []


def verdict(
    window_start: int,
    last: int,
    *,
    relaxation_time: float,
    blocks: Blocks | None,
    radius: float,
    energy: float,
    noise_steps: np.ndarray,
    trace_sigma: np.ndarray,
    trace_sigma_se: np.ndarray,
    diverged: bool = False,
    radius_set: float | None = None,
    pressure_blocks: np.ndarray | None = None,
    criteria: StationarityCriteria | None = None,
    origin: int = 0,
) -> dict[str, Any]:
    """The stationarity tests of `StationarityCriteria` on the window [window_start, last].

    ``blocks``: the window's batch means (`step_blocks`; None: too few records, no drift or
    trend test); ``radius``, ``energy``: the window means of the radius and the loss;
    ``noise_steps``, ``trace_sigma(_se)``: the probes in the window. ``radius_set`` None: the
    radius has dynamics (lr, elr), tested for drift and against ``relaxation_time``; a number
    (the sphere's radius): ``pressure_blocks`` (block means of the pre-projection norm r') are
    tested for a drift of the excess r' - r; the radius drift's SE models the blocks'
    correlation as exp(-|t|/tau), tau = ``relaxation_time`` (`halves_difference`; batch
    means when it is NaN). A diverged run gets no further test. ``origin``:
    the step the radius relaxes from (0, or the last change of the hyperparameters).

    Returns window_tau, burn_in_tau, radius_drift, pressure_drift, loss_change, noise_change
    (NaN when not tested), ``reasons`` (failed tests) and ``warnings`` (tests not run).
    """
    c = StationarityCriteria() if criteria is None else criteria
    dynamics = radius_set is None
    out: dict[str, Any]
    out, reasons = _window_checks(window_start, last, relaxation_time, dynamics, c, origin)
    warnings: list[str] = []
    out["radius_drift"] = out["pressure_drift"] = out["loss_change"] = _NAN
    if blocks is not None and not diverged:
        if dynamics:
            out["radius_drift"], why = _radius_drift(blocks.radius, radius, c, blocks.window,
                                                     relaxation_time)
            reasons += why
        elif pressure_blocks is not None and pressure_blocks.size >= 4:
            out["pressure_drift"], why = _pressure_drift(pressure_blocks, radius_set, c)
            reasons += why
        out["loss_change"], why = _loss_trend(blocks, float(last - window_start), energy, c)
        reasons += why
    if not diverged and np.isfinite(energy) and abs(energy) < c.interpolation_loss:
        reasons.append(
            f"temperature collapsing (interpolation): training loss {energy:.2g} < "
            f"{c.interpolation_loss:g}"
        )
    out["noise_change"] = _NAN
    if not diverged:
        out["noise_change"], why, warn = _noise_trend(
            noise_steps, trace_sigma, trace_sigma_se, (window_start + last) / 2, c
        )
        reasons += why
        warnings += warn
    out["reasons"] = reasons
    out["warnings"] = warnings
    return out
