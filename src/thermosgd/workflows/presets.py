"""Named studies that reproduce the paper: the presets of `thermosgd.workflows.reproduce`.

* `ISOTROPIC_PRESETS`: isotropic-model studies, per-protocol grids in the LIST syntax
  (`thermosgd.sweep.parse_list`) and shared settings; `isotropic_configs` turns one into the
  three `thermosgd.sim.isotropic.IsotropicConfig` (elr, lr, sphere);
* `PRESETS`: a `Preset` per name, an isotropic study (or None) and a network sweep (base
  settings and one grid per protocol or optimizer); `nn_spec` turns one into the
  `thermosgd.sweep.SweepSpec` of its network sweep.

The tables themselves are plain data in `thermosgd.workflows.preset_table` (light: the
command line's ``--preset`` choices come from there); this module re-exports them.
`thermosgd reproduce --preset NAME` runs one end to end (`thermosgd.workflows.reproduce`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from thermosgd._validate import check_int
from thermosgd.nn.data import CIFAR_DATA, data_location
from thermosgd.sim.isotropic import IsotropicConfig
from thermosgd.sweep import SweepSpec, parse_list
from thermosgd.workflows.preset_table import ISOTROPIC_PRESETS, PRESETS, Preset

__all__ = ["ISOTROPIC_PRESETS", "PRESETS", "Preset", "isotropic_configs", "nn_spec",
           "thin_axis"]


def isotropic_configs(name: str, **overrides) -> list[IsotropicConfig]:
    """The three `IsotropicConfig`s (elr, lr, sphere) of an isotropic preset; ``overrides``
    that are not None replace the preset's shared settings (e.g. ``seed``, ``replicas``)."""
    p = ISOTROPIC_PRESETS[name]
    common = {k: p[k] for k in ("steps", "dim", "sigma", "queue_size")}
    common.update({k: v for k, v in overrides.items() if v is not None})
    return [IsotropicConfig(protocol=proto, **{k: parse_list(v) for k, v in p[proto].items()},
                            **common)
            for proto in ("elr", "lr", "sphere")]


def nn_spec(name: str, *, data_dir: str | None = None, executor: str = "local",
            workers: int = 1, ray_address: str | None = None,
            steps: int | None = None, grid_values: int | None = None,
            settings: Mapping[str, Any] | None = None) -> SweepSpec:
    """The `SweepSpec` of a preset's network sweep (``kind`` train, named ``<name>-nn``).

    The preset itself is never changed; to run it at another size (a smoke test, a first
    look) ``steps`` replaces its steps per run, ``grid_values`` keeps at most that many values
    of every grid axis (`thin_axis`: evenly spread, both ends kept) and ``settings`` replaces
    (or adds) shared settings, e.g. ``{"batch_size": 16, "noise_batches": 4}``. A preset on
    CIFAR needs ``data_dir`` (unless ``settings`` switch its data to another set)."""
    p = PRESETS[name]
    base = dict(p.base)
    base.update(settings or {})
    if steps is not None:
        base["steps"] = int(steps)
    if data_dir:
        base["data_dir"] = str(data_dir)
    elif p.needs_data_dir and base.get("data") in CIFAR_DATA and not base.get("data_dir"):
        raise ValueError(f"preset {name!r} needs --data-dir: {data_location(base['data'])}")
    grid = p.grid
    if grid_values is not None:
        check_int("grid_values", grid_values, min_val=1)
        grid = [{k: thin_axis(v, grid_values) if isinstance(v, list | tuple) else v
                 for k, v in g.items()} for g in p.grid]
    gpus = 1.0 if base.get("device") == "auto" and executor == "ray" else 0.0
    return SweepSpec(kind="train", name=f"{name}-nn", base=base, grid=grid,
                     executor=executor, workers=workers, ray_address=ray_address,
                     gpus_per_task=gpus)


def thin_axis(values: Sequence, k: int) -> list:
    """At most ``k`` of ``values``, evenly spread: indices round(i (n-1) / (k-1)), i < k, so
    both ends are kept (k = 1: the first value)."""
    values = list(values)
    n = len(values)
    if n <= k:
        return values
    if k == 1:
        return values[:1]
    return [values[round(i * (n - 1) / (k - 1))] for i in range(k)]
