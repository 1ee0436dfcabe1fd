"""Hyperparameter sweeps: grid expansion, LIST syntax, a resumable result store, local and Ray
executors, collection into one table.

A sweep is a `SweepSpec` (JSON or YAML): a run ``kind``, the ``base`` configuration shared by
every run and a ``grid`` of lists whose outer product gives the runs (or a list of such grids,
whose runs are united: e.g. one grid per protocol). What one run of a kind does is a `Runner`
(run one config into a directory and return its record; optionally run a batch of configs at
once and validate a config), passed in as ``runners`` (kind -> `Runner`): this module knows
no run kind itself. `thermosgd.workflows.runners.RUNNERS` holds the package's kinds (``train``:
one network run of `thermosgd.train`; ``isotropic``: one isotropic-model study). The store
under the sweep directory holds one directory per run::

    SWEEP/sweep.json                 the spec that made it
    SWEEP/runs/<run_id>/spec.json    the run's configuration as the sweep gave it
    SWEEP/runs/<run_id>/status.json  {"state": "running" | "done" | "diverged" | "failed", ...}
    SWEEP/runs/<run_id>/record.json  the runner's result (stationary state or study summary)

Every file is written atomically. Re-executing a sweep skips runs whose state is done or diverged,
re-runs interrupted ones (state running; a `train` run resumes from its checkpoint) and, only with
``retry_failed``, failed ones, so nothing finished is lost or computed twice. A failing run records
its error and the sweep goes on. `collect` gathers every run into one tidy table
(`thermosgd.records`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from thermosgd._progress import progress_disabled
from thermosgd._validate import check_choice, check_int, check_number
from thermosgd.io import write_csv, write_json
from thermosgd.records import flatten, rows_to_columns

__all__ = [
    "EXECUTORS",
    "FINISHED",
    "Runner",
    "SweepSpec",
    "collect",
    "collect_rows",
    "execute",
    "expand",
    "load_spec",
    "parse_list",
    "plan",
    "read_status",
    "run_dir",
    "run_id",
    "status_counts",
    "validate_spec",
]

EXECUTORS = ("local", "ray")
FINISHED = ("done", "diverged")


# --------------------------------------------------------------------------------------------
# runners: what one run of a kind does (injected; see thermosgd.workflows.runners)


@dataclass(frozen=True)
class Runner:
    """What one run of a kind does.

    * ``run(config, run_dir) -> record``: run one config (a dict) into its directory;
    * ``batch(configs, run_dirs) -> records`` (optional): run several configs at once (the
      sweep groups runs whose configs agree except in ``batchable`` keys);
    * ``check(config)`` (optional): raise ValueError / TypeError for an invalid config, so that
      `expand` refuses a bad grid before any run starts;
    * ``keys`` (optional): the setting names a config may hold (`expand` refuses any other,
      listing these); ``options``: those of them that change how a run executes, not its
      result (e.g. threads), ignored when a config is compared with the run's stored one.

    Functions must be importable module-level functions for the process-pool and Ray
    executors (they are pickled by reference).
    """

    run: Callable[[dict, Path], dict]
    batch: Callable[[list[dict], list[Path]], list[dict]] | None = None
    batchable: tuple[str, ...] = ()
    check: Callable[[dict], Any] | None = None
    keys: tuple[str, ...] | None = None
    options: tuple[str, ...] = ()


def _runner(kind: str, runners: Mapping[str, Runner]) -> Runner:
    if kind not in runners:
        raise ValueError(f"unknown run kind {kind!r}; choose one of {', '.join(runners)}")
    return runners[kind]


# --------------------------------------------------------------------------------------------
# LIST syntax


def parse_list(text: str) -> tuple[float, ...]:
    """'0.1,0.2,0.5' or 'log:START:STOP:NUM' (NUM log-spaced values from START to STOP:
    START (STOP/START)^(k/(NUM-1)), k = 0..NUM-1)."""
    text = text.strip()
    if text.startswith("log:"):
        parts = text.split(":")
        if len(parts) != 4:
            raise ValueError(f"cannot parse {text!r}: use log:START:STOP:NUM")
        try:
            start, stop, num = float(parts[1]), float(parts[2]), int(parts[3])
        except ValueError:
            raise ValueError(f"cannot parse {text!r}: use log:START:STOP:NUM") from None
        if start <= 0 or stop <= 0 or num < 1:
            raise ValueError(f"log range {text!r}: START and STOP must be > 0, NUM >= 1")
        return tuple(float(v) for v in np.geomspace(start, stop, num))
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"cannot parse {text!r}: use comma-separated numbers or log:START:STOP:NUM"
        ) from None
    if not values:
        raise ValueError("empty list of values")
    return values


# --------------------------------------------------------------------------------------------
# spec and grid


@dataclass(frozen=True)
class SweepSpec:
    """A grid of runs and how to execute them (see the module docstring)."""

    kind: str
    grid: dict | list = field(default_factory=dict)
    base: dict = field(default_factory=dict)
    name: str = "sweep"
    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    batch: bool = True
    max_batch: int = 64

    def __post_init__(self) -> None:
        # one spelling: setting names with dashes (the CLI's --batch-size) become underscores
        if isinstance(self.base, dict):
            object.__setattr__(self, "base", _underscored(self.base))
        if isinstance(self.grid, dict):
            object.__setattr__(self, "grid", _underscored(self.grid))
        elif isinstance(self.grid, list | tuple):
            object.__setattr__(self, "grid", [_underscored(g) if isinstance(g, dict) else g
                                              for g in self.grid])
        validate_spec(self)


def _underscored(d: dict) -> dict:
    """``d`` with dashes in its keys replaced by underscores (ValueError when two keys then
    collide, e.g. batch-size and batch_size)."""
    out: dict = {}
    for k, v in d.items():
        name = k.replace("-", "_") if isinstance(k, str) else k
        if name in out:
            raise ValueError(f"setting {name!r} is given twice (with dashes and underscores)")
        out[name] = v
    return out


def validate_spec(s: SweepSpec, runners: Mapping[str, Runner] | None = None) -> None:
    """Raise a one-line ValueError for an invalid spec (with ``runners``: also for a kind
    they do not know)."""
    if not isinstance(s.kind, str) or not s.kind:
        raise ValueError(f"kind == {s.kind!r}, must be the name of a run kind")
    if runners is not None:
        _runner(s.kind, runners)
    check_choice("executor", s.executor, EXECUTORS)
    grids = s.grid if isinstance(s.grid, list | tuple) else [s.grid]
    if not isinstance(s.base, dict) or not grids or not all(isinstance(g, dict) for g in grids):
        raise ValueError("'base' must be a mapping and 'grid' a mapping (or a list of mappings) "
                         "of parameter names to lists of values")
    for g in grids:
        for k, v in g.items():
            if not isinstance(v, list | tuple) or len(v) == 0:
                raise ValueError(f"grid entry {k!r} == {v!r}, must be a non-empty list")
        overlap = set(g) & set(s.base)
        if overlap:
            raise ValueError(f"parameters {sorted(overlap)} are both in 'base' and in 'grid'")
    check_int("workers", s.workers, min_val=1)
    check_int("max_batch", s.max_batch, min_val=1)
    check_number("cpus_per_task", s.cpus_per_task, min_val=0.0, include_min=False)
    check_number("gpus_per_task", s.gpus_per_task, min_val=0.0)


def load_spec(path: str | os.PathLike, *, runners: Mapping[str, Runner],
              **overrides) -> SweepSpec:
    """Read a sweep spec from JSON or YAML; ``overrides`` (non-None) replace top-level keys.
    The kind must be one of ``runners`` (the package's: `thermosgd.workflows.runners.RUNNERS`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep config {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as e:  # any parser error becomes one clear line
        raise ValueError(f"cannot parse sweep config {path}: {e}".splitlines()[0]) from None
    if not isinstance(doc, dict):
        raise ValueError(f"sweep config {path} must be a mapping with 'kind' and 'grid'")
    doc = _underscored(doc)
    doc.update({k: v for k, v in overrides.items() if v is not None})
    fields = [f.name for f in dataclasses.fields(SweepSpec)]
    unknown = [k for k in doc if k not in fields]
    if unknown:
        raise ValueError(f"sweep config {path}: unknown top-level key(s) {unknown}; known "
                         f"(dashes or underscores): {', '.join(fields)} (a run's settings go "
                         "in 'base' and 'grid')")
    if "kind" not in doc:
        raise ValueError("sweep config needs 'kind' (the run kind, e.g. train or isotropic)")
    spec = SweepSpec(**doc)
    keys = _runner(spec.kind, runners).keys
    if keys is not None:
        _check_keys(spec, keys)
    return spec


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v).replace("/", "_")


