"""One prediction for any protocol and optimizer: ``predict(...) -> Prediction``.

This is the only place in the library that branches on the optimizer. Each optimizer's closed
forms are assembled once, in the table `_FORMS` (optax style: callers never ask which optimizer
it is; a new optimizer is one more entry):

* ``"sgd"``: `thermosgd.theory.sgd` (protocols lr, elr, sphere);
* ``"momentum"``: `thermosgd.theory.momentum` (heavy ball, coupled weight decay; protocol lr);
* ``"adamw"``: `thermosgd.theory.adamw` (decoupled weight decay; protocol lr).

`FIXED_LR_FORMS` (`fixed_lr_forms`) holds the same closed forms of the fixed-LR protocol,
vectorized, for callers that evaluate them over whole grids; `predict` reads the heavy-ball
and AdamW ones from it.

Inputs are the set hyperparameters (``lr``, ``elr``, ``wd``, ``radius`` as the protocol takes
them, ``momentum`` / ``beta2`` as the optimizer does) and the measured state of a stationary
window: ``trace_sigma`` (tr Sigma on the unit sphere), ``grad_norm2`` (||grad L||^2 on the unit
sphere, unbiased: it may come out < 0 and is then clipped at 0), ``trace_total`` (Q =
trace_sigma + grad_norm2), their standard errors, ``radius_measured`` (the mean ||w|| over the
window) and, on the sphere, the mean pre-projection norm ``preprojection_norm`` (the sphere's
pressure is a measurement: `thermosgd.theory.sgd.sphere_pressure_from_norm`).

A measured input that is missing (None) or not usable (NaN, or not > 0 where a closed form needs
it) makes the predictions that need it NaN, never an error: a diverged or unprobed window gives
NaN predictions. The gates are those of the network monitor: every prediction from the noise
needs trace_sigma > 0 (and, where ``radius_measured`` is given, radius_measured > 0).
Hyperparameters are checked (`thermosgd._validate`, `thermosgd.spec`) and bad ones raise
ValueError. Arithmetic is that of the monitor's stationary state, operation for operation, so
that switching a caller to `predict` changes no bit of its output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from thermosgd import spec
from thermosgd._validate import check_fraction, check_int, check_number, positive_array
from thermosgd.theory import adamw as _adamw
from thermosgd.theory import momentum as _momentum
from thermosgd.theory import sgd as _sgd
from thermosgd.theory.sgd import Float

__all__ = [
    "FIXED_LR_FORMS",
    "FixedLRForms",
    "Prediction",
    "fixed_lr_forms",
    "maxwell_relation",
    "predict",
]

_NAN = float("nan")


@dataclass(frozen=True)
class Prediction:
    """What theory says about one stationary state (floats; NaN where unknown).

    * ``temperature`` T from the set hyperparameters and the measured sigma2 (SGD: lr
      sqrt(eta lambda sigma2 / (2 (d-1))), elr / sphere eta-tilde sigma2 / 2; heavy ball with
      eta / (1-beta); AdamW sqrt(sigma2 eta lambda F / (2 (d-1))), F the all-orders radius
      factor `thermosgd.theory.adamw.adamw_finite_step_factor`), ``temperature_measured`` =
      elr_measured sigma2 / 2 at the measured radius;
    * ``elr_measured``: the direction's Langevin step on the unit sphere at the measured radius
      (lr: eta / r^2; heavy ball eta / ((1-beta) r^2); AdamW eta / (sqrt(s) r^2); elr and
      sphere: the set elr);
    * ``pressure``: the pressure in force (coupled weight decay: wd; AdamW: lambda sqrt(s);
      sphere: (r' - r) / (eta-tilde r^3) from the measured pre-projection norm r', NaN
      without it); ``pressure_sde`` = elr_measured trace_sigma / (2 r^2) (the ideal-gas
      pressure at the measured volume); ``pressure_discrete`` with the mean-gradient term
      (elr_measured Q_eff / (2 r^2); AdamW: pressure (radius_discrete / r)^2);
    * ``radius_sde`` and ``radius_discrete`` (NaN on the sphere; heavy ball and AdamW to all
      orders in eta lambda);
    * ``relaxation_time`` of the radius in iterations (0 on the sphere; AdamW: the slow mode
      of r^2 coupled to the second-moment average, `thermosgd.theory.adamw.adamw_relaxation_time`);
    * ``maxwell_slope``, the landscape-independent entropy slope, and ``maxwell_relation``,
      the relation it is the value of (text).

    ``*_se`` are standard errors propagated from those of trace_sigma and trace_total.
    """

    temperature: float
    temperature_se: float
    temperature_measured: float
    temperature_measured_se: float
    elr_measured: float
    pressure: float
    pressure_se: float
    pressure_sde: float
    pressure_sde_se: float
    pressure_discrete: float
    pressure_discrete_se: float
    radius_sde: float
    radius_sde_se: float
    radius_discrete: float
    radius_discrete_se: float
    relaxation_time: float
    maxwell_slope: float
    maxwell_relation: str

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (field name -> value)."""
        return asdict(self)


# ----------------------------------------------------------------------------- fixed LR, vectorized


@dataclass(frozen=True)
class FixedLRForms:
    """One optimizer's closed forms on the fixed-LR protocol, vectorized (numpy broadcasting;
    a 0-d result is a ``numpy.float64``). ``momentum`` is heavy-ball beta / AdamW beta1 (SGD
    ignores it; heavy ball and AdamW need it).

    * ``radius_sde(lr, wd, sigma2, dim, momentum)``: SGD r*^4 = eta (d-1) sigma2 / (2 lambda);
      heavy ball the same with eta / (1-beta); AdamW r*^2 = eta d / (2 lambda);
    * ``radius_discrete(lr, wd, dim, trace_sigma, grad_norm2, momentum)``: with the
      mean-gradient term (heavy ball and AdamW: all orders in eta lambda);
    * ``radius_power``: k with r*^k linear in the noise (4; AdamW 2);
    * ``temperature(lr, wd, sigma2, dim, momentum)`` (AdamW: all orders in eta lambda, the
      gas-law temperature at the all-orders radius); ``elr_at_radius(lr, radius, sigma2, dim,
      momentum)``: the direction's Langevin step at radius r;
    * ``pressure(wd, radius, sigma2, dim)``: lambda (coupled WD); AdamW lambda sqrt(s);
    * ``relaxation_time(lr, wd, momentum, beta2=None)`` (beta2: AdamW's, default torch's
      0.999; the others ignore it); ``maxwell_slope(dim)``: dS/dlog(lr) -
      dS/dlog(wd) ((d-1)/2; AdamW d-1);
    * ``angular_update(lr, wd, momentum)``: the equilibrium RMS angular update per step,
      sqrt(E||w_{t+1} - w_t||^2 / E r^2): sqrt(2 eta lambda) (SGD, exact), sqrt(2 eta lambda /
      (1+beta)) (heavy ball), sqrt(2 eta lambda (1-b1)/(1+b1)) (AdamW, eta lambda -> 0).
    """

    radius_sde: Callable[..., Float]
    radius_discrete: Callable[..., Float]
    radius_power: int
    temperature: Callable[..., Float]
    elr_at_radius: Callable[..., Float]
    pressure: Callable[..., Float]
    relaxation_time: Callable[..., Float]
    maxwell_slope: Callable[..., Float]
    angular_update: Callable[..., Float]


def _needs(optimizer: str, momentum: Any) -> Any:
    if momentum is None:
        raise ValueError(f"momentum == None, must be given: optimizer {optimizer!r} needs "
                         "momentum (heavy-ball beta / beta1)")
    return momentum


def _sgd_lr_radius_discrete(lr, wd, dim, trace_sigma, grad_norm2, momentum) -> Float:
    _sgd._dim(dim)
    return _sgd.radius_discrete("lr", trace_sigma=trace_sigma, grad_norm2=grad_norm2, lr=lr,
                                wd=wd)


def _momentum_lr_radius_discrete(lr, wd, dim, trace_sigma, grad_norm2, momentum) -> Float:
    _sgd._dim(dim)
    return _momentum.momentum_radius_discrete(lr, wd, _needs("momentum", momentum),
                                              trace_sigma, grad_norm2, exact=True)


def _adamw_lr_radius_sde(lr, wd, sigma2, dim, momentum) -> Float:
    positive_array("sigma2", sigma2)
    return _adamw.adamw_radius(lr, wd, dim)


def _coupled_lr_pressure(wd, radius, sigma2, dim) -> Float:
    return _sgd._out(positive_array("wd", wd))


def _adamw_lr_relaxation_time(lr, wd, momentum, beta2=None) -> Float:
    return _adamw.adamw_relaxation_time(lr, wd, spec.DEFAULT_BETA2 if beta2 is None else beta2)


FIXED_LR_FORMS: dict[str, FixedLRForms] = {
    "sgd": FixedLRForms(
        radius_sde=lambda lr, wd, sigma2, dim, m: _sgd.radius_sde(
            "lr", sigma2=sigma2, dim=dim, lr=lr, wd=wd),
        radius_discrete=_sgd_lr_radius_discrete,
        radius_power=4,
        temperature=lambda lr, wd, sigma2, dim, m: _sgd.temperature_lr(lr, wd, sigma2, dim),
        elr_at_radius=lambda lr, radius, sigma2, dim, m: _sgd.elr_at_radius(lr, radius),
        pressure=_coupled_lr_pressure,
        relaxation_time=lambda lr, wd, m, b2=None: _sgd.relaxation_time("lr", lr=lr, wd=wd),
        maxwell_slope=lambda dim: _sgd.maxwell_slope("lr", dim),
        angular_update=lambda lr, wd, m: _sgd.angular_update(lr, wd),
    ),
    "momentum": FixedLRForms(
        radius_sde=lambda lr, wd, sigma2, dim, m: _momentum.momentum_radius(
            lr, wd, _needs("momentum", m), sigma2, dim),
        radius_discrete=_momentum_lr_radius_discrete,
        radius_power=_momentum.RADIUS_POWER,
        temperature=lambda lr, wd, sigma2, dim, m: _momentum.momentum_temperature(
            lr, wd, _needs("momentum", m), sigma2, dim),
        elr_at_radius=lambda lr, radius, sigma2, dim, m: _momentum.momentum_elr_at_radius(
            lr, radius, _needs("momentum", m)),
        pressure=_coupled_lr_pressure,
        relaxation_time=lambda lr, wd, m, b2=None: _momentum.momentum_relaxation_time(
            lr, wd, _needs("momentum", m)),
        maxwell_slope=_momentum.momentum_maxwell_slope,
        angular_update=lambda lr, wd, m: _momentum.momentum_angular_update(
            lr, wd, _needs("momentum", m)),
    ),
    "adamw": FixedLRForms(
        radius_sde=_adamw_lr_radius_sde,
        radius_discrete=lambda lr, wd, dim, ts, g2, m: _adamw.adamw_radius_discrete(
            lr, wd, _needs("adamw", m), dim, ts, g2, exact=True),
        radius_power=_adamw.RADIUS_POWER,
        temperature=lambda lr, wd, sigma2, dim, m: _adamw.adamw_temperature(
            lr, wd, sigma2, dim, _needs("adamw", m)),
        elr_at_radius=lambda lr, radius, sigma2, dim, m: _adamw.adamw_elr_at_radius(
            lr, radius, sigma2, dim),
        pressure=_adamw.adamw_pressure,
        relaxation_time=_adamw_lr_relaxation_time,
        maxwell_slope=_adamw.adamw_maxwell_slope,
        angular_update=lambda lr, wd, m: _adamw.adamw_angular_update(
            lr, wd, _needs("adamw", m)),
    ),
}


def fixed_lr_forms(optimizer: str) -> FixedLRForms:
    """The vectorized fixed-LR closed forms of ``optimizer`` (`FixedLRForms`), e.g.
    ``fixed_lr_forms("adamw").radius_sde(lr, wd, sigma2, dim, 0.9)`` over whole grids."""
    return FIXED_LR_FORMS[spec.check_optimizer(optimizer)]


# ----------------------------------------------------------------------------- predict, scalar


@dataclass(frozen=True)
class _State:
    """Validated inputs of `predict` (floats; NaN for a measured value not given)."""

    protocol: str
    dim: int
    lr: float | None
    elr: float | None
    wd: float | None
    radius: float | None
    momentum: float | None
    beta2: float | None
    ts: float
    g2: float
    tt: float
    sigma2: float
    rbar: float
    rel_ts: float
    rel_tt: float
    preprojection_norm: float
    preprojection_norm_se: float


@dataclass(frozen=True)
class _Forms:
    """One optimizer's closed forms, as `predict` composes them.

    temperature(s) T; elr(s) the Langevin step at the measured radius; pressure(s, ok) the
    pressure in force and its SE (ok: the noise and the measured radius are usable);
    radii(s) (radius_sde, its SE, radius_discrete, its SE); pressure_discrete(s, elr,
    pressure, radius_discrete); relaxation_time(s); maxwell(protocol, dim) (slope, relation).
    """

    temperature: Callable[[_State], float]
    elr: Callable[[_State], float]
    pressure: Callable[[_State, bool], tuple[float, float]]
    radii: Callable[[_State], tuple[float, float, float, float]]
    pressure_discrete: Callable[[_State, float, float, float], float]
    relaxation_time: Callable[[_State], float]
    maxwell: Callable[[str, int], tuple[float, str]]


def _finite_positive(x: float) -> bool:
    return bool(math.isfinite(x) and x > 0)


# ----------------------------------------------------------------------------- SGD


def _sgd_hyper(s: _State, *, radius: bool = False) -> dict[str, float]:
    keys = spec.HYPERPARAMETERS[s.protocol]
    return {k: getattr(s, k) for k in keys if radius or k != "radius"}


def _sgd_temperature(s: _State) -> float:
    return float(_sgd.temperature(s.protocol, sigma2=s.sigma2, dim=s.dim, **_sgd_hyper(s)))


def _sgd_elr(s: _State) -> float:
    if s.protocol != "lr":
        return s.elr
    return float(_sgd.elr_at_radius(s.lr, s.rbar))


def _sgd_pressure(s: _State, ok: bool) -> tuple[float, float]:
    if s.protocol != "sphere":
        return s.wd, 0.0
    if not math.isfinite(s.preprojection_norm):
        return _NAN, _NAN
    p = float(_sgd.sphere_pressure_from_norm(s.preprojection_norm, s.radius, s.elr))
    return p, s.preprojection_norm_se / (s.elr * s.radius**3)


def _sgd_radii(s: _State) -> tuple[float, float, float, float]:
    if s.protocol == "sphere":
        return _NAN, _NAN, _NAN, _NAN
    hp = _sgd_hyper(s)
    power = 4 if s.protocol == "lr" else 2
    rs = float(_sgd.radius_sde(s.protocol, sigma2=s.sigma2, dim=s.dim, **hp))
    rs_se = rs * s.rel_ts / power
    rd = rd_se = _NAN
    if _finite_positive(s.tt):
        # Q alone enters the discretized balance; grad_norm2 (unbiased) may be < 0.
        rd = float(_sgd.radius_discrete(s.protocol, trace_sigma=s.tt, grad_norm2=0.0, **hp))
        rd_se = rd * s.rel_tt / power
    return rs, rs_se, rd, rd_se


def _coupled_pressure_discrete(s: _State, elr: float, q_eff: float) -> float:
    return elr * q_eff / (2 * s.rbar**2)


def _sgd_pressure_discrete(s: _State, elr: float, pressure: float, rd: float) -> float:
    return _coupled_pressure_discrete(s, elr, s.tt)


def _sgd_relaxation_time(s: _State) -> float:
    if s.protocol == "lr":
        return float(_sgd.relaxation_time("lr", lr=s.lr, wd=s.wd))
    if s.protocol == "elr":
        if _finite_positive(s.tt):
            return float(_sgd.relaxation_time("elr", elr=s.elr, trace_total=s.tt))
        return _NAN
    return 0.0


_SGD_RELATIONS = {
    "lr": "dS/dlog(lr) - dS/dlog(wd) = (d-1)/2",
    "elr": "dS/dlog(wd) = -(d-1)/2",
    "sphere": "dS/dlog(r) = d-1 (not reported by the paper)",
}


def _sgd_maxwell(protocol: str, dim: int) -> tuple[float, str]:
    return float(_sgd.maxwell_slope(protocol, dim)), _SGD_RELATIONS[protocol]


# ----------------------------------------------------------------------------- heavy ball


def _momentum_temperature(s: _State) -> float:
    f = FIXED_LR_FORMS["momentum"]
    return float(f.temperature(s.lr, s.wd, s.sigma2, s.dim, s.momentum))


def _momentum_elr(s: _State) -> float:
    f = FIXED_LR_FORMS["momentum"]
    return float(f.elr_at_radius(s.lr, s.rbar, s.sigma2, s.dim, s.momentum))


def _coupled_pressure(s: _State, ok: bool) -> tuple[float, float]:
    return s.wd, 0.0


def _momentum_radii(s: _State) -> tuple[float, float, float, float]:
    f = FIXED_LR_FORMS["momentum"]
    rs = float(f.radius_sde(s.lr, s.wd, s.sigma2, s.dim, s.momentum))
    rs_se = rs * s.rel_ts / f.radius_power
    rd = rd_se = _NAN
    if math.isfinite(s.g2):  # grad_norm2 (unbiased) may come out < 0: clipped at 0
        rd = float(f.radius_discrete(s.lr, s.wd, s.dim, s.ts, max(s.g2, 0.0), s.momentum))
        rd_se = rd * s.rel_tt / f.radius_power
    return rs, rs_se, rd, rd_se


def _momentum_pressure_discrete(s: _State, elr: float, pressure: float, rd: float) -> float:
    # the noise that sets the radius with the mean-gradient term: grad_norm2 weighted by
    # (1-beta)/(1+beta) as in momentum_radius_discrete (docs/theory.md)
    q_eff = s.tt
    if math.isfinite(s.g2):
        w_ = (1 - s.momentum) / (1 + s.momentum)
        q_eff = s.ts + max(s.g2, 0.0) * w_
    return _coupled_pressure_discrete(s, elr, q_eff)


def _momentum_relaxation_time(s: _State) -> float:
    return float(FIXED_LR_FORMS["momentum"].relaxation_time(s.lr, s.wd, s.momentum))


def _momentum_maxwell(protocol: str, dim: int) -> tuple[float, str]:
    return float(FIXED_LR_FORMS["momentum"].maxwell_slope(dim)), _SGD_RELATIONS["lr"]


# ----------------------------------------------------------------------------- AdamW


def _adamw_temperature(s: _State) -> float:
    f = FIXED_LR_FORMS["adamw"]
    return float(f.temperature(s.lr, s.wd, s.sigma2, s.dim, s.momentum))


def _adamw_elr(s: _State) -> float:
    if not _finite_positive(s.sigma2):
        return _NAN
    f = FIXED_LR_FORMS["adamw"]
    return float(f.elr_at_radius(s.lr, s.rbar, s.sigma2, s.dim, s.momentum))


def _adamw_pressure(s: _State, ok: bool) -> tuple[float, float]:
    if not ok:
        return _NAN, _NAN
    p = float(FIXED_LR_FORMS["adamw"].pressure(s.wd, s.rbar, s.sigma2, s.dim))  # lambda sqrt(s)
    return p, p * s.rel_ts / 2


def _adamw_radii(s: _State) -> tuple[float, float, float, float]:
    f = FIXED_LR_FORMS["adamw"]
    rs = float(f.radius_sde(s.lr, s.wd, s.sigma2, s.dim, s.momentum))
    rd = rd_se = _NAN
    if math.isfinite(s.g2):  # grad_norm2 (unbiased) may come out < 0: clipped at 0
        rd = float(f.radius_discrete(s.lr, s.wd, s.dim, s.ts, max(s.g2, 0.0), s.momentum))
        rd_se = rd * s.rel_tt / f.radius_power
    return rs, 0.0, rd, rd_se  # r*^2 = eta d / (2 lambda) does not depend on the noise


def _adamw_pressure_discrete(s: _State, elr: float, pressure: float, rd: float) -> float:
    if math.isfinite(s.g2):  # the pressure holding r at the all-orders radius
        return pressure * (rd / s.rbar) ** 2
    return _coupled_pressure_discrete(s, elr, s.tt)


def _adamw_relaxation_time(s: _State) -> float:
    return float(FIXED_LR_FORMS["adamw"].relaxation_time(s.lr, s.wd, s.momentum, s.beta2))


def _adamw_maxwell(protocol: str, dim: int) -> tuple[float, str]:
    return (float(FIXED_LR_FORMS["adamw"].maxwell_slope(dim)),
            "dS/dlog(lr) - dS/dlog(wd) = d-1")


_FORMS: dict[str, _Forms] = {
    "sgd": _Forms(_sgd_temperature, _sgd_elr, _sgd_pressure, _sgd_radii,
                  _sgd_pressure_discrete, _sgd_relaxation_time, _sgd_maxwell),
    "momentum": _Forms(_momentum_temperature, _momentum_elr, _coupled_pressure,
                       _momentum_radii, _momentum_pressure_discrete, _momentum_relaxation_time,
                       _momentum_maxwell),
    "adamw": _Forms(_adamw_temperature, _adamw_elr, _adamw_pressure, _adamw_radii,
                    _adamw_pressure_discrete, _adamw_relaxation_time, _adamw_maxwell),
}


# ----------------------------------------------------------------------------- predict


def _measured(x: Any) -> float:
    return _NAN if x is None else float(x)


def _check_hyper(protocol: str, optimizer: str, given: dict[str, Any]) -> dict[str, Any]:
    has = (*spec.HYPERPARAMETERS[protocol], *spec.OPTIMIZER_HYPERPARAMETERS[optimizer])
    for k, v in given.items():
        if v is not None and k not in has:
            raise ValueError(f"{k} == {v!r}, must be None: protocol {protocol!r} with optimizer "
                             f"{optimizer!r} has no {k}")
    out: dict[str, Any] = dict.fromkeys(given)
    for k in spec.HYPERPARAMETERS[protocol]:
        if given[k] is None:
            raise ValueError(f"{k} == None, must be given: protocol {protocol!r} needs "
                             f"{', '.join(spec.HYPERPARAMETERS[protocol])}")
        out[k] = check_number(k, given[k], min_val=0.0, include_min=False)
    if optimizer != "sgd":  # the optimizer's own hyperparameters: torch's defaults
        m = spec.DEFAULT_MOMENTUM if given["momentum"] is None else given["momentum"]
        b2 = given["beta2"]
        if optimizer == "adamw" and b2 is None:
            b2 = spec.DEFAULT_BETA2
        out["momentum"] = check_fraction("momentum", m)
        out["beta2"] = None if b2 is None else check_fraction("beta2", b2)
    return out


def maxwell_relation(protocol: str, optimizer: str, dim: int) -> tuple[float, str]:
    """The landscape-independent entropy slope of the Maxwell relations and its text.

    SGD: "elr" dS/dlog(wd) = -(d-1)/2, "lr" dS/dlog(lr) - dS/dlog(wd) = (d-1)/2 (heavy ball
    the same), "sphere" dS/dlog(r) = d-1; AdamW (lr): dS/dlog(lr) - dS/dlog(wd) = d-1.
    """
    spec.check_optimizer(optimizer, protocol)
    dim = check_int("dim", dim, min_val=2)
    return _FORMS[optimizer].maxwell(protocol, dim)


def predict(
    protocol: str,
    optimizer: str = "sgd",
    *,
    dim: int,
    lr: float | None = None,
    elr: float | None = None,
    wd: float | None = None,
    radius: float | None = None,
    momentum: float | None = None,
    beta2: float | None = None,
    trace_sigma: float | None = None,
    trace_sigma_se: float | None = None,
    grad_norm2: float | None = None,
    trace_total: float | None = None,
    trace_total_se: float | None = None,
    radius_measured: float | None = None,
    preprojection_norm: float | None = None,
    preprojection_norm_se: float | None = None,
) -> Prediction:
    """Temperature, pressure, radii, relaxation time and Maxwell slope of one stationary state.

    ``protocol`` in {"lr", "elr", "sphere"} with its hyperparameters (lr + wd, elr + wd, elr +
    radius); ``optimizer`` in {"sgd", "momentum", "adamw"} (momentum and AdamW run "lr";
    ``momentum`` = heavy-ball beta / AdamW beta1 and ``beta2`` default to torch's 0.9 and
    0.999); ``dim`` = d. The measured state (see the module docstring) is optional: what is
    not given comes back NaN. With sigma2 = trace_sigma / (d-1), relative errors rel_ts =
    trace_sigma_se / trace_sigma and rel_tt = trace_total_se / trace_total:

    * T (`Prediction`), T_se = T rel_ts / 2 for "lr" (T ~ sqrt(sigma2)), T rel_ts otherwise;
      T_measured = elr_measured sigma2 / 2 (SE: T_measured rel_ts);
    * pressure_sde = elr_measured trace_sigma / (2 r^2) (SE: rel_ts), pressure_discrete =
      elr_measured Q_eff / (2 r^2) (SE: rel_tt) with Q_eff = Q for SGD, trace_sigma +
      grad_norm2 (1-beta)/(1+beta) for heavy ball; AdamW pressure (radius_discrete / r)^2;
    * radius_sde from sigma2 (SE: rel_ts / k with r*^k linear in the noise; AdamW's does not
      depend on it: SE 0), radius_discrete from Q (SGD) or (trace_sigma, grad_norm2) (heavy
      ball and AdamW to all orders in eta lambda) (SE: rel_tt / k);
    * relaxation_time: lr 1 / (4 eta lambda) (heavy ball (1-beta) / (4 eta lambda), AdamW
      the slow mode of r^2 and the second-moment average, ~ 1 / (2 eta lambda) + 2 / (1-beta2)
      (`thermosgd.theory.adamw.adamw_relaxation_time`)); elr 1 / (eta-tilde^2 Q); sphere 0.
    """
    spec.check_optimizer(optimizer, protocol)
    dim = check_int("dim", dim, min_val=2)
    hp = _check_hyper(protocol, optimizer, {"lr": lr, "elr": elr, "wd": wd, "radius": radius,
                                            "momentum": momentum, "beta2": beta2})
    ts, tt = _measured(trace_sigma), _measured(trace_total)
    rbar = _measured(radius_measured)
    s = _State(
        protocol=protocol, dim=dim, lr=hp["lr"], elr=hp["elr"], wd=hp["wd"],
        radius=hp["radius"], momentum=hp["momentum"], beta2=hp["beta2"], ts=ts,
        g2=_measured(grad_norm2), tt=tt,
        sigma2=ts / (dim - 1), rbar=rbar,
        rel_ts=_measured(trace_sigma_se) / ts if ts > 0 else _NAN,
        rel_tt=_measured(trace_total_se) / tt if tt > 0 else _NAN,
        preprojection_norm=_measured(preprojection_norm),
        preprojection_norm_se=_measured(preprojection_norm_se),
    )
    f = _FORMS[optimizer]
    noise_ok = _finite_positive(ts)
    radius_ok = _finite_positive(rbar)
    ok = noise_ok and radius_ok  # the monitor's gate: noise and measured radius usable
    # predictions that do not use the measured radius are gated by it only where it is given
    ok_free = noise_ok and (radius_measured is None or radius_ok)

    elr_m = f.elr(s) if radius_ok else _NAN
    t = t_se = t_m = t_m_se = _NAN
    if ok_free:
        t = f.temperature(s)
        t_se = t * s.rel_ts / (2 if protocol == "lr" else 1)
    if ok:
        t_m = elr_m * s.sigma2 / 2
        t_m_se = t_m * s.rel_ts
    p, p_se = f.pressure(s, ok)
    rs = rs_se = rd = rd_se = _NAN
    if ok_free:
        rs, rs_se, rd, rd_se = f.radii(s)
    p_sde = p_sde_se = p_disc = p_disc_se = _NAN
    if ok:
        p_sde = elr_m * ts / (2 * rbar**2)
        p_sde_se = p_sde * s.rel_ts
        p_disc = f.pressure_discrete(s, elr_m, p, rd)
        p_disc_se = p_disc * s.rel_tt
    slope, relation = f.maxwell(protocol, dim)
    return Prediction(
        temperature=t, temperature_se=t_se, temperature_measured=t_m,
        temperature_measured_se=t_m_se, elr_measured=elr_m, pressure=p, pressure_se=p_se,
        pressure_sde=p_sde, pressure_sde_se=p_sde_se, pressure_discrete=p_disc,
        pressure_discrete_se=p_disc_se, radius_sde=rs, radius_sde_se=rs_se,
        radius_discrete=rd, radius_discrete_se=rd_se, relaxation_time=f.relaxation_time(s),
        maxwell_slope=slope, maxwell_relation=relation,
    )
