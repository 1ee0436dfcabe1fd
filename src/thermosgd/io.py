"""Atomic file writes (text, JSON, CSV, torch) and the CSV reader of tidy tables.

Every write goes to a temporary file in the same directory and is renamed over the target, so
readers see the old file or the new one, never a partial one.
"""

from __future__ import annotations

__all__ = ["atomic_torch_save", "atomic_write_text", "read_csv", "write_csv", "write_json"]

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old or the new file, never a
    partial one (write to a temporary file in the same directory, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plain(x):
    """JSON-safe Python scalars: numpy types to Python, NaN/inf to None."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(path: str | os.PathLike, doc) -> None:
    """Atomically write a JSON document (NaN/inf become null)."""
    atomic_write_text(path, json.dumps(_plain(doc), indent=2) + "\n")


def _cell(v) -> str:
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_csv(path: str | os.PathLike, columns: Mapping[str, np.ndarray]) -> None:
    """Atomically write equal-length columns as a CSV table (NaN -> empty cell)."""
    names = list(columns)
    lengths = {len(np.asarray(columns[k])) for k in names}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    cols = [np.asarray(columns[k], dtype=object) for k in names]
    for i in range(n):
        writer.writerow([_cell(c[i]) for c in cols])
    atomic_write_text(path, buf.getvalue())


def read_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a table written by `write_csv` back into columns (floats where possible).

    A table that is not rectangular (a row with more or fewer cells than the header: a
    truncated or corrupt file) raises a one-line ValueError naming the file and the row."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: cannot read the table ({e})") from None
    if not rows:
        raise ValueError(f"{path}: empty table")
    names, body = rows[0], rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(names):
            raise ValueError(f"{path}: line {i + 2} has {len(r)} cells, the header {len(names)}: "
                             "the table is truncated or corrupt")
    out = {}
    for j, name in enumerate(names):
        raw = [r[j] for r in body]
        try:
            out[name] = np.array([float(v) if v != "" else np.nan for v in raw])
        except ValueError:
            out[name] = np.array(raw, dtype=object)
    return out


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename over ``path``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
