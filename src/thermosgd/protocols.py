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

Groups with ``si=False`` are plain SGD, w <- w - lr (g + wd w), with ``lr`` and ``wd``
defaulting to 0: non-SI parameters stay untouched unless the user gives them a rate.

Every step records, per SI group, the radius before the step (and, for the sphere, the norm
after the update, before the projection) as float64 0-dim tensors on the group's device (no
host sync): ``last_radius(i)``, ``last_preprojection_norm(i)`` (for lr and elr, which do not
project, the latter is the current radius, computed when asked). They travel in
``state_dict()``.
The optimizers keep no per-parameter state, so a ``state_dict`` round trip followed by the
same batches continues bit-identically.

The functional batched form (`batched_step_`, `fixed_lr_step_`, `fixed_elr_step_`,
`sphere_step_`, and the `BatchedProtocol` optimizer) applies the same rules to parameters with
a leading config axis G (e.g. `thermosgd.models.BatchedBNMLP`), each config g with its own
lr/elr/wd/radius given as tensors of shape (G,).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from thermosgd.scale_invariance import _batched_radius_sq, _radius_sq

__all__ = [
    "PROTOCOLS",
    "BatchedProtocol",
    "FixedELR",
    "FixedLR",
    "FixedSphere",
    "StepStats",
    "batched_step_",
    "fixed_elr_step_",
    "fixed_lr_step_",
    "make_optimizer",
    "sphere_pressure",
    "sphere_step_",
]

PROTOCOLS = ("lr", "elr", "sphere")


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


def sphere_pressure(preprojection_norm: float, radius: float, elr: float) -> float:
    """Sphere pressure lambda_eff = (r' - r) / (elr r^3) from the pre-projection norm r'."""
    return (preprojection_norm - radius) / (elr * radius**3)


# --------------------------------------------------------------------------------------------
# optimizers
# --------------------------------------------------------------------------------------------


class _ProtocolOptimizer(torch.optim.Optimizer):
    """Shared machinery: SI / non-SI groups, tracking, state_dict checks."""

    protocol: str = ""
    _hyper: tuple[str, ...] = ()  # the SI-group hyperparameters of this protocol

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
            if saved.get("protocol") != mine["protocol"]:
                raise ValueError(
                    f"state_dict group {i} is for protocol {saved.get('protocol')!r}, "
                    f"this optimizer's group {i} is {mine['protocol']!r}"
                )
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
                    for p in params:
                        if p.grad is not None:
                            _sgd_update_(p, p.grad, group["lr"], group["wd"])
                continue
            self._si_step(group)
        return loss

    def _si_step(self, group: dict[str, Any]) -> None:
        raise NotImplementedError


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


def make_optimizer(
    protocol: str,
    params,
    *,
    lr: float | None = None,
    elr: float | None = None,
    wd: float | None = None,
    radius: float | None = None,
) -> _ProtocolOptimizer:
    """Build the optimizer of ``protocol`` in {"lr", "elr", "sphere"} with exactly its arguments.

    "lr" takes lr and wd; "elr" takes elr and wd; "sphere" takes elr and radius (no wd).
    """
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


class BatchedProtocol(torch.optim.Optimizer):
    """One protocol for G configs at once, on parameters with a leading config axis G.

    ``params`` are the SI parameters of a batched model (e.g. ``BatchedBNMLP.si_parameters()``,
    one joint group per config); hyperparameters are numbers or tensors of shape (G,).
    ``last_radius`` / ``last_preprojection_norm`` return the per-config (G,) float64 tensors of
    the last step. For the sphere, the constructor puts every config on its sphere.
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
        defaults = {k: _per_config(k, given[k], G, dev).clone() for k in need}
        defaults.update(protocol=protocol, last_radius=None, last_norm=None)
        super().__init__([{"params": params}], defaults)
        self.protocol, self.num_configs = protocol, G
        if protocol == "sphere":
            from thermosgd.scale_invariance import set_batched_group_radius

            set_batched_group_radius(params, defaults["radius"])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self.param_groups:
            raise ValueError("BatchedProtocol holds exactly one (joint, batched) group")
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("param_groups", [{}])[0].get("protocol")
        if saved != self.protocol:
            raise ValueError(
                f"state_dict is for protocol {saved!r}, this optimizer is {self.protocol!r}"
            )
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
