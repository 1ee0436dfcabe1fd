"""Synthetic tables of stationary states for the analysis tests: ideal gases built from the
closed forms.

The synthetic gas has a known heat capacity C (not the isotropic model's (d-1)/2): the
direction law depends on T only, with U = u0 + C T and S_dir = C log T + s0, and a noise level
sigma2 that depends on elr (ELR, sphere) or lr*wd (LR) only. Then S = S_dir + (d-1) log r obeys
the Maxwell relations exactly whatever C is, and an added term of known size violates them by a
known amount.

* `ideal_gas_table`: one protocol's grid (SGD);
* `optimizer_gas_table`: the fixed-LR grid of SGD, heavy ball or AdamW
  (`thermosgd.theory.fixed_lr_forms` closed forms; AdamW's pressure is lambda sqrt(s), not wd);
* `_variant_table` / `VARIANTS`: 3x3 grids of model variants at known distances from scale
  invariance, with known EOS and Maxwell errors;
* `_merge`: several tables as one.
"""

import math

import numpy as np

from thermosgd import theory
from thermosgd.theory import fixed_lr_forms

__all__ = ["DIM", "HALF", "VARIANTS", "_merge", "_variant_table", "ideal_gas_table",
           "optimizer_gas_table"]

DIM = 3072
HALF = (DIM - 1) / 2


def ideal_gas_table(protocol="elr", *, rates=None, second=None, dim=DIM, heat_capacity=300.0,
                    sigma_curve=(0.05, -0.5, 0.05), grad_ratio=0.0, eos_noise=0.0,
                    entropy_noise=0.0, delta=0.0, eps=0.0, seed=0, seeds=1):
    """A tidy table of stationary states of an ideal gas (see the module docstring).

    sigma_curve (s0, b1, b2): log sigma2 = log s0 + b1 u + b2 u^2 with u = log(c / c0), c the
    collapse variable (elr, or lr*wd) and c0 its geometric mid-grid value. The full-gradient
    norm is grad_ratio * trace_sigma * c / max c (it matters at large rates, as in the paper),
    so the measured radius (or sphere pressure) is the discretization-corrected prediction
    times (1 + eos_noise N(0, 1)). Violations: S += N (delta y + eps (y - mean y)^2) for elr and
    sphere (y = log wd or log r), S += N delta x for lr (x = log lr), N = (d-1)/2 (d-1 on the
    sphere).
    """
    rng = np.random.default_rng(seed)
    if rates is None:
        rates = np.geomspace(1e-3, 1e-2, 6) if protocol != "lr" else np.geomspace(0.03, 1.0, 7)
    if second is None:
        second = np.geomspace(1e-3, 1e-1, 5) if protocol != "sphere" else (0.5, 1.0, 2.0, 4.0)
    x, y = (a.ravel() for a in np.meshgrid(np.asarray(rates, float),
                                           np.asarray(second, float), indexing="ij"))
    x, y = np.repeat(x, seeds), np.repeat(y, seeds)
    n = x.size
    half = (dim - 1) / 2
    c = x * y if protocol == "lr" else x
    c0 = math.sqrt(c.min() * c.max())
    u = np.log(c / c0)
    s0, b1, b2 = sigma_curve
    sigma2 = s0 * np.exp(b1 * u + b2 * u * u)
    tr = (dim - 1) * sigma2
    g2 = grad_ratio * tr * c / c.max()
    noise = 1.0 + eos_noise * rng.standard_normal(n)
    nan = np.full(n, np.nan)
    cols = {"protocol": np.full(n, protocol, dtype=object), "dim": np.full(n, float(dim)),
            "sigma2": sigma2, "trace_sigma": tr, "grad_norm2": g2,
            "lr": nan.copy(), "elr": nan.copy(), "wd": nan.copy(), "radius_set": nan.copy()}
    if protocol == "elr":
        cols.update(elr=x, wd=y)
        T = theory.temperature("elr", sigma2=sigma2, dim=dim, elr=x)
        r_sde = theory.radius_sde("elr", sigma2=sigma2, dim=dim, elr=x, wd=y)
        r_disc = theory.radius_discrete("elr", trace_sigma=tr, grad_norm2=g2, elr=x, wd=y)
        radius = r_disc * noise
        cols["lr"] = x * radius**2
    elif protocol == "lr":
        cols.update(lr=x, wd=y)
        T = theory.temperature("lr", sigma2=sigma2, dim=dim, lr=x, wd=y)
        r_sde = theory.radius_sde("lr", sigma2=sigma2, dim=dim, lr=x, wd=y)
        r_disc = theory.radius_discrete("lr", trace_sigma=tr, grad_norm2=g2, lr=x, wd=y)
        radius = r_disc * noise
        cols["elr"] = x / radius**2
    else:
        cols.update(elr=x, radius_set=y)
        T = theory.temperature("sphere", sigma2=sigma2, dim=dim, elr=x)
        radius = y.copy()
        r_sde = r_disc = nan.copy()
    energy = 0.3 + heat_capacity * T
    s_dir = heat_capacity * np.log(T) - 50.0
    S = theory.full_entropy(s_dir, radius, dim)
    if protocol == "lr":
        S = S + half * delta * np.log(x)
    else:
        norm = half if protocol == "elr" else 2 * half
        ly = np.log(y)
        S = S + norm * (delta * ly + eps * (ly - ly.mean()) ** 2)
    S = S + entropy_noise * half * rng.standard_normal(n)
    if protocol == "sphere":
        p_sde = theory.sphere_pressure_sde(x, y, sigma2, dim)
        p_disc = theory.sphere_pressure_discrete(x, y, tr, g2)
        pressure = p_disc * noise
    else:
        p_sde = p_disc = nan.copy()
        pressure = y.copy()
    cols.update(
        temperature=T, pressure=pressure, volume=theory.volume(radius), energy=energy,
        entropy=S, entropy_dir=s_dir, radius=radius, radius_sde=r_sde, radius_discrete=r_disc,
        pressure_sde=p_sde, pressure_discrete=p_disc, stationary=np.ones(n, bool),
        reasons=np.full(n, "", dtype=object), diverged=np.zeros(n, bool),
        run=np.array([f"{protocol}/run{i:03d}" for i in range(n)], dtype=object),
        test_loss=energy + 0.1, test_acc=np.full(n, 0.5),
    )
    return cols


