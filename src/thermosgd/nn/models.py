"""Scale-invariant (SI) MLPs with frozen heads, as in the paper (section 9.1), and what every
SI model of the package shares.

Every model here is built so that its *trainable* parameters are exactly its SI parameters:

* `BNMLP` (`bn_mlp`): bias-free Linear -> BatchNorm1d(affine=False) -> ReLU, repeated, then a
  frozen Linear head. Each hidden weight matrix is SI on its own, and all of them jointly.
* `BatchedBNMLP`: G independent BN-MLPs trained at once as one module (one GEMM per layer and
  one batch-norm kernel over all configs), exactly equivalent to G separate `BNMLP`s.
* The paper's ConvNet and pre-activation ResNet-18 are in `thermosgd.nn.conv_models`; they
  build on the shared pieces here: `frozen_linear`, the private SI initialisation and the
  `si_parameters` / `si_dim` / `thermo_named_parameters` accessors.

Non-scale-invariant variants (issue 6), for measuring how far the theory carries: `VariantMLP`
(`variant_mlp`, `MLP_VARIANTS`: BatchNorm affine trained, biases after BatchNorm and in the
head, a trainable head, LayerNorm with and without affine) and the ConvNet's ``variant``
(`CONVNET_VARIANTS`). Their SI parameters (`si_parameters`) are the hidden / conv weights; their
other trainable parameters break the joint invariance (`thermo_named_parameters`: all of them).

The frozen head follows the reference: a fresh ``nn.Linear`` drawn after seeding with
``head_seed`` (4), weight rescaled to Frobenius norm ``head_norm`` (10 for cross-entropy), bias
kept as drawn, ``requires_grad=False``. We draw it from a private ``torch.Generator`` seeded with
``head_seed``, which gives the same numbers as ``torch.manual_seed(head_seed); nn.Linear(...)`` on
CPU without touching the global RNG. SI weights are initialised like PyTorch's default
(uniform(+-1/sqrt(fan_in))) from a private generator seeded with ``init_seed`` (1); their overall
scale is irrelevant because the protocols set the radius.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thermosgd._validate import check_choice, check_int, check_number
from thermosgd.spec import CONVNET_VARIANTS, MLP_VARIANTS

__all__ = [
    "BNMLP",
    "CONVNET_VARIANTS",
    "MLP_VARIANTS",
    "BatchedBNMLP",
    "VariantMLP",
    "batched_cross_entropy",
    "bn_mlp",
    "frozen_linear",
    "si_dim",
    "si_named_parameters",
    "si_parameters",
    "thermo_named_parameters",
    "variant_mlp",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _hidden_widths(hidden: Sequence[int]) -> tuple[int, ...]:
    """The hidden widths: at least one, each an integer >= 1."""
    hidden = tuple(check_int("hidden width", h, min_val=1) for h in hidden)
    if not hidden:
        raise ValueError("hidden == (), must list at least one hidden width")
    return hidden


def frozen_linear(
    in_features: int, out_features: int, *, bias: bool, norm: float = 10.0, seed: int = 4
) -> nn.Linear:
    """The paper's frozen head: W ~ nn.Linear's init under ``seed``, then W <- norm * W / ||W||_F.

    The bias (if any) keeps its nn.Linear draw U(+-1/sqrt(in_features)). Both are frozen
    (``requires_grad=False``). Uses a private generator, so the global RNG is untouched.
    """
    check_int("in_features", in_features, min_val=1)
    check_int("out_features", out_features, min_val=1)
    norm = check_number("head_norm", norm, min_val=0.0, include_min=False)
    gen = torch.Generator().manual_seed(int(seed))
    bound = 1.0 / math.sqrt(in_features)
    with torch.random.fork_rng(devices=[]):
        head = nn.Linear(in_features, out_features, bias=bias)
    with torch.no_grad():
        # Same draw order as nn.Linear.reset_parameters: weight, then bias, both U(-b, b).
        head.weight.uniform_(-bound, bound, generator=gen)
        if bias:
            head.bias.uniform_(-bound, bound, generator=gen)
        head.weight.mul_(norm / head.weight.norm())
    head.requires_grad_(False)
    return head


def _keep_global_rng(init):
    """Run a constructor without consuming the global RNG (nn layers draw a default init
    from it, which we overwrite from private generators anyway)."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            init(self, *args, **kwargs)

    return wrapper


