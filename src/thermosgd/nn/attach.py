"""Attach a monitor to any training loop: read protocol, optimizer and SI group from the torch
optimizer (the only isinstance dispatch on optimizer classes in the library).

`bind_optimizer` recognises the thermosgd protocol optimizers (`FixedLR`, `FixedELR`,
`FixedSphere`, `MomentumLR`, `AdamWLR`: protocol, hyperparameters and SI group read from
them) and plain ``torch.optim.SGD`` (protocol "lr" with its lr and weight_decay, heavy-ball
momentum with dampening 0 and no Nesterov). `attach` builds the monitor through the factory it
is given (`thermosgd.monitor.ThermoMonitor.attach` passes the class) and wraps it with the model
and optimizer in an `AttachedMonitor`, whose ``observe`` / ``probe_noise`` / ``snapshot`` feed
the monitor from the training loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from thermosgd._validate import check_int
from thermosgd.estimators.noise import NoiseEstimate, noise_from_gradients
from thermosgd.nn.models import si_parameters
from thermosgd.nn.optim import AdamWLR, FixedELR, FixedLR, FixedSphere, MomentumLR
from thermosgd.nn.probes import LossFn, _make_generator, minibatch_gradients
from thermosgd.nn.scale_invariance import radial_gradient_stats
from thermosgd.spec import HYPERPARAMETERS

__all__ = ["AttachedMonitor", "Monitor", "OptimizerBinding", "attach", "bind_optimizer"]

_PROTOCOL_OPTIMIZERS = (FixedLR, FixedELR, FixedSphere, MomentumLR, AdamWLR)


class Monitor(Protocol):
    """What an `AttachedMonitor` needs of its monitor (`thermosgd.monitor.ThermoMonitor`)."""

    protocol: str
    hyper: dict[str, float]

    def set_hyperparameters(self, step: int, **values: float) -> None: ...

    def record_step(self, step: int, *, radius: float, loss: float,
                    preprojection_norm: float | None = None) -> None: ...

    def record_noise(self, step: int, estimate: NoiseEstimate) -> None: ...

    def record_si_distance(self, step: int, radial: float, radial_rms: float) -> None: ...

    def push_snapshot(self, w) -> None: ...

    def stationary_state(self, window_start: int | None = None, **kw) -> dict: ...

    def summary(self, window_start: int | None = None) -> str: ...


@dataclass(frozen=True)
class OptimizerBinding:
    """What a torch optimizer says about the SI group it trains: ``protocol`` and its
    hyperparameters ``hyper``; ``betas`` (optimizer name and betas, empty for plain SGD, as
    the monitor takes them); the group's ``params`` and index ``group``; ``kind`` "protocol"
    (a thermosgd optimizer: radius and pre-projection norm come from it) or "sgd"."""

    protocol: str
    hyper: dict[str, float]
    betas: dict[str, Any]
    params: list[Tensor]
    group: int
    kind: str

    @property
    def dim(self) -> int:
        """d: the number of SI parameters."""
        return sum(p.numel() for p in self.params)


def _bind_protocol_optimizer(optimizer, params, group) -> OptimizerBinding:
    si = optimizer.si_groups
    if not si:
        raise ValueError("the optimizer has no SI param group")
    gi = si[0] if group is None else group
    if gi not in si:
        raise ValueError(f"group == {gi!r}, must be an SI param group of the optimizer ({si})")
    pg = optimizer.param_groups[gi]
    if params is not None:
        ids = {id(p) for p in pg["params"]}
        if {id(p) for p in params} != ids:
            raise ValueError("params must be exactly the optimizer's SI group")
    betas: dict[str, Any] = {}
    if isinstance(optimizer, MomentumLR):
        betas = {"optimizer": "momentum", "momentum": pg["momentum"]}
    elif isinstance(optimizer, AdamWLR):
        betas = {"optimizer": "adamw", "momentum": pg["beta1"], "beta2": pg["beta2"]}
    protocol = optimizer.protocol
    hyper = {k: pg[k] for k in HYPERPARAMETERS[protocol]}
    return OptimizerBinding(protocol, hyper, betas, list(pg["params"]), gi, "protocol")


def _bind_torch_sgd(model, optimizer, params, group) -> OptimizerBinding:
    if params is None:
        params = si_parameters(model)
    gparams = [params] if isinstance(params, Tensor) else list(params)
    ids = {id(p) for p in gparams}
    matches = [
        i for i, g in enumerate(optimizer.param_groups) if ids <= {id(p) for p in g["params"]}
    ]
    if not matches:
        raise ValueError(
            "params (the SI group) must all belong to one param group of the SGD optimizer"
        )
    if group is not None and group not in matches:
        raise ValueError(
            f"group == {group!r}, must be a param group that holds the SI parameters: "
            f"{', '.join(map(str, matches))} of the optimizer's {len(optimizer.param_groups)}")
    gi = matches[0] if group is None else group
    pg = optimizer.param_groups[gi]
    if pg.get("nesterov", False) or (pg.get("momentum", 0) and pg.get("dampening", 0)):
        raise ValueError(
            "SGD with heavy-ball momentum needs dampening=0 and nesterov=False (the "
            "theory is for SGD / heavy ball + coupled L2)"
        )
    betas: dict[str, Any] = {}
    if pg.get("momentum", 0):
        betas = {"optimizer": "momentum", "momentum": float(pg["momentum"])}
    if not pg.get("weight_decay", 0):
        raise ValueError(
            f"weight_decay == {pg.get('weight_decay', 0)!r}, must be > 0 (torch SGD runs the "
            "lr protocol)"
        )
    hyper = {"lr": float(pg["lr"]), "wd": float(pg["weight_decay"])}
    return OptimizerBinding("lr", hyper, betas, gparams, gi, "sgd")


def bind_optimizer(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    params: Sequence[Tensor] | None = None,
    group: int | None = None,
) -> OptimizerBinding:
    """Protocol, hyperparameters, betas and SI group of ``optimizer`` (see the module doc).

    thermosgd protocol optimizers: the SI group ``group`` (default the first); ``params``, if
    given, must be exactly that group. ``torch.optim.SGD``: the SI group is ``params``
    (default ``si_parameters(model)``) and must lie in one of its param groups."""
    if isinstance(optimizer, _PROTOCOL_OPTIMIZERS):
        return _bind_protocol_optimizer(optimizer, params, group)
    if type(optimizer) is torch.optim.SGD:
        return _bind_torch_sgd(model, optimizer, params, group)
    raise ValueError(
        "optimizer must be a thermosgd protocol optimizer or torch.optim.SGD, "
        f"got {type(optimizer).__name__} (batched grids: one ThermoMonitor per config)"
    )


def attach(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    make_monitor: Callable[..., Monitor],
    *,
    loss_fn: LossFn | None = None,
    x: Tensor | None = None,
    y: Tensor | None = None,
    params: Sequence[Tensor] | None = None,
    group: int | None = None,
    n_batches: int = 64,
    batch_size: int = 128,
    seed: int = 0,
    snapshot_every: int | None = None,
    probe_every: int | None = None,
) -> AttachedMonitor:
    """A monitor ``make_monitor(protocol, dim, **hyper, **betas)`` of the SI group that
    ``optimizer`` trains (`bind_optimizer`), wired to ``model`` and ``optimizer``.

    ``loss_fn``, ``x``, ``y`` (the training set) enable noise probes of ``n_batches`` x
    ``batch_size`` from a generator seeded ``seed``. ``snapshot_every`` / ``probe_every``:
    ``observe(step, ...)`` then also pushes a snapshot / probes the noise when ``step`` is a
    multiple."""
    b = bind_optimizer(model, optimizer, params=params, group=group)
    mon = make_monitor(b.protocol, b.dim, **b.hyper, **b.betas)
    if (x is None) != (y is None) or (x is not None and loss_fn is None):
        raise ValueError("noise probes need loss_fn, x and y together")
    for name, v in (("snapshot_every", snapshot_every), ("probe_every", probe_every)):
        if v is not None:
            check_int(name, v, min_val=1)
    if probe_every is not None and x is None:
        raise ValueError("probe_every needs loss_fn, x and y")
    return AttachedMonitor(
        mon,
        model,
        optimizer,
        b.params,
        b.group,
        b.kind,
        loss_fn,
        x,
        y,
        n_batches,
        batch_size,
        seed,
        snapshot_every,
        probe_every,
    )


@dataclass
class AttachedMonitor:
    """A monitor wired to a model and optimizer (built by `attach` /
    `thermosgd.monitor.ThermoMonitor.attach`).

    In the training loop, after each ``optimizer.step()``: ``observe(step, loss)`` (the
    radius before the step and, for the sphere, the pre-projection norm come from the
    optimizer; ``loss`` is the minibatch loss of that step); ``probe_noise(step)`` when loss_fn,
    x, y were given; ``snapshot()`` pushes the SI vector. ``stationary_state`` / ``summary``
    delegate to ``monitor``.
    """

    monitor: Monitor
    model: nn.Module
    optimizer: torch.optim.Optimizer
    params: list[Tensor]
    group: int
    kind: str
    loss_fn: LossFn | None
    x: Tensor | None
    y: Tensor | None
    n_batches: int
    batch_size: int
    seed: int
    snapshot_every: int | None
    probe_every: int | None
    generator: torch.Generator | None = field(default=None)

    def __post_init__(self) -> None:
        if self.x is not None:
            self.generator = _make_generator(self.seed, self.x.device)

    def hyperparameters(self) -> dict[str, float]:
        """The protocol's hyperparameters as the optimizer's param group holds them now
        (torch SGD: lr and weight_decay; a thermosgd optimizer: its own keys)."""
        pg = self.optimizer.param_groups[self.group]
        if self.kind == "sgd":
            return {"lr": float(pg["lr"]), "wd": float(pg["weight_decay"])}
        return {k: float(pg[k]) for k in HYPERPARAMETERS[self.monitor.protocol]}

    def observe(self, step: int, loss) -> None:
        """Record step ``step`` (after ``optimizer.step()``, before a scheduler's step: the
        hyperparameters read from the param group are those of the update just made, and a
        change is passed to the monitor's ``set_hyperparameters``); also snapshot / probe on
        cadence."""
        hyper = self.hyperparameters()
        if hyper != self.monitor.hyper:
            self.monitor.set_hyperparameters(step, **hyper)
        opt = self.optimizer
        if self.kind == "protocol":
            r = opt.last_radius(self.group)
            if r is None:
                raise ValueError("observe must follow optimizer.step() (no step recorded yet)")
            pn = (
                opt.last_preprojection_norm(self.group)
                if self.monitor.protocol == "sphere"
                else None
            )
        else:
            with torch.no_grad():
                r = float(sum(p.detach().double().square().sum() for p in self.params).sqrt())
            pn = None
        self.monitor.record_step(step, radius=r, loss=loss, preprojection_norm=pn)
        if self.snapshot_every and step % self.snapshot_every == 0:
            self.snapshot()
        if self.probe_every and step % self.probe_every == 0:
            self.probe_noise(step)

    def probe_noise(self, step: int) -> NoiseEstimate:
        """Estimate the gradient noise at the current weights and record it at ``step``, with
        the group's distance from scale invariance from the same gradients
        (`radial_gradient_stats`, recorded by ``monitor.record_si_distance``)."""
        if self.x is None:
            raise ValueError("probe_noise needs loss_fn, x and y (pass them to attach)")
        grads, radius = minibatch_gradients(
            self.model,
            self.loss_fn,
            self.x,
            self.y,
            self.params,
            n_batches=self.n_batches,
            batch_size=self.batch_size,
            generator=self.generator,
        )
        est = noise_from_gradients(grads, radius)
        self.monitor.record_noise(step, est)
        w = torch.cat([p.detach().reshape(-1) for p in self.params])
        mean, rms = radial_gradient_stats(grads, w)
        if math.isfinite(float(mean)) and math.isfinite(float(rms)):
            self.monitor.record_si_distance(step, float(mean), float(rms))
        return est

    def snapshot(self) -> None:
        """Push the current flattened SI vector into the monitor's entropy queue."""
        with torch.no_grad():
            w = torch.cat([p.detach().reshape(-1) for p in self.params])
        if not torch.isfinite(w).all():
            return  # a diverged run: nothing sensible to store; record_step flags it
        self.monitor.push_snapshot(w)

    def stationary_state(self, window_start: int | None = None, **kw) -> dict:
        """The monitor's `stationary_state` over the window from ``window_start``."""
        return self.monitor.stationary_state(window_start, **kw)

    def summary(self, window_start: int | None = None) -> str:
        """The monitor's `summary`."""
        return self.monitor.summary(window_start)
