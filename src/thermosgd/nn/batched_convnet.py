"""G configs of one conv model (ConvNet, PreAct ResNet-18) trained as one module, by grouped
convolutions (issue 10, batched conv engine).

`BatchedConvNet` stacks G models of the same architecture along the channel axis: config g
owns channels [g C, (g + 1) C) of every feature map (config-major), so that

* every convolution of C_in -> C_out channels becomes one convolution of G C_in -> G C_out
  channels with ``groups = G``: weight (G C_out, C_in, k, k), which is the stacked parameter
  (G, C_out, C_in, k, k) viewed without a copy; config g's output channels read config g's
  input channels only, through config g's own kernel. The first convolution on a batch
  shared by every config (x of shape (B, C_in, H, W)) is one plain convolution with
  G C_out outputs (``groups = 1``, the same weight tensor): no copy of the input;
* every ``BatchNorm2d(C)`` becomes ``BatchNorm2d(G C)``: statistics per channel over
  (B, H, W), i.e. per config over its own batch, and running statistics (G C,) config-major:
  exactly G separate BatchNorm layers;
* ReLU, max / average pooling, flatten and the residual additions act per channel or
  elementwise and need no change (the model's own ``forward`` runs on the wider maps);
* the frozen head Linear(F -> K), shared by every config (the paper's one head seed),
  maps the flattened (B, G F) features, viewed (B, G, F), to logits (G, B, K).

A per-config minibatch (x of shape (G, B, C_in, H, W), each config its own seed) enters as
(B, G C_in, H, W) and the first convolution is grouped too. Config g's logits, gradients and
running statistics are those of its own single model (float round-off aside: a grouped kernel
may sum in another order). ``torch.func.vmap`` over ``functional_call`` lowers to the same
grouped convolutions plus per-step Python dispatch: ``benchmarks/bench_batched_conv.py``
measures both against G separate models (docs/benchmarks.md).

Parameters carry the leading config axis G, as `thermosgd.nn.batched.BatchedProtocol` and
`thermosgd.nn.models.BatchedBNMLP` do: ``si_parameters()`` are the stacked conv weights in the
single model's ``si_named_parameters`` order, config g's SI vector their [g] slices.
``from_models(models)`` stacks G models (each its own weights and BN statistics);
``to_model(g)`` is config g as a single model (its ``state_dict`` is a single-model
checkpoint's). Only SI models batch: every trainable parameter a bias-free, ungrouped conv
weight, every BatchNorm affine-free, every Linear frozen; anything else is refused.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thermosgd._validate import check_int

__all__ = ["BatchedConvNet", "GroupedConv2d", "SharedHead"]

#: modules that act per channel or elementwise: kept as they are
_PASSIVE = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
            nn.Flatten, nn.Identity, nn.Sequential)


class GroupedConv2d(nn.Module):
    """G bias-free convolutions as one: ``weight`` (G, C_out, C_in, k, k), input
    (B, G C_in, H, W) -> (B, G C_out, H', W') with ``groups = G``, or a shared input
    (B, C_in, H, W) -> the same with ``groups = 1`` (every config reads the one batch)."""

    def __init__(self, conv: nn.Conv2d, weight: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation

    def forward(self, x: Tensor) -> Tensor:
        G = self.weight.shape[0]
        w = self.weight.view(G * self.out_channels, *self.weight.shape[2:])
        groups = 1 if x.shape[1] == self.in_channels else G
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, groups)


class SharedHead(nn.Module):
    """A frozen Linear(F -> K) shared by G configs: features (B, G F) -> logits (G, B, K),
    logits[g] = x[:, g F:(g + 1) F] W^T + b."""

    def __init__(self, linear: nn.Linear, num_configs: int) -> None:
        super().__init__()
        self.num_configs = num_configs
        self.register_buffer("weight", linear.weight.detach().clone())
        self.register_buffer(
            "bias", None if linear.bias is None else linear.bias.detach().clone()
        )

    def forward(self, x: Tensor) -> Tensor:
        B = x.shape[0]
        out = torch.matmul(x.reshape(B, self.num_configs, -1).transpose(0, 1), self.weight.T)
        return out if self.bias is None else out + self.bias


def _check_batchable(model: nn.Module) -> None:
    """Refuse a model that is not made of SI conv weights, affine-free BN and frozen heads."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.bias is not None or m.groups != 1 or not m.weight.requires_grad:
                raise ValueError(f"{name}: only trained, bias-free, ungrouped convolutions batch")
        elif isinstance(m, nn.BatchNorm2d):
            if m.affine or not m.track_running_stats:
                raise ValueError(f"{name}: only affine-free BatchNorm with running statistics "
                                 "batch (an SI model)")
        elif isinstance(m, nn.Linear):
            if any(p.requires_grad for p in m.parameters()):
                raise ValueError(f"{name}: a trained Linear layer does not batch (an SI model "
                                 "has a frozen head)")
        elif not isinstance(m, _PASSIVE) and (
            list(m.parameters(recurse=False)) or list(m.buffers(recurse=False))
        ):
            raise ValueError(f"{name}: {type(m).__name__} with parameters does not batch")


def _signature(model: nn.Module) -> list:
    return [
        type(model).__name__,
        [(n, tuple(p.shape), p.requires_grad) for n, p in model.named_parameters()],
        [(n, tuple(b.shape)) for n, b in model.named_buffers()],
    ]


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


