"""Tracking a real scheduled run against its equilibrium path and the predicted lagged path.

`track` trains a BN-MLP on digits under a schedule (`TrackConfig`; records through a
`thermosgd.monitor.ThermoMonitor`), `follow` compares any monitored run with the schedule it
ran, `analyze_track` / `analyze_trajectory` are the pure comparison, `track_summary` and
`fit_relaxation` its numbers and `format_track` a few printable lines of them. Writing the
result (CSV, figures, schedule.json) is `thermosgd.workflows.schedules.write_track`.

`track` trains through `thermosgd.train.engine` (the engine of every other training run): the
schedule is the engine's per-step hyperparameter hook, the records and probes are those of the
run's `ThermoMonitor`. A step record is the engine's block mean over ``log_every`` updates.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from thermosgd._validate import check_choice, check_int, check_number, positive_array
from thermosgd.schedules.noise_curve import NoiseCurve, fit_noise_curve
from thermosgd.schedules.paths import Process, _entropy, equilibrium, lag_measures, lagged_path
from thermosgd.schedules.shapes import SCHEDULES, check_wd_protocol, make_schedule
from thermosgd.spec import rate_name

__all__ = ["TrackConfig", "analyze_track", "analyze_trajectory", "fit_relaxation", "follow",
           "format_track", "track", "track_summary"]


@dataclass(frozen=True)
class TrackConfig:
    """A scheduled training run of a BN-MLP on digits (the cpu preset's network).

    ``schedule`` ("constant", "step", "cosine") shapes the rate (``lr`` for "lr", ``elr`` for
    "elr") over ``steps`` steps; ``milestones``/``gamma`` (step), ``final`` (cosine, as a
    fraction of the initial rate), ``warmup`` steps. ``wd_schedule`` applies the same kind of
    schedule to wd (default constant). The network first trains ``burn_in`` steps at the
    initial hyperparameters (so the schedule starts near equilibrium). Every ``log_every``
    steps the radius and minibatch loss are recorded; every ``noise_every`` steps
    ``noise_batches`` minibatch gradients give tr Sigma and ||grad L||^2.
    """

    protocol: str = "lr"
    schedule: str = "cosine"
    lr: float | None = 3.0
    elr: float | None = None
    wd: float = 0.01
    steps: int = 4000
    burn_in: int = 3000
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    final: float = 0.1
    warmup: int = 0
    wd_schedule: str = "constant"
    hidden: tuple[int, ...] = (32, 32)
    label_noise: float = 0.3
    batch_size: int = 128
    seed: int = 1
    init_radius: float = 1.0
    log_every: int = 10
    noise_every: int = 100
    noise_batches: int = 64

    def __post_init__(self) -> None:
        check_wd_protocol(self.protocol)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("wd_schedule", self.wd_schedule, SCHEDULES)
        name = rate_name(self.protocol)
        rate = self.lr if name == "lr" else self.elr
        if rate is None:
            raise ValueError(f"protocol {self.protocol!r} needs {name}")
        if (self.elr if name == "lr" else self.lr) is not None:
            raise ValueError(f"protocol {self.protocol!r} takes {name} only; "
                             f"set the other rate to None")
        positive_array(name, rate)
        positive_array("wd", self.wd)
        positive_array("init_radius", self.init_radius)
        check_number("final", self.final, min_val=0.0, max_val=1.0, include_min=False,
                     include_max=False)
        for field_name in ("steps", "log_every", "noise_every", "batch_size"):
            check_int(field_name, getattr(self, field_name), min_val=1)
        check_int("burn_in", self.burn_in, min_val=0)
        if self.noise_every % self.log_every:
            raise ValueError(f"noise_every == {self.noise_every!r}, must be a multiple of "
                             f"log_every == {self.log_every!r}")
        check_int("noise_batches", self.noise_batches, min_val=3)
        for field_name in ("burn_in", "steps"):  # records are whole logging blocks
            if getattr(self, field_name) % self.log_every:
                raise ValueError(f"{field_name} == {getattr(self, field_name)!r}, must be a "
                                 f"multiple of log_every == {self.log_every!r}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        self.process()  # validates the schedule parameters

    @property
    def rate(self) -> float:
        """The initial rate (``lr`` or ``elr``, as the protocol takes)."""
        return float(self.lr if rate_name(self.protocol) == "lr" else self.elr)

    def process(self) -> Process:
        """The schedule as a `Process` over ``steps`` steps."""
        kw = {"milestones": self.milestones, "gamma": self.gamma}
        rate = make_schedule(self.schedule, self.steps, self.rate, final=self.final * self.rate,
                             warmup=self.warmup, **kw)
        wd = make_schedule(self.wd_schedule, self.steps, self.wd, final=self.final * self.wd,
                           **kw)
        return Process(self.protocol, rate, wd, f"{self.schedule} {self.protocol}")

    def train_config(self):  # -> thermosgd.train.TrainConfig (torch-side)
        """The `thermosgd.train.TrainConfig` the engine trains: ``burn_in + steps`` steps at
        the initial hyperparameters (the schedule is applied by `track`'s hook), the BN-MLP
        on digits with ``label_noise`` (data seed 1), no test evaluations, three snapshots
        (the entropy is not tracked) and one checkpoint at the end."""
        from thermosgd.train.config import TrainConfig  # torch-side; schedules is numpy-only

        total = self.burn_in + self.steps
        proc = self.process()
        return TrainConfig(protocol=self.protocol,
                           **{rate_name(self.protocol): float(proc.rate[0])},
                           wd=float(proc.wd[0]), steps=total, model="mlp",
                           hidden=self.hidden, data="digits", label_noise=self.label_noise,
                           batch_size=self.batch_size, seed=self.seed,
                           init_radius=self.init_radius, log_every=self.log_every,
                           noise_every=self.noise_every, noise_batches=self.noise_batches,
                           queue_size=3, window=total, checkpoint_every=total, test_evals=0,
                           device="cpu")

    def to_dict(self) -> dict:
        """A JSON-ready dict of the fields (tuples as lists)."""
        d = asdict(self)
        d["milestones"], d["hidden"] = list(self.milestones), list(self.hidden)
        return d


def track(config: TrackConfig, noise: NoiseCurve | None = None, *, exact: bool = True,
          data=None, angular_rate: float | None = None, run_dir=None,
          progress: bool | None = None) -> dict[str, Any]:
    """Train ``config`` and compare its measured (T, V) trajectory with the schedule's
    equilibrium path and the predicted lagged path.

    The run is `TrackConfig.train_config` trained by `thermosgd.train.engine` with the
    schedule as its hyperparameter hook: ``burn_in`` steps at the initial hyperparameters, then
    update t of the schedule sets rate[t], wd[t]. ``noise``: the model's sigma2(elr), Q(elr)
    curve (e.g. `fit_noise_curve` of the cpu sweep); None fits one to this run's own probes
    (log-log quadratic in elr). ``data``: a `thermosgd.nn.data.Dataset` instead of the
    config's digits. ``run_dir``: where the engine writes the training run (metrics.csv,
    stationary.json, checkpoint.pt); None: a temporary directory.

    Returns {"config", "noise", "records": per-log columns (step, lr, elr, wd, radius, loss,
    volume, volume_eq, volume_lag, temperature_eq, temperature_lag, tau, quasi_static, gap,
    gap_lag; volume_lag_q: the lagged path driven by the measured Q), "probes": per-probe
    columns (step, elr, trace_sigma, trace_sigma_se, grad_norm2, sigma2, temperature,
    temperature_se, temperature_eq, temperature_lag), "summary"}. Steps count from the start
    of the schedule (the burn-in is not recorded): the record of step t is the mean over
    updates t .. t + log_every - 1 (the radius before each update and its minibatch loss), a
    probe at step t measures the weights before update t.
    """
    import tempfile

    # torch and the torch-side modules load only when a run is trained (the rest of the
    # schedules package is numpy-only)
    import torch

    from thermosgd.train.engine import single_engine
    from thermosgd.train.nets import load_data

    c = config
    proc = c.process()
    tc = c.train_config()
    key = rate_name(c.protocol)

    def schedule_hook(step: int, _config) -> dict[str, float]:
        t = max(0, step - c.burn_in)
        return {key: float(proc.rate[t]), "wd": float(proc.wd[t])}

    ds = data if data is not None else load_data(tc)
    with tempfile.TemporaryDirectory(prefix="thermosgd-track-") as tmp:
        out = Path(run_dir) if run_dir is not None else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        engine = single_engine(tc, out, ds, None, torch.device("cpu"), hook=schedule_hook)
        engine.run(None, progress, f"track {c.schedule} {c.protocol}")
    run = engine.runs[0]
    if run.diverged_at is not None:
        raise ValueError(f"track: training diverged at step {run.diverged_at - c.burn_in} "
                         "of the schedule")
    records, probes = _schedule_records(run.monitor, c)
    return analyze_track(c, proc, records, probes, run.dim, noise, exact=exact,
                         angular_rate=angular_rate)


def _schedule_records(monitor, c: TrackConfig) -> tuple[dict, dict]:
    """The monitor's step records and probes of the scheduled part of a `track` run, with
    steps counted from the start of the schedule: a record ending at engine step k covers the
    updates k - log_every .. k - 1 and gets step k - burn_in - log_every; a probe at engine step
    k (after k updates) gets step k - burn_in; probes outside [0, steps) are dropped."""
    hist, noise = monitor.history(), monitor.noise_history()
    start = hist["step"] - c.burn_in - c.log_every
    keep = start >= 0
    records = {k: v[keep] for k, v in hist.items()}
    records["step"] = start[keep]
    t = noise["step"] - c.burn_in
    keep = (t >= 0) & (t < c.steps)
    probes = {k: v[keep] for k, v in noise.items()}
    probes["step"] = t[keep]
    return records, probes


def follow(monitor, process: Process, noise: NoiseCurve | None = None, *, exact: bool = True,
           angular_rate: float | None = None, milestone: int | None = None) -> dict[str, Any]:
    """Follow a `thermosgd.monitor.ThermoMonitor` of any scheduled training loop against
    ``process`` (the schedule it ran; monitor step t = the state before update t of the
    process, as `ThermoMonitor.record_step` counts): measured (T, V, S) against the
    equilibrium curve and the lagged paths (`analyze_trajectory`). The monitor needs step
    records (radius) and noise probes."""
    hist, probes = monitor.history(), monitor.noise_history()
    if len(hist["step"]) < 2 or len(probes["step"]) < 1:
        raise ValueError("follow: the monitor needs >= 2 step records and >= 1 noise probe")
    if hist["step"][-1] >= process.steps or probes["step"][-1] >= process.steps:
        raise ValueError(f"follow: the monitor has steps beyond the process's {process.steps}")
    return analyze_trajectory(process, hist, probes, monitor.dim, noise, exact=exact,
                              angular_rate=angular_rate, milestone=milestone)


def _curve_from_probes(probes: dict, elr: np.ndarray, dim: int) -> NoiseCurve:
    """A noise curve fitted to a run's own probes (degree 2 from 6 distinct elr's, 1 from 3,
    else constant)."""
    table = {"protocol": np.full(len(elr), "elr"), "elr_measured": elr,
             "dim": np.full(len(elr), dim),
             "trace_sigma": probes["trace_sigma"], "trace_sigma_se": probes["trace_sigma_se"],
             "trace_total": probes["trace_total"], "trace_total_se": probes["trace_total_se"]}
    distinct = len(np.unique(np.round(np.log(elr), 6)))
    degree = 2 if distinct >= 6 else (1 if distinct >= 3 else 0)
    return replace(fit_noise_curve(table, ("elr",), degree=degree, stationary_only=False),
                   source=f"fit (degree {degree}) to this run's {len(elr)} noise probes")


def analyze_track(c: TrackConfig, proc: Process, records: dict, probes: dict, dim: int,
                  noise: NoiseCurve | None, *, exact: bool = True,
                  angular_rate: float | None = None) -> dict[str, Any]:
    """The comparison part of `track` (pure): `analyze_trajectory` plus the config."""
    milestone = min(c.milestones) if c.schedule == "step" and c.milestones else None
    out = analyze_trajectory(proc, records, probes, dim, noise, exact=exact,
                             angular_rate=angular_rate, milestone=milestone)
    return {"config": c.to_dict(), **out}


def analyze_trajectory(proc: Process, records: dict, probes: dict, dim: int,
                       noise: NoiseCurve | None, *, exact: bool = True,
                       angular_rate: float | None = None, milestone: int | None = None
                       ) -> dict[str, Any]:
    """Measured records (step, radius, loss) and noise probes (step, radius, trace_sigma(_se),
    grad_norm2, trace_total(_se)) of a run of ``proc`` against its equilibrium path and
    lagged paths (pure). ``noise`` None: a curve fitted to the probes themselves. With
    ``angular_rate`` (h of `lagged_path`) the path with relaxing noise is added (records
    ``volume_lag_angular``, ``temperature_lag_angular``; probes ``temperature_lag_angular``).
    Probes also get the equipartition entropy S = (d-1)/2 log(2 pi e T) + (d-1) log r of the
    measured T and r and of the paths (entropy, entropy_eq, entropy_lag). ``milestone``:
    see `track_summary`."""
    protocol = proc.protocol
    steps = np.asarray(records["step"]).astype(int)
    r = np.asarray(records["radius"], dtype=np.float64)
    rate, wd = proc.rate, proc.wd
    elr_measured = rate[steps] / r**2 if protocol == "lr" else rate[steps]
    pst = np.asarray(probes["step"]).astype(int)
    probe_elr = rate[pst] / probes["radius"] ** 2 if protocol == "lr" else rate[pst]
    curve = noise if noise is not None else _curve_from_probes(probes, probe_elr, dim)
    if curve.dim != dim:
        raise ValueError(f"the noise curve is for d = {curve.dim}, the network has d = {dim}")
    eq = equilibrium(proc, curve, exact=exact)
    r0 = records["radius"][0]
    lag = lagged_path(proc, curve, init_radius=r0, exact=exact)
    # the same radial map driven by the measured Q (linear between probes): radial dynamics
    # alone, without the assumption that Q follows its stationary curve instantly
    q_meas = np.interp(np.arange(proc.steps), pst, probes["trace_total"])
    lag_q = lagged_path(proc, curve, init_radius=r0, exact=exact,
                        trace_total=np.maximum(q_meas, np.finfo(float).tiny))
    lag_a = (None if angular_rate is None else
             lagged_path(proc, curve, init_radius=r0, exact=exact, angular_rate=angular_rate))
    meas = lag_measures(r**2 / 2.0, eq["volume"][steps], eq["tau"][steps])
    # keys of records.csv / probes.csv (written by thermosgd.workflows.schedules.write_track)
    recs = {"step": steps.astype(float), "lr": rate[steps] if protocol == "lr" else
            rate[steps] * r**2, "elr": elr_measured, "wd": wd[steps], "radius": r,
            "loss": records["loss"], "volume": r**2 / 2.0, "volume_eq": eq["volume"][steps],
            "volume_lag": lag["volume"][steps], "volume_lag_q": lag_q["volume"][steps],
            "temperature_eq": eq["temperature"][steps],
            "temperature_lag": lag["temperature"][steps], "tau": eq["tau"][steps],
            "quasi_static": lag_measures(eq["volume"], eq["volume"], eq["tau"])["quasi_static"][
                steps],
            "gap": meas["gap"], "gap_lag": lag["volume"][steps] / eq["volume"][steps] - 1.0}
    s2 = probes["trace_sigma"] / (dim - 1)
    t_meas = probe_elr * s2 / 2.0
    prob = {"step": pst.astype(float), "elr": probe_elr, "radius": probes["radius"],
            "trace_sigma": probes["trace_sigma"], "trace_sigma_se": probes["trace_sigma_se"],
            "grad_norm2": probes["grad_norm2"], "trace_total": probes["trace_total"],
            "sigma2": s2, "temperature": t_meas,
            "temperature_se": probe_elr * probes["trace_sigma_se"] / (dim - 1) / 2.0,
            "temperature_eq": eq["temperature"][pst], "temperature_lag": lag["temperature"][pst],
            "entropy": _entropy(t_meas, probes["radius"] ** 2, dim),
            "entropy_eq": eq["entropy"][pst], "entropy_lag": lag["entropy"][pst]}
    if lag_a is not None:
        recs["volume_lag_angular"] = lag_a["volume"][steps]
        recs["temperature_lag_angular"] = lag_a["temperature"][steps]
        prob["temperature_lag_angular"] = lag_a["temperature"][pst]
    return {"protocol": protocol, "dim": dim, "noise": curve.to_dict(), "exact": exact,
            "angular_rate": angular_rate, "records": recs, "probes": prob,
            "summary": track_summary(recs, prob, milestone)}


def format_track(summary: dict[str, Any]) -> str:
    """A few lines from a `track_summary`."""

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = [f"max |V/V_eq - 1|: measured {pct(summary['max_abs_gap_measured'])}, lagged path "
             f"{pct(summary['max_abs_gap_predicted'])}",
             f"RMS rel. error of V: lagged path {pct(summary['volume_rms_rel_error_lagged'])}, "
             f"equilibrium curve {pct(summary['volume_rms_rel_error_equilibrium'])}, radial map "
             f"with the measured Q {pct(summary['volume_rms_rel_error_lagged_measured_q'])}",
             f"RMS rel. error of T: lagged path "
             f"{pct(summary['temperature_rms_rel_error_lagged'])}, equilibrium curve "
             f"{pct(summary['temperature_rms_rel_error_equilibrium'])}",
             f"radial relaxation time {summary['tau_min']:.3g}..{summary['tau_max']:.3g} steps; "
             f"max quasi-static ratio tau |dlogV_eq/dt| {summary['max_quasi_static']:.3g}"]
    if "volume_rms_rel_error_angular" in summary:
        lines.append(f"with relaxing noise (angular rate h): RMS rel. error of V "
                     f"{pct(summary['volume_rms_rel_error_angular'])}, of T "
                     f"{pct(summary['temperature_rms_rel_error_angular'])}")
    fit = summary.get("q_relaxation")
    if "milestone" in summary:
        lines.append(f"after the first milestone (step {summary['milestone']}): Q relaxes "
                     + ("(no exponential fit)" if fit is None else
                        f"with tau_Q = {fit['tau']:.0f} +- {fit['tau_se']:.0f} steps (h = "
                        f"{summary['angular_rate_fit']:.3g})")
                     + f" vs radial tau {summary['tau_after_milestone']:.0f}")
    return "\n".join(lines)


def fit_relaxation(t, y) -> dict[str, float] | None:
    """Least-squares fit y = y_inf + (y_0 - y_inf) exp(-(t - t[0]) / tau) (scipy curve_fit):
    {tau, tau_se, y_0, y_inf}; None when it does not converge, tau is not positive, longer
    than 10x the span of t, or its standard error exceeds it."""
    from scipy.optimize import OptimizeWarning, curve_fit

    t = np.asarray(t, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    if len(t) < 4:
        return None
    t = t - t[0]

    def model(tt, y0, yinf, tau):
        return yinf + (y0 - yinf) * np.exp(-tt / tau)

    tail = y[len(y) // 2:].mean()
    p0 = (y[0], tail, max(t[-1] / 4.0, 1.0))
    try:
        with warnings.catch_warnings():  # an undetermined covariance is handled below
            warnings.simplefilter("ignore", OptimizeWarning)
            p, cov = curve_fit(model, t, y, p0=p0, maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    if not (p[2] > 0 and np.all(np.isfinite(cov))) or p[2] > 10 * t[-1] \
            or np.sqrt(cov[2, 2]) > p[2]:
        return None  # no decay within the data, or tau not determined by them
    return {"tau": float(p[2]), "tau_se": float(np.sqrt(cov[2, 2])), "y_0": float(p[0]),
            "y_inf": float(p[1])}


def track_summary(records: dict, probes: dict, milestone: int | None = None
                  ) -> dict[str, Any]:
    """Numbers of a tracked run: max |V/V_eq - 1| measured and predicted (lagged path), the
    RMS error of the lagged-path volume and temperature against the measurements, the same
    for the equilibrium curve, and the max quasi-static ratio. With ``milestone`` (the first
    step of a step decay): the relaxation time of the measured Q after it (`fit_relaxation`)
    next to the radial relaxation time tau there, and the angular rate
    h = 1 / (tau_Q mean(elr)) it implies (mean over the probes after the milestone). With the
    relaxing-noise path in the records: its RMS errors too."""

    def rms(a, b):
        e = a / b - 1.0
        e = e[np.isfinite(e)]
        return float(np.sqrt(np.mean(e**2))) if e.size else None

    def amax(a):
        a = np.abs(a[np.isfinite(a)])
        return float(a.max()) if a.size else None

    out = {"max_abs_gap_measured": amax(records["gap"]),
           "max_abs_gap_predicted": amax(records["gap_lag"]),
           "volume_rms_rel_error_lagged": rms(records["volume_lag"], records["volume"]),
           "volume_rms_rel_error_equilibrium": rms(records["volume_eq"], records["volume"]),
           "volume_rms_rel_error_lagged_measured_q": rms(records["volume_lag_q"],
                                                         records["volume"]),
           "temperature_rms_rel_error_lagged": rms(probes["temperature_lag"],
                                                   probes["temperature"]),
           "temperature_rms_rel_error_equilibrium": rms(probes["temperature_eq"],
                                                        probes["temperature"]),
           "max_quasi_static": amax(records["quasi_static"]),
           "tau_min": float(np.nanmin(records["tau"])),
           "tau_max": float(np.nanmax(records["tau"]))}
    if milestone is not None:
        after = probes["step"] >= milestone
        fit = fit_relaxation(probes["step"][after], probes["trace_total"][after])
        k = int(np.searchsorted(records["step"], milestone))
        out["milestone"] = int(milestone)
        out["q_relaxation"] = fit
        out["tau_after_milestone"] = (float(records["tau"][k]) if k < len(records["tau"])
                                      else None)
        out["angular_rate_fit"] = (None if fit is None else
                                   1.0 / (fit["tau"] * float(np.mean(probes["elr"][after]))))
    if "volume_lag_angular" in records:
        out["volume_rms_rel_error_angular"] = rms(records["volume_lag_angular"],
                                                  records["volume"])
        out["temperature_rms_rel_error_angular"] = rms(probes["temperature_lag_angular"],
                                                       probes["temperature"])
    return out
