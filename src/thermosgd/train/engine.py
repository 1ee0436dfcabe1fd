"""The training engine: G configs stepped together (G = 1 for one model), measured, checkpointed.

An `Engine` owns a network adapter (`thermosgd.train.nets.SingleNet` or ``BatchedNet``), one
`RunRecord` per config and the generators of the minibatch and probe streams. `Engine.run`
loops over steps; after every step it accumulates the block sums (loss, radius before the
step, pre-projection norm, Q = r^2 ||g_B||^2), pushes snapshots and evaluates at the scheduled
steps, ends a logging block every ``log_every`` steps (metrics row, monitor record, divergence
check), probes the gradient noise every ``noise_every`` steps and writes a checkpoint
(`thermosgd.io.atomic_torch_save`) every ``checkpoint_every`` steps, so that an interrupted run
resumes bit-identically.

Per-step hyperparameter hook
----------------------------
``hook(step, config) -> Mapping[str, float]`` (type `HyperparameterHook`), given to
`single_engine` / `batched_engine` (and `thermosgd.train.train` / ``train_grid``), is called
before every optimizer step, once per active config, with

* ``step``: the number of steps already taken (0 before the first step; the update about to be
  made is the ``step``-th, counting from 0, as a schedule's ``rate[step]``), and
* ``config``: that config's `TrainConfig`;

it returns the hyperparameters of that step, a mapping with any of the protocol's rate and
weight decay: ``lr`` and/or ``wd`` (protocol lr), ``elr`` and/or ``wd`` (elr), ``elr`` (sphere;
its radius is fixed). Each value (a number >= 0) is written into the optimizer's param group
before the step (batched: config g's entry); keys it omits keep their current value. The
config's own values are the starting point and what the monitor and the checkpointed
optimizer are built with; a resumed run calls the hook again from the checkpoint's step, so
the hook must be a pure function of (step, config). Without a hook (None) nothing is set and
the run is that of the config's constant hyperparameters.

The run's monitor follows the hook: when the values in force change at update ``step``, the
engine calls ``run.monitor.set_hyperparameters(step + 1, ...)`` (the first record made with
them is that of step + 1; a change starts a new state: default window, burn-in, snapshot
queue, a window reaching back over it flagged in stationary.json), and the metrics rows'
probe temperature and the document's predictions use the values in force. Only a change is
passed on (a schedule that changes every step makes every state one step long: no window is
stationary then). A value of 0 is no state of the theory: it is not passed to the monitor,
whose state stays the last positive one; a run that ends with a 0 in force is not
stationary (a reason in stationary.json), and a probe under it has no temperature (NaN).
The values in force and the step from which they hold are checkpointed
(``hyper_in_force``, ``hyper_since``) and written back into the optimizer on resume.

`_training_step` is the module-level function that takes one optimizer step of every config:
tests replace it to inject crashes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from thermosgd import theory
from thermosgd._progress import progress_disabled
from thermosgd._validate import check_choice, check_number
from thermosgd.estimators.noise import noise_from_gradients
from thermosgd.io import atomic_torch_save, write_csv
from thermosgd.nn.batched import BUFFERS, BatchedProtocol
from thermosgd.nn.batched_convnet import BatchedConvNet
from thermosgd.nn.data import Dataset
from thermosgd.nn.models import BNMLP, BatchedBNMLP, thermo_named_parameters
from thermosgd.nn.optim import make_optimizer
from thermosgd.nn.scale_invariance import (
    radial_gradient_stats,
    set_batched_group_radius,
    set_group_radius,
)
from thermosgd.spec import HYPERPARAMETERS
from thermosgd.train.checkpoint import CHECKPOINT_FORMAT
from thermosgd.train.config import SI_VARIANTS, TrainConfig
from thermosgd.train.document import (
    RunRecord,
    metrics_columns,
    stationary_doc,
    write_doc,
)
from thermosgd.train.nets import (
    BatchedNet,
    SingleNet,
    build_model,
    opt_args,
    probe_seed,
    si_params,
    single_layout,
    verify_si,
)
from thermosgd.train.physics import probe_temperature

__all__ = [
    "CPU_CONV_BATCHING",
    "Engine",
    "HyperparameterHook",
    "batch_limit",
    "batched_engine",
    "hook_keys",
    "single_engine",
]

#: hyperparameters of step ``step`` of ``config``: see the module docstring
HyperparameterHook = Callable[[int, TrainConfig], Mapping[str, float]]


#: CPU: the conv models that batch (grouped convolutions) because
#: ``benchmarks/bench_batched_conv.py`` measured them faster than one config at a time there:
#: model -> (largest width, most configs per batched model). oneDNN's grouped convolutions
#: are slower than G plain ones once the channels are wide (ConvNet-8, ResNet-18 k = 8, and
#: k = 4 at G = 16 on 32x32 measured below 1x), so wider models and larger G run one config at
#: a time on CPU; narrow models at G <= 4 are overhead-bound and gain (above 1.2x measured).
CPU_CONV_BATCHING = {"convnet": (2, 4), "resnet18": (4, 4)}

#: ``batched`` of `batch_limit` / ``train_grid``: True (where it pays), False, "always"
BATCHED_CHOICES = (True, False, "always")


def batch_limit(c: TrainConfig, device, batched: bool | str = True) -> int:
    """How many configs like ``c`` may train as one batched model on ``device`` (1: one at a
    time; 0: no limit). Only SI configs batch (mlp "si", convnet / resnet18 "si" in the
    contiguous memory format: the batched conv model stacks NCHW weights). ``batched`` True:
    the BN-MLP always, conv models on CUDA always, on CPU as `CPU_CONV_BATCHING` says;
    "always": every such config, on every device; False: none."""
    if batched not in BATCHED_CHOICES or not isinstance(batched, (bool, str)):
        raise ValueError(f"batched == {batched!r}, must be True, False or 'always'")
    if batched is False or c.variant != "si" or c.memory_format != "contiguous":
        return 1
    if c.model == "mlp" or batched == "always" or torch.device(device).type == "cuda":
        return 0
    width, most = CPU_CONV_BATCHING.get(c.model, (0, 1))
    return most if c.model_width <= width else 1


def hook_keys(protocol: str) -> tuple[str, ...]:
    """The hyperparameters a hook may set for ``protocol``: its rate and weight decay (the
    sphere: elr only)."""
    return tuple(k for k in HYPERPARAMETERS[protocol] if k != "radius")


class Engine:
    """Steps G configs together (G = 1 for a single model) and measures each of them."""

    def __init__(self, net, runs: list[RunRecord], ds: Dataset, ckpts: list[dict | None],
                 device, hook: HyperparameterHook | None = None):
        self.net, self.runs, self.ds, self.device = net, runs, ds, device
        c0 = runs[0].config
        self.c0, self.s = c0, runs[0].schedule
        self.G = len(runs)
        self.sphere = c0.protocol == "sphere"
        self.hook = hook
        self._hook_keys = hook_keys(c0.protocol)
        seeds = [r.config.seed for r in runs]
        self.shared = len(set(seeds)) == 1
        uniq = seeds[:1] if self.shared else seeds
        self.train_gens = [torch.Generator(device=device).manual_seed(int(s)) for s in uniq]
        self.probe_gens = [torch.Generator(device=device).manual_seed(probe_seed(s)) for s in uniq]
        zeros = torch.zeros(self.G, dtype=torch.float64, device=device)
        self.acc = {k: zeros.clone() for k in ("loss", "radius", "pre", "q")}
        self.block_n = 0
        self.step = 0
        self.docs: dict[int, dict] = {}
        if ckpts[0] is not None:
            self._restore(ckpts)
            self._restore_hyperparameters()
        self.snap_steps = self.s.snapshot_steps(c0.steps)
        self.snap_i = int(np.searchsorted(self.snap_steps, self.step, side="right"))
        self.eval_steps = self.s.eval_steps(c0.steps)
        self.eval_i = int(np.searchsorted(self.eval_steps, self.step, side="right"))

    # -- state ------------------------------------------------------------------------------

    def _restore(self, ckpts: list[dict]) -> None:
        self.step = int(ckpts[0]["step"])
        src = ckpts[:1] if self.shared else ckpts
        for gens, key in ((self.train_gens, "train"), (self.probe_gens, "probe")):
            for gen, ck in zip(gens, src, strict=True):
                gen.set_state(ck["rng"][key])
        for k in self.acc:
            self.acc[k] = torch.tensor(
                [ck["block"][k] for ck in ckpts], dtype=torch.float64, device=self.device
            )
        self.block_n = int(ckpts[0]["block"]["n"])
        torch.set_rng_state(ckpts[0]["rng"]["torch"])

    def _restore_hyperparameters(self) -> None:
        """The values a hook had set (checkpointed in force) back into the optimizer (the
        batched one is rebuilt from the configs)."""
        for g, run in enumerate(self.runs):
            for name in self._hook_keys:
                if run.hyper[name] != getattr(run.config, name):
                    self.net.set_hyperparameter(g, name, run.hyper[name])

    def _checkpoint(self, g: int) -> dict:
        run = self.runs[g]
        j = 0 if self.shared else g
        status = (
            "diverged"
            if run.diverged_at is not None
            else ("complete" if self.step >= run.config.steps else "running")
        )
        return {
            "format": CHECKPOINT_FORMAT,
            "config": run.config.to_dict(),
            "step": self.step,
            "status": status,
            "diverged_at": run.diverged_at,
            "dim": run.dim,
            "model": self.net.model_state(g),
            "optimizer": self.net.opt_state(g),
            "rng": {
                "train": self.train_gens[j].get_state(),
                "probe": self.probe_gens[j].get_state(),
                "torch": torch.get_rng_state(),
            },
            "block": {"n": self.block_n, **{k: float(v[g]) for k, v in self.acc.items()}},
            "monitor": run.monitor.state_dict(),
            "metrics": [dict(r) for r in run.rows],
            "evals": [dict(r) for r in run.evals],
            "seconds": run.seconds,
            "si_loss": dict(run.si_loss),
            "hyper_in_force": dict(run.hyper),
            "hyper_since": run.hyper_since,
        }

    def save(self, g: int) -> None:
        """Write config g's checkpoint and metrics.csv."""
        run = self.runs[g]
        atomic_torch_save(self._checkpoint(g), run.out / "checkpoint.pt")
        write_csv(run.out / "metrics.csv", metrics_columns(run.rows))

    def finish(self, g: int) -> dict:
        """Write stationary.json, metrics.csv and the final checkpoint of config g."""
        run = self.runs[g]
        if run.active and self.step >= run.config.steps and not run.si_loss:
            run.si_loss = self._si_loss_change(g)
        self.save(g)
        doc = write_doc(run.out, stationary_doc(run, self.step, self.device))
        self.docs[g] = doc
        return doc

    def _si_loss_change(self, g: int) -> dict[str, float]:
        """|L(c w) - L(w)| / |L(w)| for c = 1/2, 2 of config g's trained group at the end of the
        window, on one training batch drawn by a private generator (seed 0), the model as it
        runs (normalization eps included; train-mode BN; state restored)."""
        gen = torch.Generator(device=self.device).manual_seed(0)
        idx = torch.randint(
            0, self.ds.n_train, (self.c0.batch_size,), generator=gen, device=self.device
        )
        try:
            d = self.net.si_distance(g, self.ds.x_train[idx], self.ds.y_train[idx])
        except ValueError:  # a non-finite loss: nothing to measure
            return {}
        return {
            "si_loss_change": d.loss_change_max,
            "si_loss_change_half": d.loss_change[0.5],
            "si_loss_change_double": d.loss_change[2.0],
            "si_radial_gradient_end": d.radial,
        }

    # -- sampling and the hook ----------------------------------------------------------------

    def _draw(self, gens: list[torch.Generator]) -> Tensor:
        n, b = self.ds.n_train, self.c0.batch_size
        if len(gens) == 1:
            return torch.randint(0, n, (b,), generator=gens[0], device=self.device)
        return torch.stack(
            [torch.randint(0, n, (b,), generator=g, device=self.device) for g in gens]
        )

    def _apply_hook(self, active: list[int]) -> None:
        """Set every active config's hyperparameters of the coming step (see the module
        docstring)."""
        for g in active:
            run = self.runs[g]
            values = self.hook(self.step, run.config)
            changed = False
            for name, value in values.items():
                check_choice("hyperparameter hook key", name, self._hook_keys)
                v = check_number(name, value, min_val=0.0)
                self.net.set_hyperparameter(g, name, v)
                if run.hyper[name] != v:
                    run.hyper[name], changed = v, True
            if changed:  # the first record made with the new values is that of step + 1
                run.hyper_since = self.step + 1
                if not run.zero_in_force():
                    run.monitor.set_hyperparameters(
                        self.step + 1, **{k: run.hyper[k] for k in self._hook_keys})

    # -- measurements -------------------------------------------------------------------------

    def _flush(self, active: list[int]) -> list[int]:
        """End of a logging block: metrics rows, monitor records, divergence. Returns the
        configs that diverged in this block."""
        vals = (
            (torch.stack([self.acc[k] for k in ("loss", "radius", "pre", "q")]) / self.block_n)
            .cpu()
            .numpy()
        )
        for v in self.acc.values():
            v.zero_()
        self.block_n = 0
        diverged = []
        for g in active:
            run = self.runs[g]
            loss, r, pre, q = (float(x) for x in vals[:, g])
            row = {"step": self.step, "loss": loss, "radius": r, "trace_total_steps": q}
            if self.sphere:
                c = run.config
                row["preprojection_norm"] = pre
                row["pressure"] = (
                    theory.sphere_pressure_from_norm(pre, c.radius, c.elr)
                    if math.isfinite(pre)
                    else math.nan
                )
            run.rows.append(row)
            if not r <= 0:  # the monitor records non-finite values and reports divergence
                run.monitor.record_step(
                    self.step, radius=r, loss=loss, preprojection_norm=pre if self.sphere else None
                )
            finite = math.isfinite(loss) and math.isfinite(r) and r > 0
            if not finite or (self.sphere and not math.isfinite(pre)):
                run.diverged_at = self.step
                diverged.append(g)
        return diverged

    @torch.no_grad()
    def _snapshot(self, active: list[int]) -> None:
        w = self.net.weights().cpu().numpy()
        for g in active:
            if np.isfinite(w[g]).all():  # a diverging config is caught at the block's end
                self.runs[g].monitor.push_snapshot(w[g])

    def _evaluate(self, active: list[int]) -> None:
        """Loss and accuracy of every active config on the whole training and test sets."""
        ds = self.ds
        train = self.net.evaluate(ds.x_train, ds.y_train)
        nan = np.full(self.G, np.nan)
        test = self.net.evaluate(ds.x_test, ds.y_test) if ds.n_test else (nan, nan)
        for g in active:
            self.runs[g].evals.append(
                {
                    "step": self.step,
                    "train_loss": float(train[0][g]),
                    "train_acc": float(train[1][g]),
                    "test_loss": float(test[0][g]),
                    "test_acc": float(test[1][g]),
                }
            )

    def _probe(self, active: list[int]) -> None:
        """noise_batches extra minibatch gradients per config at the current weights (probe
        generator; BN running statistics restored) -> `noise_from_gradients` per config."""
        n = self.s.noise_batches
        saved = [b.detach().clone() for b in self.net.buffers()]
        x_all, y_all = self.ds.x_train, self.ds.y_train
        grads = None
        for k in range(n):
            idx = self._draw(self.probe_gens)
            gk = self.net.grads(x_all[idx], y_all[idx]).detach()
            if grads is None:
                grads = torch.empty((self.G, n, gk.shape[1]), dtype=gk.dtype, device=gk.device)
            grads[:, k] = gk
        with torch.no_grad():
            for b, sb in zip(self.net.buffers(), saved, strict=True):
                b.copy_(sb)
        radius = self.net.radius()
        ok = torch.isfinite(radius) & (radius > 0)
        est_all = noise_from_gradients(grads, torch.where(ok, radius, 1.0))
        si_mean, si_rms = radial_gradient_stats(grads, self.net.weights())
        for g in active:
            if not bool(ok[g]):
                continue
            est = est_all[g]
            run = self.runs[g]
            run.monitor.record_noise(self.step, est)
            if math.isfinite(float(si_mean[g])) and math.isfinite(float(si_rms[g])):
                run.monitor.record_si_distance(self.step, float(si_mean[g]), float(si_rms[g]))
            sigma2 = float(est.sigma2(run.dim))
            row = run.rows[-1]
            row.update(
                trace_sigma=float(est.trace_sigma),
                trace_sigma_se=float(est.trace_sigma_se),
                grad_norm2=float(est.grad_norm2),
                grad_norm2_se=float(est.grad_norm2_se),
                sigma2=sigma2,
            )
            if sigma2 > 0:  # at the hyperparameters in force (NaN while the hook holds a 0)
                row["temperature"] = math.nan if run.zero_in_force() else probe_temperature(
                    run.monitored_config(), run.dim, float(est.trace_sigma))

    # -- loop ----------------------------------------------------------------------------------

    def _after_step(self, active: list[int], t0: float) -> tuple[list[int], float]:
        """Snapshots, evaluations, block end (divergence, probes) and checkpoints due after
        the step just taken; returns the configs still active and the timer's start."""
        s, steps, step = self.s, self.c0.steps, self.step
        if self.snap_i < len(self.snap_steps) and step == self.snap_steps[self.snap_i]:
            self.snap_i += 1
            self._snapshot(active)
        if self.eval_i < len(self.eval_steps) and step == self.eval_steps[self.eval_i]:
            self.eval_i += 1
            self._evaluate(active)
        if step % s.log_every == 0 or step == steps:
            for g in self._flush(active):
                self.net.freeze(g)
                self._add_time(t0)
                t0 = time.perf_counter()
                self.finish(g)
            active = [g for g in active if self.runs[g].active]
            if step % s.noise_every == 0 and active:
                self._probe(active)
        if step % s.checkpoint_every == 0 and step < steps and active:
            self._add_time(t0)
            t0 = time.perf_counter()
            for g in active:
                self.save(g)
        return active, t0

    def run(self, max_steps: int | None, progress: bool | None, desc: str) -> str:
        """Train until the end (or ``max_steps`` more steps). Returns "done" or "interrupted"."""
        steps = self.c0.steps
        target = steps if max_steps is None else min(steps, self.step + max_steps)
        x_all, y_all = self.ds.x_train, self.ds.y_train
        active = [g for g in range(self.G) if self.runs[g].active]
        bar = tqdm(
            total=steps,
            initial=self.step,
            unit="step",
            unit_scale=True,
            desc=desc,
            disable=progress_disabled(progress),
            leave=False,
        )
        t0 = time.perf_counter()
        try:
            while self.step < target and active:
                if self.hook is not None:
                    self._apply_hook(active)
                idx = self._draw(self.train_gens)
                loss, r_before, pre, q = _training_step(self.net, x_all[idx], y_all[idx])
                self.step += 1
                self.block_n += 1
                self.acc["loss"] += loss.double()
                self.acc["radius"] += r_before
                if pre is not None:
                    self.acc["pre"] += pre
                self.acc["q"] += q
                active, t0 = self._after_step(active, t0)
                bar.update(1)
        finally:
            bar.close()
        self._add_time(t0)
        if self.step < steps and active:
            for g in active:
                self.save(g)
            return "interrupted"
        for g in active:
            self.finish(g)
        return "done"

    def _add_time(self, t0: float) -> None:
        dt = time.perf_counter() - t0
        for g in range(self.G):
            if self.runs[g].active:
                self.runs[g].seconds += dt / max(1, sum(r.active for r in self.runs))


