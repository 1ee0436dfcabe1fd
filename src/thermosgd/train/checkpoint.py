"""The files of a run directory: reading a checkpoint back, comparing configs, deciding whether
a directory resumes, starts fresh or is refused.

``checkpoint.pt`` holds everything needed to continue a run (model, optimizer, generator
states, monitor with its snapshot queue, metrics rows, partial-block sums, step) in format
`CHECKPOINT_FORMAT`; the engine writes it atomically (`thermosgd.io.atomic_torch_save`). A
finished run's checkpoint may be removed (`remove_checkpoint`; `thermosgd.train.train` does so
unless ``keep_checkpoints``): its ``stationary.json`` (status "complete" or "diverged") then
says that the run is finished (`inspect_dir`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from thermosgd.io import write_json
from thermosgd.train.config import TrainConfig

__all__ = [
    "CHECKPOINT_FORMAT",
    "RUN_FILES",
    "config_diff",
    "inspect_dir",
    "read_checkpoint",
    "remove_checkpoint",
    "start_fresh",
]

CHECKPOINT_FORMAT = 1
#: the files a run writes besides config.json
RUN_FILES = ("checkpoint.pt", "metrics.csv", "stationary.json")
#: the states of a finished run (stationary.json, checkpoint)
_FINISHED = ("complete", "diverged")


def read_checkpoint(path: Path) -> dict:
    """The checkpoint at ``path``; ValueError if unreadable or of another format."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(
            f"cannot read checkpoint {path} ({type(e).__name__}); pass resume=False "
            "(--no-resume) to start over"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a thermosgd training checkpoint (format {CHECKPOINT_FORMAT})"
        )
    return ckpt


def config_diff(saved: dict, config: TrainConfig) -> list[str]:
    """Differences between a saved config dict and ``config``; a field missing from the saved
    dict (written before the field existed) counts as its default."""
    mine = config.to_dict()
    defaults = {
        f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name not in saved
    }
    saved = {**defaults, **saved}
    keys = sorted((set(saved) | set(mine)) - {"device"})
    return [
        f"{k}: {saved.get(k)!r} != {mine.get(k)!r}" for k in keys if saved.get(k) != mine.get(k)
    ]


def inspect_dir(config: TrainConfig, out: Path, resume: bool, overwrite: bool) -> dict | None:
    """The checkpoint to resume from (None: start fresh). Reads only; raises on a conflict."""
    cfg_path = out / "config.json"
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {out} exists and is not a directory")
    if not cfg_path.is_file():
        if any((out / f).exists() for f in RUN_FILES) and not overwrite:
            raise ValueError(
                f"{out} holds run files but no config.json; refusing to overwrite them "
                "(use another directory or overwrite=True / --overwrite)"
            )
        return None
    try:
        saved = json.loads(cfg_path.read_text())
    except (OSError, ValueError):
        saved = {}
    diff = config_diff(saved, config) if isinstance(saved, dict) else ["unreadable config.json"]
    if diff:
        if overwrite:
            return None
        raise ValueError(
            f"{out} holds a run with a different config ({'; '.join(diff[:3])}); use another "
            "directory or overwrite=True (--overwrite)"
        )
    if not resume:
        return None
    if not (out / "checkpoint.pt").is_file():
        return _finished_without_checkpoint(out)
    ckpt = read_checkpoint(out / "checkpoint.pt")
    if config_diff(ckpt.get("config", {}), config):
        raise ValueError(f"{out}/checkpoint.pt belongs to a different config than config.json")
    return ckpt


def start_fresh(c: TrainConfig, out: Path) -> None:
    """Clear a previous run's files from ``out`` and write config.json (only after every check
    has passed)."""
    out.mkdir(parents=True, exist_ok=True)
    for f in RUN_FILES:
        (out / f).unlink(missing_ok=True)
    write_json(out / "config.json", c.to_dict())


def _finished_without_checkpoint(out: Path) -> dict | None:
    """A run whose checkpoint was removed after it ended: {"status", "step"} from its
    readable stationary.json (status complete or diverged), else None (start fresh)."""
    try:
        doc = json.loads((out / "stationary.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("status") not in _FINISHED:
        return None
    return {"status": doc["status"], "step": doc.get("steps_done")}


def remove_checkpoint(out: Path) -> None:
    """Remove ``out/checkpoint.pt`` of a finished run (its stationary.json, written before,
    marks it finished)."""
    (Path(out) / "checkpoint.pt").unlink(missing_ok=True)
