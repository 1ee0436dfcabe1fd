"""Training runs and grids of runs into run directories, resumable: `train`, `train_grid`,
`grid_table`.

`train_grid` checks everything (configs, directories, data, scale invariance) before any file
is written, decides per directory whether it resumes from its checkpoint, starts fresh or is
already finished, groups BN-MLP configs that can train as one batched model, and runs one
`thermosgd.train.engine.Engine` per group. See `thermosgd.train` for the files of a run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from thermosgd._validate import check_int
from thermosgd.nn.data import Dataset
from thermosgd.records import stationary_table
from thermosgd.train.checkpoint import inspect_dir, remove_checkpoint, start_fresh
from thermosgd.train.config import TrainConfig
from thermosgd.train.document import finished_doc
from thermosgd.train.engine import (
    Engine,
    HyperparameterHook,
    batch_limit,
    batched_engine,
    single_engine,
)
from thermosgd.train.nets import build_model, load_data, resolve_device

__all__ = ["check_fit", "grid_table", "train", "train_grid"]

#: run-level messages (resuming a run); the CLI shows them on stderr
_log = logging.getLogger("thermosgd.train")


def _data_key(c: TrainConfig, device: torch.device) -> tuple:
    return (
        c.data,
        c.data_dir,
        c.label_noise,
        c.test_fraction,
        c.data_seed,
        c.model == "mlp",
        str(device),
    )


def _batch_key(c: TrainConfig, device: torch.device, ckpt: dict | None) -> tuple:
    s = c.schedule
    return (
        *_data_key(c, device),
        c.model,
        c.model_width,
        c.hidden,
        c.protocol,
        c.optimizer,
        c.steps,
        c.batch_size,
        s.log_every,
        s.noise_every,
        s.noise_batches,
        s.window,
        s.queue_size,
        s.checkpoint_every,
        s.test_evals,
        0 if ckpt is None else int(ckpt["step"]),
    )


def _check_grid_args(configs: list, outs: list[Path], threads: int | None,
                     max_steps_this_call: int | None) -> None:
    if len(configs) != len(outs):
        raise ValueError(f"got {len(configs)} configs but {len(outs)} output directories")
    if any(not isinstance(c, TrainConfig) for c in configs):
        raise ValueError("configs must be TrainConfig instances")
    if len({o.resolve() for o in outs}) != len(outs):
        raise ValueError("output directories must be distinct")
    if threads is not None:
        check_int("threads", threads, min_val=1)
    if max_steps_this_call is not None:
        check_int("max_steps_this_call", max_steps_this_call, min_val=1)


def _groups(configs: list[TrainConfig], todo: list[int], devices, ckpts, batched: bool | str,
            model_fn) -> dict[tuple, list[int]]:
    """The configs to train, grouped: SI configs sharing data, architecture, protocol,
    optimizer, schedule and resume step train batched where `batch_limit` allows it (at most
    that many per batch); every other config alone. A grid of several architectures (models,
    widths) is split into one or more batches per architecture, never refused."""
    groups: dict[tuple, list[int]] = {}
    for i in todo:
        c = configs[i]
        limit = batch_limit(c, devices[i], batched) if model_fn is None else 1
        key = ("single", i) if limit == 1 else _batch_key(c, devices[i], ckpts[i])
        members = groups.setdefault(key, [])
        if limit > 1 and len(members) == limit:  # full: the next ones start another batch
            groups[(*key, i)] = groups.pop(key)
            members = groups.setdefault(key, [])
        members.append(i)
    return groups


def check_fit(c: TrainConfig, ds: Dataset,
              model_fn: Callable[[TrainConfig, Dataset], nn.Module] | None = None) -> None:
    """Raise a one-line ValueError unless the model of ``c`` (``model_fn(c, ds)``, default
    the built-in one) takes the inputs of ``ds`` and gives one logit per class: its forward
    pass on two training samples (eval mode, no gradient, global RNG state restored) must
    return shape (2, K)."""
    shape, k = tuple(ds.input_shape), ds.num_classes
    what = (f"model {c.model!r}" + (f" (width {c.model_width})" if c.model_width else "")
            if model_fn is None else "the model of model_fn")
    where = f"the {ds.name} data (inputs {shape}, {k} classes)"
    with torch.random.fork_rng(devices=[]):
        try:
            model = model_fn(c, ds) if model_fn is not None else build_model(c, ds)
            was = model.training
            p0 = next(iter(model.parameters()), None)
            x = ds.x_train[:2].to(p0.device if p0 is not None else ds.device)
            model.eval()
            try:
                with torch.no_grad():
                    out = model(x)
            finally:
                model.train(was)
        except (RuntimeError, ValueError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{what} does not fit {where}: {msg}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, k):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{what} does not fit {where}: two samples give outputs {got}, "
                         f"need (2, {k})")


def _engine(idxs: list[int], configs, outs, ckpts, ds, dev, model_fn,
            hook: HyperparameterHook | None) -> tuple[Engine, str]:
    cs = [configs[i] for i in idxs]
    if len(idxs) == 1:
        engine = single_engine(cs[0], outs[idxs[0]], ds, ckpts[idxs[0]], dev, model_fn, hook)
        return engine, outs[idxs[0]].name
    engine = batched_engine(cs, [outs[i] for i in idxs], ds, [ckpts[i] for i in idxs], dev,
                            hook)
    return engine, f"{len(idxs)} configs"


def _run_group(idxs: list[int], configs, outs, ckpts, ds, dev, model_fn, hook,
               max_steps_this_call, progress) -> Engine:
    """Build the group's engine, start or resume its directories and train it."""
    engine, desc = _engine(idxs, configs, outs, ckpts, ds, dev, model_fn, hook)
    for i in idxs:
        if ckpts[i] is None:
            start_fresh(configs[i], outs[i])
        else:
            _log.info("%s: resuming from step %d of %d", outs[i].name,
                      int(ckpts[i]["step"]), configs[i].steps)
    engine.run(max_steps_this_call, progress, desc)
    return engine


