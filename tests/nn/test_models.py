"""Scale-invariant models: parameter counts, frozen heads, input sizes, batched BN-MLP."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thermosgd.nn.conv_models import convnet, preact_resnet18
from thermosgd.nn.models import (
    BNMLP,
    MLP_VARIANTS,
    BatchedBNMLP,
    VariantMLP,
    batched_cross_entropy,
    bn_mlp,
    frozen_linear,
    si_dim,
    si_named_parameters,
    si_parameters,
    thermo_named_parameters,
    variant_mlp,
)
from thermosgd.nn.scale_invariance import check_scale_invariance

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


# Float32 comparisons between the batched (bmm, one GEMM over all configs) and the unbatched
# (mm) paths differ only in summation order: relative errors ~ sqrt(fan_in) * 6e-8 ~ 1e-6.
# rtol 1e-4 / atol 1e-5 leaves a 100x margin and still catches any real mismatch (a wrong
# BN statistic or weight slice changes outputs at the 1e-1 level).
RTOL, ATOL = 1e-4, 1e-5


# ------------------------------------------------------------------ parameter counts (paper)


def test_paper_parameter_counts():
    assert si_dim(convnet(8)) == 24_408  # ConvNet-8 / CIFAR-10
    assert si_dim(convnet(16, num_classes=100)) == 97_200  # ConvNet-16 / CIFAR-100
    assert si_dim(preact_resnet18(4)) == 43_692  # ResNet-18 k=4, C10
    assert si_dim(preact_resnet18(4, num_classes=100)) == 43_692  # head is not SI: same d
    assert si_dim(preact_resnet18(32)) == 2_790_240  # the overparameterized ResNet
    assert si_dim(bn_mlp(64, (32, 32))) == 3072  # reference-implementation 8.2
    assert si_dim(bn_mlp(64, (64, 64))) == 8192


@pytest.mark.parametrize("c", [1, 2, 4])
@pytest.mark.parametrize("cin", [1, 3])
def test_convnet_count_formula(c, cin):
    m = convnet(c, in_channels=cin, input_size=8)
    assert m.dim == 9 * c * cin + 378 * c * c
    assert si_dim(m) == sum(p.numel() for p in m.parameters() if p.requires_grad)


# ------------------------------------------------------------------ structure


@pytest.mark.parametrize(
    "model",
    [bn_mlp(), convnet(2, input_size=8), preact_resnet18(2, input_size=8)],
    ids=["mlp", "convnet", "resnet"],
)
def test_structure_is_scale_invariant_by_construction(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert not m.affine and m.weight is None and m.bias is None
        if isinstance(m, (nn.Linear, nn.Conv2d)) and m is not model.head:
            assert m.bias is None and m.weight.requires_grad
    assert not any(p.requires_grad for p in model.head.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert [id(p) for p in si_parameters(model)] == [id(p) for p in trainable]
    names = [n for n, _ in si_named_parameters(model)]
    assert not any(n.startswith("head") for n in names)


def test_head_matches_reference_recipe():
    """set_seed(4); nn.Linear(...); W <- 10 W / ||W||_F, bias kept (reference 3.2)."""
    with torch.random.fork_rng():
        torch.manual_seed(4)
        ref = nn.Linear(64, 10)
    head = frozen_linear(64, 10, bias=True, norm=10.0, seed=4)
    torch.testing.assert_close(head.weight, ref.weight * (10.0 / ref.weight.norm()))
    assert torch.equal(head.bias, ref.bias)
    assert abs(float(head.weight.norm()) - 10.0) < 1e-5
    # Model heads: ConvNet with bias, ResNet without, both Frobenius norm 10, frozen.
    cn, rn = convnet(8), preact_resnet18(4)
    assert cn.head.bias is not None and rn.head.bias is None
    for m in (cn, rn):
        assert abs(float(m.head.weight.norm()) - 10.0) < 1e-5
    assert abs(float(bn_mlp(head_norm=1.5).head.weight.norm()) - 1.5) < 1e-6


def test_construction_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = bn_mlp(init_seed=1), bn_mlp(init_seed=1), bn_mlp(init_seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)
    assert torch.equal(a.head.weight, c.head.weight)  # one head seed for every run


@pytest.mark.parametrize("size,cin", [(32, 3), (28, 1), (8, 1)])
def test_input_sizes(size, cin):
    x = torch.randn(4, cin, size, size)
    for m in (convnet(2, cin, 7, input_size=size), preact_resnet18(2, cin, 7, input_size=size)):
        assert m(x).shape == (4, 7)
        assert m.head.in_features == 16  # 8c / 8k features whatever the input size
    # The paper's 32x32 ConvNet ends with MaxPool(4) (over a 4x4 map).
    assert convnet(2).conv_layers[-2].kernel_size == (4, 4)
    assert preact_resnet18(2).pool.kernel_size == (4, 4)


def test_mlp_accepts_images():
    m = bn_mlp()
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(m(x), m(x.flatten(1)))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"hidden == \(\), must list at least one"):
        bn_mlp(hidden=())
    with pytest.raises(ValueError, match="hidden width == 0, must be >= 1"):
        bn_mlp(hidden=(32, 0))
    with pytest.raises(ValueError, match="width == 0, must be >= 1"):
        convnet(0)
    with pytest.raises(ValueError, match=r"num_classes == 2\.0, must be an integer"):
        preact_resnet18(2, num_classes=2.0)
    with pytest.raises(ValueError, match="input_size == 4, must be an int or"):
        convnet(2, input_size=4)
    with pytest.raises(ValueError, match=r"head_norm == 0\.0, must be > 0"):
        preact_resnet18(2, head_norm=0.0)
    with pytest.raises(ValueError, match="scale-invariant"):
        si_parameters(nn.Linear(3, 3))


# ------------------------------------------------------------------ batched BN-MLP


def _models(G, **kw):
    return [bn_mlp(init_seed=10 + g, **kw) for g in range(G)]


@pytest.mark.parametrize("head_bias", [False, True])
@pytest.mark.parametrize("shared_batch", [True, False])
def test_batched_equals_separate_models(head_bias, shared_batch):
    G, B = 5, 32
    models = _models(G, head_bias=head_bias)
    bm = BatchedBNMLP.from_models(models)
    assert bm.dim == 3072 and si_dim(bm) == 3072
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, 64, generator=gen) if shared_batch else torch.randn(G, B, 64, generator=gen)
    y = torch.randint(0, 10, (B,) if shared_batch else (G, B), generator=gen)
    out = bm(x)
    assert out.shape == (G, B, 10)
    losses = batched_cross_entropy(out, y)
    losses.sum().backward()
    for g, m in enumerate(models):
        xg, yg = (x, y) if shared_batch else (x[g], y[g])
        og = m(xg)
        torch.testing.assert_close(out[g], og, rtol=RTOL, atol=ATOL)
        lg = F.cross_entropy(og, yg)
        torch.testing.assert_close(losses[g], lg, rtol=RTOL, atol=ATOL)
        lg.backward()
        for i in range(2):
            torch.testing.assert_close(
                bm.weights[i].grad[g], m.layers[3 * i].weight.grad.T, rtol=RTOL, atol=ATOL
            )
    # Running statistics were updated exactly like G BatchNorm1d layers.
    for g, m in enumerate(bm.to_model(g) for g in range(G)):
        for i in range(2):
            torch.testing.assert_close(
                m.layers[3 * i + 1].running_var,
                models[g].layers[3 * i + 1].running_var,
                rtol=RTOL,
                atol=ATOL,
            )
            torch.testing.assert_close(
                m.layers[3 * i + 1].running_mean,
                models[g].layers[3 * i + 1].running_mean,
                rtol=RTOL,
                atol=ATOL,
            )
    # Eval mode uses the running statistics in both.
    bm.eval()
    out_eval = bm(x)
    for g, m in enumerate(models):
        m.eval()
        torch.testing.assert_close(
            out_eval[g], m(x if shared_batch else x[g]), rtol=RTOL, atol=ATOL
        )


def test_batched_default_init_matches_unbatched_and_round_trips():
    bm = BatchedBNMLP(3, init_seed=[1, 2, 1])
    ref1, ref2 = bn_mlp(init_seed=1), bn_mlp(init_seed=2)
    assert torch.equal(bm.weights[0][0], ref1.layers[0].weight.T)
    assert torch.equal(bm.weights[1][1], ref2.layers[3].weight.T)
    assert torch.equal(bm.weights[0][2], bm.weights[0][0])
    assert torch.equal(bm.head_weight[1], ref1.head.weight)  # same frozen head for all configs
    assert not bm.head_weight.requires_grad
    assert [p.shape for p in bm.si_parameters()] == [(3, 64, 32), (3, 32, 32)]
    m = bm.to_model(1)
    assert isinstance(m, BNMLP)
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), ref2.parameters(), strict=True))
    bm2 = BatchedBNMLP.from_models([bm.to_model(g) for g in range(3)])
    assert all(
        torch.equal(p, q)
        for p, q in zip(bm.state_dict().values(), bm2.state_dict().values(), strict=True)
    )
    # float64 models stay float64 both ways (their weights are not rounded through float32)
    m64 = [bn_mlp(init_seed=s).double() for s in (1, 2)]
    with torch.no_grad():
        m64[0].layers[0].weight.mul_(1 + 1e-12)
    bm64 = BatchedBNMLP.from_models(m64)
    assert bm64.weights[0].dtype == bm64.head_weight.dtype == torch.float64
    assert torch.equal(bm64.weights[0][0], m64[0].layers[0].weight.T)
    back = bm64.to_model(0)
    assert back.layers[0].weight.dtype == torch.float64
    assert torch.equal(back.layers[0].weight, m64[0].layers[0].weight)


def test_batched_bad_inputs():
    bm = BatchedBNMLP(2)
    with pytest.raises(ValueError, match="shape"):
        bm(torch.randn(3, 4, 64))
    with pytest.raises(ValueError, match="shape"):
        bm(torch.randn(4, 63))
    with pytest.raises(ValueError, match="init_seed"):
        BatchedBNMLP(2, init_seed=[1, 2, 3])
    with pytest.raises(ValueError, match="num_configs == 0, must be >= 1"):
        BatchedBNMLP(0)
    with pytest.raises(ValueError, match="g == 2, must index one of 2 configs"):
        bm.to_model(2)
    with pytest.raises(ValueError, match="target"):
        batched_cross_entropy(torch.randn(2, 4, 10), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="same"):
        BatchedBNMLP.from_models([bn_mlp(), bn_mlp(hidden=(16, 16))])


# ------------------------------------------------------------------ non-SI variants (issue 6)


def _variant_batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 64, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize(
    "variant, extra",
    [
        ("si", 0),
        ("bn-affine", 2 * (32 + 32)),  # gamma and beta of both BatchNorms
        ("bias", 32 + 32 + 10),  # a shift after each BatchNorm + the head bias
        ("head", 32 * 10),  # the head weight
        ("layernorm", 0),
        ("layernorm-affine", 2 * (32 + 32)),
    ],
)
def test_variant_parameters(variant, extra):
    m = variant_mlp(variant)
    trainable = [p for p in m.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == 3072 + extra
    assert sum(p.numel() for _, p in thermo_named_parameters(m)) == 3072 + extra
    # the hidden weights are the SI parameters in every variant, initialised as in BNMLP
    si = si_parameters(m)
    ref = bn_mlp()
    assert [p.shape for p in si] == [p.shape for p in ref.si_parameters()]
    for a, b in zip(si, ref.si_parameters(), strict=True):
        assert torch.equal(a, b)
    if variant != "si":
        assert isinstance(m, VariantMLP) and m.dim == 3072 + extra
    assert isinstance(m(_variant_batch()[0]), torch.Tensor)


def test_variant_si_is_bnmlp_and_head_init():
    x, _ = _variant_batch()
    assert isinstance(variant_mlp("si"), BNMLP)
    head = variant_mlp("head")
    assert torch.equal(head.head.weight, bn_mlp().head.weight)  # the frozen head's init
    assert head.head.weight.requires_grad and head.head.bias is None
    b = variant_mlp("bias")
    assert b.head.bias.requires_grad and not b.head.weight.requires_grad
    # at init (zero shifts, BatchNorm gamma = 1, beta = 0) bn-affine computes the si function
    torch.testing.assert_close(variant_mlp("bn-affine")(x), bn_mlp()(x), rtol=RTOL, atol=ATOL)


def test_variant_scale_invariance_structure():
    """SI variants pass the strict check; the others fail it, each for its own parameters."""
    batch = _variant_batch()
    for variant in MLP_VARIANTS:
        m = variant_mlp(variant)
        if variant == "bias":  # zero shifts at init would hide the bias; move them off zero
            with torch.no_grad():
                for p in m.parameters():
                    if p.requires_grad and p.dim() == 1:
                        p.add_(0.5)
        params = [p for p in m.parameters() if p.requires_grad]
        if variant in ("si", "layernorm"):
            check_scale_invariance(m, F.cross_entropy, batch, params)
        else:
            with pytest.raises(ValueError, match="not scale-invariant"):
                check_scale_invariance(m, F.cross_entropy, batch, params)
        # the hidden weights alone stay SI in every variant
        check_scale_invariance(m, F.cross_entropy, batch, si_parameters(m))


def test_variant_errors():
    with pytest.raises(ValueError, match="variant == 'dropout', must be one of si, bn-affine"):
        variant_mlp("dropout")
    with pytest.raises(ValueError, match="hidden"):
        VariantMLP("bias", hidden=())


@pytest.mark.parametrize(
    "variant, extra",
    [("si", 0), ("bn-affine", 2 * 15 * 2), ("bias", 15 * 2 + 10), ("head", 8 * 2 * 10)],
)
def test_convnet_variants(variant, extra):
    """Width 2 on 8x8 digits: d = 9 c + 378 c^2 = 1530 conv weights in every variant; the
    BatchNorms have c + 2c + 4c + 8c = 15 c channels; the head is Linear(8c -> 10)."""
    m = convnet(2, 1, 10, input_size=8, variant=variant)
    assert m.dim == 1530 and len(m.si_parameters()) == 4
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == 1530 + extra
    for a, b in zip(m.si_parameters(), convnet(2, 1, 10, input_size=8).si_parameters(),
                    strict=True):
        assert torch.equal(a, b)
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g))
    if variant == "bias":
        with torch.no_grad():
            for p in m.parameters():
                if p.requires_grad and p.dim() == 1:
                    p.add_(0.5)
    trainable = [p for p in m.parameters() if p.requires_grad]
    check_scale_invariance(m, F.cross_entropy, batch, m.si_parameters())
    if variant == "si":
        check_scale_invariance(m, F.cross_entropy, batch, trainable)
    else:
        with pytest.raises(ValueError, match="not scale-invariant"):
            check_scale_invariance(m, F.cross_entropy, batch, trainable)
    with pytest.raises(ValueError,
                       match=r"variant == 'layernorm', must be one of si, bn-affine, bias, head$"):
        convnet(2, 1, 10, input_size=8, variant="layernorm")


# ------------------------------------------------------------------ conv layouts (issue 10)


def _legacy_order(model):
    """The ConvNet as before issue 10: ReLU before each max-pool (an independent build of
    the old layer order from the same modules)."""
    layers = list(model.conv_layers)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], nn.MaxPool2d) and isinstance(layers[i + 1], nn.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    model.conv_layers = nn.Sequential(*layers)
    return model


def _fwd_bwd(model, x, y):
    out = model(x)
    F.cross_entropy(out, y).backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    return out.detach(), grads, [b.clone() for b in model.buffers()]


@pytest.mark.parametrize("variant", ["si", "bias"])
def test_convnet_pool_before_relu_is_exact(variant):
    """relu(maxpool(z)) == maxpool(relu(z)) for monotone relu: outputs, gradients and BN
    statistics are bit-identical to the old order (no tolerance: the same float ops)."""
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 3, 16, 16, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    new = convnet(2, input_size=16, variant=variant)
    old = _legacy_order(convnet(2, input_size=16, variant=variant))
    assert [type(m) for m in new.conv_layers] != [type(m) for m in old.conv_layers]
    a, b = _fwd_bwd(new, x, y), _fwd_bwd(old, x, y)
    assert torch.equal(a[0], b[0])
    assert all(torch.equal(p, q) for p, q in zip(a[1], b[1], strict=True))
    assert all(torch.equal(p, q) for p, q in zip(a[2], b[2], strict=True))
    # the state_dict keys did not move (ReLU and MaxPool hold no state)
    assert list(new.state_dict()) == list(old.state_dict())


# channels-last vs NCHW: the same float32 function summed in another order inside the conv
# kernels (oneDNN picks other blockings). Round-off ~ eps * sqrt(fan_in) per layer (6e-8 * 24 for
# fan_in 576) over <= 20 layers, BN-normalised: measured <= 2e-6 of the largest entry (logits,
# gradients) at equal weights. LAYOUT_TOL = 3e-5 of the largest entry leaves a 15x margin, while
# a wrong layout (permuted channels / pixels) changes them at the 1e-1 level.
LAYOUT_TOL = 3e-5


def _close_to_scale(a, b):
    err, scale = float((a - b).abs().max().detach()), float(b.abs().max().detach())
    assert err <= LAYOUT_TOL * scale, (err, scale)


@pytest.mark.parametrize(
    "make",
    [
        lambda mf: convnet(2, 3, 10, input_size=16, memory_format=mf),
        lambda mf: convnet(8, 1, 10, input_size=8, memory_format=mf),
        lambda mf: preact_resnet18(2, 3, 10, input_size=16, memory_format=mf),
    ],
    ids=["convnet2", "convnet8", "resnet2"],
)
def test_channels_last_is_the_same_function(make):
    """Outputs, SI gradients and BN running statistics of the channels-last model equal the
    NCHW model's at the same weights, at init and after 3 fixed-ELR steps (the weights copied
    over each time: the function is compared, not two diverging trajectories)."""
    from thermosgd.nn.optim import FixedELR

    cl, ref = make("channels_last"), make("contiguous")
    assert cl.memory_format == "channels_last" and ref.memory_format == "contiguous"
    for p in cl.si_parameters():
        if p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1:  # else both layouts coincide
            assert p.is_contiguous(memory_format=torch.channels_last)
            assert not p.is_contiguous()
    for p, q in zip(cl.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)  # same init, only the strides differ
    gen = torch.Generator().manual_seed(0)
    cin, size = cl.in_channels, cl.input_size[0]
    opt = FixedELR(ref.si_parameters(), elr=1e-2, wd=5e-4)
    for _ in range(4):
        cl.load_state_dict(ref.state_dict())  # values, whatever the strides
        x = torch.randn(16, cin, size, size, generator=gen)
        y = torch.randint(0, 10, (16,), generator=gen)
        opt.zero_grad(set_to_none=True)
        cl.zero_grad(set_to_none=True)
        a, b = _fwd_bwd(cl, x, y), _fwd_bwd(ref, x, y)
        _close_to_scale(a[0], b[0])
        for p, q in zip(a[1], b[1], strict=True):
            _close_to_scale(p, q)
        for p, q in zip(a[2], b[2], strict=True):
            _close_to_scale(p.double(), q.double())
        opt.step()
    cl.load_state_dict(ref.state_dict())
    cl.eval(), ref.eval()  # eval mode: the running statistics
    x = torch.randn(4, cin, size, size, generator=gen)
    _close_to_scale(cl(x), ref(x))


def test_memory_format_is_checked():
    with pytest.raises(ValueError, match="memory_format == 'nhwc', must be one of contiguous"):
        convnet(2, memory_format="nhwc")
    with pytest.raises(ValueError, match="memory_format == 'cl', must be one of"):
        preact_resnet18(2, memory_format="cl")
