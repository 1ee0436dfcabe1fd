"""The argument checkers of the package, one message style: ``"wd == -1.0, must be > 0"``.

Scalars (``check_*``) return a Python float / int; arrays (``*_array``) return float64 numpy
arrays for the vectorized closed forms. Every failure is a ValueError whose one line names the
argument, shows the value and says what it must be.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "check_choice",
    "check_fraction",
    "check_int",
    "check_number",
    "finite_array",
    "nonnegative_array",
    "positive_array",
]


def _is_real(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def check_number(name: str, value: Any, *, min_val: float | None = None,
                 max_val: float | None = None, include_min: bool = True,
                 include_max: bool = True) -> float:
    """A finite real number within the bounds (sklearn's ``check_scalar`` for floats)."""
    if not _is_real(value):
        raise ValueError(f"{name} == {value!r}, must be a real number")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} == {v!r}, must be finite")
    if min_val is not None and (v < min_val or (v == min_val and not include_min)):
        raise ValueError(f"{name} == {v!r}, must be {'>=' if include_min else '>'} {min_val}")
    if max_val is not None and (v > max_val or (v == max_val and not include_max)):
        raise ValueError(f"{name} == {v!r}, must be {'<=' if include_max else '<'} {max_val}")
    return v


def check_int(name: str, value: Any, *, min_val: int | None = None,
              max_val: int | None = None) -> int:
    """An integer (not a bool) within the bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} == {value!r}, must be an integer")
    v = int(value)
    if min_val is not None and v < min_val:
        raise ValueError(f"{name} == {v!r}, must be >= {min_val}")
    if max_val is not None and v > max_val:
        raise ValueError(f"{name} == {v!r}, must be <= {max_val}")
    return v


def check_fraction(name: str, value: Any, *, include_zero: bool = True,
                   include_one: bool = False) -> float:
    """A number in [0, 1) (bounds' inclusion configurable)."""
    return check_number(name, value, min_val=0.0, max_val=1.0, include_min=include_zero,
                        include_max=include_one)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """One of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} == {value!r}, must be one of {', '.join(map(str, choices))}")
    return value


def finite_array(name: str, x: Any) -> np.ndarray:
    """float64 array of finite values."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} == {x!r}, must be a real number or array") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} == {x!r}, must be finite (no NaN or infinity)")
    return arr


def positive_array(name: str, x: Any) -> np.ndarray:
    """float64 array of finite values > 0."""
    arr = finite_array(name, x)
    if not np.all(arr > 0):
        raise ValueError(f"{name} == {x!r}, must be > 0")
    return arr


def nonnegative_array(name: str, x: Any) -> np.ndarray:
    """float64 array of finite values >= 0."""
    arr = finite_array(name, x)
    if not np.all(arr >= 0):
        raise ValueError(f"{name} == {x!r}, must be >= 0")
    return arr