def _is_out_of_memory(e: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA and other devices), Python's MemoryError, or the CPU
    allocator's RuntimeError ("can't allocate memory")."""
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    msg = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in msg
                                            or "can't allocate memory" in msg)


def _split_after_oom(e: BaseException, idxs: list[int], configs, outs, ckpts, results,
                     dev: torch.device) -> list[list[int]]:
    """After an out-of-memory error in a group of G configs: the groups to try instead (two
    of about G/2, each resuming from whatever its directories hold now: a checkpoint written
    before the error, a finished document, or nothing); a single config raises a one-line
    MemoryError naming the batch size that failed."""
    c = configs[idxs[0]]
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if len(idxs) == 1:
        raise MemoryError(
            f"out of memory on {dev} training one config of {c.model} with batch size "
            f"{c.batch_size} ({outs[idxs[0]].name}): {first}; use a smaller batch_size or "
            "model, or another device") from None
    half = (len(idxs) + 1) // 2
    _log.warning("out of memory on %s training %d configs batched (batch size %d): %s; "
                 "retrying in batches of %d", dev, len(idxs), c.batch_size, first, half)
    left = []
    for i in idxs:
        ckpts[i] = inspect_dir(configs[i], outs[i], resume=True, overwrite=False)
        if ckpts[i] is not None and ckpts[i]["status"] in ("complete", "diverged"):
            results[i] = finished_doc(configs[i], outs[i], ckpts[i])
        else:
            left.append(i)
    return [part for part in (left[:half], left[half:]) if part]