def _merge(*tables):
    """The tables (same columns) one after the other."""
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


def _variant_table(variants):
    """3x3 elr grids of ideal gases, one per (variant, distance, eos error, Maxwell delta, dim):
    radius = discretized prediction * (1 + eos error), S += N delta log wd (relative Maxwell
    error delta at every grid point)."""
    parts = []
    for name, dist, eos_err, delta, dim in variants:
        t = ideal_gas_table("elr", rates=(0.01, 0.02, 0.04), second=(0.005, 0.01, 0.02),
                            dim=dim, delta=delta)
        t["radius"] = t["radius"] * (1 + eos_err)
        n = len(t["protocol"])
        t["variant"] = np.full(n, name, dtype=object)
        t["si_radial_gradient"] = np.full(n, dist)
        t["si_radial_gradient_rms"] = np.full(n, 2 * dist)
        t["si_loss_change"] = np.full(n, 10 * dist)
        t["run"] = np.array([f"{name}/{r}" for r in t["run"]], dtype=object)
        parts.append(t)
    return _merge(*parts)


VARIANTS = [("si", 1e-7, 0.01, 0.0, DIM), ("bias", 3e-3, 0.03, 0.02, DIM + 74),
            ("bn-affine", 2e-2, -0.06, 0.05, DIM + 128), ("head", 5e-2, 0.12, -0.1, DIM + 320)]


def optimizer_gas_table(opt, beta=0.9, *, heat_capacity=300.0, dim=DIM, radius_power=None):
    """An ideal gas under ``opt`` built from `thermosgd.theory.fixed_lr_forms`: sigma2 a function of
    lr*wd, T and the (discrete) radius the optimizer's closed forms, S = C log T + (d-1) log r.
    ``radius_power`` replaces the radius by (lr/wd)^(1/k) (a wrong equation of state)."""
    lr0 = {"sgd": 0.3, "momentum": 0.03, "adamw": 3e-3}[opt]
    wd0 = {"sgd": 3e-3, "momentum": 3e-3, "adamw": 0.3}[opt]
    x, y = (a.ravel() for a in np.meshgrid(lr0 * np.geomspace(1, 10, 5),
                                           wd0 * np.geomspace(1, 10, 4), indexing="ij"))
    n = x.size
    c = x * y
    sigma2 = 0.05 * (c / c.min()) ** -0.3
    tr = (dim - 1) * sigma2
    g2 = 0.1 * tr
    m = None if opt == "sgd" else beta
    forms = fixed_lr_forms(opt)
    T = forms.temperature(x, y, sigma2, dim, m)
    r = forms.radius_discrete(x, y, dim, tr, g2, m)
    if radius_power is not None:
        r = (x / y) ** (1 / radius_power)
    p = forms.pressure(y, r, sigma2, dim)
    nan = np.full(n, np.nan)
    return {"protocol": np.full(n, "lr", dtype=object), "dim": np.full(n, float(dim)),
            "optimizer": np.full(n, opt, dtype=object),
            "momentum": np.full(n, np.nan if m is None else m),
            "beta2": np.full(n, 0.999 if opt == "adamw" else np.nan),
            "lr": x, "elr": nan, "wd": y, "radius_set": nan, "sigma2": sigma2,
            "trace_sigma": tr, "grad_norm2": g2, "temperature": T, "pressure": p,
            "volume": r**2 / 2, "energy": 0.3 + heat_capacity * T,
            "entropy": heat_capacity * np.log(T) + (dim - 1) * np.log(r),
            "radius": r,
            "radius_sde": forms.radius_sde(x, y, sigma2, dim, m),
            "radius_discrete": r if radius_power is None else
            forms.radius_discrete(x, y, dim, tr, g2, m),
            "pressure_sde": nan, "pressure_discrete": nan, "stationary": np.ones(n, bool),
            "reasons": np.full(n, "", dtype=object), "diverged": np.zeros(n, bool),
            "run": np.array([f"{opt}/run{i:03d}" for i in range(n)], dtype=object)}