def _training_step(net, x: Tensor, y: Tensor):
    """One optimizer step of every config (a module-level hook: tests inject crashes here)."""
    return net.train_step(x, y)


# --------------------------------------------------------------------------------------------
# building engines


def single_engine(
    c: TrainConfig,
    out: Path,
    ds: Dataset,
    ckpt: dict | None,
    device,
    model_fn: Callable[[TrainConfig, Dataset], nn.Module] | None = None,
    hook: HyperparameterHook | None = None,
) -> Engine:
    """The engine of one config (its model, or ``model_fn(c, ds)``'s), resumed from ``ckpt``
    when given. Checks scale invariance of SI variants (ValueError)."""
    model = (model_fn(c, ds) if model_fn is not None else build_model(c, ds)).to(device)
    si = c.variant in SI_VARIANTS
    params = si_params(model) if si else [p for _, p in thermo_named_parameters(model)]
    if not params:
        raise ValueError("the model has no trainable (scale-invariant) parameters")
    if si:  # a non-SI variant is trained as it is: all its trainable parameters, one group
        verify_si(model, params, ds, c.batch_size)
    s = c.schedule
    if c.protocol != "sphere":
        set_group_radius(params, s.init_radius)
    opt = make_optimizer(c.protocol, params, **c.hyperparameters, **opt_args(c))
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
    dim = sum(p.numel() for p in params)
    run = RunRecord(c, out, dim, ckpt)
    return Engine(SingleNet(model, params, opt), [run], ds, [ckpt], device, hook)


