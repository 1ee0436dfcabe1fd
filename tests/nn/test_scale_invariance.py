"""Finding and verifying scale-invariant groups; radius helpers.

Tolerances: with the normalization eps neutralised (the default), an SI group's loss changes
under scaling by 2 or 1/2 only through float32 round-off (scaling by a power of two is exact in
floating point, so the measured violations are ~1e-7 or exactly 0) and its radial gradient
component is ~1e-8 (float32 gradient accumulated in float64). We assert < 1e-5, well below the
default rtol 1e-4, while every non-SI example violates by > 1e-2.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thermosgd.nn.conv_models import convnet, preact_resnet18
from thermosgd.nn.models import BatchedBNMLP, batched_cross_entropy, bn_mlp, variant_mlp
from thermosgd.nn.scale_invariance import (
    batched_group_radius,
    check_scale_invariance,
    find_scale_invariant_groups,
    flatten,
    group_radius,
    radial_gradient,
    radial_gradient_stats,
    set_batched_group_radius,
    set_group_radius,
    si_distance,
    si_findings,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


SI_TOL = 1e-5


def _batch(shape, n=32, k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, k, (n,), generator=g)


MLP_BATCH = _batch((64,))
IMG_BATCH = _batch((1, 8, 8), n=16)


# ------------------------------------------------------------------ radius helpers


def test_radius_helpers():
    a = torch.tensor([3.0, 0.0])
    b = torch.tensor([[4.0]])
    assert torch.equal(flatten([a, b]), torch.tensor([3.0, 0.0, 4.0]))
    assert group_radius([a, b]) == 5.0
    old = set_group_radius([a, b], 2.0)
    assert old == 5.0 and math.isclose(group_radius([a, b]), 2.0, rel_tol=1e-7)
    torch.testing.assert_close(a, torch.tensor([1.2, 0.0]))
    with pytest.raises(ValueError, match=r"radius == 0\.0, must be > 0"):
        set_group_radius([a], 0.0)
    with pytest.raises(ValueError, match="radius"):
        set_group_radius([torch.zeros(3)], 1.0)
    with pytest.raises(ValueError, match="empty"):
        group_radius([])


def test_batched_radius_helpers():
    w1, w2 = torch.randn(3, 4, 5), torch.randn(3, 2)
    r = batched_group_radius([w1, w2])
    assert r.dtype == torch.float64 and r.shape == (3,)
    for g in range(3):
        # batched norms accumulate in float32 (~1e-7 relative), group_radius in float64
        assert math.isclose(float(r[g]), group_radius([w1[g], w2[g]]), rel_tol=1e-6)
    old = set_batched_group_radius([w1, w2], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(old, r)
    torch.testing.assert_close(
        batched_group_radius([w1, w2]),
        torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
        rtol=1e-6,
        atol=0,
    )
    with pytest.raises(ValueError, match="shape"):
        set_batched_group_radius([w1, w2], torch.ones(2))
    with pytest.raises(ValueError, match=r"radius == \[-1\.0, -1\.0, -1\.0\], must be > 0"):
        set_batched_group_radius([w1, w2], -1.0)


# ------------------------------------------------------------------ SI models pass


@pytest.mark.parametrize(
    "make,batch",
    [
        (lambda: bn_mlp(), MLP_BATCH),
        (lambda: convnet(2, in_channels=1, input_size=8), IMG_BATCH),
        (lambda: preact_resnet18(2, in_channels=1, input_size=8), IMG_BATCH),
    ],
    ids=["mlp", "convnet", "resnet"],
)
@pytest.mark.parametrize("radius", [None, 1.0])
def test_paper_models_are_jointly_si(make, batch, radius):
    model = make()
    if radius is not None:
        set_group_radius(model.si_parameters(), radius)
    (group,) = find_scale_invariant_groups(model, F.cross_entropy, batch)
    assert [id(p) for p in group.params] == [id(p) for p in model.si_parameters()]
    assert group.dim == model.dim
    assert group.check.loss_violation < SI_TOL and group.check.radial_violation < SI_TOL
    check = check_scale_invariance(model, F.cross_entropy, batch, model.si_parameters())
    assert check.ok and check.radial_violation < SI_TOL


def test_per_layer_groups():
    mlp = bn_mlp()
    groups = find_scale_invariant_groups(mlp, F.cross_entropy, MLP_BATCH, joint=False)
    assert [g.name for g in groups] == ["layers.0.weight", "layers.3.weight"]
    cn = convnet(2, in_channels=1, input_size=8)
    groups = find_scale_invariant_groups(cn, F.cross_entropy, IMG_BATCH, joint=False)
    assert len(groups) == 4 and all(g.check.ok for g in groups)


def test_resnet_is_si_only_jointly():
    rn = preact_resnet18(2, in_channels=1, input_size=8)
    with pytest.raises(ValueError, match=r"conv1\.weight") as e:
        find_scale_invariant_groups(rn, F.cross_entropy, IMG_BATCH, joint=False)
    assert "joint=True" in str(e.value)
    # The stem alone feeds a BN but is not SI alone (the residual stream carries it).
    with pytest.raises(ValueError, match="not scale-invariant"):
        check_scale_invariance(rn, F.cross_entropy, IMG_BATCH, ["conv1.weight"])
    groups = find_scale_invariant_groups(rn, F.cross_entropy, IMG_BATCH, joint=False, strict=False)
    assert "conv1.weight" not in [g.name for g in groups] and len(groups) == 8


def test_batched_model_is_si():
    bm = BatchedBNMLP(3, init_seed=[1, 2, 3])
    check = check_scale_invariance(
        bm, lambda out, y: batched_cross_entropy(out, y).sum(), MLP_BATCH, bm.si_parameters()
    )
    assert check.loss_violation < SI_TOL and check.radial_violation < SI_TOL


# ------------------------------------------------------------------ non-SI models are refused


def test_trainable_head_refused():
    m = bn_mlp()
    m.head.requires_grad_(True)
    with pytest.raises(ValueError, match=r"head\.weight.*trainable head"):
        find_scale_invariant_groups(m, F.cross_entropy, MLP_BATCH)


def test_affine_batchnorm_refused():
    m = nn.Sequential(
        nn.Linear(64, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)
    )
    m[3].requires_grad_(False)
    with torch.no_grad():  # affine parameters away from their (SI-compatible) identity init
        m[1].weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(0))
        m[1].bias.normal_(generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="affine"):
        find_scale_invariant_groups(m, F.cross_entropy, MLP_BATCH)
    with pytest.raises(ValueError, match=r"1\.weight"):
        find_scale_invariant_groups(m, F.cross_entropy, MLP_BATCH, joint=False)
    # The weight feeding the BN is still SI on its own: non-strict mode finds it.
    (g,) = find_scale_invariant_groups(m, F.cross_entropy, MLP_BATCH, joint=False, strict=False)
    assert g.name == "0.weight"


def test_bias_without_normalization_refused():
    m = nn.Sequential(
        nn.Linear(64, 32, bias=False),
        nn.BatchNorm1d(32, affine=False),
        nn.ReLU(),
        nn.Linear(32, 16),
        nn.ReLU(),
        nn.Linear(16, 10),
    )
    m[5].requires_grad_(False)
    with pytest.raises(ValueError, match=r"3\.bias is trainable"):
        find_scale_invariant_groups(m, F.cross_entropy, MLP_BATCH)
    with pytest.raises(ValueError, match=r"group 'layer3'.*3\.weight"):
        check_scale_invariance(m, F.cross_entropy, MLP_BATCH, ["3.weight"], name="layer3")


def test_eps_effect_is_visible_when_asked():
    """With the real BN eps, a BN-MLP at a small radius is measurably not SI."""
    m = bn_mlp()
    set_group_radius(m.si_parameters(), 0.05)
    with pytest.raises(ValueError, match="not scale-invariant"):
        check_scale_invariance(m, F.cross_entropy, MLP_BATCH, m.si_parameters(), ignore_eps=False)
    check = check_scale_invariance(m, F.cross_entropy, MLP_BATCH, m.si_parameters())
    assert check.loss_violation < SI_TOL
    assert m.layers[1].eps == 1e-5  # restored


# ------------------------------------------------------------------ state restoration and errors


def test_check_restores_model_state():
    m = bn_mlp()
    m.train()
    m(MLP_BATCH[0])  # non-trivial running statistics
    m.eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rng = torch.get_rng_state()
    find_scale_invariant_groups(m, F.cross_entropy, MLP_BATCH)
    find_scale_invariant_groups(m, F.cross_entropy, MLP_BATCH, joint=False)
    check_scale_invariance(m, F.cross_entropy, MLP_BATCH, m.si_parameters())
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # params and BN running stats
    assert not m.training and not any(mod.training for mod in m.modules())
    assert all(p.grad is None for p in m.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_bad_arguments():
    m = bn_mlp()
    ps = m.si_parameters()
    with pytest.raises(ValueError, match=r"scales == \(1\.0,\), must be non-empty and exclude 1"):
        check_scale_invariance(m, F.cross_entropy, MLP_BATCH, ps, scales=(1.0,))
    with pytest.raises(ValueError, match=r"scales == -2\.0, must be > 0"):
        check_scale_invariance(m, F.cross_entropy, MLP_BATCH, ps, scales=(-2.0,))
    with pytest.raises(ValueError, match=r"scales == \(\), must be non-empty"):
        check_scale_invariance(m, F.cross_entropy, MLP_BATCH, ps, scales=())
    with pytest.raises(ValueError, match=r"rtol == 0\.0, must be > 0"):
        check_scale_invariance(m, F.cross_entropy, MLP_BATCH, ps, rtol=0.0)
    with pytest.raises(ValueError, match="no parameter named"):
        check_scale_invariance(m, F.cross_entropy, MLP_BATCH, ["nope"])
    with pytest.raises(ValueError, match="not a parameter of the model"):
        check_scale_invariance(m, F.cross_entropy, MLP_BATCH, [nn.Parameter(torch.ones(3))])
    with pytest.raises(ValueError, match="twice"):
        check_scale_invariance(m, F.cross_entropy, MLP_BATCH, [ps[0], ps[0]])
    with pytest.raises(ValueError, match="pair"):
        check_scale_invariance(m, F.cross_entropy, MLP_BATCH[0], ps)
    with pytest.raises(ValueError, match="trainable"):
        find_scale_invariant_groups(m.requires_grad_(False), F.cross_entropy, MLP_BATCH)


# ------------------------------------------------------------------ distance from SI (issue 6)


def test_radial_gradient_functions():
    w = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    g = torch.tensor([[4.0, -3.0], [2.0, 0.0]])  # tangent (0) and purely radial (1)
    torch.testing.assert_close(radial_gradient(g, w), torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert float(radial_gradient(torch.zeros(2), torch.ones(2))) == 0.0
    # stats against a direct computation on random gradients
    gen = torch.Generator().manual_seed(0)
    grads = torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)
    ws = torch.randn(3, 7, generator=gen, dtype=torch.float64)
    mean, rms = radial_gradient_stats(grads, ws)
    for k in range(3):
        gbar = grads[k].mean(0)
        want = abs(float(gbar @ ws[k])) / float(gbar.norm() * ws[k].norm())
        assert math.isclose(float(mean[k]), want, rel_tol=1e-12)
        dots = grads[k] @ ws[k]
        want_rms = math.sqrt(float(dots.square().mean())) / (
            math.sqrt(float(grads[k].square().sum(1).mean())) * float(ws[k].norm()))
        assert math.isclose(float(rms[k]), want_rms, rel_tol=1e-12)
    # every gradient tangent -> both 0; every gradient radial -> both 1
    tang = torch.tensor([[[0.0, 1.0], [0.0, -2.0]]])
    rad = torch.tensor([[[3.0, 0.0], [1.0, 0.0]]])
    assert radial_gradient_stats(tang, torch.tensor([[2.0, 0.0]]))[1].item() == 0.0
    assert math.isclose(radial_gradient_stats(rad, torch.tensor([[2.0, 0.0]]))[1].item(), 1.0)
    with pytest.raises(ValueError, match="shape"):
        radial_gradient_stats(torch.zeros(5, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="last axis"):
        radial_gradient(torch.zeros(3), torch.zeros(4))


def test_si_distance_matches_finite_differences():
    """<grad L, w> = dL(c w)/dlog c at c = 1: central difference in log c, float64 model.
    Truncation error O(h^2 L''') with h = 1e-4 is ~1e-8 relative; round-off ~1e-16 / h."""

    torch.manual_seed(0)
    m = variant_mlp("bn-affine").double()
    x, y = MLP_BATCH
    x = x.double()
    params = [p for p in m.parameters() if p.requires_grad]
    dist = si_distance(m, F.cross_entropy, (x, y), params, scales=(0.5, 2.0, 1.5))

    def loss_at(c):
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p in params:
                p.mul_(c)
            out = float(F.cross_entropy(m(x), y))
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
        return out

    m.train()
    h = 1e-4
    fd = (loss_at(math.exp(h)) - loss_at(math.exp(-h))) / (2 * h)
    assert math.isclose(dist.radial_derivative, fd, rel_tol=1e-6)
    l0 = loss_at(1.0)
    assert math.isclose(dist.loss, l0, rel_tol=1e-12)
    for c in (0.5, 2.0, 1.5):
        assert math.isclose(dist.loss_change[c], abs(loss_at(c) - l0) / l0, rel_tol=1e-9)
    assert dist.loss_change_max == max(dist.loss_change.values()) > 1e-2
    assert math.isclose(dist.radial, abs(fd) / (dist.grad_norm * dist.radius), rel_tol=1e-5)


def test_si_distance_on_known_models():
    """SI models: ~0 with eps neutralised, O(eps / var) with it; non-SI variants: > 1e-2."""

    batch = MLP_BATCH
    m = bn_mlp()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    exact = si_distance(m, F.cross_entropy, batch, m.si_parameters(), ignore_eps=True)
    assert exact.radial < SI_TOL and exact.loss_change_max < SI_TOL
    as_run = si_distance(m, F.cross_entropy, batch, m.si_parameters())
    assert as_run.loss_change_max < 1e-2  # eps = 1e-5 against pre-activation variances ~1e-1
    for k, v in m.state_dict().items():  # state restored
        assert torch.equal(v, state[k])
    for variant in ("bn-affine", "head", "layernorm-affine"):
        mv = variant_mlp(variant)
        d = si_distance(mv, F.cross_entropy, batch, [p for p in mv.parameters() if p.requires_grad])
        assert d.radial > 1e-2 and d.loss_change_max > 1e-2
    with pytest.raises(ValueError, match="scales"):
        si_distance(m, F.cross_entropy, batch, m.si_parameters(), scales=(1.0,))


def test_si_radial_tolerance_separates_si_from_non_si_models():
    """`SI_RADIAL_TOLERANCE` (1e-3) against `si_distance`'s radial gradient at initialization,
    the model as it runs (eps included): the SI models measure float32 round-off plus eps,
    ~1e-6 (asserted 10x below the tolerance), the variants with affine norms or a trainable
    head ~3e-2 (asserted above it). The "bias" variant starts SI-like (zero biases: 7e-4) and
    is caught in training (tests/nn/test_attach.py)."""
    from thermosgd.nn.scale_invariance import SI_RADIAL_TOLERANCE

    for variant in ("si", "layernorm", "bn-affine", "head", "layernorm-affine"):
        m = variant_mlp(variant)
        d = si_distance(m, F.cross_entropy, MLP_BATCH, [p for p in m.parameters()
                                                         if p.requires_grad])
        if variant in ("si", "layernorm"):
            assert d.radial < SI_RADIAL_TOLERANCE / 10, variant
        else:
            assert d.radial > SI_RADIAL_TOLERANCE, variant


def test_si_findings():
    assert si_findings({"attach": 1e-6}, 2e-6) == ([], [])
    assert si_findings({}, float("nan")) == ([], [])  # nothing measured: nothing to report
    (reason,), (warning,) = si_findings({"attach": 0.33, "final": 1e-4}, float("nan"))
    assert reason == "not scale-invariant (relative radial gradient 0.33 > 0.001)"
    assert "is 0.33 (attach check), above 0.001" in warning and "final" not in warning
    assert "find_scale_invariant_groups(model, loss_fn, (x, y))" in warning
    assert "params=groups[0].params" in warning
    (reason,), _ = si_findings({}, 0.05, tolerance=0.01)
    assert reason == "not scale-invariant (relative radial gradient 0.05 > 0.01)"
    with pytest.raises(ValueError, match=r"tolerance == 0\.0, must be > 0"):
        si_findings({}, 0.1, tolerance=0)