class BatchedConvNet(nn.Module):
    """G SI conv models of one architecture as one grouped-convolution module (module doc).

    ``forward(x)``: x (B, C, H, W) shared by every config or (G, B, C, H, W) one batch per
    config -> logits (G, B, K).
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("models must not be empty")
        first = models[0]
        _check_batchable(first)
        for m in models[1:]:
            if _signature(m) != _signature(first):
                raise ValueError("every config of a batched conv model must have the same "
                                 f"architecture ({_signature(m)[0]} vs {_signature(first)[0]})")
        G = self.num_configs = len(models)
        self._template = [copy.deepcopy(first)]  # a list: not a submodule (not moved by .to)
        self.in_channels = _first_conv(first).in_channels
        net = copy.deepcopy(first)
        self._kind: dict[str, tuple[str, str]] = {}  # single key -> (kind, grouped key)
        per_model = [dict(m.named_modules()) for m in models]
        for name, m in list(first.named_modules()):
            if isinstance(m, nn.Conv2d):
                w = torch.stack([d[name].weight.detach() for d in per_model]).clone()
                _set_submodule(net, name, GroupedConv2d(m, w))
                self._kind[f"{name}.weight"] = ("stacked", f"{name}.weight")
            elif isinstance(m, nn.BatchNorm2d):
                bn = nn.BatchNorm2d(G * m.num_features, eps=m.eps, momentum=m.momentum,
                                    affine=False).to(m.running_mean)
                with torch.no_grad():
                    for key in ("running_mean", "running_var"):
                        getattr(bn, key).copy_(torch.cat([getattr(d[name], key)
                                                          for d in per_model]))
                        self._kind[f"{name}.{key}"] = ("channels", f"{name}.{key}")
                    bn.num_batches_tracked.copy_(m.num_batches_tracked)
                self._kind[f"{name}.num_batches_tracked"] = (
                    "shared", f"{name}.num_batches_tracked")
                _set_submodule(net, name, bn)
            elif isinstance(m, nn.Linear):
                for d in per_model[1:]:
                    if not all(torch.equal(p, q) for p, q in
                               zip(m.parameters(), d[name].parameters(), strict=True)):
                        raise ValueError(f"the frozen {name} differs between configs")
                _set_submodule(net, name, SharedHead(m, G))
                for key in ("weight", "bias"):
                    if getattr(m, key) is not None:
                        self._kind[f"{name}.{key}"] = ("shared", f"{name}.{key}")
        self.net = net
        fn = getattr(first, "si_named_parameters", None)
        names = [n for n, _ in fn()] if callable(fn) else [
            n for n, p in first.named_parameters() if p.requires_grad]
        self._si_names = names

    @classmethod
    def from_models(cls, models: Sequence[nn.Module]) -> BatchedConvNet:
        """Stack G models of one architecture (config g = models[g]: weights, BN statistics)."""
        return cls(models)

    @classmethod
    def replicate(cls, model: nn.Module, num_configs: int) -> BatchedConvNet:
        """G = ``num_configs`` copies of ``model`` (the paper's grids share one init)."""
        return cls([model] * check_int("num_configs", num_configs, min_val=1))

    # -- parameters ------------------------------------------------------------------------

    def si_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """(single model's name, stacked (G, ...) parameter), in ``si_named_parameters`` order."""
        params = dict(self.net.named_parameters())
        return [(n, params[n]) for n in self._si_names]

    def si_parameters(self) -> list[nn.Parameter]:
        """The stacked SI weights (G, C_out, C_in, k, k); config g's SI vector: the [g] slices."""
        return [p for _, p in self.si_named_parameters()]

    @property
    def dim(self) -> int:
        """d per config."""
        return sum(p[0].numel() for p in self.si_parameters())

    # -- forward -----------------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        """logits (G, B, K) of every config on x (B, C, H, W) or (G, B, C, H, W)."""
        G, C = self.num_configs, self.in_channels
        if x.dim() == 5:
            if x.shape[0] != G or x.shape[2] != C:
                raise ValueError(f"x must have shape (B, {C}, H, W) or ({G}, B, {C}, H, W), "
                                 f"got {tuple(x.shape)}")
            x = x.transpose(0, 1).reshape(x.shape[1], G * C, *x.shape[3:])
        elif x.dim() != 4 or x.shape[1] != C:
            raise ValueError(f"x must have shape (B, {C}, H, W) or ({G}, B, {C}, H, W), "
                             f"got {tuple(x.shape)}")
        return self.net(x)

    # -- single models -----------------------------------------------------------------------

    @torch.no_grad()
    def config_state(self, g: int) -> dict[str, Tensor]:
        """Config g's single-model ``state_dict`` (copies)."""
        G = self.num_configs
        g = check_int("g", g, min_val=-G, max_val=G - 1) % G
        mine = self.net.state_dict()
        out = {}
        for key, (kind, src) in self._kind.items():
            t = mine[src]
            if kind == "stacked":
                t = t[g]
            elif kind == "channels":
                c = t.shape[0] // G
                t = t[g * c : (g + 1) * c]
            out[key] = t.clone()
        return out

    def to_model(self, g: int) -> nn.Module:
        """Config g as a single model (a copy on this module's device and dtype)."""
        ref = self.si_parameters()[0]
        m = copy.deepcopy(self._template[0]).to(device=ref.device, dtype=ref.dtype)
        m.load_state_dict(self.config_state(g))
        m.train(self.training)
        return m


def _first_conv(model: nn.Module) -> nn.Conv2d:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise ValueError("the model has no convolution")
