"""Closed forms of the SGD ideal gas and its optimizers, and the one prediction.

Submodules: `sgd` (temperatures, radii, sphere pressures, ideal gas, equipartition,
finite-step corrections, entropy, Gibbs / Helmholtz potentials, Maxwell slopes, relaxation
and mixing times), `momentum` (heavy ball), `adamw`, `vmf` (exact von Mises-Fisher
quantities) and `predict` (``predict(...) -> Prediction``, the only place that branches on the
optimizer). The public functions of `sgd` are re-exported here: ``theory.temperature(...)``.

Note: ``theory.predict`` is the function; the module is ``thermosgd.theory.predict`` in
``sys.modules`` (``from thermosgd.theory.predict import ...`` works).
"""

from thermosgd.theory import adamw, momentum, sgd, vmf
from thermosgd.theory.predict import (
    FixedLRForms,
    Prediction,
    fixed_lr_forms,
    maxwell_relation,
    predict,
)
from thermosgd.theory.sgd import (
    angular_mixing_time,
    angular_update,
    discrete_energy,
    discrete_entropy_shift,
    elr_at_radius,
    equipartition_energy,
    equipartition_entropy,
    full_entropy,
    gibbs_potential,
    helmholtz_potential,
    ideal_gas_pressure,
    ideal_gas_residual,
    isotropic_entropy_slopes,
    maxwell_slope,
    radius_discrete,
    radius_sde,
    relaxation_time,
    sphere_pressure_discrete,
    sphere_pressure_from_norm,
    sphere_pressure_sde,
    stationary_elr_lr,
    temperature,
    temperature_elr,
    temperature_lr,
    volume,
)

__all__ = [
    "FixedLRForms",
    "Prediction",
    "adamw",
    "angular_mixing_time",
    "angular_update",
    "discrete_energy",
    "discrete_entropy_shift",
    "elr_at_radius",
    "equipartition_energy",
    "equipartition_entropy",
    "fixed_lr_forms",
    "full_entropy",
    "gibbs_potential",
    "helmholtz_potential",
    "ideal_gas_pressure",
    "ideal_gas_residual",
    "isotropic_entropy_slopes",
    "maxwell_relation",
    "maxwell_slope",
    "momentum",
    "predict",
    "radius_discrete",
    "radius_sde",
    "relaxation_time",
    "sgd",
    "sphere_pressure_discrete",
    "sphere_pressure_from_norm",
    "sphere_pressure_sde",
    "stationary_elr_lr",
    "temperature",
    "temperature_elr",
    "temperature_lr",
    "vmf",
    "volume",
]
