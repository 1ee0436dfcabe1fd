"""The paper's convolutional scale-invariant networks with frozen heads (section 9.1).

* `ConvNet` (`convnet`): the paper's ``ConvNetDepth`` of width c: conv3x3 widths c, 2c, 4c, 8c
  (no bias), each followed by BatchNorm2d(affine=False) and ReLU, max-pool 2 after layers 2-4,
  a final max-pool over the remaining map (MaxPool(4) for 32x32 inputs), flatten, and a frozen
  Linear(8c -> K) head *with* bias. d = 9 c C_in + 378 c^2 (24,408 for c = 8 on 3 channels).
  Non-SI ``variant``s: `CONVNET_VARIANTS`.
* `PreActResNet18` (`preact_resnet18`): pre-activation ResNet-18 of width k with every BN
  affine-free, downsampling shortcuts BN -> conv1x1, final BN -> ReLU -> AvgPool -> frozen
  Linear(8k -> K, no bias). SI only *jointly* over all conv weights (43,692 for k = 4).

Both take ``memory_format`` (`thermosgd.nn.conv_layout`: "contiguous" or "channels_last").
Heads and SI initialisation as for the MLPs (`thermosgd.nn.models`).

Input sizes: the ConvNet and the ResNet take ``input_size`` (int or (H, W)) and ``in_channels``.
The ConvNet's last pooling covers the whole remaining feature map, so the head always sees 8c
features: 32x32 -> 4x4 -> MaxPool(4) (the paper), 28x28 (Fashion-MNIST) -> 3x3 -> MaxPool(3),
8x8 (digits) -> 1x1 -> MaxPool(1) (identity). The ResNet's average pool likewise covers the final
map: 32 -> 4 (AvgPool(4), the paper), 28 -> 4, 8 -> 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thermosgd._validate import check_choice, check_int
from thermosgd.nn.conv_layout import LayoutBatchNorm2d, set_channels_last, torch_memory_format
from thermosgd.nn.models import (
    _init_si_weights,
    _keep_global_rng,
    _Shift,
    _SIModel,
    frozen_linear,
)
from thermosgd.spec import CONVNET_VARIANTS

__all__ = ["CONVNET_VARIANTS", "ConvNet", "PreActBlock", "PreActResNet18", "convnet",
           "preact_resnet18"]


def _size2(input_size: int | Sequence[int]) -> tuple[int, int]:
    """(H, W) of the input images: an int (square) or a pair, each >= 8."""
    if isinstance(input_size, int):
        size = (input_size, input_size)
    else:
        size = tuple(int(s) for s in input_size)
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f"input_size == {input_size!r}, must be an int or (H, W) with H, W >= 8")
    return size  # type: ignore[return-value]


def _set_layout(model: nn.Module) -> None:
    """Put the 4-d weights of a conv model in its ``_layout`` (nothing for contiguous)."""
    if model._layout is torch.channels_last:
        set_channels_last(model)


def _in_layout(model: nn.Module, x: Tensor) -> Tensor:
    """The input in the model's layout (untouched for contiguous models)."""
    if model._layout is torch.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


# --------------------------------------------------------------------------------------------
# ConvNet (ConvNetDepth, max_depth 3)
# --------------------------------------------------------------------------------------------


