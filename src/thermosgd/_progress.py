"""Progress bars that stay quiet when nobody watches."""

from __future__ import annotations

import sys

__all__ = ["progress_disabled"]


def progress_disabled(progress: bool | None) -> bool:
    """tqdm's ``disable``: explicit on/off, or (None) on only when stderr is a terminal."""
    return not sys.stderr.isatty() if progress is None else not progress
