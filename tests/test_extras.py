"""A missing optional dependency or backend is an ImportError naming the extra."""

import importlib
import sys

import pytest

from keras_tricks._extras import import_keras, require

pytestmark = [pytest.mark.jax, pytest.mark.compat]


def test_present_module_is_returned():
    assert require("json", "lab", "x").dumps([1]) == "[1]"


def test_missing_module_names_the_extra():
    with pytest.raises(ImportError, match=r'plots needs nope.*"keras-tricks\[lab\]"'):
        require("nope.sub", "lab", "plots")


def test_a_missing_dependency_of_an_installed_module_is_its_own_error(monkeypatch):
    def broken(name):
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="scipy") as caught:
        require("sklearn.datasets", "lab", "x")
    assert "keras-tricks" not in str(caught.value)


@pytest.mark.parametrize(
    ("function", "kwargs"),
    [("split_dataset", {"dev_size": 0.1, "test_size": 0.1}), ("hash_uniform", {})],
)
def test_tensorflow_features_name_the_tensorflow_extra(monkeypatch, function, kwargs):
    from keras_tricks.data import stream

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(
        ImportError,
        match=rf'{function}\(\) needs tensorflow.*"keras-tricks\[tensorflow\]"',
    ):
        getattr(stream, function)([1, 2, 3], **kwargs)


def test_a_missing_backend_names_the_extras(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}", name="tensorflow")

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(
        ImportError,
        match=r"backend: tensorflow is not installed.*"
        r'"keras-tricks\[tensorflow\]".*"keras-tricks\[jax\]" and set KERAS_BACKEND',
    ):
        import_keras()


def test_other_import_errors_of_keras_pass_through(monkeypatch):
    def broken(name):
        raise ModuleNotFoundError("No module named 'optree'", name="optree")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="optree"):
        import_keras()