def _init_si_weights(module: nn.Module, seed: int) -> None:
    """U(+-1/sqrt(fan_in)) for every trainable Linear/Conv weight, from a private generator."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and m.weight.requires_grad:
                fan_in = m.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                m.weight.uniform_(-bound, bound, generator=gen)


class _SIModel(nn.Module):
    """Base: all trainable parameters are the SI parameters (the head is frozen)."""

    def si_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def si_parameters(self) -> list[nn.Parameter]:
        """The scale-invariant parameters, which the paper treats as one joint vector."""
        return [p for _, p in self.si_named_parameters()]

    @property
    def dim(self) -> int:
        """d, the number of SI parameters (the sphere is S^{d-1})."""
        return sum(p.numel() for p in self.si_parameters())


def si_named_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of the SI parameters of a thermosgd model (see `si_parameters`)."""
    fn = getattr(model, "si_named_parameters", None)
    if not callable(fn):
        raise ValueError(
            f"model {type(model).__name__} does not declare its scale-invariant parameters; "
            "use thermosgd.nn.scale_invariance.find_scale_invariant_groups(model, loss_fn, batch)"
        )
    return list(fn())


def si_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The SI parameters of a thermosgd model, in registration order (one joint group).

    Raises ValueError for models that do not declare them; for arbitrary models use
    `thermosgd.nn.scale_invariance.find_scale_invariant_groups`.
    """
    return [p for _, p in si_named_parameters(model)]


def si_dim(model: nn.Module) -> int:
    """d = number of SI parameters of a thermosgd model (per config for `BatchedBNMLP`)."""
    d = sum(p.numel() for p in si_parameters(model))
    if isinstance(model, BatchedBNMLP):
        d //= model.num_configs
    return d


# --------------------------------------------------------------------------------------------
# BN-MLP
# --------------------------------------------------------------------------------------------


class BNMLP(_SIModel):
    """x -> [Linear(no bias) -> BatchNorm1d(affine=False) -> ReLU] * len(hidden) -> frozen head.

    SI parameters: the hidden Linear weights (each SI alone; trained as one joint vector),
    d = in*h1 + h1*h2 + ... (3072 for 64-32-32). Inputs of shape (B, in_features) or anything
    that flattens to it, e.g. (B, 1, 8, 8) digits.
    """

    @_keep_global_rng
    def __init__(
        self,
        in_features: int = 64,
        hidden: Sequence[int] = (32, 32),
        num_classes: int = 10,
        *,
        head_norm: float = 10.0,
        head_seed: int = 4,
        head_bias: bool = False,
        init_seed: int = 1,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        check_int("in_features", in_features, min_val=1)
        check_int("num_classes", num_classes, min_val=1)
        hidden = _hidden_widths(hidden)
        self.in_features = in_features
        self.hidden = hidden
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        prev = in_features
        for h in hidden:
            layers += [
                nn.Linear(prev, h, bias=False),
                nn.BatchNorm1d(h, affine=False, eps=bn_eps, momentum=bn_momentum),
                nn.ReLU(),
            ]
            prev = h
        self.layers = nn.Sequential(*layers)
        self.head = frozen_linear(prev, num_classes, bias=head_bias, norm=head_norm, seed=head_seed)
        _init_si_weights(self.layers, init_seed)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.layers(x.flatten(1)))


def bn_mlp(
    in_features: int = 64,
    hidden: Sequence[int] = (32, 32),
    num_classes: int = 10,
    *,
    head_norm: float = 10.0,
    head_seed: int = 4,
    head_bias: bool = False,
    init_seed: int = 1,
) -> BNMLP:
    """BN-MLP with a frozen head of Frobenius norm ``head_norm`` (see `BNMLP`)."""
    return BNMLP(
        in_features,
        hidden,
        num_classes,
        head_norm=head_norm,
        head_seed=head_seed,
        head_bias=head_bias,
        init_seed=init_seed,
    )


# --------------------------------------------------------------------------------------------
# MLP variants that break scale invariance (issue 6: non-SI networks)
# --------------------------------------------------------------------------------------------

# MLP_VARIANTS (variant -> (normalization, trainable norm affine, trainable biases, trainable
# head, note)) and CONVNET_VARIANTS: the registry's (`thermosgd.spec`)


class _Shift(nn.Module):
    """x -> x + b with a trainable bias b (zeros at init): a bias that a norm cannot cancel."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(features))

    def forward(self, x: Tensor) -> Tensor:  # features on axis 1: (B, C) or (B, C, H, W)
        return x + self.bias.view(-1, *([1] * (x.dim() - 2)))


