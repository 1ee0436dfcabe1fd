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

Their closed forms (stationary radius, temperature) are in `thermosgd.optimizers`.

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

The functional batched form (`batched_step_`, `fixed_lr_step_`, `fixed_elr_step_`,
`sphere_step_`, and the `BatchedProtocol` optimizer) applies the same rules to parameters with
a leading config axis G (e.g. `thermosgd.models.BatchedBNMLP`), each config g with its own
lr/elr/wd/radius given as tensors of shape (G,); `momentum_step_` and `adamw_step_` do the same
for heavy ball and AdamW (``BatchedProtocol(..., optimizer="momentum" | "adamw")``), with their
buffers as tensors of the parameters' shapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from thermosgd.scale_invariance import _batched_radius_sq, _radius_sq

__all__ = [
    "OPTIMIZERS",
    "PROTOCOLS",
    "AdamWLR",
    "BatchedProtocol",
    "FixedELR",
    "FixedLR",
    "FixedSphere",
    "MomentumLR",
    "StepStats",
    "adamw_step_",
    "batched_step_",
    "fixed_elr_step_",
    "fixed_lr_step_",
    "make_optimizer",
    "momentum_step_",
    "sphere_pressure",
    "sphere_step_",
]

PROTOCOLS = ("lr", "elr", "sphere")
#: optimizers; "momentum" and "adamw" run the fixed-LR protocol only
OPTIMIZERS = ("sgd", "momentum", "adamw")
#: default betas: heavy-ball beta and AdamW (beta1, beta2), as torch's defaults (SGD has none)
DEFAULT_MOMENTUM = 0.9
DEFAULT_BETA2 = 0.999
DEFAULT_EPS = 1e-8


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def _nonnegative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be non-negative and finite, got {value!r}")
    return float(value)


def _beta(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def sphere_pressure(preprojection_norm: float, radius: float, elr: float) -> float:
    """Sphere pressure lambda_eff = (r' - r) / (elr r^3) from the pre-projection norm r'."""
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
            raise ValueError(f"param group 'si' must be True or False, got {si!r}")
        group["si"] = si
        if si:
            unknown = {k for k in ("lr", "elr", "wd", "radius") if k in group} - set(self._hyper)
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
            group["lr"] = _nonnegative("lr (non-SI group)", group.get("lr", 0.0))
            group["wd"] = _nonnegative("wd (non-SI group)", group.get("wd", 0.0))
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
                "(thermosgd.models.si_parameters(model)) or put the others in a group with si=False"
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
            raise ValueError(f"group must index one of {len(self.param_groups)} groups, got {i}")
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
    _hyper = ("lr", "wd")

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
    _hyper = ("elr", "wd")

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
    _hyper = ("elr", "radius")

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
    _hyper = ("lr", "wd")
    _extra = ("momentum",)

    def __init__(self, params, lr: float, wd: float, momentum: float = DEFAULT_MOMENTUM) -> None:
        super().__init__(
            params,
            {
                "lr": _positive("lr", lr),
                "wd": _positive("wd", wd),
                "momentum": _beta("momentum", momentum),
            },
        )

    def _check_extra(self, name: str, value: Any) -> Any:
        return _beta(name, value)

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
    _hyper = ("lr", "wd")
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
                "beta1": _beta("beta1", beta1),
                "beta2": _beta("beta2", beta2),
                "eps": _positive("eps", eps),
            },
        )

    def _check_extra(self, name: str, value: Any) -> Any:
        return _positive(name, value) if name == "eps" else _beta(name, value)

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
    _check_optimizer(protocol, optimizer, momentum, beta2)
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
    cls = {"lr": FixedLR, "elr": FixedELR, "sphere": FixedSphere}.get(protocol)
    if cls is None:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
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


