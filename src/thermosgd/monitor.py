"""Thermodynamic monitor for any training run of a scale-invariant (SI) network.

`ThermoMonitor` records what a run observes of one SI group: cheap per-step records (radius,
loss, pre-projection norm), gradient-noise probes (`NoiseEstimate`, from
`thermosgd.nn.probes.estimate_gradient_noise`), the distance from scale invariance, and weight
snapshots (a `thermosgd.estimators.snapshots.EntropyQueue`). `ThermoMonitor.stationary_state`
turns the records of a window (default: the second half of the recorded steps) into the
measured state T, p, V, U, S with uncertainties (`thermosgd.estimators.stationarity`: batch
means, probe combination), the theory's predictions from the measured noise
(`thermosgd.theory.predict`, the only place that knows the optimizers' closed forms) and the
stationarity verdict with reasons (`StationarityCriteria`). Steps count iterations since the
start of training (step 0 = initialization). `ThermoMonitor.attach` wires a monitor to a model
and a thermosgd protocol optimizer or plain ``torch.optim.SGD`` (`thermosgd.nn.attach`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor, nn
from torch.optim import Optimizer

from thermosgd import spec
from thermosgd._validate import check_int, check_number
from thermosgd.estimators.noise import NoiseEstimate
from thermosgd.estimators.readout import live_scalars
from thermosgd.estimators.snapshots import DEFAULT_MEMORY_BUDGET, EntropyQueue
from thermosgd.estimators.stationarity import StationarityCriteria, verdict
from thermosgd.estimators.window_state import measure_window
from thermosgd.nn.attach import AttachedMonitor, attach
from thermosgd.nn.probes import LossFn
from thermosgd.nn.scale_invariance import NOT_SI, SI_RADIAL_TOLERANCE, si_findings

__all__ = ["ThermoMonitor"]

_NAN = float("nan")
#: the betas `set_hyperparameters` takes beside the protocol's hyperparameters
_BETAS = ("momentum", "beta2")
#: columns of `ThermoMonitor.noise_history`: the step and the fields of a `NoiseEstimate`
_NOISE_KEYS = ("step", "trace_sigma", "trace_sigma_se", "grad_norm2", "grad_norm2_se",
               "trace_total", "trace_total_se", "radius", "n")
#: `theory.predict` fields in the order of the stationary state (elr_measured is written as
#: the key "elr_measured")
_PREDICTED = ("temperature", "temperature_se", "temperature_measured", "temperature_measured_se",
              "pressure", "pressure_se", "pressure_sde", "pressure_sde_se", "pressure_discrete",
              "pressure_discrete_se", "radius_sde", "radius_sde_se", "radius_discrete",
              "radius_discrete_se", "relaxation_time")


def _scalar(name: str, v: Any) -> float:
    """A scalar record as a float (a one-element tensor, a number or a 0-d array; non-finite
    values are kept: they mark a diverged run)."""
    if isinstance(v, Tensor):
        if v.numel() != 1:
            raise ValueError(f"{name}.shape == {tuple(v.shape)}, must be a scalar")
        return float(v.detach())
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer, np.ndarray)):
        raise ValueError(f"{name} == {v!r}, must be a real number")
    if np.ndim(v) != 0:
        raise ValueError(f"{name}.shape == {np.shape(v)}, must be a scalar")
    return float(v)


def _betas(protocol: str, optimizer: str, momentum, beta2) -> tuple[Any, Any]:
    """(momentum, beta2) of ``optimizer`` with torch's defaults (None where it has none)."""
    spec.check_optimizer_settings(protocol, optimizer, momentum, beta2)
    b1, b2 = spec.optimizer_betas(optimizer, momentum, beta2)
    return (None if b1 is None else float(b1)), (None if b2 is None else float(b2))


