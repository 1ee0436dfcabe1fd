"""The protocols and optimizers of `thermosgd.nn.optim` for G configs at once (batched).

Parameters carry a leading config axis G (e.g. `thermosgd.nn.models.BatchedBNMLP`); config g
has its own hyperparameters, numbers or float64 tensors of shape (G,). Per config g, with
g_g its minibatch gradient and r_g = ||w_g|| the radius before the step:

* `fixed_lr_step_`   (protocol ``"lr"``):     w_g <- w_g - lr_g (g_g + wd_g w_g);
* `fixed_elr_step_`  (protocol ``"elr"``):    the same with lr_g = elr_g r_g^2;
* `sphere_step_`     (protocol ``"sphere"``): w'_g = w_g - elr_g r_g^2 g_g, then
  w_g <- r_g w'_g / ||w'_g|| (r_g the set radius);
* `momentum_step_`   (optimizer ``"momentum"``): d = g_g + wd_g w_g; v_g <- beta_g v_g + d;
  w_g <- w_g - lr_g v_g (torch SGD with momentum, dampening 0);
* `adamw_step_`      (optimizer ``"adamw"``): torch AdamW's operations in torch's order.

`batched_step_` dispatches the three protocols by name; `BatchedProtocol` is the
``torch.optim.Optimizer`` over all of them, with its buffers (`BUFFERS`) in ``state[p]``.
Each step returns (or records) the per-config radius before the step and, for the sphere, the
norm before the projection (`StepStats`). Every config follows exactly the rule of its
single-config optimizer (tests/nn/test_batched.py compares them step by step).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from thermosgd._validate import check_fraction, check_int, positive_array
from thermosgd.nn.optim import (
    _check_saved_group,
    _grad_or_zero,
    check_optimizer_args,
    sphere_pressure,
)
from thermosgd.nn.scale_invariance import _batched_radius_sq, set_batched_group_radius
from thermosgd.spec import DEFAULT_BETA2, DEFAULT_EPS, DEFAULT_MOMENTUM, hyperparameters

__all__ = [
    "BUFFERS",
    "BatchedProtocol",
    "StepStats",
    "adamw_step_",
    "batched_step_",
    "fixed_elr_step_",
    "fixed_lr_step_",
    "momentum_step_",
    "sphere_step_",
]

#: per-parameter buffers of the batched optimizers, in ``BatchedProtocol.state[p]``
BUFFERS = {"sgd": (), "momentum": ("momentum_buffer",), "adamw": ("exp_avg", "exp_avg_sq")}


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
        raise ValueError(f"{name}.shape == {tuple(t.shape)}, must be () or ({G},) (one per config)")
    if check:  # a host sync: skipped in the training loop
        positive_array(name, t.tolist())
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
    """As `_per_config`; with ``check``, every entry in [0, 1)."""
    t = _per_config(name, value, G, device, check=False)
    if check:
        for v in t.tolist():
            check_fraction(name, v)
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
        check_int("step", step, min_val=1)
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
    need = hyperparameters(protocol)
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
        need = hyperparameters(protocol)
        extra = [k for k, v in given.items() if v is not None and k not in need]
        missing = [k for k in need if given[k] is None]
        if extra or missing:
            raise ValueError(
                f"protocol {protocol!r} takes exactly {list(need)}; "
                f"extra {extra}, missing {missing}"
            )
        check_optimizer_args(protocol, optimizer, momentum, beta2)
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
        return sphere_pressure(g["last_norm"], g["radius"], g["elr"])