def _check_optimizer(
    protocol: str, optimizer: str, momentum: Any = None, beta2: Any = None
) -> None:
    """One-line errors for a bad optimizer / protocol / betas combination (numbers are checked
    to lie in [0, 1); tensors are checked per config by the batched steps)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if optimizer != "sgd" and protocol != "lr":
        raise ValueError(
            f"optimizer {optimizer!r} runs the fixed-LR protocol only (protocol 'lr'), "
            f"got protocol {protocol!r}"
        )
    if optimizer == "sgd" and momentum is not None:
        raise ValueError("momentum is for optimizer 'momentum' or 'adamw' (beta1), not 'sgd'")
    if optimizer != "adamw" and beta2 is not None:
        raise ValueError(f"beta2 is for optimizer 'adamw', not {optimizer!r}")
    if momentum is not None and not isinstance(momentum, Tensor):
        _beta("momentum" if optimizer == "momentum" else "momentum (beta1)", momentum)
    if beta2 is not None and not isinstance(beta2, Tensor):
        _beta("beta2", beta2)


# --------------------------------------------------------------------------------------------
# functional batched form (leading config axis G)
# --------------------------------------------------------------------------------------------


class StepStats(NamedTuple):
    """Per-config float64 tensors (G,): the radius before the step and, for the sphere, the
    norm after the update, before the projection (None for lr/elr: without a projection it is
    just the current radius, ``batched_group_radius(params)``)."""

    radius_before: Tensor
    norm_after: Tensor | None


def _per_config(name: str, value: float | Tensor, G: int, device, check: bool = True) -> Tensor:
    """value as a float64 (G,) tensor on ``device``; with ``check``, all entries must be > 0."""
    t = torch.as_tensor(value, dtype=torch.float64, device=device)
    if t.dim() == 0:
        t = t.expand(G)
    if t.shape != (G,):
        raise ValueError(
            f"{name} must be a number or a tensor of shape ({G},), got {tuple(t.shape)}"
        )
    if check and bool((~torch.isfinite(t) | (t <= 0)).any()):  # a host sync: skipped in the loop
        raise ValueError(f"{name} must be positive and finite for every config")
    return t


def _bview(t: Tensor, p: Tensor) -> Tensor:
    return t.to(p.dtype).view(-1, *([1] * (p.dim() - 1)))


def _coupled_update_(params, grads, lr_t: Tensor, wd_t: Tensor) -> None:
    """w_g <- w_g - lr_g (g_g + wd_g w_g) for every param (two fused ops per param)."""
    for p, g in zip(params, grads, strict=True):
        d_p = torch.addcmul(g, p, _bview(wd_t, p))
        p.addcmul_(d_p, _bview(lr_t, p), value=-1)


def _check_batched(params: Sequence[Tensor], grads: Sequence[Tensor]) -> int:
    if len(params) == 0 or len(params) != len(grads):
        raise ValueError("params and grads must be non-empty sequences of equal length")
    G = params[0].shape[0] if params[0].dim() > 0 else 0
    for p, g in zip(params, grads, strict=True):
        if p.dim() == 0 or p.shape[0] != G or g.shape != p.shape:
            raise ValueError(
                "every param must have the leading config axis G and a grad of its shape"
            )
    return G


@torch.no_grad()
def fixed_lr_step_(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    lr: float | Tensor,
    wd: float | Tensor,
    *,
    check: bool = True,
) -> StepStats:
    """In place, per config g: w_g <- w_g - lr_g (g_g + wd_g w_g)."""
    G = _check_batched(params, grads) if check else params[0].shape[0]
    lr_t = _per_config("lr", lr, G, params[0].device, check)
    wd_t = _per_config("wd", wd, G, params[0].device, check)
    before = _batched_radius_sq(params).sqrt()
    _coupled_update_(params, grads, lr_t, wd_t)
    return StepStats(before, None)


@torch.no_grad()
def fixed_elr_step_(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    elr: float | Tensor,
    wd: float | Tensor,
    *,
    check: bool = True,
) -> StepStats:
    """In place, per config g: w_g <- w_g - elr_g r_g^2 (g_g + wd_g w_g), r_g = ||w_g|| before."""
    G = _check_batched(params, grads) if check else params[0].shape[0]
    elr_t = _per_config("elr", elr, G, params[0].device, check)
    wd_t = _per_config("wd", wd, G, params[0].device, check)
    r2 = _batched_radius_sq(params)
    _coupled_update_(params, grads, elr_t * r2, wd_t)
    return StepStats(r2.sqrt(), None)


@torch.no_grad()
def sphere_step_(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    elr: float | Tensor,
    radius: float | Tensor,
    *,
    check: bool = True,
) -> StepStats:
    """In place, per config g: w'_g = w_g - elr_g r_g^2 g_g, then w_g <- r_g w'_g / ||w'_g||."""
    G = _check_batched(params, grads) if check else params[0].shape[0]
    elr_t = _per_config("elr", elr, G, params[0].device, check)
    r_t = _per_config("radius", radius, G, params[0].device, check)
    before = _batched_radius_sq(params).sqrt()
    lr_t = elr_t * r_t * r_t
    for p, g in zip(params, grads, strict=True):
        p.addcmul_(g, _bview(lr_t, p), value=-1)
    norm = _batched_radius_sq(params).sqrt()
    scale = r_t / norm
    for p in params:
        p.mul_(_bview(scale, p))
    return StepStats(before, norm)


