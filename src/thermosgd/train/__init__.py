"""Training runs of scale-invariant networks with thermodynamic measurements, resumable.

`train(config, out_dir)` (`thermosgd.train.run`) trains one `TrainConfig` and writes a run
directory:

* ``config.json``     the `TrainConfig` (``TrainConfig.from_dict`` reads it back);
* ``metrics.csv``     one row every ``log_every`` steps: step, the minibatch loss, the radius r at
  which the gradient was taken and (sphere) the pre-projection norm r' and the pressure
  (r' - r) / (elr r^3), each averaged over the ``log_every`` steps ending at ``step``; at noise
  probes also tr Sigma, ||grad L||^2 (unit sphere, with standard errors), sigma2 and the
  temperature of the protocol;
* ``stationary.json`` ``status`` ("complete" or "diverged"), the monitor's stationary state over
  the stationary window (measured T, p, V, U, S_dir, S, sigma2, tr Sigma, ||grad L||^2, radius
  and its SDE and discretization-corrected predictions, the stationarity verdict and its
  reasons), the distance of the trained group from scale invariance (``si_radial_gradient``
  and ``si_radial_gradient_rms``, window means of the probes' relative radial gradient
  components; ``si_loss_change``, the relative loss change under scaling the group by 1/2 or
  2 at the end) and its text summary;
* ``checkpoint.pt``   everything needed to continue (model, optimizer, generator states,
  monitor with its snapshot queue, metrics rows, partial-block sums, step), written atomically
  every ``checkpoint_every`` steps: an interrupted run resumes and ends exactly as an
  uninterrupted one would. Removed when the run ends (complete or diverged) unless
  ``keep_checkpoints=True``; ``stationary.json`` then marks the run as finished.

`train_grid(configs, out_dirs)` trains many configs and writes the same directories. BN-MLP
configs that share data, architecture, protocol and schedule train at once as one
`thermosgd.nn.models.BatchedBNMLP` stepped by the batched protocol optimizer (each config
its own hyperparameters, init seed and training seed; configs with equal training seeds share
the minibatch of every step, as every run of the paper does). Everything else trains one config
at a time. A diverging config (non-finite loss or radius) is recorded as diverged, frozen, and
the others keep training.

Dynamics, as in the paper's code (reference-implementation 3): data on the device, batches of
``batch_size`` drawn i.i.d. with replacement from the training set, cross-entropy, float32
weights, the SI vector scaled to ``init_radius`` (1; the sphere: ``radius``) before the first
step. Statistics accumulate in float64.

Noise probes: every ``noise_every`` steps, ``noise_batches`` extra minibatch gradients at the
current weights (train-mode BN, batch statistics restored afterwards, a separate generator, so
the training trajectory does not depend on the probes) give tr Sigma and ||grad L||^2 on the
unit sphere through the monitor's `noise_from_gradients`. The default spacing keeps the
extra compute at noise_batches / noise_every = 10% (fewer probes, at most ~64 in the window,
for long runs): the probe mean over the window is limited by the genuine fluctuation of the noise
along the trajectory (~10% from probe to probe on digits) more than by the 64 gradients of one
probe (~3%), so many probes beat large ones.

Every training step also yields Q = r^2 ||g_B||^2 of its own minibatch gradient at no extra cost
(an unbiased sample of Q = tr Sigma + ||grad L||^2 on the unit sphere, the quantity in the
discretization-corrected predictions). Its block means are the ``trace_total_steps`` column of
``metrics.csv``; stationary.json adds its window mean (``trace_total_steps``, with a batch-means
standard error) and the predictions from it (``radius_discrete_steps``,
``pressure_discrete_steps``), a cross-check of the probe-based ``radius_discrete`` /
``pressure_discrete``: the probes alone split Q into tr Sigma and ||grad L||^2 (temperature, SDE
predictions).

The snapshot queue holds ``queue_size`` SI vectors evenly spaced over the stationary window
(the last ``window`` steps, by default the last half of the run).

Modules: `config` (`TrainConfig`, `Schedule`, validation, run names), `nets` (data, models and
the single / batched network adapters), `engine` (the training loop of G configs, checkpoints,
the per-step hyperparameter hook), `document` (the stationary document), `physics` (the
predictions written beside the measurements), `checkpoint` (run directories, resume), `run`
(`train`, `train_grid`, `grid_table`).
"""

from thermosgd.train.config import (
    DATASETS,
    DEVICES,
    MODELS,
    Schedule,
    TrainConfig,
    run_name,
    validate_config,
)
from thermosgd.train.engine import HyperparameterHook
from thermosgd.train.nets import build_model, load_data, resolve_device
from thermosgd.train.run import grid_table, train, train_grid

__all__ = [
    "DATASETS",
    "DEVICES",
    "MODELS",
    "HyperparameterHook",
    "Schedule",
    "TrainConfig",
    "build_model",
    "grid_table",
    "load_data",
    "resolve_device",
    "run_name",
    "train",
    "train_grid",
    "validate_config",
]
