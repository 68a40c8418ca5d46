"""Every public function, method and constructor has full type hints.

Public means reachable from an API module's `__all__` (or, without one, its
own public names; see tests/public_api.py): the functions themselves, and for
each keras_tricks class its constructor, `__call__` and public methods,
including those it inherits from keras_tricks base classes (not Keras's).
Every parameter but `self`/`cls` needs an annotation, `*args`/`**kwargs`
included, and every function but a constructor a return annotation. mypy
(`make test`) checks that the hints are right; this checks that they are there.
"""

import inspect

from tests.public_api import public_objects

PUBLIC_DUNDERS = ("__init__", "__call__")


def _is_ours(obj):
    return getattr(obj, "__module__", "").startswith("keras_tricks")


def _members(cls):
    """`(qualified name, function, is_method)` of a class's public methods."""
    for klass in cls.__mro__:
        if not _is_ours(klass):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_") and name not in PUBLIC_DUNDERS:
                continue
            is_method = not isinstance(attr, staticmethod)
            if isinstance(attr, (staticmethod, classmethod)):
                attr = attr.__func__
            elif isinstance(attr, property):
                attr = attr.fget
            if inspect.isfunction(attr):
                yield f"{klass.__module__}.{klass.__qualname__}.{name}", attr, is_method


def _callables():
    """`{qualified name: (function, is_method)}` of every public callable."""
    found = {}
    for objects in public_objects().values():
        for obj in objects.values():
            if inspect.isclass(obj) and _is_ours(obj):
                for name, function, is_method in _members(obj):
                    found[name] = (function, is_method)
            elif inspect.isfunction(obj) and _is_ours(obj):
                found[f"{obj.__module__}.{obj.__qualname__}"] = (obj, False)
    return found


def missing_hints(function, *, is_method):
    """The parameters without an annotation, plus `"return"` if it has none."""
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())
    if is_method:
        parameters = parameters[1:]
    missing = [p.name for p in parameters if p.annotation is inspect.Parameter.empty]
    constructor = function.__name__ == "__init__"
    if not constructor and signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_missing_hints_finds_each_gap():
    def bare(x, *args, y: int = 0, **kwargs):
        pass

    def full(self, x: int, *args: int, **kwargs: str) -> None:
        pass

    def __init__(self, x):
        pass

    assert missing_hints(bare, is_method=False) == ["x", "args", "kwargs", "return"]
    assert missing_hints(full, is_method=True) == []
    assert missing_hints(__init__, is_method=True) == ["x"]


def test_every_public_callable_has_type_hints():
    callables = _callables()
    assert len(callables) > 50  # the walk reaches the API, not an empty list
    missing = {}
    for name, (function, is_method) in sorted(callables.items()):
        gaps = missing_hints(function, is_method=is_method)
        if gaps:
            missing[name] = gaps
    by_module = {}
    for name, gaps in missing.items():
        module = name.split(".")[1]
        by_module.setdefault(module, []).append(f"  {name}: {', '.join(gaps)}")
    report = "\n".join(
        f"{module} ({len(lines)}):\n" + "\n".join(lines)
        for module, lines in sorted(by_module.items())
    )
    print(report)
    assert not missing, (
        f"{len(missing)} of {len(callables)} public callables lack type hints:\n"
        f"{report}"
    )
