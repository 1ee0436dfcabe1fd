"""The paper's three training protocols as ``torch.optim.Optimizer``s (reference-impl. 3.4).

Each parameter group with ``si=True`` (the default) is one scale-invariant (SI) group with its
own radius r = ||w|| (the paper uses one joint group of all SI weights). Per step, with g the
minibatch gradient of the group:

* `FixedLR`     (protocol ``"lr"``):     w <- w - lr (g + wd w)   (torch SGD, coupled L2)
* `FixedELR`    (protocol ``"elr"``):    w <- w - lr_t (g + wd w),  lr_t = elr * r_t^2,
  r_t the group radius before the step;
* `FixedSphere` (protocol ``"sphere"``): w' = w - elr r^2 g (no weight decay), then
  w <- r w' / ||w'||. The constructor puts each group on its sphere. The pre-projection norm
  r' = ||w'|| measures the sphere's pressure, lambda_eff = (r' - r) / (elr r^3)
  (``last_pressure``; average it over a stationary window).

Two more optimizers run the fixed-LR protocol ("lr") with per-parameter state:

* `MomentumLR`  (optimizer ``"momentum"``): heavy ball with coupled L2, exactly
  ``torch.optim.SGD(momentum=beta, weight_decay=wd, dampening=0, nesterov=False)``:
  d = g + wd w; v <- beta v + d (v = d at the first step); w <- w - lr v;
* `AdamWLR`     (optimizer ``"adamw"``): decoupled weight decay, exactly ``torch.optim.AdamW``
  (amsgrad off): w <- (1 - lr wd) w; m <- b1 m + (1-b1) g; s <- b2 s + (1-b2) g^2;
  w <- w - (lr / (1 - b1^t)) m / (sqrt(s) / sqrt(1 - b2^t) + eps).

Their closed forms (stationary radius, temperature) are in `thermosgd.theory`.

Groups with ``si=False`` follow the optimizer's rule (SGD for the three protocols), with ``lr``
and ``wd`` defaulting to 0: non-SI parameters stay untouched unless the user gives them a rate.

Every step records, per SI group, the radius before the step (and, for the sphere, the norm
after the update, before the projection) as float64 0-dim tensors on the group's device (no
host sync): ``last_radius(i)``, ``last_preprojection_norm(i)`` (for lr and elr, which do not
project, the latter is the current radius, computed when asked). They travel in
``state_dict()``.
The three protocols keep no per-parameter state; `MomentumLR` / `AdamWLR` keep theirs (momentum
buffer; step, exp_avg, exp_avg_sq) in ``state``, as torch does. Either way a ``state_dict`` round
trip followed by the same batches continues bit-identically.

The same rules for G configs at once (parameters with a leading config axis) are in
`thermosgd.nn.batched`. Which hyperparameters a protocol takes, the optimizer names and the
default betas come from `thermosgd.spec`; arguments are checked by `thermosgd._validate`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from thermosgd._validate import check_fraction, check_number
from thermosgd.nn.scale_invariance import _radius_sq
from thermosgd.spec import (
    DEFAULT_BETA2,
    DEFAULT_EPS,
    DEFAULT_MOMENTUM,
    HYPERPARAMETERS,
    check_optimizer_settings,
)

__all__ = [
    "AdamWLR",
    "FixedELR",
    "FixedLR",
    "FixedSphere",
    "MomentumLR",
    "check_optimizer_args",
    "make_optimizer",
    "sphere_pressure",
]

#: every SI-group hyperparameter of any protocol (a group may only carry its protocol's)
_ALL_HYPER = ("lr", "elr", "wd", "radius")


def _positive(name: str, value: Any) -> float:
    return check_number(name, value, min_val=0.0, include_min=False)


def sphere_pressure(preprojection_norm: float | Tensor, radius: float | Tensor,
                    elr: float | Tensor) -> float | Tensor:
    """Sphere pressure lambda_eff = (r' - r) / (elr r^3) from the pre-projection norm r'
    (numbers, or per-config tensors of the batched form)."""
    return (preprojection_norm - radius) / (elr * radius**3)


# --------------------------------------------------------------------------------------------
# optimizers
# --------------------------------------------------------------------------------------------


class _ProtocolOptimizer(torch.optim.Optimizer):
    """Shared machinery: SI / non-SI groups, tracking, state_dict checks."""

    protocol: str = ""
    optimizer: str = "sgd"
    _hyper: tuple[str, ...] = ()  # the SI-group hyperparameters of this protocol
    _extra: tuple[str, ...] = ()  # the optimizer's own settings (every group, defaults given)

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)

    # -- groups ---------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        group = dict(param_group)
        si = group.get("si", True)
        if not isinstance(si, bool):
            raise ValueError(f"si == {si!r}, must be True or False (param group)")
        group["si"] = si
        if si:
            unknown = {k for k in _ALL_HYPER if k in group} - set(self._hyper)
            if unknown:
                raise ValueError(
                    f"{sorted(unknown)} not used by the {self.protocol!r} protocol "
                    f"(it takes {', '.join(self._hyper)})"
                )
            for k in self._hyper:
                if k not in group and k not in self.defaults:
                    raise ValueError(f"{k} is required for the {self.protocol!r} protocol")
                group.setdefault(k, self.defaults[k])
            for k in self._hyper:
                group[k] = _positive(k, group[k])
            group["protocol"] = self.protocol
        else:
            group["lr"] = check_number("lr (non-SI group)", group.get("lr", 0.0), min_val=0.0)
            group["wd"] = check_number("wd (non-SI group)", group.get("wd", 0.0), min_val=0.0)
            for k in self._hyper:
                group.setdefault(k, None)
            group["protocol"] = "sgd"
        for k in self._extra:
            group[k] = self._check_extra(k, group.get(k, self.defaults[k]))
        group["optimizer"] = self.optimizer
        group.setdefault("last_radius", None)
        group.setdefault("last_norm", None)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        if si and any(not p.requires_grad for p in group["params"]):
            raise ValueError(
                "an SI param group contains parameters with requires_grad=False (e.g. a frozen "
                "head): pass only the scale-invariant parameters "
                "(thermosgd.nn.models.si_parameters(model)) or put the others in a group with "
                "si=False"
            )
        super().add_param_group(group)
        if si and self.protocol == "sphere" and getattr(self, "_project_init", True):
            self._project(group)

    def _check_extra(self, name: str, value: Any) -> Any:
        return value

    @torch.no_grad()
    def _project(self, group: dict[str, Any]) -> None:
        params = group["params"]
        r = math.sqrt(float(_radius_sq(params)))
        if not (r > 0 and math.isfinite(r)):
            raise ValueError(f"cannot put a group of radius {r} on the sphere")
        for p in params:
            p.mul_(group["radius"] / r)

    def _group(self, i: int) -> dict[str, Any]:
        if not -len(self.param_groups) <= i < len(self.param_groups):
            raise ValueError(f"group == {i}, must index one of {len(self.param_groups)} groups")
        return self.param_groups[i]

    # -- monitors ---------------------------------------------------------------------------

    @property
    def si_groups(self) -> list[int]:
        """Indices of the SI param groups."""
        return [i for i, g in enumerate(self.param_groups) if g["si"]]

    def radius(self, group: int = 0) -> float:
        """Current radius ||w|| of param group ``group`` (float64 accumulation)."""
        return math.sqrt(float(_radius_sq(self._group(group)["params"])))

    def last_radius(self, group: int = 0) -> float | None:
        """Radius of the group before the last step (None before the first step)."""
        v = self._group(group)["last_radius"]
        return None if v is None else float(v)

    def last_preprojection_norm(self, group: int = 0) -> float | None:
        """||w'|| after the last update, before any projection; None before the first step.

        For lr and elr (no projection) this is the current radius of the group."""
        g = self._group(group)
        if g["last_radius"] is None:
            return None
        if g["last_norm"] is None:
            return self.radius(group)
        return float(g["last_norm"])

    # -- state -------------------------------------------------------------------------------

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict.get("param_groups", [])
        for i, (saved, mine) in enumerate(zip(groups, self.param_groups, strict=False)):
            _check_saved_group(saved, mine["protocol"], mine["optimizer"], f" group {i}")
        super().load_state_dict(state_dict)

    # -- step --------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """One update of every group (see the module docstring for the rules)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = group["params"]
            if all(p.grad is None for p in params):
                continue
            for p in params:
                if p.grad is not None and p.grad.is_sparse:
                    raise ValueError("sparse gradients are not supported")
            if not group["si"]:
                if group["lr"] > 0:
                    self._update(group, [p for p in params if p.grad is not None])
                continue
            self._si_step(group)
        return loss

    def _si_step(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _update(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """The optimizer's rule with the group's lr and wd (non-SI groups; the fixed-LR step)."""
        for p in params:
            _sgd_update_(p, _grad_or_zero(p), group["lr"], group["wd"])


def _check_saved_group(saved: dict, protocol: str, optimizer: str, where: str) -> None:
    """Refuse a saved param group of another protocol or optimizer (a saved group without
    "optimizer" predates momentum/AdamW: plain SGD)."""
    for key, mine in (("protocol", protocol), ("optimizer", optimizer)):
        theirs = saved.get(key, "sgd" if key == "optimizer" else None)
        if theirs != mine:
            raise ValueError(
                f"state_dict{where} is for {key} {theirs!r}, this optimizer{where} is {mine!r}"
            )


def _grad_or_zero(p: Tensor) -> Tensor:
    return torch.zeros_like(p) if p.grad is None else p.grad


def _sgd_update_(p: Tensor, grad: Tensor, lr: float | Tensor, wd: float) -> None:
    """torch.optim.SGD's update (no momentum): d = g + wd w; w <- w - lr d."""
    d_p = grad.add(p, alpha=wd) if wd != 0 else grad
    if isinstance(lr, Tensor):
        p.addcmul_(d_p, lr, value=-1)
    else:
        p.add_(d_p, alpha=-lr)


class FixedLR(_ProtocolOptimizer):
    """Fixed learning rate + weight decay: w <- w - lr (g + wd w) (= torch SGD, no momentum)."""

    protocol = "lr"
    _hyper = HYPERPARAMETERS["lr"]

    def __init__(self, params, lr: float, wd: float) -> None:
        super().__init__(params, {"lr": _positive("lr", lr), "wd": _positive("wd", wd)})

    def _si_step(self, group):
        params = group["params"]
        group["last_radius"] = _radius_sq(params).sqrt()
        for p in params:
            _sgd_update_(p, _grad_or_zero(p), group["lr"], group["wd"])


class FixedELR(_ProtocolOptimizer):
    """Fixed effective learning rate + weight decay: lr_t = elr * r_t^2, then as `FixedLR`."""

    protocol = "elr"
    _hyper = HYPERPARAMETERS["elr"]

    def __init__(self, params, elr: float, wd: float) -> None:
        super().__init__(params, {"elr": _positive("elr", elr), "wd": _positive("wd", wd)})

    def _si_step(self, group):
        params = group["params"]
        r2 = _radius_sq(params)
        group["last_radius"] = r2.sqrt()
        lr_t = (group["elr"] * r2).to(params[0].dtype)
        for p in params:
            _sgd_update_(p, _grad_or_zero(p), lr_t, group["wd"])


class FixedSphere(_ProtocolOptimizer):
    """Training on the sphere of radius r: w' = w - elr r^2 g, then w <- r w' / ||w'||.

    No weight decay (passing ``wd`` raises). The constructor rescales every SI group onto its
    sphere (``project_init=False`` skips that; the first step then starts off the sphere).
    """

    protocol = "sphere"
    _hyper = HYPERPARAMETERS["sphere"]

    def __init__(self, params, elr: float, radius: float, *, project_init: bool = True) -> None:
        self._project_init = bool(project_init)
        super().__init__(
            params, {"elr": _positive("elr", elr), "radius": _positive("radius", radius)}
        )

    def _si_step(self, group):
        params = group["params"]
        r = group["radius"]
        group["last_radius"] = _radius_sq(params).sqrt()
        lr = group["elr"] * r * r
        for p in params:
            p.add_(_grad_or_zero(p), alpha=-lr)
        norm = _radius_sq(params).sqrt()
        group["last_norm"] = norm
        scale = (r / norm).to(params[0].dtype)
        for p in params:
            p.mul_(scale)

    def last_pressure(self, group: int = 0) -> float | None:
        """lambda_eff = (r' - r) / (elr r^3) of the last step (None before the first)."""
        g = self._group(group)
        if g["last_norm"] is None or not g["si"]:
            return None
        return sphere_pressure(float(g["last_norm"]), g["radius"], g["elr"])


class MomentumLR(_ProtocolOptimizer):
    """Fixed learning rate with heavy-ball momentum and coupled weight decay, exactly
    ``torch.optim.SGD(lr, momentum, weight_decay=wd, dampening=0, nesterov=False)``:
    d = g + wd w;  v <- momentum v + d  (v = d at the first step);  w <- w - lr v.

    The buffer v is ``state[p]["momentum_buffer"]`` (as torch's), carried by ``state_dict``.
    """

    protocol = "lr"
    optimizer = "momentum"
    _hyper = HYPERPARAMETERS["lr"]
    _extra = ("momentum",)

    def __init__(self, params, lr: float, wd: float, momentum: float = DEFAULT_MOMENTUM) -> None:
        super().__init__(
            params,
            {
                "lr": _positive("lr", lr),
                "wd": _positive("wd", wd),
                "momentum": check_fraction("momentum", momentum),
            },
        )

    def _check_extra(self, name: str, value: Any) -> Any:
        return check_fraction(name, value)

    def _si_step(self, group):
        params = group["params"]
        group["last_radius"] = _radius_sq(params).sqrt()
        self._update(group, params)

    def _update(self, group, params):
        beta = group["momentum"]
        for p in params:
            d_p = _grad_or_zero(p)
            if group["wd"] != 0:
                d_p = d_p.add(p, alpha=group["wd"])
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d_p.detach().clone()
            else:
                buf.mul_(beta).add_(d_p)
            p.add_(buf, alpha=-group["lr"])


class AdamWLR(_ProtocolOptimizer):
    """Fixed learning rate with AdamW (decoupled weight decay), exactly ``torch.optim.AdamW(lr,
    betas=(beta1, beta2), eps, weight_decay=wd)`` (amsgrad off): with t the step count,
    w <- (1 - lr wd) w;  m <- b1 m + (1-b1) g;  s <- b2 s + (1-b2) g^2;
    w <- w - (lr / (1 - b1^t)) m / (sqrt(s) / sqrt(1 - b2^t) + eps).

    ``state[p]`` holds ``step`` (a float32 0-dim tensor), ``exp_avg`` and ``exp_avg_sq``, as
    torch's; ``state_dict`` carries them.
    """

    protocol = "lr"
    optimizer = "adamw"
    _hyper = HYPERPARAMETERS["lr"]
    _extra = ("beta1", "beta2", "eps")

    def __init__(
        self,
        params,
        lr: float,
        wd: float,
        beta1: float = DEFAULT_MOMENTUM,
        beta2: float = DEFAULT_BETA2,
        eps: float = DEFAULT_EPS,
    ) -> None:
        super().__init__(
            params,
            {
                "lr": _positive("lr", lr),
                "wd": _positive("wd", wd),
                "beta1": check_fraction("beta1", beta1),
                "beta2": check_fraction("beta2", beta2),
                "eps": _positive("eps", eps),
            },
        )

    def _check_extra(self, name: str, value: Any) -> Any:
        return _positive(name, value) if name == "eps" else check_fraction(name, value)

    def _si_step(self, group):
        params = group["params"]
        group["last_radius"] = _radius_sq(params).sqrt()
        self._update(group, params)

    def _update(self, group, params):
        lr, wd, b1, b2, eps = (group[k] for k in ("lr", "wd", "beta1", "beta2", "eps"))
        for p in params:
            grad = _grad_or_zero(p)
            state = self.state[p]
            if not state:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            step = float(state["step"])
            if wd != 0:
                p.mul_(1 - lr * wd)
            m, s = state["exp_avg"], state["exp_avg_sq"]
            m.lerp_(grad, 1 - b1)
            s.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            step_size = lr / (1 - b1**step)
            denom = (s.sqrt() / (1 - b2**step) ** 0.5).add_(eps)
            p.addcdiv_(m, denom, value=-step_size)


def make_optimizer(
    protocol: str,
    params,
    *,
    lr: float | None = None,
    elr: float | None = None,
    wd: float | None = None,
    radius: float | None = None,
    optimizer: str = "sgd",
    momentum: float | None = None,
    beta2: float | None = None,
) -> _ProtocolOptimizer:
    """Build the optimizer of ``protocol`` in {"lr", "elr", "sphere"} with exactly its arguments.

    "lr" takes lr and wd; "elr" takes elr and wd; "sphere" takes elr and radius (no wd).
    ``optimizer``: "sgd" (the protocols as in the paper), or, with protocol "lr" only,
    "momentum" (`MomentumLR`, heavy-ball ``momentum`` beta, default 0.9) or "adamw" (`AdamWLR`,
    ``momentum`` = beta1, default 0.9, and ``beta2``, default 0.999).
    """
    check_optimizer_args(protocol, optimizer, momentum, beta2)
    if optimizer != "sgd":
        if lr is None or wd is None or elr is not None or radius is not None:
            raise ValueError(f"optimizer {optimizer!r} takes exactly lr and wd")
        b1 = DEFAULT_MOMENTUM if momentum is None else momentum
        if optimizer == "momentum":
            return MomentumLR(params, lr=lr, wd=wd, momentum=b1)
        b2 = DEFAULT_BETA2 if beta2 is None else beta2
        return AdamWLR(params, lr=lr, wd=wd, beta1=b1, beta2=b2)
    given = {
        k: v for k, v in {"lr": lr, "elr": elr, "wd": wd, "radius": radius}.items() if v is not None
    }
    cls = {"lr": FixedLR, "elr": FixedELR, "sphere": FixedSphere}[protocol]  # checked above
    extra = set(given) - set(cls._hyper)
    if extra:
        hint = (
            " (the sphere protocol has no weight decay)"
            if protocol == "sphere" and "wd" in extra
            else ""
        )
        raise ValueError(f"protocol {protocol!r} does not take {sorted(extra)}{hint}")
    missing = [k for k in cls._hyper if k not in given]
    if missing:
        raise ValueError(f"protocol {protocol!r} needs {missing}")
    return cls(params, **given)


def check_optimizer_args(
    protocol: str, optimizer: str, momentum: Any = None, beta2: Any = None
) -> None:
    """`thermosgd.spec.check_optimizer_settings` (tensors of per-config betas are checked per
    config by the batched steps)."""
    check_optimizer_settings(protocol, optimizer, momentum, beta2)