def _per_config_beta(name: str, value: float | Tensor, G: int, device, check: bool) -> Tensor:
    t = _per_config(name, value, G, device, check=False)
    if check and bool(((t < 0) | (t >= 1) | ~torch.isfinite(t)).any()):
        raise ValueError(f"{name} must be in [0, 1) for every config")
    return t


def _check_buffers(params: Sequence[Tensor], buffers: Sequence[Tensor], name: str) -> None:
    if len(buffers) != len(params) or any(
        b.shape != p.shape or b.dtype != p.dtype for p, b in zip(params, buffers, strict=False)
    ):
        raise ValueError(f"{name} must hold one tensor of each param's shape and dtype")


@torch.no_grad()
def momentum_step_(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    buffers: Sequence[Tensor],
    lr: float | Tensor,
    wd: float | Tensor,
    momentum: float | Tensor,
    *,
    check: bool = True,
) -> StepStats:
    """In place, per config g (heavy ball, coupled WD; torch SGD with momentum, dampening 0):
    d = g_g + wd_g w_g;  v_g <- beta_g v_g + d;  w_g <- w_g - lr_g v_g.

    ``buffers`` (the velocities v, updated in place) start at zero, which reproduces torch's
    first step v = d exactly."""
    G = _check_batched(params, grads) if check else params[0].shape[0]
    if check:
        _check_buffers(params, buffers, "buffers")
    dev = params[0].device
    lr_t = _per_config("lr", lr, G, dev, check)
    wd_t = _per_config("wd", wd, G, dev, check)
    beta_t = _per_config_beta("momentum", momentum, G, dev, check)
    before = _batched_radius_sq(params).sqrt()
    for p, g, v in zip(params, grads, buffers, strict=True):
        d_p = torch.addcmul(g, p, _bview(wd_t, p))
        v.mul_(_bview(beta_t, p)).add_(d_p)
        p.addcmul_(v, _bview(lr_t, p), value=-1)
    return StepStats(before, None)


