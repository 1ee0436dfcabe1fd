"""Every weight matrix of a model as its own gas: `GroupMonitor`.

`GroupMonitor(model, optimizer)` registers step hooks on a torch optimizer (SGD, heavy ball,
AdamW / Adam with decoupled weight decay) and records, for every parameter group it can place
(default: each trained tensor with weight decay > 0; or a user grouping), at every ``every``-th
step: the squared norm, the minibatch gradient's norm on the unit sphere, the radial gradient
(the group's measured distance from scale invariance) and the update's norm, with the
hyperparameters in force read from the optimizer's param groups at that step (schedulers,
warm-up and manual changes are followed). `GroupMonitor.table` turns a window of each group's
records into its equilibrium against the closed forms (`thermosgd.estimators.group_gas`):
norm and its prediction, angular update and its prediction, relaxation time, time to
equilibrium, temperature, pressure, the verdict. `GroupMonitor.probe` adds per-group gradient
noise from n extra minibatch gradients (the noise then separates tr Sigma from the mean
gradient). Groups it cannot place are listed in ``skipped`` with the reason.

Cost per recorded step: a copy of the monitored weights and a few fused norms; the records
stay on the device and are moved to the host every 64 records; at most ``max_records`` are
kept (then every other one is dropped and the stride doubles).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from thermosgd._validate import check_int, check_number
from thermosgd.estimators.group_gas import RECORD_KEYS, group_state
from thermosgd.estimators.noise import noise_from_gradients
from thermosgd.nn.attach import check_torch_group, torch_kind
from thermosgd.nn.probes import LossFn, minibatch_gradients
from thermosgd.nn.scale_invariance import SI_RADIAL_TOLERANCE

__all__ = ["GroupMonitor"]

_FLUSH = 64
SUPPORTED = ("torch.optim.SGD (plain, or heavy ball with dampening=0, nesterov=False), "
             "torch.optim.AdamW, torch.optim.Adam(decoupled_weight_decay=True)")


def _sharded(p: Tensor) -> bool:
    """A DTensor (FSDP2 / tensor parallel) or an FSDP1 flat parameter: no full tensor here."""
    return type(p).__name__ == "DTensor" or hasattr(p, "_is_flat_param")


class GroupMonitor:
    """Per-group equilibrium of a torch training run (see the module doc).

    ``groups``: None (each trained tensor with weight decay > 0, named as in
    ``model.named_parameters()``) or a mapping name -> parameters (tensors or their names),
    each group inside one param group of the optimizer. ``every``: record every k-th step
    (the hooks cost a weight copy and a few norms on recorded steps only). ``start_step``: the
    step count of the first step the monitor sees (resumed runs). ``si_tolerance``: the mean
    |radial gradient| above which a group is reported as not scale-invariant.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 groups: Mapping[str, Iterable[Tensor | str]] | None = None, *,
                 every: int = 1, start_step: int = 0, max_records: int = 4096,
                 si_tolerance: float = SI_RADIAL_TOLERANCE) -> None:
        self.kind = torch_kind(optimizer)
        if self.kind is None:
            raise ValueError(f"optimizer {type(optimizer).__name__} is not supported by the "
                             f"per-group closed forms; supported: {SUPPORTED}")
        self.model, self.optimizer = model, optimizer
        self.every = check_int("every", every, min_val=1)
        self.max_records = check_int("max_records", max_records, min_val=16)
        self.si_tolerance = check_number("si_tolerance", si_tolerance, min_val=0.0)
        self.step = check_int("start_step", start_step, min_val=0)
        self.skipped: dict[str, str] = {}
        self.names, self._params, self._pg = self._place(groups)
        if not self.names:
            raise ValueError("no parameter group to monitor: "
                             + "; ".join(f"{n}: {r}" for n, r in self.skipped.items()))
        self.dims = [sum(p.numel() for p in ps) for ps in self._params]
        self._flat = [p for ps in self._params for p in ps]
        owner = [g for g, ps in enumerate(self._params) for _ in ps]
        dev = self._flat[0].device
        self._owner = torch.tensor(owner, device=dev)
        self._prev = [torch.empty_like(p, memory_format=torch.preserve_format).detach()
                      for p in self._flat]
        self._buf: list[Tensor] = []
        self._buf_steps: list[int] = []
        self._pre: Tensor | None = None
        self.records: dict[str, np.ndarray] = {k: np.zeros((0, len(self.names)))
                                               for k in RECORD_KEYS}
        self.records["step"] = np.zeros(0, dtype=np.int64)
        self.hyper: list[dict[str, float]] = [self._settings(g) for g in range(len(self.names))]
        self.since = [self.step] * len(self.names)
        self.changes: list[tuple[int, str, str]] = []
        self.noise: list[dict[str, list[float]]] = [
            {k: [] for k in ("step", "trace_sigma", "trace_sigma_se", "grad_norm2",
                             "grad_norm2_se")} for _ in self.names]
        self._hooks = [optimizer.register_step_pre_hook(self._before_step),
                       optimizer.register_step_post_hook(self._after_step)]

    # ------------------------------------------------------------------ groups
    def _place(self, groups) -> tuple[list[str], list[list[Tensor]], list[int]]:
        """(names, params, param-group index) of the groups it can monitor; the others go to
        ``skipped`` with the reason."""
        opt = self.optimizer
        where = {id(p): i for i, pg in enumerate(opt.param_groups) for p in pg["params"]}
        named = dict(self.model.named_parameters())
        by_id = {id(p): n for n, p in named.items()}
        if groups is None:
            groups = {n: [p] for n, p in named.items()}
        names, params, pgs = [], [], []
        for gname, members in groups.items():
            ps = [named[m] if isinstance(m, str) and m in named else m for m in members]
            bad = [m for m in ps if not isinstance(m, Tensor)]
            if bad:
                raise ValueError(f"group {gname!r}: {bad[0]!r} is not a parameter of the model")
            reason = None
            if any(_sharded(p) for p in ps):
                reason = "sharded (no full tensor on this rank)"
            elif not all(p.requires_grad for p in ps):
                reason = "frozen (requires_grad=False)"
            elif not all(id(p) in where for p in ps):
                reason = "not trained by the optimizer"
            elif len({where[id(p)] for p in ps}) > 1:
                raise ValueError(f"group {gname!r} spans param groups "
                                 f"{sorted({where[id(p)] for p in ps})} of the optimizer: a "
                                 "group must share one lr / weight decay")
            else:
                pg = opt.param_groups[where[id(ps[0])]]
                if not float(pg.get("weight_decay", 0) or 0) > 0:
                    reason = "no weight decay (its norm has no equilibrium)"
                else:
                    check_torch_group(self.kind, pg)
            if reason is not None:
                self.skipped[gname] = reason
                continue
            names.append(gname)
            params.append(ps)
            pgs.append(where[id(ps[0])])
        unplaced = [n for n, p in named.items() if p.requires_grad and id(p) not in where]
        for n in unplaced:
            self.skipped.setdefault(by_id.get(id(named[n]), n), "not trained by the optimizer")
        return names, params, pgs

    @property
    def optimizer_name(self) -> str:
        return "adamw" if self.kind == "adamw" else (
            "momentum" if any(self.optimizer.param_groups[i].get("momentum", 0)
                              for i in self._pg) else "sgd")

    def _settings(self, g: int) -> dict[str, float]:
        pg = self.optimizer.param_groups[self._pg[g]]
        s = {"lr": float(pg["lr"]), "wd": float(pg["weight_decay"])}
        if self.kind == "adamw":
            s["momentum"], s["beta2"] = (float(b) for b in pg["betas"])
        elif pg.get("momentum", 0):
            s["momentum"] = float(pg["momentum"])
        return s

    # ------------------------------------------------------------------ hooks
    def _recording(self) -> bool:
        return self.step % self.every == 0

    def _before_step(self, optimizer, args, kwargs) -> None:
        for g in range(len(self.names)):
            s = self._settings(g)
            if s != self.hyper[g]:
                what = ", ".join(f"{k} {self.hyper[g].get(k)} -> {v}" for k, v in s.items()
                                 if self.hyper[g].get(k) != v)
                self.changes.append((self.step, self.names[g], what))
                self.hyper[g], self.since[g] = s, self.step
        if not self._recording():
            self._pre = None
            return
        with torch.no_grad():
            ws = [p.detach() for p in self._flat]
            gs = [p.grad.detach() if p.grad is not None else torch.zeros_like(p)
                  for p in self._flat]
            torch._foreach_copy_(self._prev, ws)
            w2 = torch.stack(torch._foreach_norm(ws)).double() ** 2
            g2 = torch.stack(torch._foreach_norm(gs)).double() ** 2
            gw = torch.stack([torch.vdot(g.reshape(-1), w.reshape(-1))
                              for g, w in zip(gs, ws, strict=True)]).double()
            self._pre = torch.stack([self._group_sum(v) for v in (w2, g2, gw)])

    def _after_step(self, optimizer, args, kwargs) -> None:
        if self._pre is not None:
            with torch.no_grad():
                delta = torch._foreach_sub([p.detach() for p in self._flat], self._prev)
                u2 = self._group_sum(torch.stack(torch._foreach_norm(delta)).double() ** 2)
                w2, g2, gw = self._pre
                rec = torch.stack([w2, g2 * w2, gw / (g2 * w2).sqrt().clamp_min(1e-300), u2])
            self._buf.append(rec)
            self._buf_steps.append(self.step)
            if len(self._buf) >= _FLUSH:
                self._flush()
        self.step += 1

    def _group_sum(self, v: Tensor) -> Tensor:
        return torch.zeros(len(self.names), dtype=v.dtype, device=v.device).index_add_(
            0, self._owner, v)

    def _flush(self) -> None:
        if not self._buf:
            return
        block = torch.stack(self._buf).cpu().numpy()  # (n, 4, G)
        for j, k in enumerate(RECORD_KEYS):
            self.records[k] = np.concatenate([self.records[k], block[:, j, :]])
        self.records["step"] = np.concatenate([self.records["step"], self._buf_steps])
        self._buf, self._buf_steps = [], []
        while self.records["step"].size > self.max_records:
            self.every *= 2
            keep = self.records["step"] % self.every == 0
            for k in self.records:
                self.records[k] = self.records[k][keep]

    def remove(self) -> None:
        """Remove the optimizer hooks (the records stay)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # ------------------------------------------------------------------ probes
    def probe(self, loss_fn: LossFn, x: Tensor, y: Tensor, *, n_batches: int = 8,
              batch_size: int = 128, generator: torch.Generator | int | None = None) -> None:
        """Per-group gradient noise at the current weights from ``n_batches`` minibatch
        gradients drawn i.i.d. from (x, y) (`thermosgd.nn.probes.minibatch_gradients`; the
        model is left as it was): unit-sphere tr Sigma and ||grad L||^2 of every group
        (`noise_from_gradients`), used by `table` for the probes inside each window."""
        grads, _ = minibatch_gradients(self.model, loss_fn, x, y, self._flat,
                                       n_batches=n_batches, batch_size=batch_size,
                                       generator=generator)
        at = 0
        for g, ps in enumerate(self._params):
            d = self.dims[g]
            r = float(torch.sqrt(sum(p.detach().double().square().sum() for p in ps)))
            est = noise_from_gradients(grads[:, at:at + d], r)
            at += d
            rec = self.noise[g]
            rec["step"].append(self.step)
            for k in ("trace_sigma", "trace_sigma_se", "grad_norm2", "grad_norm2_se"):
                rec[k].append(float(getattr(est, k)))

    # ------------------------------------------------------------------ readouts
    def group_records(self, g: int | str) -> dict[str, np.ndarray]:
        """The records of one group (index or name): "step" and `RECORD_KEYS`."""
        self._flush()
        g = self.names.index(g) if isinstance(g, str) else g
        return {"step": self.records["step"], **{k: self.records[k][:, g]
                                                  for k in RECORD_KEYS}}

    def table(self) -> dict[str, list[Any]]:
        """One row per monitored group: its name, size, hyperparameters in force and
        `thermosgd.estimators.group_gas.group_state` (columns; reasons joined by '; ')."""
        self._flush()
        if not self.records["step"].size:
            raise ValueError("no steps recorded: the monitor records at optimizer.step()")
        rows = []
        for g, name in enumerate(self.names):
            h = self.hyper[g]
            noise = {k: np.asarray(v) for k, v in self.noise[g].items()}
            st = group_state(self.group_records(g), dim=self.dims[g],
                             optimizer=self.optimizer_name, lr=h["lr"], wd=h["wd"],
                             momentum=h.get("momentum"), beta2=h.get("beta2"),
                             since=self.since[g], noise=noise, si_tolerance=self.si_tolerance)
            rows.append({"group": name, **st, "reasons": "; ".join(st["reasons"])})
        return {k: [r[k] for r in rows] for k in rows[0]}

    def scalars(self) -> dict[str, float]:
        """The latest record of every group as a flat dict for any logger:
        ``norm/<group>``, ``angular_update/<group>``, ``radial_gradient/<group>``,
        ``lr/<group>``, ``wd/<group>``."""
        self._flush()
        if not self.records["step"].size:
            return {}
        out = {}
        for g, name in enumerate(self.names):
            r2 = float(self.records["norm2"][-1, g])
            out[f"norm/{name}"] = r2 ** 0.5
            out[f"angular_update/{name}"] = (float(self.records["update2"][-1, g]) / r2) ** 0.5
            out[f"radial_gradient/{name}"] = abs(float(self.records["radial"][-1, g]))
            out[f"lr/{name}"], out[f"wd/{name}"] = self.hyper[g]["lr"], self.hyper[g]["wd"]
        return out

    def summary(self, groups: Sequence[str] | None = None) -> str:
        """A text table: per group the norm / prediction, angular update / prediction, time
        to equilibrium, radial gradient and the verdict; then the skipped groups."""
        t = self.table()
        lines = [f"{'group':<32} {'d':>8} {'norm':>9} {'/pred':>6} {'angle':>9} {'/pred':>6} "
                 f"{'t_eq':>8} {'radial':>8}  verdict"]
        for i, name in enumerate(t["group"]):
            if groups is not None and name not in groups:
                continue
            verdict = "equilibrated" if t["equilibrated"][i] else t["reasons"][i]
            lines.append(f"{name[:32]:<32} {t['dim'][i]:>8} {t['norm'][i]:>9.4g} "
                         f"{t['norm_ratio'][i]:>6.3f} {t['angular_update'][i]:>9.3g} "
                         f"{t['angular_ratio'][i]:>6.3f} {t['time_to_equilibrium'][i]:>8.0f} "
                         f"{t['radial_gradient'][i]:>8.1e}  {verdict}")
        for name, why in self.skipped.items():
            lines.append(f"skipped {name}: {why}")
        return "\n".join(lines)