class VariantMLP(nn.Module):
    """x -> [Linear(no bias) -> Norm -> (+ bias) -> ReLU] * len(hidden) -> head, by ``variant``.

    ``variant`` (see `MLP_VARIANTS`): "si" is exactly `BNMLP`; "bn-affine" trains BatchNorm's
    gamma (init 1) and beta (init 0); "bias" adds a trainable bias (init 0) after every
    BatchNorm and trains the head's bias (init U(+-1/sqrt(h))); "head" trains the head weight
    (init: the frozen head of norm ``head_norm``); "layernorm" uses LayerNorm(affine=False)
    (SI per layer, per sample); "layernorm-affine" trains LayerNorm's gamma and beta. The
    hidden Linear weights are SI in every variant (`si_named_parameters`); the other trainable
    parameters break the joint invariance of the trainable vector
    (`thermo_named_parameters`). Weights are initialised exactly as in `BNMLP` (same seeds).
    """

    @_keep_global_rng
    def __init__(
        self,
        variant: str = "si",
        in_features: int = 64,
        hidden: Sequence[int] = (32, 32),
        num_classes: int = 10,
        *,
        head_norm: float = 10.0,
        head_seed: int = 4,
        init_seed: int = 1,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_choice("variant", variant, MLP_VARIANTS)
        check_int("in_features", in_features, min_val=1)
        check_int("num_classes", num_classes, min_val=1)
        hidden = _hidden_widths(hidden)
        norm, affine, bias, head_trained, _ = MLP_VARIANTS[variant]
        self.variant, self.in_features, self.hidden = variant, in_features, hidden
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        prev = in_features
        for h in hidden:
            layers.append(nn.Linear(prev, h, bias=False))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(h, affine=affine, eps=norm_eps))
            else:
                layers.append(nn.LayerNorm(h, eps=norm_eps, elementwise_affine=affine))
            if bias:
                layers.append(_Shift(h))
            layers.append(nn.ReLU())
            prev = h
        self.layers = nn.Sequential(*layers)
        self.head = frozen_linear(prev, num_classes, bias=bias, norm=head_norm, seed=head_seed)
        if head_trained:
            self.head.weight.requires_grad_(True)
        if bias:
            self.head.bias.requires_grad_(True)
        _init_si_weights(self.layers, init_seed)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.layers(x.flatten(1)))

    def si_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The hidden Linear weights: SI (each alone and jointly) in every variant."""
        return [
            (f"layers.{i}.weight", m.weight)
            for i, m in enumerate(self.layers)
            if isinstance(m, nn.Linear)
        ]

    def si_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.si_named_parameters()]

    def thermo_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Every trainable parameter, SI or not: the group the protocols train as one vector."""
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    @property
    def dim(self) -> int:
        """d, the number of trainable parameters (the SI weights plus the non-SI ones)."""
        return sum(p.numel() for _, p in self.thermo_named_parameters())


def variant_mlp(
    variant: str,
    in_features: int = 64,
    hidden: Sequence[int] = (32, 32),
    num_classes: int = 10,
    *,
    head_norm: float = 10.0,
    head_seed: int = 4,
    init_seed: int = 1,
) -> nn.Module:
    """The MLP of ``variant`` (see `MLP_VARIANTS`): a `BNMLP` for "si", else a `VariantMLP`."""
    if variant == "si":
        return bn_mlp(
            in_features,
            hidden,
            num_classes,
            head_norm=head_norm,
            head_seed=head_seed,
            init_seed=init_seed,
        )
    return VariantMLP(
        variant,
        in_features,
        hidden,
        num_classes,
        head_norm=head_norm,
        head_seed=head_seed,
        init_seed=init_seed,
    )


def thermo_named_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of the group the protocols train: every trainable parameter (for the
    SI models of this module these are exactly the SI parameters)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


# --------------------------------------------------------------------------------------------
# Batched BN-MLP: G configs as one module
# --------------------------------------------------------------------------------------------