def _check_hyper(protocol: str, given: dict[str, Any]) -> dict[str, float]:
    """The protocol's hyperparameters (positive, finite) from the ones given (None: absent)."""
    takes = spec.HYPERPARAMETERS[protocol]
    for k, v in given.items():
        if v is not None and k not in takes:
            raise ValueError(f"{k} == {v!r}, must not be given: protocol {protocol!r} takes "
                             f"{', '.join(takes)}")
    for k in takes:
        if given[k] is None:
            raise ValueError(f"{k} == None, must be given: protocol {protocol!r} takes "
                             f"{', '.join(takes)}")
    return {k: check_number(k, v, min_val=0.0, include_min=False)
            for k, v in given.items() if v is not None}


class ThermoMonitor:
    """Records of one SI group's training run and its measured thermodynamic state.

    ``protocol`` in {"lr", "elr", "sphere"} with its hyperparameters (lr + wd, elr + wd,
    elr + radius); ``dim`` = d, the number of SI parameters. ``optimizer`` "momentum" (heavy
    ball, ``momentum`` = beta, default 0.9) or "adamw" (``momentum`` = beta1, default 0.9,
    ``beta2`` default 0.999) with protocol "lr" switches the predictions (radius, temperature,
    pressure, relaxation time) to that optimizer's closed forms (`thermosgd.theory.predict`).
    ``record_step`` is cheap (three floats appended) and may be called at any cadence;
    ``record_noise`` stores a `NoiseEstimate` (e.g. from `estimate_gradient_noise`);
    ``push_snapshot`` feeds an `EntropyQueue` of ``queue_capacity`` snapshots stored as
    ``dtype`` within ``memory_budget`` bytes (default 256 MiB; beyond it, or with
    ``snapshot_storage="sketch"``, CountSketches of the directions, see
    `thermosgd.estimators.snapshots`). Non-finite values are recorded (the run is then
    reported as diverged); negative radii or norms raise. ``si_tolerance`` (None, or set by
    `attach`: `SI_RADIAL_TOLERANCE`): a relative radial gradient above it (`record_si_check`,
    `record_si_distance`) reports the group as not scale-invariant in the verdict, the
    warnings and the summary (`si_findings`).
    """

    si_tolerance: float | None = None

    def __init__(self, protocol: str, dim: int, *, lr: float | None = None,
                 elr: float | None = None, wd: float | None = None,
                 radius: float | None = None, queue_capacity: int = 1000, dtype=np.float32,
                 criteria: StationarityCriteria | None = None, optimizer: str = "sgd",
                 momentum: float | None = None, beta2: float | None = None,
                 memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
                 snapshot_storage: str = "auto") -> None:
        self.momentum, self.beta2 = _betas(protocol, optimizer, momentum, beta2)
        self.optimizer, self.protocol = optimizer, protocol
        self.dim = check_int("dim", dim, min_val=2)
        self._set_hyper(_check_hyper(protocol, {"lr": lr, "elr": elr, "wd": wd,
                                                "radius": radius}))
        self._hyper0 = dict(self.hyper)
        self._changes: list[tuple[int, dict[str, float]]] = []  # (step, hyper from then on)
        self.criteria = StationarityCriteria() if criteria is None else criteria
        if not isinstance(self.criteria, StationarityCriteria):
            raise ValueError(f"criteria == {criteria!r}, must be a StationarityCriteria")
        self.queue = EntropyQueue(queue_capacity, self.dim, dtype=dtype,
                                  memory_budget=memory_budget, storage=snapshot_storage)
        self._steps: list[int] = []
        self._radius: list[float] = []
        self._loss: list[float] = []
        self._prenorm: list[float] = []
        self._noise: list[tuple] = []  # (step, *NoiseEstimate fields), see _NOISE_KEYS
        self._si: list[tuple[int, float, float]] = []  # (step, radial mean, radial rms)
        self._si_checks: dict[str, float] = {}  # stage -> one-batch relative radial gradient
        self._betas0 = (self.momentum, self.beta2)
        self._n_snapshots = 0

    def _set_hyper(self, hyper: dict[str, float]) -> None:
        """The hyperparameters in force (and the betas, where ``hyper`` holds them)."""
        self.momentum, self.beta2 = (hyper.get(k, getattr(self, k)) for k in _BETAS)
        hyper = {k: v for k, v in hyper.items() if k not in _BETAS}
        self.hyper = hyper
        self.lr, self.elr, self.wd, self.radius = (
            self.hyper.get(k) for k in ("lr", "elr", "wd", "radius"))

    # -- recording -----------------------------------------------------------------------------

    def _betas_dict(self) -> dict[str, float]:
        """The betas in force, as `set_hyperparameters` takes them (none for SGD)."""
        return {k: getattr(self, k) for k in _BETAS if getattr(self, k) is not None}

    def _initial(self) -> dict[str, float]:
        """The hyperparameters and betas the monitor was built with."""
        return self._hyper0 | {k: v for k, v in zip(_BETAS, self._betas0, strict=True)
                               if v is not None}

    def set_hyperparameters(self, step: int, **values: float) -> None:
        """The protocol's hyperparameters and the optimizer's betas (``momentum``: heavy-ball
        beta or AdamW beta1, ``beta2``) in force from iteration ``step`` on (a scheduler, a
        warm-up, a manual change; keys it omits keep their value). A change starts a new
        state: the default window is the second half of the records since the last change,
        the burn-in counts from it, predictions use the values in force, the snapshot queue
        restarts, and a window that reaches back over a change is flagged."""
        step = check_int("step", step, min_val=0)
        betas = {k: values.pop(k, getattr(self, k)) for k in _BETAS}
        b1, b2 = _betas(self.protocol, self.optimizer, betas["momentum"], betas["beta2"])
        hyper = _check_hyper(self.protocol, {k: None for k in ("lr", "elr", "wd", "radius")}
                             | self.hyper | values)
        hyper |= {k: v for k, v in zip(_BETAS, (b1, b2), strict=True) if v is not None}
        if hyper == self.hyper | self._betas_dict():
            return
        if self._changes and step < self._changes[-1][0]:
            raise ValueError(f"step == {step}, must be >= {self._changes[-1][0]} (the last "
                             "change)")
        self._changes.append((step, dict(hyper)))
        self._set_hyper(hyper)
        self.queue.clear()

    @staticmethod
    def _check_step(step: Any, last: int | None) -> int:
        step = check_int("step", step, min_val=0)
        if last is not None and step <= last:
            raise ValueError(f"step == {step}, must be > {last} (steps increase)")
        return step

    def record_step(self, step: int, *, radius: float, loss: float,
                    preprojection_norm: float | None = None) -> None:
        """Record the radius, the (minibatch) training loss and, for the sphere, the norm of
        the iterate before projection, at iteration ``step`` (strictly increasing)."""
        step = self._check_step(step, self._steps[-1] if self._steps else None)
        r, lo = _scalar("radius", radius), _scalar("loss", loss)
        pn = _NAN if preprojection_norm is None else _scalar("preprojection_norm",
                                                              preprojection_norm)
        for name, v in (("radius", r), ("preprojection_norm", pn)):
            if v <= 0:
                raise ValueError(f"{name} == {v!r}, must be > 0")
        self._steps.append(step)
        self._radius.append(r)
        self._loss.append(lo)
        self._prenorm.append(pn)

    def record_noise(self, step: int, estimate: NoiseEstimate) -> None:
        """Record a (scalar) `NoiseEstimate` measured at iteration ``step``."""
        if not isinstance(estimate, NoiseEstimate):
            raise ValueError(f"estimate must be a NoiseEstimate, got {type(estimate).__name__}")
        if estimate.shape != ():
            raise ValueError(
                f"estimate is batched (shape {estimate.shape}); record one config: estimate[g]"
            )
        step = self._check_step(step, self._noise[-1][0] if self._noise else None)
        e = estimate
        if e.trace_sigma < 0 or e.trace_sigma_se < 0 or e.grad_norm2_se < 0:
            raise ValueError("estimate has a negative trace_sigma or standard error")
        self._noise.append((step, *(getattr(e, k) for k in _NOISE_KEYS[1:])))

    def record_si_distance(self, step: int, radial: float, radial_rms: float) -> None:
        """Record the group's distance from scale invariance at iteration ``step`` (strictly
        increasing): the relative radial components |<gbar, w>| / (|gbar| |w|) of the mean
        probe gradient and sqrt(mean <g_i, w>^2) / (sqrt(mean |g_i|^2) |w|) of the minibatch
        gradients (`thermosgd.nn.scale_invariance.radial_gradient_stats`); 0 for an SI group."""
        step = self._check_step(step, self._si[-1][0] if self._si else None)
        a, b = _scalar("radial", radial), _scalar("radial_rms", radial_rms)
        for name, v in (("radial", a), ("radial_rms", b)):
            if v < 0:
                raise ValueError(f"{name} == {v!r}, must be >= 0")
        self._si.append((step, a, b))

    def record_si_check(self, stage: str, radial: float) -> None:
        """Record a one-batch relative radial gradient |<g, w>| / (|g| |w|) of the group
        measured at ``stage`` ("attach", "final"; `thermosgd.nn.scale_invariance.si_distance`),
        replacing an earlier one of that stage; reported against ``si_tolerance``."""
        v = _scalar("radial", radial)
        if v < 0:
            raise ValueError(f"radial == {v!r}, must be >= 0")
        self._si_checks[str(stage)] = v

    def push_snapshot(self, w) -> None:
        """Push the flattened SI vector (numpy or torch, length dim) into the entropy queue."""
        if isinstance(w, Tensor):
            w = w.detach().reshape(-1).cpu().numpy()
        self.queue.push(w)
        self._n_snapshots += 1

    # -- access --------------------------------------------------------------------------------

    def history(self) -> dict[str, np.ndarray]:
        """Step records as arrays: step, radius, loss, preprojection_norm (NaN where absent)."""
        return {
            "step": np.asarray(self._steps, dtype=np.int64),
            "radius": np.asarray(self._radius, dtype=np.float64),
            "loss": np.asarray(self._loss, dtype=np.float64),
            "preprojection_norm": np.asarray(self._prenorm, dtype=np.float64),
        }

    def noise_history(self) -> dict[str, np.ndarray]:
        """Noise probes as arrays: step, trace_sigma(_se), grad_norm2(_se), trace_total(_se),
        radius, n."""
        cols = list(zip(*self._noise, strict=True)) if self._noise else [()] * len(_NOISE_KEYS)
        out = {k: np.asarray(c, dtype=np.float64) for k, c in zip(_NOISE_KEYS, cols, strict=True)}
        out["step"] = out["step"].astype(np.int64)
        out["n"] = out["n"].astype(np.int64)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume monitoring (records and the snapshot queue)."""
        return {
            "protocol": self.protocol,
            "optimizer": (self.optimizer, *self._betas0),
            "dim": self.dim,
            "hyper": dict(self._hyper0),
            "changes": [(s, dict(h)) for s, h in self._changes],
            "history": self.history(),
            "noise": list(self._noise),
            "si_distance": list(self._si),
            "si_checks": dict(self._si_checks),
            "queue": self.queue.state_dict(),
            "n_snapshots": self._n_snapshots,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore records saved by `state_dict` (same protocol, dim and hyperparameters)."""
        mine = (self.protocol, self.dim, self._hyper0)
        if (state.get("protocol"), state.get("dim"), state.get("hyper")) != mine:
            raise ValueError("state_dict is for a different protocol, dim or hyperparameters")
        betas = (self.optimizer, *self._betas0)
        if tuple(state.get("optimizer", ("sgd", None, None))) != betas:
            raise ValueError("state_dict is for a different optimizer or betas")
        h = state["history"]
        self._steps = [int(s) for s in h["step"]]
        self._radius = [float(v) for v in h["radius"]]
        self._loss = [float(v) for v in h["loss"]]
        self._prenorm = [float(v) for v in h["preprojection_norm"]]
        self._noise = [tuple(t) for t in state["noise"]]
        self._si = [tuple(t) for t in state.get("si_distance", [])]  # absent in old states
        self._si_checks = {str(k): float(v) for k, v in state.get("si_checks", {}).items()}
        self.queue.clear()
        if "queue" in state:
            self.queue.load_state_dict(state["queue"])
        for w in state.get("snapshots", ()):  # a state saved before the queue had a layout
            self.queue.push(w)
        self._n_snapshots = int(state["n_snapshots"])
        self._changes = [(int(s), dict(h)) for s, h in state.get("changes", [])]
        self._set_hyper(dict(self._changes[-1][1]) if self._changes else self._initial())

    # -- stationary state ----------------------------------------------------------------------

    def stationary_state(self, window_start: int | None = None, *, entropy: bool = True) -> dict:
        """Measured state over the window [window_start, last step] (default: the second half
        of the records since the last hyperparameter change), the theory's predictions and the
        stationarity verdict: the keys of a stationary record (`thermosgd.records.FIELDS`
        gives each one's meaning; ``*_se`` standard errors).

        The window's means and prediction come from
        `thermosgd.estimators.window_state.measure_window` (radius, volume, energy, noise,
        elr_measured, the `thermosgd.theory.predict.Prediction`); entropy_dir (chord k-NN of
        the snapshot queue, NaN below 3 snapshots or with ``entropy=False``) and entropy;
        si_radial_gradient(_rms), window means of `record_si_distance`; the test statistics
        of `thermosgd.estimators.stationarity.verdict`; ``stationary``, ``reasons`` (empty when
        stationary) and ``warnings`` (tests not run, a group that is not scale-invariant).
        """
        since = self._changes[-1][0] if self._changes else 0
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            out, w = measure_window(
                self.history(), self.noise_history(), protocol=self.protocol,
                optimizer=self.optimizer, dim=self.dim, hyper=self.hyper,
                momentum=self.momentum, beta2=self.beta2, criteria=self.criteria,
                since=since, window_start=window_start, n_snapshots=len(self.queue))
            if out["window_start"] < since:
                w["reasons"].append(
                    f"the hyperparameters changed at step {since} inside the window "
                    f"({_changed(self._changes, self._initial())}): it holds two states")
            pred = w["prediction"]
            out["elr_measured"] = pred.elr_measured
            out.update((k, getattr(pred, k)) for k in _PREDICTED)
            out.update(self._entropy(entropy, w["warnings"]))
            si = np.asarray(self._si, dtype=np.float64).reshape(-1, 3)
            si = si[si[:, 0] >= out["window_start"]]
            out["si_radial_gradient"] = float(si[:, 1].mean()) if si.size else _NAN
            out["si_radial_gradient_rms"] = float(si[:, 2].mean()) if si.size else _NAN
            if self.si_tolerance is not None:  # a group trained as SI: is it?
                why, warn = si_findings(self._si_checks, out["si_radial_gradient"],
                                        self.si_tolerance)
                w["reasons"] += why
                w["warnings"] += warn
            v = verdict(out["window_start"], out["window_end"],
                        relaxation_time=out["relaxation_time"], blocks=w["blocks"],
                        radius=out["radius"], energy=out["energy"], diverged=out["diverged"],
                        radius_set=self.radius, pressure_blocks=w["pressure_blocks"],
                        criteria=self.criteria, origin=since, **w["probes"])
        reasons, warnings = w["reasons"] + v.pop("reasons"), w["warnings"] + v.pop("warnings")
        out.update(v, stationary=not reasons, reasons=reasons, warnings=warnings)
        return out

    def _entropy(self, entropy: bool, warnings: list[str]) -> dict[str, float]:
        """entropy_dir, entropy and their SEs from the snapshot queue (NaN when not computed,
        with a warning appended)."""
        out = dict.fromkeys(("entropy_dir", "entropy_dir_se", "entropy", "entropy_se"), _NAN)
        if entropy and len(self.queue) >= 3:
            try:
                e_dir = self.queue.entropy(duplicates="drop")
                e_full = self.queue.full_entropy(direction=e_dir)
            except ValueError as err:
                warnings.append(f"entropy not computed: {err}")
            else:
                out["entropy_dir"], out["entropy_dir_se"] = float(e_dir.value), float(e_dir.stderr)
                out["entropy"], out["entropy_se"] = float(e_full.value), float(e_full.stderr)
        elif entropy:
            warnings.append(f"only {len(self.queue)} snapshots in the queue: no entropy")
        return out

    def scalars(self) -> dict[str, float]:
        """The current state as a flat dict of floats for any logger (TensorBoard, wandb, a
        CSV): T, p, V, radius, energy, the hyperparameters and betas in force, the latest
        probe's noise and distance from SI (`thermosgd.estimators.readout.live_scalars`). O(1):
        the latest records only, no window statistics, no entropy."""
        if not self._steps:
            raise ValueError("scalars() needs a step: call record_step (an attached monitor: "
                             "observe) first")
        return live_scalars(
            self.protocol, self.optimizer, dim=self.dim, hyper=self.hyper,
            momentum=self.momentum, beta2=self.beta2, step=self._steps[-1],
            radius=self._radius[-1], loss=self._loss[-1], preprojection_norm=self._prenorm[-1],
            noise=dict(zip(_NOISE_KEYS, self._noise[-1], strict=True)) if self._noise else None,
            si_radial=self._si[-1][1] if self._si else _NAN)

    def summary(self, window_start: int | None = None) -> str:
        """A few human-readable lines: the measured state, theory, and the verdict."""
        if not self._steps:
            return f"ThermoMonitor({self.protocol}, d={self.dim}): no steps recorded"
        return (_format_summary(self.stationary_state(window_start), self._steps[0])
                + "\n  snapshot queue: " + self.queue.describe())

    @classmethod
    def attach(cls, model: nn.Module, optimizer: Optimizer, *, loss_fn: LossFn | None = None,
               x: Tensor | None = None, y: Tensor | None = None, queue_capacity: int = 1000,
               params: Sequence[Tensor] | None = None, group: int | None = None,
               n_batches: int = 64, batch_size: int = 128, seed: int = 0,
               snapshot_every: int | None = None, probe_every: int | None = None,
               dtype=np.float32, criteria: StationarityCriteria | None = None,
               si_tolerance: float | None = SI_RADIAL_TOLERANCE,
               memory_budget: int | None = DEFAULT_MEMORY_BUDGET) -> AttachedMonitor:
        """A monitor wired to ``model`` and ``optimizer`` (`thermosgd.nn.attach.attach`).

        ``optimizer``: a thermosgd `FixedLR` / `FixedELR` / `FixedSphere` / `MomentumLR` /
        `AdamWLR` (protocol, optimizer, hyperparameters and the SI group ``group``, default the
        first SI group, are read from it), a plain ``torch.optim.SGD``, with or without
        heavy-ball momentum (dampening 0, no Nesterov), or ``torch.optim.AdamW`` (amsgrad off)
        (protocol "lr" with its lr and weight_decay; the SI group is ``params``, default
        ``si_parameters(model)``; for your own model ``find_scale_invariant_groups(model,
        loss_fn, (x, y))[0].params``; it must be one of its param groups' parameters).
        lr, wd and the betas are read from the param group at every ``observe`` (schedulers
        are followed). ``loss_fn``, ``x``, ``y`` (the training set) enable noise probes of
        ``n_batches`` x ``batch_size`` from a generator seeded ``seed`` and the SI check at
        attach and at the end: a relative radial gradient above ``si_tolerance`` (None: not
        checked) is reported in the verdict, the warnings and the summary.
        ``snapshot_every`` / ``probe_every``: ``observe(step, ...)`` then also pushes a
        snapshot / probes the noise when ``step`` is a multiple. ``memory_budget``: of the
        snapshot queue (bytes; `thermosgd.estimators.snapshots.EntropyQueue`).
        """
        make = functools.partial(cls, queue_capacity=queue_capacity, dtype=dtype,
                                 criteria=criteria, memory_budget=memory_budget)
        return attach(model, optimizer, make, loss_fn=loss_fn, x=x, y=y, params=params,
                      group=group, n_batches=n_batches, batch_size=batch_size, seed=seed,
                      snapshot_every=snapshot_every, probe_every=probe_every,
                      si_tolerance=si_tolerance)


