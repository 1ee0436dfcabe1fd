"""Reference for `thermosgd.nn.batched_convnet`: G separate conv models (ConvNet, ResNet), each
with its own single-config optimizer, stepped one after another in a plain loop.

`BatchedProtocol` on a `BatchedConvNet` must do, for every config g, what the single-config
optimizer of `thermosgd.nn.optim.make_optimizer` does on config g's own model (one model, one
``F.cross_entropy``, one optimizer per config, on config g's own batch). `SeparateConvConfigs`
returns everything stacked over the configs, keyed by the single model's parameter and buffer
names, so that a test compares the two paths key by key with
`tests.reference.assert_matches_reference`; `batched_conv_state` reads the same keys from the
batched model and optimizer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from thermosgd.nn.optim import make_optimizer

__all__ = ["SeparateConvConfigs", "batched_conv_state"]

#: the single-config optimizers' per-parameter buffers (torch's names), by optimizer
_BUFFERS = {"sgd": (), "momentum": ("momentum_buffer",), "adamw": ("exp_avg", "exp_avg_sq")}


class SeparateConvConfigs:
    """G conv models, config g trained by ``make_optimizer(protocol, m.si_parameters(), ...)``
    with the hyperparameters ``{k: float(v[g])}`` (numbers or (G,) tensors, as given to
    `BatchedProtocol`)."""

    def __init__(self, models: Sequence, protocol: str, *, optimizer: str = "sgd",
                 **hyper: float | Tensor) -> None:
        self.models = list(models)
        self.protocol, self.optimizer = protocol, optimizer
        G = len(self.models)
        per_config = {k: torch.as_tensor(v, dtype=torch.float64).expand(G)
                      for k, v in hyper.items()}
        self.optimizers = [
            make_optimizer(protocol, m.si_parameters(), optimizer=optimizer,
                           **{k: float(v[g]) for k, v in per_config.items()})
            for g, m in enumerate(self.models)
        ]

    def step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """One step of every config, config after config; x (B, C, H, W) shared or
        (G, B, C, H, W) one batch per config (y (B,) or (G, B) alike).

        Returns, stacked over the configs: ``logits`` (G, B, K) before the step, ``grad:NAME``
        of every SI weight, ``radius_before`` and ``preprojection_norm`` (G,) float64, and for
        the sphere ``pressure`` (G,)."""
        out: dict[str, list] = {"logits": [], "radius_before": [], "preprojection_norm": []}
        for g, (m, opt) in enumerate(zip(self.models, self.optimizers, strict=True)):
            xg, yg = (x[g], y[g]) if x.dim() == 5 else (x, y)
            opt.zero_grad()
            logits = m(xg)
            F.cross_entropy(logits, yg).backward()
            out["logits"].append(logits.detach())
            for name, p in m.si_named_parameters():
                out.setdefault(f"grad:{name}", []).append(p.grad.clone())
            opt.step()
            out["radius_before"].append(opt.last_radius())
            out["preprojection_norm"].append(opt.last_preprojection_norm())
            if self.protocol == "sphere":
                out.setdefault("pressure", []).append(opt.last_pressure())
        return {
            k: torch.stack(v) if isinstance(v[0], Tensor) else torch.tensor(v, dtype=torch.float64)
            for k, v in out.items()
        }

    def state(self) -> dict[str, Tensor]:
        """Every floating-point entry of the models' state_dicts (SI weights, BN running
        statistics, the frozen head) and the optimizer buffers ``NAME:<buffer>`` (torch's
        names), stacked over the configs."""
        sds = [m.state_dict() for m in self.models]
        result = {k: torch.stack([sd[k] for sd in sds]) for k in sds[0]
                  if sds[0][k].is_floating_point()}
        for name, _ in self.models[0].si_named_parameters():
            for buf in _BUFFERS[self.optimizer]:
                result[f"{name}:{buf}"] = torch.stack([
                    opt.state[dict(m.named_parameters())[name]][buf]
                    for m, opt in zip(self.models, self.optimizers, strict=True)
                ])
        return result


def batched_conv_state(bm, bopt) -> dict[str, Tensor]:
    """The keys of `SeparateConvConfigs.state` from a `BatchedConvNet` (``config_state(g)`` of
    every config) and its `BatchedProtocol` (buffers named as ``thermosgd.nn.batched.BUFFERS``,
    the stacked conv weights already in the single models' layout)."""
    sds = [bm.config_state(g) for g in range(bm.num_configs)]
    result = {k: torch.stack([sd[k] for sd in sds]) for k in sds[0]
              if sds[0][k].is_floating_point()}
    for name, p in bm.si_named_parameters():
        for buf in _BUFFERS[bopt.optimizer]:
            result[f"{name}:{buf}"] = bopt.state[p][buf]
    return result