@torch.no_grad()
def adamw_step_(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avgs: Sequence[Tensor],
    exp_avg_sqs: Sequence[Tensor],
    step: int,
    lr: float | Tensor,
    wd: float | Tensor,
    beta1: float | Tensor,
    beta2: float | Tensor,
    eps: float | Tensor = DEFAULT_EPS,
    *,
    check: bool = True,
) -> StepStats:
    """In place, per config g (torch AdamW), ``step`` = t the count including this step (>= 1):
    w <- (1 - lr wd) w;  m <- b1 m + (1-b1) g;  s <- b2 s + (1-b2) g^2;
    w <- w - (lr / (1 - b1^t)) m / (sqrt(s) / sqrt(1 - b2^t) + eps); m, s start at zero."""
    G = _check_batched(params, grads) if check else params[0].shape[0]
    if check:
        _check_buffers(params, exp_avgs, "exp_avgs")
        _check_buffers(params, exp_avg_sqs, "exp_avg_sqs")
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"step must be an integer >= 1, got {step!r}")
    dev = params[0].device
    lr_t = _per_config("lr", lr, G, dev, check)
    wd_t = _per_config("wd", wd, G, dev, check)
    b1 = _per_config_beta("beta1", beta1, G, dev, check)
    b2 = _per_config_beta("beta2", beta2, G, dev, check)
    eps_t = _per_config("eps", eps, G, dev, check)
    before = _batched_radius_sq(params).sqrt()
    step_size = lr_t / (1 - b1**step)
    bc2_sqrt = (1 - b2**step).sqrt()
    # the operations and their order are torch's (single-tensor AdamW), so that each config's
    # float32 step rounds as torch's: AdamW turns round-off in coordinates with tiny gradients
    # into O(lr) steps, so any other order would not stay close to the unbatched run
    for p, g, m, s in zip(params, grads, exp_avgs, exp_avg_sqs, strict=True):
        p.mul_(_bview(1 - lr_t * wd_t, p))
        m.lerp_(g, _bview(1 - b1, p))
        s.mul_(_bview(b2, p)).addcmul_(g * _bview(1 - b2, p), g)
        denom = (s.sqrt() / _bview(bc2_sqrt, p)).add_(_bview(eps_t, p))
        p.addcdiv_(m * _bview(-step_size, p), denom)
    return StepStats(before, None)


def batched_step_(
    protocol: str,
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    *,
    lr: float | Tensor | None = None,
    elr: float | Tensor | None = None,
    wd: float | Tensor | None = None,
    radius: float | Tensor | None = None,
    check: bool = True,
) -> StepStats:
    """Dispatch to `fixed_lr_step_`, `fixed_elr_step_` or `sphere_step_` by ``protocol``."""
    given = {
        k: v for k, v in {"lr": lr, "elr": elr, "wd": wd, "radius": radius}.items() if v is not None
    }
    need = {"lr": ("lr", "wd"), "elr": ("elr", "wd"), "sphere": ("elr", "radius")}.get(protocol)
    if need is None:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if set(given) != set(need):
        raise ValueError(f"protocol {protocol!r} takes exactly {list(need)}, got {sorted(given)}")
    fn = {"lr": fixed_lr_step_, "elr": fixed_elr_step_, "sphere": sphere_step_}[protocol]
    return fn(params, grads, *(given[k] for k in need), check=check)


#: per-parameter buffers of the batched optimizers, in ``BatchedProtocol.state[p]``
BUFFERS = {"sgd": (), "momentum": ("momentum_buffer",), "adamw": ("exp_avg", "exp_avg_sq")}


