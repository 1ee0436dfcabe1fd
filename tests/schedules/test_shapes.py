"""Tests of thermosgd.schedules.shapes: the schedules against their defining formulas
(torch's MultiStepLR / CosineAnnealingLR), warm-up composition, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from thermosgd import schedules as S
from thermosgd.schedules.shapes import WD_PROTOCOLS, check_wd_protocol


def test_common_schedules():
    np.testing.assert_array_equal(S.constant(3, 0.5), [0.5, 0.5, 0.5])
    # MultiStepLR: value * gamma^(number of milestones <= t)
    np.testing.assert_allclose(S.step_decay(6, 1.0, milestones=[2, 4], gamma=0.5),
                               [1, 1, 0.5, 0.5, 0.25, 0.25])
    c = S.cosine(4, 1.0, final=0.2)
    np.testing.assert_allclose(c, 0.2 + 0.8 * (1 + np.cos(np.pi * np.arange(4) / 4)) / 2)
    assert c[0] == 1.0 and np.all(c > 0.2)
    w = S.linear_warmup(np.ones(5), 4)
    np.testing.assert_allclose(w, [0.25, 0.5, 0.75, 1, 1])
    np.testing.assert_allclose(S.make_schedule("step", 6, 2.0, milestones=[3], warmup=2),
                               [1.0, 2.0, 2.0, 0.2, 0.2, 0.2])


def test_cosine_matches_torch_cosine_annealing():
    """Independent check: torch's CosineAnnealingLR(T_max = steps, eta_min = final)."""
    torch = pytest.importorskip("torch")
    n, v, f = 50, 2.0, 0.3
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=v)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n, eta_min=f)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # torch's recursive update accumulates round-off over the steps: 1e-12 relative
    np.testing.assert_allclose(S.cosine(n, v, final=f), lrs, rtol=1e-12)


def test_step_decay_matches_torch_multistep():
    """Independent check: torch's MultiStepLR."""
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[4, 9], gamma=0.2)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(S.step_decay(12, 3.0, milestones=[9, 4], gamma=0.2), lrs,
                               rtol=1e-15)


def test_wd_protocols_come_from_the_registry():
    assert WD_PROTOCOLS == ("lr", "elr")
    assert check_wd_protocol("elr") == "elr"
    with pytest.raises(ValueError, match=r"protocol == 'sphere', must be one of lr, elr"):
        check_wd_protocol("sphere")


@pytest.mark.parametrize("call, match", [
    (lambda: S.constant(0, 1.0), r"steps == 0, must be >= 1"),
    (lambda: S.constant(3, -1.0), r"value == -1.0, must be > 0"),
    (lambda: S.step_decay(5, 1.0, milestones=[5]), r"milestones == \[5\], must lie in"),
    (lambda: S.step_decay(5, 1.0, milestones=[2], gamma=0.0), r"gamma == 0.0, must be > 0"),
    (lambda: S.cosine(5, 1.0, final=1.0), r"final == 1.0, must be < 1.0"),
    (lambda: S.cosine(5, 1.0, final=-0.1), r"final == -0.1, must be >= 0"),
    (lambda: S.linear_warmup(np.ones(3), 2, start=2.0), r"start == 2.0, must be <= 1"),
    (lambda: S.linear_warmup(np.ones(3), 0), r"warmup == 0, must be >= 1"),
    (lambda: S.make_schedule("linear", 5, 1.0), r"schedule == 'linear', must be one of"),
    (lambda: S.make_schedule("step", 5, 1.0), "milestones"),
    (lambda: S.make_schedule("constant", 5, 1.0, warmup=-1), r"warmup == -1, must be >= 0"),
])
def test_bad_schedules(call, match):
    with pytest.raises(ValueError, match=match):
        call()