def train_grid(
    configs: Sequence[TrainConfig],
    out_dirs: Sequence[str | os.PathLike],
    *,
    batched: bool | str = True,
    progress: bool | None = None,
    resume: bool = True,
    overwrite: bool = False,
    threads: int | None = 1,
    model_fn: Callable[[TrainConfig, Dataset], nn.Module] | None = None,
    max_steps_this_call: int | None = None,
    hook: HyperparameterHook | None = None,
    keep_checkpoints: bool = False,
) -> list[dict]:
    """Train every config into its directory; returns their stationary.json documents.

    SI configs sharing data, model, widths, protocol, optimizer, steps, batch size and
    schedule (and, when resuming, the step reached) train at once as one batched model:
    BN-MLPs always, ConvNets / ResNets on CUDA, and on CPU where it measured faster
    (`thermosgd.train.engine.batch_limit`); ``batched=False``: one at a time; ``"always"``:
    conv grids batched on CPU too. A batch of G configs that runs out of memory is retried
    as two batches of about G/2 that resume from their directories (a warning names the G
    and batch size that failed); one config that does not fit raises MemoryError.
    Every directory is written exactly as `train` writes it, so a grid can be
    resumed batched or not. Runs already complete or diverged are not retrained; their
    documents are returned. Everything is checked (configs, directories, data, SI) before any
    file is written; a directory holding a different config raises ValueError unless
    ``overwrite``. ``resume=False`` starts over from step 0. ``threads``: torch intra-op
    threads during training (1 suits small models on a shared CPU; None leaves the setting).
    ``max_steps_this_call`` stops after that many steps (with a checkpoint; the document then
    has ``status: "interrupted"``). ``model_fn(config, dataset)`` replaces the built-in model
    (trained one config at a time; its trainable parameters must be jointly SI). ``hook``:
    the per-step hyperparameters (see `thermosgd.train.engine`). A run that ends (complete or
    diverged) has its ``checkpoint.pt`` removed unless ``keep_checkpoints`` (it is only
    needed to resume; ``stationary.json`` then says the run is finished, and a rerun does not
    retrain it); interrupted runs always keep theirs.
    """
    configs = list(configs)
    outs = [Path(o) for o in out_dirs]
    _check_grid_args(configs, outs, threads, max_steps_this_call)
    devices = [resolve_device(c.device) for c in configs]
    ckpts = [inspect_dir(c, o, resume, overwrite) for c, o in zip(configs, outs, strict=True)]
    results: list[dict | None] = [None] * len(configs)
    todo = []
    for i, (c, o, ck) in enumerate(zip(configs, outs, ckpts, strict=True)):
        if ck is not None and ck["status"] in ("complete", "diverged"):
            results[i] = finished_doc(c, o, ck)
        else:
            todo.append(i)
    data: dict[tuple, Dataset] = {}
    for i in todo:
        key = _data_key(configs[i], devices[i])
        if key not in data:
            data[key] = load_data(configs[i], devices[i])
    groups = _groups(configs, todo, devices, ckpts, batched, model_fn)
    fits = {}  # every architecture is checked before any training
    for idxs in groups.values():
        c = configs[idxs[0]]
        key = ((_data_key(c, devices[idxs[0]]), c.model, c.model_width, c.hidden, c.variant)
               if model_fn is None else idxs[0])
        if key not in fits:
            fits[key] = check_fit(c, data[_data_key(c, devices[idxs[0]])], model_fn)
    prev = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        pending = list(groups.values())
        while pending:
            idxs = pending.pop(0)
            ds = data[_data_key(configs[idxs[0]], devices[idxs[0]])]
            try:
                engine = _run_group(idxs, configs, outs, ckpts, ds, devices[idxs[0]],
                                    model_fn, hook, max_steps_this_call, progress)
            except Exception as e:
                if not _is_out_of_memory(e):
                    raise
                pending[:0] = _split_after_oom(e, idxs, configs, outs, ckpts, results,
                                               devices[idxs[0]])
                continue
            for g, i in enumerate(idxs):
                if engine.docs.get(g) is not None:
                    results[i] = engine.docs[g]
                else:
                    results[i] = {
                        "status": "interrupted",
                        "name": outs[i].name,
                        "steps_done": engine.step,
                        "steps": configs[i].steps,
                    }
            if not keep_checkpoints:
                for i in idxs:
                    if results[i]["status"] in ("complete", "diverged"):
                        remove_checkpoint(outs[i])
    finally:
        torch.set_num_threads(prev)
    return results  # type: ignore[return-value]


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    progress: bool | None = None,
    resume: bool = True,
    overwrite: bool = False,
    threads: int | None = 1,
    model_fn: Callable[[TrainConfig, Dataset], nn.Module] | None = None,
    max_steps_this_call: int | None = None,
    hook: HyperparameterHook | None = None,
    keep_checkpoints: bool = False,
) -> dict:
    """Train one config into ``out_dir`` and return its stationary.json document.

    See `thermosgd.train` for the files; `train_grid` for the options. With ``resume`` (the
    default) a directory holding a checkpoint of the same config continues from it, and a
    finished run is not retrained. A run whose loss or radius becomes non-finite stops and is
    recorded with ``status: "diverged"``; it does not raise. A finished run's checkpoint is
    removed unless ``keep_checkpoints``.
    """
    return train_grid(
        [config],
        [out_dir],
        batched=False,
        progress=progress,
        resume=resume,
        overwrite=overwrite,
        threads=threads,
        model_fn=model_fn,
        max_steps_this_call=max_steps_this_call,
        hook=hook,
        keep_checkpoints=keep_checkpoints,
    )[0]


def grid_table(results: Sequence[dict]) -> dict[str, np.ndarray]:
    """One row per run: name, status, the hyperparameters and every scalar of the stationary
    documents (reasons joined by '; '), ready for `thermosgd.io.write_csv`
    (`thermosgd.records.stationary_table`)."""
    return stationary_table(results)
