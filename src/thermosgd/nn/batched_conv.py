"""G configs of one conv model (ConvNet, PreAct ResNet-18, ...) trained as one module.

`BatchedConvModel` holds, for G configs of the same architecture, every trainable parameter
stacked on a leading config axis, (G, *shape), and every buffer too (per-config BatchNorm
running statistics), and runs the forward of all configs on one shared batch as

    logits[g] = functional_call(model, (params[g], buffers[g], frozen), x)

vectorised by ``torch.func.vmap`` over g. vmap's batching rules turn the convolutions into one
convolution over G * C_out channels (first layer, shared input) and grouped convolutions with
groups = G after it, and batch-norm into per-config statistics over (B, H, W), so config g
computes exactly the function of its own single model (float32 round-off aside: the grouped
kernels sum in another order). Frozen parameters (the heads) are shared, not stacked.

Gradients flow through vmap: ``batched_cross_entropy(model(x), y).sum().backward()`` gives
each stacked parameter's slice g the gradient of config g's own mean loss, and
`thermosgd.nn.batched.BatchedProtocol` steps them (per-config lr / elr / wd / radius). Training
mode updates each config's running statistics in its own slice of the stacked buffers.

This is the forward/backward of a batched conv grid (issue 10); `benchmarks/bench_conv_step.py
--device cuda` measures it against one config at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from thermosgd._validate import check_int

__all__ = ["BatchedConvModel"]


def _mangle(name: str) -> str:
    return name.replace(".", "__")


class BatchedConvModel(nn.Module):
    """G copies of a model with stacked trainable parameters and buffers (see module doc).

    ``BatchedConvModel.from_models(models)`` stacks G models of the same architecture (each
    its own weights and BN statistics); ``BatchedConvModel.replicate(model, G)`` stacks G
    copies of one. ``forward(x)`` maps a batch (B, C, H, W) shared by all configs to logits
    (G, B, K); ``to_model(g)`` is config g as a single model.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("models must not be empty")
        first = models[0]
        if getattr(first, "memory_format", "contiguous") != "contiguous":
            raise ValueError(
                f"memory_format == {first.memory_format!r}: a batched conv model runs its "
                "configs under vmap, which needs memory_format 'contiguous' models"
            )
        for m in models[1:]:
            if type(m) is not type(first) or _signature(m) != _signature(first):
                raise ValueError(
                    "every config of a batched conv model must have the same architecture "
                    f"({type(m).__name__} {_signature(m)[:2]} != "
                    f"{type(first).__name__} {_signature(first)[:2]})"
                )
        self.num_configs = len(models)
        named = [dict(m.named_parameters()) for m in models]
        self._trainable = [n for n, p in first.named_parameters() if p.requires_grad]
        self._frozen = [n for n, p in first.named_parameters() if not p.requires_grad]
        self._buffers_names = [n for n, _ in first.named_buffers()]
        for n in self._trainable:
            stacked = torch.stack([d[n].detach() for d in named]).clone()
            self.register_parameter(_mangle(n), nn.Parameter(stacked))
        for n in self._frozen:  # shared by every config: the first model's (checked equal)
            t = named[0][n].detach()
            if any(not torch.equal(d[n].detach(), t) for d in named[1:]):
                raise ValueError(f"frozen parameter {n} differs between configs")
            self.register_buffer("frozen__" + _mangle(n), t.clone())
        bufs = [dict(m.named_buffers()) for m in models]
        for n in self._buffers_names:
            self.register_buffer("stat__" + _mangle(n), torch.stack([b[n] for b in bufs]).clone())
        self._template = [copy.deepcopy(first).to("meta")]  # a list: not a submodule
        self._si_names = self._si_order(first)

    @classmethod
    def from_models(cls, models: Sequence[nn.Module]) -> BatchedConvModel:
        """Stack G models of one architecture (config g = models[g])."""
        return cls(models)

    @classmethod
    def replicate(cls, model: nn.Module, num_configs: int) -> BatchedConvModel:
        """G = ``num_configs`` copies of ``model`` (the paper's grids share one init)."""
        G = check_int("num_configs", num_configs, min_val=1)
        return cls([model] * G)

    @staticmethod
    def _si_order(model: nn.Module) -> list[str]:
        fn = getattr(model, "si_named_parameters", None)
        if callable(fn):
            return [n for n, _ in fn()]
        return [n for n, p in model.named_parameters() if p.requires_grad]

    # -- parameters ------------------------------------------------------------------------

    def stacked(self, name: str) -> Tensor:
        """The (G, ...) stacked parameter or buffer of the single model's ``name``."""
        key = _mangle(name)
        if name in self._trainable:
            return getattr(self, key)
        if name in self._frozen:
            return getattr(self, "frozen__" + key)
        return getattr(self, "stat__" + key)

    def si_parameters(self) -> list[nn.Parameter]:
        """The stacked SI parameters, in the single model's ``si_parameters`` order."""
        return [self.stacked(n) for n in self._si_names]

    def _dicts(self) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        params = {n: self.stacked(n) for n in self._trainable}
        bufs = {n: self.stacked(n) for n in self._buffers_names}
        frozen = {n: self.stacked(n) for n in self._frozen}
        return params, bufs, frozen

    # -- forward ---------------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        """logits (G, B, K) of every config on the shared batch x (B, ...)."""
        template = self._template[0]
        template.train(self.training)
        params, bufs, frozen = self._dicts()

        def one(p: dict[str, Tensor], b: dict[str, Tensor], f: dict[str, Tensor], xb: Tensor):
            return functional_call(template, (p, b, f), (xb,))

        return vmap(one, in_dims=(0, 0, None, None), randomness="error")(params, bufs, frozen, x)

    @torch.no_grad()
    def to_model(self, g: int) -> nn.Module:
        """Config g as a single model (a copy on the batched model's device)."""
        G = self.num_configs
        g = check_int("g", g, min_val=-G, max_val=G - 1) % G
        device = next(iter(self.parameters())).device
        m = copy.deepcopy(self._template[0]).to_empty(device=device)
        state = {n: self.stacked(n)[g] for n in self._trainable + self._buffers_names}
        state.update({n: self.stacked(n) for n in self._frozen})
        m.load_state_dict(state)
        m.train(self.training)
        return m


def _signature(model: nn.Module) -> list:
    """Names and shapes of every parameter and buffer, and which are trainable."""
    return [
        [(n, tuple(p.shape), p.requires_grad) for n, p in model.named_parameters()],
        [(n, tuple(b.shape)) for n, b in model.named_buffers()],
    ]