class BatchedProtocol(torch.optim.Optimizer):
    """One protocol for G configs at once, on parameters with a leading config axis G.

    ``params`` are the SI parameters of a batched model (e.g. ``BatchedBNMLP.si_parameters()``,
    one joint group per config); hyperparameters are numbers or tensors of shape (G,).
    ``last_radius`` / ``last_preprojection_norm`` return the per-config (G,) float64 tensors of
    the last step. For the sphere, the constructor puts every config on its sphere.

    ``optimizer`` "momentum" / "adamw" (protocol "lr" only) step `momentum_step_` /
    `adamw_step_` with per-config ``momentum`` (beta; AdamW's beta1) and ``beta2`` (defaults
    0.9, 0.999); their buffers (`BUFFERS`, shaped like the parameters) live in ``state[p]``
    and the AdamW step count in the group's ``step``, all carried by ``state_dict``.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        protocol: str,
        *,
        lr: float | Tensor | None = None,
        elr: float | Tensor | None = None,
        wd: float | Tensor | None = None,
        radius: float | Tensor | None = None,
        optimizer: str = "sgd",
        momentum: float | Tensor | None = None,
        beta2: float | Tensor | None = None,
    ) -> None:
        params = list(params)
        if not params:
            raise ValueError("params must not be empty")
        G = params[0].shape[0] if params[0].dim() > 0 else 0
        if G == 0 or any(p.dim() == 0 or p.shape[0] != G for p in params):
            raise ValueError("every param must have the same leading config axis G")
        dev = params[0].device
        given = {"lr": lr, "elr": elr, "wd": wd, "radius": radius}
        need = {"lr": ("lr", "wd"), "elr": ("elr", "wd"), "sphere": ("elr", "radius")}.get(protocol)
        if need is None:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        extra = [k for k, v in given.items() if v is not None and k not in need]
        missing = [k for k in need if given[k] is None]
        if extra or missing:
            raise ValueError(
                f"protocol {protocol!r} takes exactly {list(need)}; "
                f"extra {extra}, missing {missing}"
            )
        _check_optimizer(protocol, optimizer, momentum, beta2)
        defaults = {k: _per_config(k, given[k], G, dev).clone() for k in need}
        if optimizer != "sgd":
            b1 = DEFAULT_MOMENTUM if momentum is None else momentum
            defaults["momentum"] = _per_config_beta("momentum", b1, G, dev, True).clone()
        if optimizer == "adamw":
            b2 = DEFAULT_BETA2 if beta2 is None else beta2
            defaults["beta2"] = _per_config_beta("beta2", b2, G, dev, True).clone()
            defaults["eps"] = _per_config("eps", DEFAULT_EPS, G, dev).clone()
            defaults["step"] = 0
        defaults.update(protocol=protocol, optimizer=optimizer, last_radius=None, last_norm=None)
        super().__init__([{"params": params}], defaults)
        self.protocol, self.optimizer, self.num_configs = protocol, optimizer, G
        for p in params:
            for name in BUFFERS[optimizer]:
                self.state[p][name] = torch.zeros_like(p)
        if protocol == "sphere":
            from thermosgd.scale_invariance import set_batched_group_radius

            set_batched_group_radius(params, defaults["radius"])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self.param_groups:
            raise ValueError("BatchedProtocol holds exactly one (joint, batched) group")
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        group = state_dict.get("param_groups", [{}])[0]
        _check_saved_group(group, self.protocol, self.optimizer, "")
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        params = group["params"]
        if all(p.grad is None for p in params):
            return loss
        grads = [_grad_or_zero(p) for p in params]
        if self.optimizer == "momentum":
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            stats = momentum_step_(
                params, grads, bufs, group["lr"], group["wd"], group["momentum"], check=False
            )
        elif self.optimizer == "adamw":
            group["step"] += 1
            stats = adamw_step_(
                params,
                grads,
                [self.state[p]["exp_avg"] for p in params],
                [self.state[p]["exp_avg_sq"] for p in params],
                group["step"],
                group["lr"],
                group["wd"],
                group["momentum"],
                group["beta2"],
                group["eps"],
                check=False,
            )
        else:
            hyper = {k: group[k] for k in ("lr", "elr", "wd", "radius") if k in group}
            stats = batched_step_(self.protocol, params, grads, check=False, **hyper)
        group["last_radius"], group["last_norm"] = stats.radius_before, stats.norm_after
        return loss

    def last_radius(self) -> Tensor | None:
        """Per-config radius before the last step, float64 (G,)."""
        return self.param_groups[0]["last_radius"]

    def last_preprojection_norm(self) -> Tensor | None:
        """Per-config norm after the last update, before projection, float64 (G,) (for lr
        and elr, which do not project, the current radii); None before the first step."""
        g = self.param_groups[0]
        if g["last_radius"] is None:
            return None
        if g["last_norm"] is None:
            return _batched_radius_sq(g["params"]).sqrt()
        return g["last_norm"]

    def last_pressure(self) -> Tensor | None:
        """Sphere only: per-config lambda_eff = (r' - r) / (elr r^3) of the last step."""
        if self.protocol != "sphere":
            raise ValueError("last_pressure is defined for the sphere protocol only")
        g = self.param_groups[0]
        if g["last_norm"] is None:
            return None
        return (g["last_norm"] - g["radius"]) / (g["elr"] * g["radius"] ** 3)