class BatchedBNMLP(nn.Module):
    """G independent BN-MLPs as one module: config g is exactly ``BNMLP`` with the same weights.

    Parameters ``weights[i]`` have shape (G, in_i, out_i) (config g's Linear weight transposed).
    Internally hidden activations are laid out (B, G * features): the first layer with a
    shared batch is a single GEMM x @ [W_1 ... W_G], later layers are one ``torch.bmm``, and
    the per-config batch norm (statistics over each config's own batch) is a single
    ``F.batch_norm`` call on the (B, G * features) matrix, with running statistics of shape
    (G * features,), config-major, identical to G separate BatchNorm1d(affine=False) layers.
    (This layout measured ~8% faster per step than (G, features, B) on CPU; see
    docs/benchmarks.md.)

    The frozen heads (``requires_grad=False`` parameters ``head_weight`` (G, K, h_last) and
    optional ``head_bias`` (G, K)) are the unbatched model's head repeated, so every config
    has the same head, as in the paper (one head seed for every run).

    ``forward(x)`` takes x of shape (B, in) (the same batch for every config, as in the paper,
    where every run uses the same training seed) or (G, B, in) (one batch per config), and
    returns logits of shape (G, B, K).
    """

    @_keep_global_rng
    def __init__(
        self,
        num_configs: int,
        in_features: int = 64,
        hidden: Sequence[int] = (32, 32),
        num_classes: int = 10,
        *,
        head_norm: float = 10.0,
        head_seed: int = 4,
        head_bias: bool = False,
        init_seed: int | Sequence[int] = 1,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        G = check_int("num_configs", num_configs, min_val=1)
        check_int("in_features", in_features, min_val=1)
        check_int("num_classes", num_classes, min_val=1)
        hidden = _hidden_widths(hidden)
        seeds = [init_seed] * G if isinstance(init_seed, int) else list(init_seed)
        if len(seeds) != G:
            raise ValueError(
                f"init_seed must be an int or have num_configs={G} entries, got {len(seeds)}"
            )
        self.num_configs, self.in_features, self.hidden = G, in_features, hidden
        self.num_classes, self.bn_eps, self.bn_momentum = num_classes, bn_eps, bn_momentum
        self.head_norm, self.head_seed, self.head_bias_flag = head_norm, head_seed, head_bias
        # Build each config's weights exactly like the unbatched model (same init stream).
        refs = {
            s: BNMLP(
                in_features,
                hidden,
                num_classes,
                head_norm=head_norm,
                head_seed=head_seed,
                head_bias=head_bias,
                init_seed=s,
            )
            for s in set(seeds)
        }
        dims = (in_features, *hidden)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([refs[s].layers[3 * i].weight.detach().T for s in seeds]))
            for i in range(len(hidden))
        )
        for i, h in enumerate(hidden):
            self.register_buffer(f"running_mean_{i}", torch.zeros(G * h))
            self.register_buffer(f"running_var_{i}", torch.ones(G * h))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        head = refs[seeds[0]].head
        self.head_weight = nn.Parameter(head.weight.detach().repeat(G, 1, 1), requires_grad=False)
        self.head_bias = (
            nn.Parameter(head.bias.detach().repeat(G, 1), requires_grad=False)
            if head_bias
            else None
        )
        self._dims = dims

    # -- construction from / to unbatched models ------------------------------------------

    @classmethod
    def from_models(cls, models: Sequence[BNMLP]) -> BatchedBNMLP:
        """Stack G `BNMLP`s (same architecture) into one module (weights, heads, BN stats)."""
        models = list(models)
        if not models or not all(isinstance(m, BNMLP) for m in models):
            raise ValueError("models must be a non-empty sequence of BNMLP")
        m0 = models[0]
        for m in models[1:]:
            if (m.in_features, m.hidden, m.num_classes) != (
                m0.in_features,
                m0.hidden,
                m0.num_classes,
            ):
                raise ValueError(
                    "models must all have the same in_features, hidden and num_classes"
                )
        bn0 = m0.layers[1]
        out = cls(
            len(models),
            m0.in_features,
            m0.hidden,
            m0.num_classes,
            head_bias=m0.head.bias is not None,
            bn_eps=bn0.eps,
            bn_momentum=bn0.momentum,
        ).to(m0.head.weight)  # the models' device and dtype before copying (float64 stays so)
        with torch.no_grad():
            for i in range(len(m0.hidden)):
                out.weights[i].copy_(torch.stack([m.layers[3 * i].weight.T for m in models]))
                getattr(out, f"running_mean_{i}").copy_(
                    torch.cat([m.layers[3 * i + 1].running_mean for m in models])
                )
                getattr(out, f"running_var_{i}").copy_(
                    torch.cat([m.layers[3 * i + 1].running_var for m in models])
                )
            out.num_batches_tracked.copy_(bn0.num_batches_tracked)
            out.head_weight.copy_(torch.stack([m.head.weight for m in models]))
            if out.head_bias is not None:
                out.head_bias.copy_(torch.stack([m.head.bias for m in models]))
        return out

    def to_model(self, g: int) -> BNMLP:
        """Config g as a standalone `BNMLP` (a copy: weights, head and BN running stats)."""
        if not -self.num_configs <= g < self.num_configs:
            raise ValueError(f"g == {g!r}, must index one of {self.num_configs} configs")
        g %= self.num_configs
        m = BNMLP(
            self.in_features,
            self.hidden,
            self.num_classes,
            head_bias=self.head_bias is not None,
            bn_eps=self.bn_eps,
            bn_momentum=self.bn_momentum,
        )
        m = m.to(self.head_weight)  # this module's device and dtype
        with torch.no_grad():
            for i, h in enumerate(self.hidden):
                m.layers[3 * i].weight.copy_(self.weights[i][g].T)
                bn = m.layers[3 * i + 1]
                bn.running_mean.copy_(getattr(self, f"running_mean_{i}")[g * h : (g + 1) * h])
                bn.running_var.copy_(getattr(self, f"running_var_{i}")[g * h : (g + 1) * h])
                bn.num_batches_tracked.copy_(self.num_batches_tracked)
            m.head.weight.copy_(self.head_weight[g])
            if self.head_bias is not None:
                m.head.bias.copy_(self.head_bias[g])
        return m

    # -- SI parameters ----------------------------------------------------------------------

    def si_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(f"weights.{i}", w) for i, w in enumerate(self.weights)]

    def si_parameters(self) -> list[nn.Parameter]:
        """The SI weights, each of shape (G, in, out); config g's SI vector is their [g] slices."""
        return list(self.weights)

    @property
    def dim(self) -> int:
        """d per config."""
        return sum(w[0].numel() for w in self.weights)

    # -- forward -----------------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        G, F_in = self.num_configs, self.in_features
        w = self.weights
        if x.dim() == 2 and x.shape[1] == F_in:  # one shared batch: a single GEMM
            B = x.shape[0]
            a = x @ w[0].permute(1, 0, 2).reshape(F_in, G * self.hidden[0])  # (B, G*h)
        elif x.dim() == 3 and x.shape[0] == G and x.shape[2] == F_in:  # one batch per config
            B = x.shape[1]
            a = torch.bmm(x, w[0]).transpose(0, 1).reshape(B, G * self.hidden[0])
        else:
            raise ValueError(
                f"x must have shape (B, {F_in}) or ({G}, B, {F_in}), got {tuple(x.shape)}"
            )
        if self.training:
            self.num_batches_tracked.add_(1)
        for i, h in enumerate(self.hidden):
            if i > 0:  # (B, G*h_prev) -> (G, B, h_prev) @ (G, h_prev, h) -> (B, G*h)
                a = torch.bmm(a.view(B, G, -1).transpose(0, 1), w[i])
                a = a.transpose(0, 1).reshape(B, G * h)
            a = F.relu(
                F.batch_norm(
                    a,
                    getattr(self, f"running_mean_{i}"),
                    getattr(self, f"running_var_{i}"),
                    training=self.training,
                    momentum=self.bn_momentum,
                    eps=self.bn_eps,
                )
            )
        a = a.view(B, G, self.hidden[-1]).transpose(0, 1)  # (G, B, h)
        head_t = self.head_weight.transpose(1, 2)  # (G, h, K)
        if self.head_bias is not None:
            return torch.baddbmm(self.head_bias.unsqueeze(1), a, head_t)  # (G, B, K)
        return torch.bmm(a, head_t)


def batched_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Per-config mean cross-entropy: logits (G, B, K), target (B,) or (G, B) -> losses (G,).

    ``losses.sum().backward()`` gives every config the gradient of its own mean loss.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape (G, B, K), got {tuple(logits.shape)}")
    G, B, _ = logits.shape
    if target.shape == (B,):
        target = target.expand(G, B)
    if target.shape != (G, B):
        raise ValueError(f"target must have shape ({B},) or ({G}, {B}), got {tuple(target.shape)}")
    # (G, K, B) layout: cross_entropy's "K-dimensional" form, no copy of the logits needed.
    return F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(1)
