"""The public face of the package: subpackages named by `import thermosgd`, `__all__` in
every module, and each name in `__all__` defined."""

import importlib
import pkgutil

import pytest

import thermosgd

MODULES = sorted(m.name for m in pkgutil.walk_packages(thermosgd.__path__, "thermosgd.")
                 if not m.name.endswith("__main__"))  # runs the CLI on import


def test_import_thermosgd_names_the_subpackages():
    for name in ("theory", "estimators", "sim", "nn", "monitor", "train", "sweep", "analysis",
                 "schedules", "viz", "workflows", "cli"):
        assert name in thermosgd.__all__
        assert getattr(thermosgd, name).__name__ == f"thermosgd.{name}"


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_all_and_defines_it(name):
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    for item in module.__all__:
        assert hasattr(module, item) or importlib.util.find_spec(f"{name}.{item}"), (
            f"{name}.__all__ names {item!r}, which it does not define")
