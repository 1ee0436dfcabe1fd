"""LayoutBatchNorm2d: nn.BatchNorm2d, with small-channel channels-last inputs on NCHW."""

import pytest
import torch
from torch import nn

from thermosgd.nn.conv_layout import (
    MEMORY_FORMATS,
    SMALL_CHANNELS,
    LayoutBatchNorm2d,
    check_memory_format,
    set_channels_last,
    torch_memory_format,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def _run(bn, x, g):
    x = x.detach().clone().requires_grad_()
    y = bn(x)
    y.backward(g)
    return y.detach(), x.grad, bn.running_mean.clone(), bn.running_var.clone()


@pytest.mark.parametrize("C", [4, SMALL_CHANNELS])
def test_layout_batchnorm_equals_batchnorm(C):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, C, 6, 6, generator=gen) * 3 + 1
    g = torch.randn(8, C, 6, 6, generator=gen)
    x_cl, g_cl = (t.contiguous(memory_format=torch.channels_last) for t in (x, g))
    bn = LayoutBatchNorm2d(C, affine=False)
    set_channels_last(bn)
    assert bn.via_nchw == (C < SMALL_CHANNELS)
    got = _run(bn, x_cl, g_cl)
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    # Independent: torch's BatchNorm2d on the NCHW copy. The small-channel path runs that
    # forward kernel on that input: output and running statistics bit-identical. Its backward
    # receives the channels-last output gradient (another kernel path), and torch's
    # channels-last kernel (C >= SMALL_CHANNELS) sums in another order: float32 round-off,
    # ~1e-7 relative on 288 summands (1 ulp measured); 1e-5 leaves a 100x margin.
    want = _run(nn.BatchNorm2d(C, affine=False), x, g)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        if C < SMALL_CHANNELS and i != 1:
            assert torch.equal(a.contiguous(), b.contiguous())
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # Contiguous inputs take the plain BatchNorm2d path whatever the flag.
    bn2 = LayoutBatchNorm2d(C, affine=False)
    assert all(torch.equal(a, b) for a, b in zip(_run(bn2, x, g), want, strict=True))


def test_memory_format_names():
    assert MEMORY_FORMATS == ("contiguous", "channels_last")
    assert torch_memory_format("channels_last") is torch.channels_last
    assert torch_memory_format("contiguous") is torch.contiguous_format
    with pytest.raises(ValueError, match="memory_format == 'x', must be one of contiguous"):
        check_memory_format("x")
