"""Memory layout of the conv models (issue 10, fast single-config CPU step).

``memory_format`` of `thermosgd.nn.conv_models.ConvNet` / `PreActResNet18`: ``"contiguous"`` (NCHW,
PyTorch's default) or ``"channels_last"`` (NHWC strides, same logical shape). Channels-last
runs the oneDNN convolutions without layout reorders: on one CPU thread the ConvNet-8 step is
about 1.6x faster (``benchmarks/bench_conv_step.py``). The values are the same function: only
the summation order inside the convolution kernels changes (float32 round-off, ~1e-6 relative).

`LayoutBatchNorm2d` is ``nn.BatchNorm2d`` (same parameters, buffers, state_dict keys and, for
contiguous inputs, the very same call) except for channels-last CPU inputs with fewer than
`SMALL_CHANNELS` channels: PyTorch's channels-last batch-norm kernel vectorizes over the
channels and runs about 3x slower than the NCHW kernel there (the ResNet-18 k=4 first stage,
C = 4), so those go through an NCHW copy, x -> BN(x.contiguous()) -> channels-last: the NCHW
kernel's numbers, at the cost of two copies.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from thermosgd._validate import check_choice
from thermosgd.spec import MEMORY_FORMATS

__all__ = [
    "MEMORY_FORMATS",
    "SMALL_CHANNELS",
    "LayoutBatchNorm2d",
    "check_memory_format",
    "set_channels_last",
    "torch_memory_format",
]

#: channels-last batch norm with fewer channels than this goes through an NCHW copy (measured:
#: C = 4 at 32x32 is 3.6x slower channels-last than NCHW on one thread, C = 8 is not slower)
SMALL_CHANNELS = 8


def check_memory_format(memory_format: str) -> str:
    """``memory_format`` must be one of `MEMORY_FORMATS`."""
    return check_choice("memory_format", memory_format, MEMORY_FORMATS)


def torch_memory_format(memory_format: str) -> torch.memory_format:
    """The ``torch.memory_format`` of a `MEMORY_FORMATS` name."""
    fmt = check_memory_format(memory_format)
    return torch.channels_last if fmt == "channels_last" else torch.contiguous_format


class LayoutBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose small-channel channels-last CPU inputs run the NCHW kernel.

    y = BN(x) for every input. When the model runs channels-last (``via_nchw`` set by
    `set_channels_last`, only for C < `SMALL_CHANNELS`), a CPU input is computed as
    BN(x.contiguous()).contiguous(channels_last): the same statistics, running buffers and
    gradients, by the faster kernel. Otherwise exactly ``nn.BatchNorm2d.forward``.
    """

    via_nchw = False

    def forward(self, x: Tensor) -> Tensor:
        if self.via_nchw and x.device.type == "cpu":
            y = super().forward(x.contiguous())
            return y.contiguous(memory_format=torch.channels_last)
        return super().forward(x)


def set_channels_last(model: nn.Module) -> None:
    """Put the 4-d weights of ``model`` in channels-last and route its small-channel
    `LayoutBatchNorm2d` layers through the NCHW kernel (see there)."""
    model.to(memory_format=torch.channels_last)
    for m in model.modules():
        if isinstance(m, LayoutBatchNorm2d) and m.num_features < SMALL_CHANNELS:
            m.via_nchw = True