def _restore_batched_optimizer(opt: BatchedProtocol, ckpts: list[dict], device,
                               model: nn.Module) -> None:
    """Config g's saved single-model optimizer state into the batched optimizer: last radius
    / norm, and the buffers (in the batched ``model``'s layout: a BN-MLP's (out, in) as
    config g's (in, out), a conv weight's as it is)."""
    group = opt.param_groups[0]
    params = group["params"]
    for key in ("last_radius", "last_norm"):
        vals = [ck["optimizer"]["param_groups"][0].get(key) for ck in ckpts]
        if all(v is not None for v in vals):
            group[key] = torch.stack(
                [torch.as_tensor(v, dtype=torch.float64) for v in vals]
            ).to(device)
    states = [ck["optimizer"].get("state", {}) for ck in ckpts]
    if all(states):
        for i, p in enumerate(params):
            for name in BUFFERS[opt.optimizer]:
                opt.state[p][name] = torch.stack(  # single_layout is its own inverse
                    [single_layout(model, st[i][name].unsqueeze(0))[0] for st in states]
                ).to(device=device, dtype=p.dtype)
        if opt.optimizer == "adamw":
            group["step"] = int(float(states[0][0]["step"]))


def _batched_model(cs: list[TrainConfig], ds: Dataset, ckpts: list[dict | None],
                   device) -> BatchedBNMLP | BatchedConvNet:
    """The batched model of G configs: a `BatchedBNMLP` (mlp) or a `BatchedConvNet` stacked
    from each config's own single model (``build_model``, its init seed), resumed from
    ``ckpts`` (single-model states) when given."""
    c0 = cs[0]
    if c0.model == "mlp":
        in_features = int(np.prod(ds.input_shape))
        if ckpts[0] is None:
            return BatchedBNMLP(
                len(cs), in_features, c0.hidden, ds.num_classes,
                init_seed=[c.init_seed for c in cs],
            ).to(device)
        models = []
        for ck in ckpts:
            m = BNMLP(in_features, c0.hidden, ds.num_classes)
            m.load_state_dict(ck["model"])
            models.append(m)
        return BatchedBNMLP.from_models(models).to(device)
    if ckpts[0] is None:  # one model per distinct init seed, stacked
        by_seed: dict[int, nn.Module] = {}
        for c in cs:
            if c.init_seed not in by_seed:
                by_seed[c.init_seed] = build_model(c, ds)
        models = [by_seed[c.init_seed] for c in cs]
    else:
        models = []
        for c, ck in zip(cs, ckpts, strict=True):
            m = build_model(c, ds)
            m.load_state_dict(ck["model"])
            models.append(m)
    return BatchedConvNet.from_models(models).to(device)