class ConvNet(_SIModel):
    """The paper's ConvNet of width c (``conv_layers`` holds every SI weight).

    conv3x3(C_in -> c) BN ReLU | conv(c -> 2c) BN ReLU MaxPool2 | conv(2c -> 4c) BN ReLU MaxPool2 |
    conv(4c -> 8c) BN ReLU MaxPool2 | MaxPool(H/8) Flatten | frozen Linear(8c -> K, bias).
    d = 9 c C_in + 378 c^2. Every conv layer is SI alone; the paper trains them as one vector.

    Layers 2-4 apply the max-pool before the ReLU (``conv_layers`` holds BN, MaxPool2, ReLU):
    ReLU is monotone, so relu(maxpool(z)) == maxpool(relu(z)) bit for bit, and so are the
    gradients (a window whose max is negative passes no gradient either way), at a quarter of
    the ReLU work. ``memory_format`` (`thermosgd.nn.conv_layout.MEMORY_FORMATS`): the layout of
    the weights and of the input inside ``forward``; "channels_last" is faster on CPU.
    """

    @_keep_global_rng
    def __init__(
        self,
        width: int = 8,
        in_channels: int = 3,
        num_classes: int = 10,
        *,
        input_size: int | Sequence[int] = 32,
        head_norm: float = 10.0,
        head_seed: int = 4,
        head_bias: bool = True,
        init_seed: int = 1,
        variant: str = "si",
        memory_format: str = "contiguous",
    ) -> None:
        super().__init__()
        self._layout = torch_memory_format(memory_format)
        self.memory_format = memory_format
        c = check_int("width", width, min_val=1)
        check_int("in_channels", in_channels, min_val=1)
        check_int("num_classes", num_classes, min_val=1)
        check_choice("variant", variant, CONVNET_VARIANTS)
        h, w = _size2(input_size)
        self.width, self.in_channels, self.num_classes = c, in_channels, num_classes
        self.input_size, self.variant = (h, w), variant
        layers: list[nn.Module] = []
        prev = in_channels
        for i, cout in enumerate((c, 2 * c, 4 * c, 8 * c)):
            layers += [
                nn.Conv2d(prev, cout, kernel_size=3, padding=1, bias=False),
                LayoutBatchNorm2d(cout, affine=variant == "bn-affine"),
                *([_Shift(cout)] if variant == "bias" else []),
                *([nn.MaxPool2d(2)] if i >= 1 else []),  # before the ReLU: see the docstring
                nn.ReLU(),
            ]
            prev = cout
        # After three floor-halvings the map is (h // 8, w // 8): pool over all of it.
        layers += [nn.MaxPool2d((h // 8, w // 8)), nn.Flatten()]
        self.conv_layers = nn.Sequential(*layers)
        self.head = frozen_linear(
            8 * c,
            num_classes,
            bias=head_bias or variant == "bias",
            norm=head_norm,
            seed=head_seed,
        )
        _init_si_weights(self.conv_layers, init_seed)
        if variant == "head":
            self.head.weight.requires_grad_(True)
        if variant == "bias":
            self.head.bias.requires_grad_(True)
        _set_layout(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.conv_layers(_in_layout(self, x)))

    def si_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The conv weights (SI in every variant; the other trainable parameters are not)."""
        return [
            (f"conv_layers.{i}.weight", m.weight)
            for i, m in enumerate(self.conv_layers)
            if isinstance(m, nn.Conv2d)
        ]


def convnet(
    width: int = 8,
    in_channels: int = 3,
    num_classes: int = 10,
    *,
    input_size: int | Sequence[int] = 32,
    head_norm: float = 10.0,
    head_seed: int = 4,
    head_bias: bool = True,
    init_seed: int = 1,
    variant: str = "si",
    memory_format: str = "contiguous",
) -> ConvNet:
    """The paper's ConvNet of width c (see `ConvNet`); c = 8 on CIFAR gives d = 24,408.

    ``variant`` (`CONVNET_VARIANTS`): "si", or "bn-affine" (BatchNorm gamma, beta trained),
    "bias" (a trainable per-channel bias after every BatchNorm, the head's bias trained),
    "head" (the head weight trained), as the BN-MLP's `MLP_VARIANTS`. ``memory_format``
    "channels_last" runs the same function faster on CPU (`thermosgd.nn.conv_layout`).
    """
    return ConvNet(
        width,
        in_channels,
        num_classes,
        input_size=input_size,
        head_norm=head_norm,
        head_seed=head_seed,
        head_bias=head_bias,
        init_seed=init_seed,
        variant=variant,
        memory_format=memory_format,
    )


# --------------------------------------------------------------------------------------------
# Pre-activation ResNet-18
# --------------------------------------------------------------------------------------------


class PreActBlock(nn.Module):
    """BN -> ReLU -> conv3x3(stride) -> BN -> ReLU -> conv3x3, plus a shortcut.

    The shortcut is BN -> conv1x1(stride) on the block input when the stride or the width
    changes, else the identity on the (un-normalised) block input. All BN affine-free.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = LayoutBatchNorm2d(in_planes, affine=False)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = LayoutBatchNorm2d(planes, affine=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                LayoutBatchNorm2d(in_planes, affine=False),
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (x if self.shortcut is None else self.shortcut(x))


class PreActResNet18(_SIModel):
    """Pre-activation ResNet-18 of width k (k = 64 is the standard one).

    stem conv3x3(C_in -> k) | 4 stages x 2 PreActBlocks, widths k, 2k, 4k, 8k, strides 1, 2, 2, 2 |
    BN -> ReLU -> AvgPool(final map) -> Flatten -> frozen Linear(8k -> K, no bias).
    SI parameters: every conv weight, jointly (scaling them all by a scales the residual stream
    by a and the final BN removes it; single layers such as the stem are not SI on their own).
    k = 4 gives d = 43,692; k = 32 gives 2,790,240. ``memory_format``: as `ConvNet`'s.
    """

    @_keep_global_rng
    def __init__(
        self,
        width: int = 64,
        in_channels: int = 3,
        num_classes: int = 10,
        *,
        input_size: int | Sequence[int] = 32,
        head_norm: float = 10.0,
        head_seed: int = 4,
        head_bias: bool = False,
        init_seed: int = 1,
        memory_format: str = "contiguous",
    ) -> None:
        super().__init__()
        self._layout = torch_memory_format(memory_format)
        self.memory_format = memory_format
        k = check_int("width", width, min_val=1)
        check_int("in_channels", in_channels, min_val=1)
        check_int("num_classes", num_classes, min_val=1)
        h, w = _size2(input_size)
        self.width, self.in_channels, self.num_classes = k, in_channels, num_classes
        self.input_size = (h, w)
        self.conv1 = nn.Conv2d(in_channels, k, 3, stride=1, padding=1, bias=False)
        stages = []
        prev = k
        for i, planes in enumerate((k, 2 * k, 4 * k, 8 * k)):
            stride = 1 if i == 0 else 2
            stages.append(
                nn.Sequential(PreActBlock(prev, planes, stride), PreActBlock(planes, planes))
            )
            prev = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = LayoutBatchNorm2d(8 * k, affine=False)
        for _ in range(3):  # a 3x3 conv with stride 2 and padding 1 maps n -> ceil(n / 2)
            h, w = (h + 1) // 2, (w + 1) // 2
        self.pool = nn.AvgPool2d((h, w))
        self.head = frozen_linear(
            8 * k, num_classes, bias=head_bias, norm=head_norm, seed=head_seed
        )
        _init_si_weights(self, init_seed)
        _set_layout(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(_in_layout(self, x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.pool(F.relu(self.bn(out))).flatten(1)
        return self.head(out)


def preact_resnet18(
    width: int = 64,
    in_channels: int = 3,
    num_classes: int = 10,
    *,
    input_size: int | Sequence[int] = 32,
    head_norm: float = 10.0,
    head_seed: int = 4,
    head_bias: bool = False,
    init_seed: int = 1,
    memory_format: str = "contiguous",
) -> PreActResNet18:
    """Pre-activation ResNet-18 of width k (see `PreActResNet18`); k = 4 gives d = 43,692.
    ``memory_format`` "channels_last" runs the same function faster on CPU."""
    return PreActResNet18(
        width,
        in_channels,
        num_classes,
        input_size=input_size,
        head_norm=head_norm,
        head_seed=head_seed,
        head_bias=head_bias,
        init_seed=init_seed,
        memory_format=memory_format,
    )