def run_id(point: dict) -> str:
    """A readable, deterministic directory name for one grid point."""
    return "-".join(f"{k}_{_fmt(v)}" for k, v in point.items()) or "run"


def expand(spec: SweepSpec, runners: Mapping[str, Runner]
           ) -> list[tuple[str, dict]]:
    """All runs as (run_id, full config) in grid order; validates each config with its kind's
    ``check``. A list of grids gives the union of their outer products (e.g. one grid per
    protocol)."""
    runner = _runner(spec.kind, runners)
    check = runner.check
    if runner.keys is not None:
        _check_keys(spec, runner.keys)
    runs = []
    for grid in spec.grid if isinstance(spec.grid, list | tuple) else [spec.grid]:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            point = dict(zip(keys, values, strict=True))
            runs.append((run_id(point), {**spec.base, **point}))
    ids = [r for r, _ in runs]
    if len(set(ids)) != len(ids):
        raise ValueError("grid values collide in run names (values equal to 3 significant digits)")
    if check is not None:
        for rid, config in runs:
            try:
                check(config)
            except (TypeError, ValueError) as e:
                raise ValueError(f"run {rid}: {e}") from None
    return runs


def _check_keys(spec: SweepSpec, keys: Sequence[str]) -> None:
    """ValueError naming every setting of ``base`` and ``grid`` that a run of the kind does
    not accept, and listing those it accepts."""
    grids = spec.grid if isinstance(spec.grid, list | tuple) else [spec.grid]
    where = {"base": list(spec.base)}
    for i, g in enumerate(grids):
        where["grid" if len(grids) == 1 else f"grid[{i}]"] = list(g)
    bad = [f"{k!r} in {w}" for w, names in where.items() for k in names if k not in keys]
    if bad:
        raise ValueError(f"unknown {spec.kind} setting(s) {', '.join(bad)}; {spec.kind} runs "
                         f"accept (dashes or underscores): {', '.join(keys)}")


