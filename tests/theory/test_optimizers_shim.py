# transition (issue 14): tests the thermosgd.optimizers shim; delete this file with the shim
"""The fixed-LR dispatchers left in the thermosgd.optimizers transition shim give, bit for bit,
what they gave before the optimizer branches were replaced by tables (a frozen copy of the old
dispatch, as heavy ball at beta = 0 for SGD), and keep their physics (gas law, Maxwell slope)."""

import math

import numpy as np
import pytest

from thermosgd import optimizers
from thermosgd.theory import adamw as aw
from thermosgd.theory import momentum as hb

D, S2, TS, G2 = 50, 1.7, 12.0, 0.4
LR = np.array([0.03, 0.1])
WD = np.array([[0.02], [1e-3]])


def _old(name, opt, m):
    """Frozen copy of the old optimizers.lr_* bodies (momentum 0.0 for SGD)."""
    b = 0.0 if opt == "sgd" else float(m)
    if name == "radius_sde":
        return aw.adamw_radius(LR, WD, D) if opt == "adamw" else hb.momentum_radius(
            LR, WD, b, S2, D)
    if name == "radius_discrete":
        return (aw.adamw_radius_discrete(LR, WD, b, D, TS, G2, exact=True) if opt == "adamw"
                else hb.momentum_radius_discrete(LR, WD, b, TS, G2))
    if name == "temperature":
        return (aw.adamw_temperature(LR, WD, S2, D) if opt == "adamw"
                else hb.momentum_temperature(LR, WD, b, S2, D))
    if name == "effective_step":
        r = np.asarray(2.5)
        if opt == "adamw":
            return LR / (np.sqrt(np.asarray(S2) * (D - 1.0) / D) * r)
        return LR / ((1.0 - b) * r * r)
    if name == "pressure":
        return aw.adamw_pressure(WD, 2.5, S2, D) if opt == "adamw" else np.asarray(WD, float)
    if name == "relaxation_time":
        return (aw.adamw_relaxation_time(LR, WD) if opt == "adamw"
                else hb.momentum_relaxation_time(LR, WD, b))
    return (1.0 if opt == "adamw" else 0.5) * (D - 1.0)


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adamw"])
def test_dispatch_tables_reproduce_the_old_dispatch_wiring(opt):
    m = None if opt == "sgd" else 0.9
    new = {
        "radius_sde": optimizers.lr_radius_sde(opt, lr=LR, wd=WD, sigma2=S2, dim=D, momentum=m),
        "radius_discrete": optimizers.lr_radius_discrete(opt, lr=LR, wd=WD, dim=D,
                                                         trace_sigma=TS, grad_norm2=G2,
                                                         momentum=m),
        "temperature": optimizers.lr_temperature(opt, lr=LR, wd=WD, sigma2=S2, dim=D,
                                                 momentum=m),
        "effective_step": optimizers.lr_effective_step(opt, lr=LR, radius=2.5, sigma2=S2,
                                                       dim=D, momentum=m),
        "pressure": optimizers.lr_pressure(opt, wd=WD, radius=2.5, sigma2=S2, dim=D),
        "relaxation_time": optimizers.lr_relaxation_time(opt, lr=LR, wd=WD, momentum=m),
        "maxwell_slope": optimizers.lr_maxwell_slope(opt, D),
    }
    for name, value in new.items():
        np.testing.assert_array_equal(value, _old(name, opt, m), err_msg=name)  # bit for bit
    assert optimizers.lr_radius_power(opt) == (2 if opt == "adamw" else 4)


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adamw"])
def test_lr_dispatch_gas_law_and_maxwell_slope(opt):
    """At the predicted radius: p r*^2 = (d-1) T and T = eta-tilde sigma2 / 2 (eta-tilde from
    `lr_effective_step`); the Maxwell slope by finite differences of S = S_dir(eta lambda)
    + (d-1) log r* (any S_dir of eta lambda; here the isotropic (d-1)/2 log T)."""
    d, s2, beta = 50, 1.7, 0.9
    m = None if opt == "sgd" else beta

    def state(lr, wd):
        r = float(optimizers.lr_radius_sde(opt, lr=lr, wd=wd, sigma2=s2, dim=d, momentum=m))
        T = float(optimizers.lr_temperature(opt, lr=lr, wd=wd, sigma2=s2, dim=d, momentum=m))
        return r, T

    lr, wd = 0.03, 0.02
    r, T = state(lr, wd)
    p = optimizers.lr_pressure(opt, wd=wd, radius=r, sigma2=s2, dim=d)
    assert p * r**2 == pytest.approx((d - 1) * T, rel=1e-12)
    step = optimizers.lr_effective_step(opt, lr=lr, radius=r, sigma2=s2, dim=d, momentum=m)
    assert step * s2 / 2 == pytest.approx(T, rel=1e-12)

    def S(a, b):
        r_, T_ = state(math.exp(a), math.exp(b))
        return (d - 1) / 2 * math.log(T_) + math.sin(T_) + (d - 1) * math.log(r_)

    h, a, b = 1e-5, math.log(lr), math.log(wd)
    slope = (S(a + h, b) - S(a - h, b)) / (2 * h) - (S(a, b + h) - S(a, b - h)) / (2 * h)
    assert slope == pytest.approx(optimizers.lr_maxwell_slope(opt, d), rel=1e-6)


def test_lr_dispatch_errors():
    with pytest.raises(ValueError, match="optimizer == 'adam', must be one of"):
        optimizers.lr_temperature("adam", lr=0.1, wd=0.1, sigma2=1.0, dim=10)
    with pytest.raises(ValueError, match="momentum == None, must be given"):
        optimizers.lr_radius_sde("momentum", lr=0.1, wd=0.1, sigma2=1.0, dim=10)
