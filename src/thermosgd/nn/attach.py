"""Attach a monitor to any training loop: read protocol, optimizer and SI group from the torch
optimizer (the only isinstance dispatch on optimizer classes in the library).

`bind_optimizer` recognises the thermosgd protocol optimizers (`FixedLR`, `FixedELR`,
`FixedSphere`, `MomentumLR`, `AdamWLR`: protocol, hyperparameters and SI group read from
them), plain ``torch.optim.SGD`` (protocol "lr" with its lr and weight_decay, coupled; heavy-ball
momentum with dampening 0; Nesterov is refused: the closed forms are for heavy ball) and
``torch.optim.AdamW`` (protocol "lr", optimizer "adamw": the same update as `AdamWLR`, decoupled
weight decay, lr, betas; eps enters no closed form, as for `AdamWLR`; amsgrad is refused). Anything
else is refused with the list of what is accepted (`ACCEPTED`). `attach` builds the monitor
through the factory it is given (`thermosgd.monitor.ThermoMonitor.attach` passes the class),
checks the group's scale invariance on one batch when it has the data, and wraps monitor,
model and optimizer in an `AttachedMonitor`, whose ``observe`` / ``probe_noise`` / ``snapshot``
feed the monitor from the training loop; ``observe`` reads lr, wd and the betas from the param
group at every step (`group_settings`), so schedulers and manual changes are followed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from thermosgd._validate import check_int, check_number
from thermosgd.estimators.noise import NoiseEstimate, noise_from_gradients
from thermosgd.nn.models import si_parameters
from thermosgd.nn.optim import AdamWLR, FixedELR, FixedLR, FixedSphere, MomentumLR
from thermosgd.nn.probes import LossFn, _make_generator, minibatch_gradients
from thermosgd.nn.scale_invariance import SI_RADIAL_TOLERANCE, radial_gradient_stats, si_distance
from thermosgd.spec import HYPERPARAMETERS

__all__ = ["ACCEPTED", "AttachedMonitor", "Monitor", "OptimizerBinding", "attach",
           "bind_optimizer", "check_torch_group", "group_settings", "torch_kind"]

_PROTOCOL_OPTIMIZERS = (FixedLR, FixedELR, FixedSphere, MomentumLR, AdamWLR)


class Monitor(Protocol):
    """What an `AttachedMonitor` needs of its monitor (`thermosgd.monitor.ThermoMonitor`)."""

    protocol: str
    optimizer: str
    hyper: dict[str, float]
    momentum: float | None
    beta2: float | None
    si_tolerance: float | None

    def set_hyperparameters(self, step: int, **values: float) -> None: ...

    def record_step(self, step: int, *, radius: float, loss: float,
                    preprojection_norm: float | None = None) -> None: ...

    def record_noise(self, step: int, estimate: NoiseEstimate) -> None: ...

    def record_si_distance(self, step: int, radial: float, radial_rms: float) -> None: ...

    def record_si_check(self, stage: str, radial: float) -> None: ...

    def push_snapshot(self, w) -> None: ...

    def scalars(self) -> dict[str, float]: ...

    def stationary_state(self, window_start: int | None = None, **kw) -> dict: ...

    def summary(self, window_start: int | None = None) -> str: ...


@dataclass(frozen=True)
class OptimizerBinding:
    """What a torch optimizer says about the SI group it trains: ``protocol`` and its
    hyperparameters ``hyper``; ``betas`` (optimizer name and betas, empty for plain SGD, as
    the monitor takes them); the group's ``params`` and index ``group``; ``kind`` "protocol"
    (a thermosgd optimizer: radius and pre-projection norm come from it), "sgd" or "adamw"
    (torch's)."""

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
    name = getattr(optimizer, "optimizer", "sgd")
    hyper, betas = group_settings("protocol", optimizer.protocol, name, pg)
    betas = {"optimizer": name, **betas} if betas else {}
    return OptimizerBinding(optimizer.protocol, hyper, betas, list(pg["params"]), gi, "protocol")


#: what `bind_optimizer` accepts, for its errors
ACCEPTED = (
    "a thermosgd protocol optimizer (FixedLR, FixedELR, FixedSphere, MomentumLR, AdamWLR), "
    "torch.optim.SGD (plain, or heavy-ball momentum with dampening=0 and nesterov=False) or "
    "torch.optim.AdamW (amsgrad=False), each with weight_decay > 0 on the SI group"
)


def torch_kind(optimizer) -> str | None:
    """"sgd" / "adamw" for the torch optimizers the closed forms cover (AdamW: also Adam with
    decoupled_weight_decay=True, the same algorithm), None otherwise."""
    if type(optimizer) is torch.optim.SGD:
        return "sgd"
    if type(optimizer) is torch.optim.AdamW or (
        type(optimizer) is torch.optim.Adam
        and all(g.get("decoupled_weight_decay", False) for g in optimizer.param_groups)
    ):
        return "adamw"
    return None


def check_torch_group(kind: str, pg: dict) -> None:
    """Refuse the settings of torch SGD / AdamW the closed forms do not cover."""
    if pg.get("maximize", False):
        raise ValueError("maximize == True, must be False (the monitor follows a descent)")
    if kind == "sgd" and pg.get("nesterov", False):
        raise ValueError(
            "nesterov == True, must be False: the closed forms (thermosgd.theory.momentum) are "
            "for heavy-ball momentum, torch.optim.SGD(momentum=beta, dampening=0, "
            f"nesterov=False); accepted: {ACCEPTED}")
    if kind == "sgd" and pg.get("momentum", 0) and pg.get("dampening", 0):
        raise ValueError(
            f"dampening == {pg['dampening']!r}, must be 0: SGD with heavy-ball momentum needs "
            "dampening=0 and nesterov=False (the theory is for SGD / heavy ball + coupled L2)")
    if kind == "adamw" and pg.get("amsgrad", False):
        raise ValueError("amsgrad == True, must be False: the AdamW closed forms "
                         "(thermosgd.theory.adamw) are for torch.optim.AdamW(amsgrad=False)")
    if not pg.get("weight_decay", 0):
        raise ValueError(
            f"weight_decay == {pg.get('weight_decay', 0)!r}, must be > 0 (torch "
            f"{'SGD' if kind == 'sgd' else 'AdamW'} runs the lr protocol: lr and wd)")


def group_settings(
    kind: str, protocol: str, optimizer: str, pg: dict
) -> tuple[dict[str, float], dict[str, float]]:
    """(hyperparameters, betas) as the param group ``pg`` holds them now: the protocol's
    hyperparameters (torch SGD / AdamW: lr and weight_decay as "wd") and the betas the
    monitor takes (``momentum``: the heavy-ball beta or AdamW's beta1; ``beta2``: AdamW's;
    none for plain SGD). ``kind``: "protocol" (a thermosgd optimizer), "sgd" or "adamw" (torch);
    ``optimizer``: "sgd", "momentum" or "adamw"."""
    if kind == "protocol":
        hyper = {k: float(pg[k]) for k in HYPERPARAMETERS[protocol]}
        betas = {"momentum": pg["momentum"]} if optimizer == "momentum" else (
            {"momentum": pg["beta1"], "beta2": pg["beta2"]} if optimizer == "adamw" else {})
    else:
        hyper = {"lr": float(pg["lr"]), "wd": float(pg["weight_decay"])}
        if kind == "adamw":
            betas = dict(zip(("momentum", "beta2"), pg["betas"], strict=True))
        elif optimizer == "momentum":
            betas = {"momentum": pg["momentum"]}
        else:
            if pg.get("momentum", 0):
                raise ValueError(
                    f"momentum == {pg['momentum']!r}, must stay 0: the monitor was attached to "
                    "plain SGD (attach a new monitor for heavy-ball momentum)")
            betas = {}
    return hyper, {k: float(v) for k, v in betas.items()}


def _bind_torch(model, optimizer, kind, params, group) -> OptimizerBinding:
    if params is None:
        try:
            params = si_parameters(model)
        except ValueError as e:
            raise ValueError(
                f"{e}, then pass its parameters: groups = find_scale_invariant_groups(model, "
                "loss_fn, (x, y)); ThermoMonitor.attach(model, optimizer, "
                "params=groups[0].params, ...) (the optimizer must train them)") from None
    gparams = [params] if isinstance(params, Tensor) else list(params)
    ids = {id(p) for p in gparams}
    matches = [
        i for i, g in enumerate(optimizer.param_groups) if ids <= {id(p) for p in g["params"]}
    ]
    if not matches:
        raise ValueError(
            f"params (the SI group) must all belong to one param group of the "
            f"{type(optimizer).__name__} optimizer"
        )
    if group is not None and group not in matches:
        raise ValueError(
            f"group == {group!r}, must be a param group that holds the SI parameters: "
            f"{', '.join(map(str, matches))} of the optimizer's {len(optimizer.param_groups)}")
    gi = matches[0] if group is None else group
    pg = optimizer.param_groups[gi]
    check_torch_group(kind, pg)
    name = "adamw" if kind == "adamw" else ("momentum" if pg.get("momentum", 0) else "sgd")
    hyper, betas = group_settings(kind, "lr", name, pg)
    betas = {"optimizer": name, **betas} if betas else {}
    return OptimizerBinding("lr", hyper, betas, gparams, gi, kind)


def bind_optimizer(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    params: Sequence[Tensor] | None = None,
    group: int | None = None,
) -> OptimizerBinding:
    """Protocol, hyperparameters, betas and SI group of ``optimizer`` (see the module doc).

    thermosgd protocol optimizers: the SI group ``group`` (default the first); ``params``, if
    given, must be exactly that group. ``torch.optim.SGD`` / ``torch.optim.AdamW``: the SI
    group is ``params`` (default ``si_parameters(model)``, a thermosgd model's; for any other
    model `find_scale_invariant_groups`) and must lie in one of its param groups; they run
    the lr protocol (lr, wd = weight_decay; SGD's coupled, AdamW's decoupled)."""
    if isinstance(optimizer, _PROTOCOL_OPTIMIZERS):
        return _bind_protocol_optimizer(optimizer, params, group)
    kind = torch_kind(optimizer)
    if kind is not None:
        return _bind_torch(model, optimizer, kind, params, group)
    hint = ""
    if type(optimizer) is torch.optim.Adam:
        hint = ("; torch.optim.Adam's weight_decay is an L2 term added to the gradient, which "
                "the closed forms do not cover: use torch.optim.AdamW (decoupled)")
    raise ValueError(
        f"optimizer must be {ACCEPTED}, got {type(optimizer).__name__}{hint} (batched grids: "
        "one ThermoMonitor per config)"
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
    si_tolerance: float | None = SI_RADIAL_TOLERANCE,
) -> AttachedMonitor:
    """A monitor ``make_monitor(protocol, dim, **hyper, **betas)`` of the SI group that
    ``optimizer`` trains (`bind_optimizer`), wired to ``model`` and ``optimizer``.

    ``loss_fn``, ``x``, ``y`` (the training set) enable noise probes of ``n_batches`` x
    ``batch_size`` from a generator seeded ``seed``. ``snapshot_every`` / ``probe_every``:
    ``observe(step, ...)`` then also pushes a snapshot / probes the noise when ``step`` is a
    multiple. ``si_tolerance``: the relative radial gradient |<g, w>| / (|g| |w|) above which
    the group is reported as not scale-invariant (`si_findings`; None: not checked); with
    loss_fn, x, y it is measured here on one batch (`check_scale_invariance`), at every
    ``stationary_state`` / ``summary`` and by the probes."""
    b = bind_optimizer(model, optimizer, params=params, group=group)
    if si_tolerance is not None:
        si_tolerance = check_number("si_tolerance", si_tolerance, min_val=0.0,
                                    include_min=False)
    mon = make_monitor(b.protocol, b.dim, **b.hyper, **b.betas)
    mon.si_tolerance = si_tolerance
    if (x is None) != (y is None) or (x is not None and loss_fn is None):
        raise ValueError("noise probes need loss_fn, x and y together")
    for name, v in (("snapshot_every", snapshot_every), ("probe_every", probe_every)):
        if v is not None:
            check_int(name, v, min_val=1)
    if probe_every is not None and x is None:
        raise ValueError("probe_every needs loss_fn, x and y")
    am = AttachedMonitor(
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
    if x is not None and si_tolerance is not None:
        am.check_scale_invariance("attach")
    return am


@dataclass
class AttachedMonitor:
    """A monitor wired to a model and optimizer (built by `attach` /
    `thermosgd.monitor.ThermoMonitor.attach`).

    In the training loop, after each ``optimizer.step()``: ``observe(step, loss)`` (the
    radius before the step and, for the sphere, the pre-projection norm come from the
    optimizer, a torch one's radius from a step pre-hook; ``loss`` is the minibatch loss of
    that step); ``probe_noise(step)`` when loss_fn, x, y were given; ``snapshot()`` pushes
    the SI vector; ``scalars()`` for a logger.
    ``stationary_state`` / ``summary`` delegate to ``monitor`` after a final
    `check_scale_invariance`.
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
    _radius_before: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.x is not None:
            self.generator = _make_generator(self.seed, self.x.device)
        if self.kind != "protocol":  # torch's: the radius before each step, as ours record it
            self.optimizer.register_step_pre_hook(self._before_step)

    def _before_step(self, optimizer, args, kwargs) -> None:
        with torch.no_grad():
            self._radius_before = float(
                sum(p.detach().double().square().sum() for p in self.params).sqrt())

    def hyperparameters(self) -> dict[str, float]:
        """The protocol's hyperparameters and the betas as the optimizer's param group holds
        them now (`group_settings`: torch SGD / AdamW lr and weight_decay as wd; a thermosgd
        optimizer its own keys; ``momentum`` = heavy-ball beta or AdamW beta1, ``beta2``)."""
        pg = self.optimizer.param_groups[self.group]
        hyper, betas = group_settings(self.kind, self.monitor.protocol, self.monitor.optimizer,
                                      pg)
        return hyper | betas

    def observe(self, step: int, loss) -> None:
        """Record step ``step`` (after ``optimizer.step()``, before a scheduler's step: the
        hyperparameters and betas read from the param group are those of the update just
        made, and a change is passed to the monitor's ``set_hyperparameters``); also snapshot
        / probe on cadence."""
        now, mon = self.hyperparameters(), self.monitor
        if any(v != (mon.hyper[k] if k in mon.hyper else getattr(mon, k))
               for k, v in now.items()):
            mon.set_hyperparameters(step, **now)
        opt = self.optimizer
        r = opt.last_radius(self.group) if self.kind == "protocol" else self._radius_before
        if r is None:
            raise ValueError("observe must follow optimizer.step() (no step recorded yet)")
        pn = (opt.last_preprojection_norm(self.group)
              if self.kind == "protocol" and self.monitor.protocol == "sphere" else None)
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

    def check_scale_invariance(self, stage: str = "final") -> float:
        """The group's distance from scale invariance now: `si_distance`'s relative radial
        gradient |<g, w>| / (|g| |w|) (0 for SI) on ``batch_size`` training examples drawn by a
        generator seeded ``seed`` (the same batch every call; the model as it runs, state
        restored), recorded by ``monitor.record_si_check(stage, radial)``; NaN (not recorded)
        when the loss is not finite."""
        if self.x is None:
            raise ValueError("check_scale_invariance needs loss_fn, x and y (pass them to attach)")
        gen = _make_generator(self.seed, self.x.device)
        idx = torch.randint(0, self.x.shape[0], (self.batch_size,), generator=gen,
                            device=self.x.device)
        try:
            d = si_distance(self.model, self.loss_fn, (self.x[idx], self.y[idx]), self.params)
        except ValueError:  # a non-finite loss (a diverged run): nothing to measure
            return math.nan
        self.monitor.record_si_check(stage, d.radial)
        return d.radial

    def scalars(self) -> dict[str, float]:
        """The monitor's `scalars`: the current state as a flat dict of floats, for a logger."""
        return self.monitor.scalars()

    def snapshot(self) -> None:
        """Push the current flattened SI vector into the monitor's entropy queue."""
        with torch.no_grad():
            w = torch.cat([p.detach().reshape(-1) for p in self.params])
        if not torch.isfinite(w).all():
            return  # a diverged run: nothing sensible to store; record_step flags it
        self.monitor.push_snapshot(w)

    def _final_check(self) -> None:
        if self.x is not None and self.monitor.si_tolerance is not None:
            self.check_scale_invariance("final")

    def stationary_state(self, window_start: int | None = None, **kw) -> dict:
        """The monitor's `stationary_state` over the window from ``window_start``, after a
        final `check_scale_invariance` (with loss_fn, x, y and an si_tolerance)."""
        self._final_check()
        return self.monitor.stationary_state(window_start, **kw)

    def summary(self, window_start: int | None = None) -> str:
        """The monitor's `summary`, after a final `check_scale_invariance`."""
        self._final_check()
        return self.monitor.summary(window_start)
