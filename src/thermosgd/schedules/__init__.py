"""Learning-rate / weight-decay schedules as thermodynamic processes, and their prediction.

A functional core (pure numpy float64 functions on arrays) plus a thin training driver:

* `shapes`: the common schedules (`constant`, `step_decay`, `cosine`, `linear_warmup`,
  `make_schedule`);
* `noise_curve`: the model's sigma2(elr), Q(elr) (`NoiseCurve`, `noise_points`,
  `fit_noise_curve`);
* `paths`: a schedule as a `Process`, its `equilibrium` path, the processes (`isothermal`,
  `isobaric`, `adiabatic`), the `lagged_path` / `sde_path` a run follows and its
  `lag_measures`;
* `prediction`: stationary states from a noise curve and back (`predict`, `recommend`,
  `temperature_range`, `validate_predictions`);
* `tracking`: a real scheduled run against its paths (`TrackConfig`, `track`, `follow`,
  `analyze_track`, `analyze_trajectory`, `track_summary`).

Writing results into run directories is `thermosgd.workflows.schedules` (`write_track`,
`write_validation`); figures are `thermosgd.viz.plots`. See docs/schedules.md.
"""

from thermosgd.schedules.noise_curve import NoiseCurve, fit_noise_curve, noise_points
from thermosgd.schedules.paths import (
    Process,
    adiabatic,
    equilibrium,
    isobaric,
    isothermal,
    lag_measures,
    lagged_path,
    relaxation_times,
    sde_path,
    state_at,
)
from thermosgd.schedules.prediction import (
    format_columns,
    predict,
    prediction_columns,
    recommend,
    temperature_range,
    validate_predictions,
)
from thermosgd.schedules.shapes import (
    SCHEDULES,
    WD_PROTOCOLS,
    constant,
    cosine,
    linear_warmup,
    make_schedule,
    step_decay,
)
from thermosgd.schedules.tracking import (
    TrackConfig,
    analyze_track,
    analyze_trajectory,
    fit_relaxation,
    follow,
    format_track,
    track,
    track_summary,
)

__all__ = [
    "SCHEDULES",
    "WD_PROTOCOLS",
    "NoiseCurve",
    "Process",
    "TrackConfig",
    "adiabatic",
    "analyze_track",
    "analyze_trajectory",
    "constant",
    "cosine",
    "equilibrium",
    "fit_noise_curve",
    "fit_relaxation",
    "follow",
    "format_columns",
    "format_track",
    "isobaric",
    "isothermal",
    "lag_measures",
    "lagged_path",
    "linear_warmup",
    "make_schedule",
    "noise_points",
    "predict",
    "prediction_columns",
    "recommend",
    "relaxation_times",
    "sde_path",
    "state_at",
    "step_decay",
    "temperature_range",
    "track",
    "track_summary",
    "validate_predictions",
]