# --------------------------------------------------------------------------------------------
# store


def run_dir(sweep_dir: Path, rid: str) -> Path:
    return Path(sweep_dir) / "runs" / rid


def read_status(rdir: Path) -> dict:
    """The run's status.json, or {"state": "pending"} when absent or unreadable."""
    try:
        return json.loads((Path(rdir) / "status.json").read_text())
    except (OSError, ValueError):
        return {"state": "pending"}


def _set_status(rdir: Path, state: str, **extra) -> None:
    write_json(Path(rdir) / "status.json", {"state": state, "time": time.time(), **extra})


def _execute_one(runner: Runner, items: list[tuple[str, dict, str]]) -> list[str]:
    """Run one batch of runs (items: run_id, config, run dir) and record each; never raises.

    Returns the final states. Used in this process, in pool workers and in Ray tasks.
    """
    t0 = time.perf_counter()
    dirs = [Path(d) for _, _, d in items]
    for (_, config, _), d in zip(items, dirs, strict=True):
        write_json(d / "spec.json", config)
        _set_status(d, "running", pid=os.getpid())
    try:
        if len(items) > 1 and runner.batch is not None:
            records = runner.batch([c for _, c, _ in items], dirs)
        else:
            records = [runner.run(c, d) for (_, c, _), d in zip(items, dirs, strict=True)]
    except Exception as e:  # a failing run is recorded, the sweep goes on
        err = f"{type(e).__name__}: {e}"
        tb = traceback.format_exc(limit=8)
        for d in dirs:
            _set_status(d, "failed", error=err, traceback=tb)
        return ["failed"] * len(items)
    seconds = (time.perf_counter() - t0) / len(items)
    states = []
    for d, rec in zip(dirs, records, strict=True):
        state = "diverged" if _is_diverged(rec) else "done"
        write_json(d / "record.json", rec)
        _set_status(d, state, seconds=seconds)
        states.append(state)
    return states


