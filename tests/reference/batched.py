"""Reference for `thermosgd.nn.batched`: G separate BN-MLPs, each with its own single-config
optimizer, stepped one after another in a plain loop.

`BatchedProtocol` on a `BatchedBNMLP` must do, for every config g, what the single-config
optimizer of `thermosgd.nn.optim.make_optimizer` does on config g's `BNMLP` (the slow,
obvious path: one model, one ``F.cross_entropy``, one optimizer per config). `SeparateConfigs`
returns everything in the batched layout (config axis first; hidden weights, their gradients
and buffers transposed to (G, in, out) like ``BatchedBNMLP.weights``), so that a test compares
the two paths key by key with `tests.reference.assert_matches_reference`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from thermosgd.nn.optim import make_optimizer

__all__ = ["SeparateConfigs", "batched_state"]

#: the single-config optimizers' per-parameter buffers (torch's names), by optimizer
_BUFFERS = {"sgd": (), "momentum": ("momentum_buffer",), "adamw": ("exp_avg", "exp_avg_sq")}


class SeparateConfigs:
    """G `BNMLP`s, config g trained by ``make_optimizer(protocol, ..., optimizer=optimizer)``
    with the hyperparameters ``{k: float(v[g])}`` (``hyper`` holds numbers or (G,) tensors, as
    given to `BatchedProtocol`)."""

    def __init__(self, models: Sequence, protocol: str, *, optimizer: str = "sgd",
                 **hyper: float | Tensor) -> None:
        self.models = list(models)
        self.protocol, self.optimizer = protocol, optimizer
        G = len(self.models)
        per_config = {k: torch.as_tensor(v, dtype=torch.float64).expand(G) for k, v in
                      hyper.items()}
        self.optimizers = [
            make_optimizer(protocol, m.si_parameters(), optimizer=optimizer,
                           **{k: float(v[g]) for k, v in per_config.items()})
            for g, m in enumerate(self.models)
        ]

    def step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """One step of every config on the shared minibatch (x, y), config after config.

        Returns, stacked over the configs: ``logits`` (G, B, K) before the step, ``grad_i``
        (G, in_i, out_i) of hidden layer i, ``radius_before`` and ``preprojection_norm`` (G,)
        float64, and for the sphere ``pressure`` (G,)."""
        logits, grads, radius, norm, pressure = [], [], [], [], []
        for m, opt in zip(self.models, self.optimizers, strict=True):
            opt.zero_grad()
            out = m(x)
            F.cross_entropy(out, y).backward()
            logits.append(out.detach())
            grads.append([p.grad.T.clone() for p in m.si_parameters()])
            opt.step()
            radius.append(opt.last_radius())
            norm.append(opt.last_preprojection_norm())
            if self.protocol == "sphere":
                pressure.append(opt.last_pressure())
        result = {"logits": torch.stack(logits)}
        for i in range(len(grads[0])):
            result[f"grad_{i}"] = torch.stack([g[i] for g in grads])
        result["radius_before"] = torch.tensor(radius, dtype=torch.float64)
        result["preprojection_norm"] = torch.tensor(norm, dtype=torch.float64)
        if pressure:
            result["pressure"] = torch.tensor(pressure, dtype=torch.float64)
        return result

    def state(self) -> dict[str, Tensor]:
        """The hidden weights ``weight_i`` and the optimizer buffers ``<buffer>_i`` (torch's
        names: momentum_buffer; exp_avg, exp_avg_sq), stacked over configs, (G, in_i, out_i)."""
        params = [m.si_parameters() for m in self.models]
        result = {}
        for i in range(len(params[0])):
            result[f"weight_{i}"] = torch.stack([ps[i].detach().T for ps in params])
            for name in _BUFFERS[self.optimizer]:
                result[f"{name}_{i}"] = torch.stack(
                    [opt.state[ps[i]][name].T for opt, ps in
                     zip(self.optimizers, params, strict=True)])
        return result

    @torch.no_grad()
    def sync_from(self, weights: Sequence[Tensor]) -> None:
        """Set every model's hidden weights to config g's slice of the batched ``weights``
        ((G, in_i, out_i) each), e.g. to compare single float32 steps from the same point."""
        for g, m in enumerate(self.models):
            for p, w in zip(m.si_parameters(), weights, strict=True):
                p.copy_(w[g].T)


def batched_state(weights: Sequence[Tensor], state: Mapping, optimizer: str) -> dict[str, Tensor]:
    """The same keys as `SeparateConfigs.state` from a batched model's ``weights`` and its
    `BatchedProtocol`'s ``state`` (buffers named as in ``thermosgd.nn.batched.BUFFERS``)."""
    result = {}
    for i, w in enumerate(weights):
        result[f"weight_{i}"] = w.detach()
        for name in _BUFFERS[optimizer]:
            result[f"{name}_{i}"] = state[w][name]
    return result
