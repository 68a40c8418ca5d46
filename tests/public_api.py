"""The public API of keras_tricks, as the docs and type-hint tests see it."""

import importlib
import inspect
import pkgutil
from types import ModuleType

import keras_tricks

COMMANDS = ("cli",)
"""Public modules that are commands, documented by their `--help`, not the API."""


def api_modules() -> list[str]:
    """The public top-level modules and subpackages: one API page each."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(keras_tricks.__path__)
        if not info.name.startswith("_") and info.name not in COMMANDS
    )


def public_names(module: ModuleType) -> list[str]:
    """`module.__all__`, or else what the module itself defines without `_`.

    Without `__all__`, public means: a class or function defined in the module,
    or an UPPER_CASE constant.
    """
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and (getattr(value, "__module__", None) == module.__name__ or name.isupper())
    )


def public_objects() -> dict[str, dict[str, object]]:
    """`{module: {name: object}}` over every API module."""
    objects = {}
    for name in api_modules():
        module = importlib.import_module(f"keras_tricks.{name}")
        objects[name] = {attr: getattr(module, attr) for attr in public_names(module)}
    return objects