def _is_diverged(record) -> bool:
    return isinstance(record, dict) and (bool(record.get("diverged"))
                                         or record.get("status") == "diverged")


def plan(spec: SweepSpec, sweep_dir: Path, runners: Mapping[str, Runner],
         retry_failed: bool = False
         ) -> tuple[list[list[tuple[str, dict, str]]], dict[str, int]]:
    """Runs still to do, grouped into batches, and the count of runs per current state."""
    runs = expand(spec, runners)
    options = _runner(spec.kind, runners).options

    def result_settings(config: dict) -> dict:
        return {k: v for k, v in json.loads(json.dumps(config)).items() if k not in options}

    counts: dict[str, int] = {}
    todo = []
    for rid, config in runs:
        d = run_dir(sweep_dir, rid)
        state = read_status(d)["state"]
        if state != "pending" and (d / "spec.json").is_file():
            old = json.loads((d / "spec.json").read_text())
            if result_settings(old) != result_settings(config):
                raise ValueError(f"run {rid} in {sweep_dir} was made with another configuration; "
                                 "use a new sweep directory")
        counts[state] = counts.get(state, 0) + 1
        if state in FINISHED or (state == "failed" and not retry_failed):
            continue
        todo.append((rid, config, str(d)))
    return _batches(spec, todo, _runner(spec.kind, runners)), counts


def _batches(spec: SweepSpec, todo: list, runner: Runner) -> list[list]:
    """Runs whose configs agree except in the runner's ``batchable`` keys, in batches of at
    most ``max_batch`` (one run per batch without a batch runner or with ``batch`` off)."""
    if not (spec.batch and runner.batch is not None):
        return [[item] for item in todo]
    groups: dict[str, list] = {}
    for item in todo:
        key = json.dumps({k: v for k, v in item[1].items() if k not in runner.batchable},
                         sort_keys=True, default=str)
        groups.setdefault(key, []).append(item)
    out = []
    for items in groups.values():
        out += [items[i:i + spec.max_batch] for i in range(0, len(items), spec.max_batch)]
    return out


# --------------------------------------------------------------------------------------------
# executors


def execute(spec: SweepSpec, sweep_dir: str | os.PathLike, *, runners: Mapping[str, Runner],
            retry_failed: bool = False, progress: bool | None = None
            ) -> dict[str, int]:
    """Execute every unfinished run of the sweep with its kind's runner (``runners``: kind ->
    `Runner`; the package's: `thermosgd.workflows.runners.RUNNERS`); returns the count
    of runs per final state."""
    sweep_dir = Path(sweep_dir)
    runner = _runner(spec.kind, runners)
    batches, _ = plan(spec, sweep_dir, runners, retry_failed)
    write_json(sweep_dir / "sweep.json", dataclasses.asdict(spec))
    n_runs = sum(len(b) for b in batches)
    bar = tqdm(total=n_runs, unit="run", desc=f"sweep {spec.name}",
               disable=progress_disabled(progress))
    try:
        if spec.executor == "ray":
            _execute_ray(spec, runner, batches, bar)
        elif spec.workers == 1 or len(batches) <= 1:
            for b in batches:
                _execute_one(runner, b)
                bar.update(len(b))
        else:
            _execute_pool(spec, runner, batches, bar)
    finally:
        bar.close()
    return status_counts(spec, sweep_dir, runners)