def batched_engine(
    cs: list[TrainConfig],
    outs: list[Path],
    ds: Dataset,
    ckpts: list[dict | None],
    device,
    hook: HyperparameterHook | None = None,
) -> Engine:
    """The engine of G SI configs (BN-MLP, ConvNet or ResNet) that share data, architecture,
    protocol, optimizer and schedule, as one batched model (`BatchedBNMLP` /
    `BatchedConvNet`; resumed from ``ckpts`` when given)."""
    c0 = cs[0]
    bm = _batched_model(cs, ds, ckpts, device)
    m0 = bm.to_model(0)
    verify_si(m0, m0.si_parameters(), ds, c0.batch_size)
    hyper = {
        k: torch.tensor([getattr(c, k) for c in cs], dtype=torch.float64, device=device)
        for k in HYPERPARAMETERS[c0.protocol]
    }
    params = bm.si_parameters()
    if ckpts[0] is None and c0.protocol != "sphere":
        set_batched_group_radius(
            params,
            torch.tensor([c.schedule.init_radius for c in cs], dtype=torch.float64).to(device),
        )
    saved = [w.detach().clone() for w in params]
    if c0.optimizer != "sgd":  # per-config betas
        kws = [c.optimizer_kwargs for c in cs]
        hyper["optimizer"] = c0.optimizer
        for k in ("momentum", "beta2"):
            if kws[0][k] is not None:
                hyper[k] = torch.tensor([kw[k] for kw in kws], dtype=torch.float64, device=device)
    opt = BatchedProtocol(params, c0.protocol, **hyper)  # the sphere: projects every config
    if ckpts[0] is not None:
        with torch.no_grad():  # resume bit-exactly: undo the constructor's projection
            for w, sw in zip(params, saved, strict=True):
                w.copy_(sw)
        _restore_batched_optimizer(opt, ckpts, device, bm)
    runs = [RunRecord(c, o, bm.dim, ck) for c, o, ck in zip(cs, outs, ckpts, strict=True)]
    return Engine(BatchedNet(bm, opt, cs), runs, ds, ckpts, device, hook)
