"""What one run records and the stationary document it writes (``stationary.json``).

`RunRecord` is the book-keeping of one config inside an engine (monitor, metrics rows,
whole-set evaluations, divergence, wall time, output directory, the hyperparameters in force
under a per-step hook); `stationary_doc` assembles the document from it (the keys are those of
`thermosgd.records.FIELDS`) and `write_doc` writes it. Under a hook the document's lr / elr /
wd and every prediction are those of the monitor's last state (the values in force at the
end, or the last positive ones when the hook ends with a 0, which is then a reason).
The engine writes documents when a run ends (or diverges); `finished_doc` re-reads or rebuilds
the document of a run that ended earlier.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from thermosgd.io import write_json
from thermosgd.monitor import ThermoMonitor
from thermosgd.train.config import TrainConfig
from thermosgd.train.nets import opt_args
from thermosgd.train.physics import steps_noise

__all__ = [
    "EVAL_KEYS",
    "METRIC_COLUMNS",
    "SI_LOSS_KEYS",
    "RunRecord",
    "finished_doc",
    "generalization",
    "metrics_columns",
    "stationary_doc",
    "write_doc",
]

#: the columns of metrics.csv
METRIC_COLUMNS = (
    "step",
    "loss",
    "radius",
    "preprojection_norm",
    "pressure",
    "trace_total_steps",
    "trace_sigma",
    "trace_sigma_se",
    "grad_norm2",
    "grad_norm2_se",
    "sigma2",
    "temperature",
)
#: the keys of one whole-set evaluation
EVAL_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")
#: the end-of-window distance from scale invariance
SI_LOSS_KEYS = (
    "si_loss_change",
    "si_loss_change_half",
    "si_loss_change_double",
    "si_radial_gradient_end",
)


class RunRecord:
    """One config inside an engine: monitor, metrics rows, status, output directory.

    ``hyper``: the rate and weight decay in force (the config's, or what the engine's hook
    set last, >= 0), ``hyper_since``: the step from which they hold (0: from the start); both
    are checkpointed. The monitor is told every change to positive values
    (`ThermoMonitor.set_hyperparameters`)."""

    def __init__(self, config: TrainConfig, out: Path, dim: int, ckpt: dict | None) -> None:
        self.config, self.out, self.dim = config, out, dim
        self.schedule = config.schedule
        self.hyper = dict(config.hyperparameters)
        self.hyper_since = 0
        self._monitored: tuple[tuple, TrainConfig] = (tuple(self.hyper.items()), config)
        self.monitor = ThermoMonitor(
            config.protocol,
            dim,
            queue_capacity=self.schedule.queue_size,
            **config.hyperparameters,
            **opt_args(config),
        )
        if ckpt is None:
            self.rows: list[dict] = []
            self.evals: list[dict] = []
            self.diverged_at: int | None = None
            self.seconds = 0.0
            self.si_loss: dict[str, float] = {}
        else:
            self.monitor.load_state_dict(ckpt["monitor"])
            self.rows = [dict(r) for r in ckpt["metrics"]]
            self.evals = [dict(r) for r in ckpt.get("evals", [])]
            self.diverged_at = ckpt["diverged_at"]
            self.seconds = float(ckpt["seconds"])
            self.si_loss = dict(ckpt.get("si_loss", {}))
            self.hyper.update(ckpt.get("hyper_in_force", {}))
            self.hyper_since = int(ckpt.get("hyper_since", 0))

    @property
    def active(self) -> bool:
        """Still training (not diverged)."""
        return self.diverged_at is None

    def zero_in_force(self) -> list[str]:
        """The hyperparameters the hook holds at 0 now (lr = 0 freezes the weights, wd = 0
        has no stationary radius): no state of the theory; empty for a positive state."""
        return [k for k, v in self.hyper.items() if v == 0]

    def monitored_config(self) -> TrainConfig:
        """The config with the hyperparameters of the monitor's state (the values in force,
        or the last positive ones while one is 0): what the predictions of the metrics rows
        and the document use. The config itself when they are its own (no hook)."""
        key = tuple((k, self.monitor.hyper[k]) for k in self.hyper)
        if key != self._monitored[0]:
            changed = {k: v for k, v in key if v != getattr(self.config, k)}
            self._monitored = (key, dataclasses.replace(self.config, **changed)
                               if changed else self.config)
        return self._monitored[1]


def metrics_columns(rows: list[dict]) -> dict[str, np.ndarray]:
    """The metrics rows as the columns of metrics.csv (NaN where a row lacks a value)."""
    return {
        k: np.array([r.get(k, np.nan) for r in rows], dtype=np.float64 if k != "step" else np.int64)
        for k in METRIC_COLUMNS
    }


def generalization(run: RunRecord) -> dict[str, float]:
    """Window means of the whole-set evaluations (``eval_<key>``, with the standard error of
    the mean over the ``n_evals`` evaluations, spaced over the window and treated as
    independent) and the generalization gaps gap_loss = test - train loss, gap_acc = train -
    test accuracy (the SE of a gap comes from the per-evaluation differences)."""
    nan = math.nan
    ev = [e for e in run.evals if e["step"] >= run.schedule.window_start]
    out: dict[str, float] = {"n_evals": len(ev)}
    cols = {k: np.array([e[k] for e in ev], dtype=np.float64) for k in EVAL_KEYS}
    cols["gap_loss"] = cols["test_loss"] - cols["train_loss"]
    cols["gap_acc"] = cols["train_acc"] - cols["test_acc"]
    for k, v in cols.items():
        name = k if k.startswith("gap") else f"eval_{k}"
        out[name] = float(v.mean()) if v.size else nan
        out[f"{name}_se"] = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else nan
    return out


def _state(run: RunRecord) -> dict:
    """The monitor's stationary state over the window (a divergence before the window: what
    was recorded), with the divergence added to the verdict."""
    try:
        state = dict(run.monitor.stationary_state(window_start=run.schedule.window_start))
    except ValueError as e:  # a divergence before the window: describe what was recorded
        try:
            state = dict(run.monitor.stationary_state())
        except ValueError:
            state = {"stationary": False, "reasons": [str(e)]}
        state["window_start"] = run.schedule.window_start
    if run.diverged_at is not None:
        state["diverged"] = True
        state["stationary"] = False
        reasons = list(state.get("reasons") or [])
        reasons.append(f"diverged (non-finite loss or radius) by step {run.diverged_at}")
        state["reasons"] = reasons
    zero = run.zero_in_force()
    if zero:
        state["stationary"] = False
        held = ", ".join(f"{k} = 0" for k in zero)
        last = ", ".join(f"{k}={run.monitor.hyper[k]:g}" for k in run.hyper)
        state["reasons"] = [*(state.get("reasons") or []), (
            f"the hyperparameter hook holds {held} from step {run.hyper_since} on: no "
            f"stationary state (T, p and the predictions are those of {last})")]
    return state


def _summary(run: RunRecord) -> str:
    try:
        summary = run.monitor.summary(
            run.schedule.window_start if run.diverged_at is None else None
        )
    except ValueError as e:
        summary = f"no summary: {e}"
    if run.diverged_at is not None:
        summary = f"DIVERGED by step {run.diverged_at}\n{summary}"
    return summary


def stationary_doc(run: RunRecord, steps_done: int, device: torch.device) -> dict:
    """The stationary document of ``run`` after ``steps_done`` steps (see the module
    docstring of `thermosgd.train` and `thermosgd.records.FIELDS` for the keys)."""
    c = run.config
    status = "diverged" if run.diverged_at is not None else "complete"
    state = _state(run)
    summary = _summary(run)
    return {
        "status": status,
        "name": run.out.name,
        "protocol": c.protocol,
        "variant": c.variant,
        # hyperparameters as set; the sphere's radius as radius_set (radius is measured)
        # (under a hook: those of the monitor's last state)
        **{(f"{k}_set" if k == "radius" else k): v
           for k, v in run.monitored_config().hyperparameters.items()},
        "dim": run.dim,
        "steps": c.steps,
        "steps_done": steps_done,
        "diverged_at": run.diverged_at,
        "window_start": run.schedule.window_start,
        "schedule": dataclasses.asdict(run.schedule),
        "noise_fraction": run.schedule.noise_fraction(),
        "device": str(device),
        "seconds": run.seconds,
        **state,
        **steps_noise(run.monitored_config(), run.dim, run.rows, run.schedule.window_start),
        **generalization(run),
        **{k: run.si_loss.get(k, math.nan) for k in SI_LOSS_KEYS},
        "summary": summary,
    }


def write_doc(out: Path, doc: dict) -> dict:
    """Write stationary.json; return it as read back (NaN -> None), what callers see later."""
    write_json(out / "stationary.json", doc)
    return json.loads((out / "stationary.json").read_text())


def finished_doc(c: TrainConfig, out: Path, ckpt: dict) -> dict:
    """The result of a run that has already ended (read back, or rebuilt from its checkpoint)."""
    path = out / "stationary.json"
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
            if doc.get("status") == ckpt["status"]:
                return doc
        except (OSError, ValueError):
            pass
    run = RunRecord(c, out, int(ckpt["dim"]), ckpt)
    return write_doc(out, stationary_doc(run, int(ckpt["step"]), torch.device("cpu")))
