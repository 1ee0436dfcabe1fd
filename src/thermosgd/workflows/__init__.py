"""Workflows: the only place that chains stages and writes run directories.

Import the modules themselves (this package imports none of them, so that importing one
workflow does not load the others' dependencies):

* `thermosgd.workflows.isotropic`: isotropic-model studies on disk (`run_study`,
  `run_momentum_study`);
* `thermosgd.workflows.runners`: the run kinds of a sweep (`RUNNERS`);
* `thermosgd.workflows.sweep`: sweeps of those kinds (`sweep_spec`, `run_sweep`);
* `thermosgd.workflows.train`: a grid of training runs and its results table (`run_grid`);
* `thermosgd.workflows.analyze`: analyze a directory, render its report (`run_analysis`,
  `write_report`);
* `thermosgd.workflows.schedules`: write tracked schedules and prediction checks;
* `thermosgd.workflows.schedule_studies`: the schedule commands' chains (noise curve of a
  sweep table, predictions, processes, validation, tracking);
* `thermosgd.workflows.presets` and `thermosgd.workflows.reproduce`: the named studies of the
  paper and `reproduce`, which runs one end to end (the preset tables alone, light:
  `thermosgd.workflows.preset_table`).
"""

__all__: list[str] = []
