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

from thermosgd.sim.isotropic import IsotropicConfig
from thermosgd.sweep import SweepSpec, parse_list
from thermosgd.workflows.preset_table import ISOTROPIC_PRESETS, PRESETS, Preset

__all__ = ["ISOTROPIC_PRESETS", "PRESETS", "Preset", "isotropic_configs", "nn_spec"]


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
            steps: int | None = None) -> SweepSpec:
    """The `SweepSpec` of a preset's network sweep (``kind`` train, named ``<name>-nn``);
    ``steps`` replaces the preset's steps per run."""
    p = PRESETS[name]
    base = dict(p.base)
    if p.needs_data_dir:
        if not data_dir:
            raise ValueError(f"preset {name!r} needs --data-dir (the directory holding the "
                             f"{base['data']} python-pickle archive)")
        base["data_dir"] = str(data_dir)
    elif data_dir:
        base["data_dir"] = str(data_dir)
    if steps is not None:
        base["steps"] = int(steps)
    gpus = 1.0 if base.get("device") == "auto" and executor == "ray" else 0.0
    return SweepSpec(kind="train", name=f"{name}-nn", base=base, grid=p.grid,
                     executor=executor, workers=workers, ray_address=ray_address,
                     gpus_per_task=gpus)
