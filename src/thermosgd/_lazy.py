"""Packages that import their submodules on first access (PEP 562), so that importing one
submodule, or the package, does not load them all (numba kernels, torch)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["lazy_submodules"]


def lazy_submodules(package: str, names: Sequence[str]
                    ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package`` that import
    ``package.<name>`` for each of ``names`` when it is first used."""

    def __getattr__(name: str):
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