def _changed(changes: list[tuple[int, dict[str, float]]], initial: dict[str, float]) -> str:
    """'lr 0.1 -> 0.01': the last of ``changes`` against the one before (or ``initial``)."""
    new = changes[-1][1]
    old = changes[-2][1] if len(changes) > 1 else initial
    return ", ".join(f"{k} {old[k]:g} -> {v:g}" for k, v in new.items() if old[k] != v)


def _format_summary(s: dict[str, Any], first_step: int) -> str:
    """The lines of `ThermoMonitor.summary` for the stationary state ``s``."""
    protocol = s["protocol"]
    hyp = ", ".join(f"{k}={s[k]:g}" for k in spec.HYPERPARAMETERS[protocol])
    if s["optimizer"] != "sgd":
        betas = f"beta={s['momentum']:g}" if s["beta2"] is None else (
            f"beta1={s['momentum']:g}, beta2={s['beta2']:g}")
        hyp = f"{s['optimizer']}, {hyp}, {betas}"

    def pm(key: str) -> str:
        v, se = s[key], s.get(key + "_se", float("nan"))
        if not np.isfinite(v):
            return "n/a"
        return f"{v:.4g}" if not (np.isfinite(se) and se > 0) else f"{v:.4g} ± {se:.2g}"

    lines = [
        f"ThermoMonitor [{protocol}: {hyp}, d={s['dim']}] steps "
        f"{first_step}..{s['window_end']}, window from {s['window_start']} "
        f"({s['n_records']} records, {s['n_noise']} noise probes, "
        f"{s['n_snapshots']} snapshots)",
        f"  T = {pm('temperature')}   p = {pm('pressure')}   V = {pm('volume')}   "
        f"U = {pm('energy')}   S = {pm('entropy')}",
        f"  sigma2 = {pm('sigma2')}   tr Sigma = {pm('trace_sigma')}   "
        f"|grad L|^2 = {pm('grad_norm2')}",
    ]
    if protocol == "sphere":
        lines.append(
            f"  pressure {pm('pressure')} vs SDE {pm('pressure_sde')}, "
            f"discrete {pm('pressure_discrete')}"
        )
    else:
        lines.append(
            f"  radius {pm('radius')} vs SDE {pm('radius_sde')}, discrete "
            f"{pm('radius_discrete')}; relaxation time {s['relaxation_time']:.3g} steps "
            f"(window {s['window_tau']:.3g} tau)"
        )
    if s["stationary"]:
        lines.append("  stationary: yes")
    else:
        lines.append("  stationary: NO (" + "; ".join(s["reasons"]) + ")")
    lines += [f"  WARNING: {m}" for m in s["warnings"] if m.startswith(NOT_SI)]
    return "\n".join(lines)