def _execute_pool(spec: SweepSpec, runner: Runner, batches: list, bar) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: workers start clean (no forked torch/numba thread state)
    with ProcessPoolExecutor(max_workers=spec.workers, mp_context=mp.get_context("spawn")) as ex:
        futures = {ex.submit(_execute_one, runner, b): b for b in batches}
        for f in as_completed(futures):
            f.result()
            bar.update(len(futures[f]))


def _execute_ray(spec: SweepSpec, runner: Runner, batches: list, bar) -> None:
    """Each batch is one Ray task with ``cpus_per_task``/``gpus_per_task`` resources. The sweep
    directory must be on a file system that every node sees (as usual on clusters)."""
    try:
        import ray
    except ImportError:
        raise ValueError("the ray executor needs Ray: pip install 'ray[default]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        address = spec.ray_address or "auto"
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (Exception, SystemExit) as e:  # connection errors come in many types
            raise ValueError(f"cannot reach a Ray cluster at {address!r} ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}); start one with "
                             "`ray start --head` or pass --ray-address HOST:PORT") from None
    try:
        task = ray.remote(num_cpus=spec.cpus_per_task, num_gpus=spec.gpus_per_task,
                          max_retries=0)(_execute_one)
        refs = {task.remote(runner, b): b for b in batches}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for r in done:
                ray.get(r)
                bar.update(len(refs[r]))
    finally:
        if started_here:
            ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a HOST:PORT that accepts no connection (Ray itself retries for minutes)."""
    if address == "auto" or "://" in address or ":" not in address:
        return
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot reach a Ray cluster at {address!r} ({e}); start one with "
                         "`ray start --head` or pass --ray-address HOST:PORT") from None


def status_counts(spec: SweepSpec, sweep_dir: Path,
                  runners: Mapping[str, Runner]) -> dict[str, int]:
    """The count of the sweep's runs per current state (pending, running, done, ...)."""
    counts: dict[str, int] = {}
    for rid, _ in expand(spec, runners):
        s = read_status(run_dir(sweep_dir, rid))["state"]
        counts[s] = counts.get(s, 0) + 1
    return counts


# --------------------------------------------------------------------------------------------
# collect


def collect_rows(sweep_dir: str | os.PathLike) -> list[dict]:
    """One flat row per run of the store: run id, state, error, config and record fields
    (`thermosgd.records.flatten`)."""
    root = Path(sweep_dir) / "runs"
    if not root.is_dir():
        raise ValueError(f"{sweep_dir} is not a sweep directory (no runs/ inside)")
    rows = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        status = read_status(d)
        row = {"run": d.name, "state": status["state"], "error": status.get("error")}
        for name in ("spec.json", "record.json"):
            f = d / name
            if f.is_file():
                try:
                    row.update(flatten(json.loads(f.read_text())))
                except ValueError:
                    row["error"] = f"unreadable {name}"
        rows.append(row)
    return rows


def collect(sweep_dir: str | os.PathLike, parquet: bool = True) -> dict[str, np.ndarray]:
    """Write SWEEP/results.csv (and results.parquet when pandas and pyarrow are available): one
    row per run; returns the table's columns (`thermosgd.records.rows_to_columns`: object
    arrays, None where a run lacks a field)."""
    sweep_dir = Path(sweep_dir)
    cols = rows_to_columns(collect_rows(sweep_dir))
    write_csv(sweep_dir / "results.csv", cols)
    if parquet:
        try:
            import pandas as pd
        except ImportError:
            return cols
        df = pd.DataFrame({k: list(v) for k, v in cols.items()}).infer_objects()
        for name in df.columns[df.dtypes.map(lambda t: t.kind == "O")]:  # mixed: as text
            if len({type(v) for v in df[name] if v is not None}) > 1:
                df[name] = df[name].map(lambda v: None if v is None else str(v))
        tmp = sweep_dir / ".results.parquet.tmp"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, sweep_dir / "results.parquet")
    return cols
