"""`import keras_tricks` is light: no heavy or optional module comes with it."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.jax, pytest.mark.compat]

# Keras itself imports SciPy, scikit-learn, matplotlib and pandas when they are
# installed (keras.src.visualization, keras.src.wrappers), so what is checked
# is what `import keras_tricks` adds on top of `import keras`.
HEAVY = ("scipy", "sklearn", "matplotlib", "pandas", "keras_tuner")
LAZY = ("keras_tricks.lab", "keras_tricks.studies", "keras_tricks.tuning")


def _import(backend, statement="import keras_tricks"):
    code = (
        "import json, sys\n"
        "import keras\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps({'added': sorted(set(sys.modules) - before),"
        " 'all': sorted(sys.modules)}))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _roots(names):
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_import_adds_nothing_heavy(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    modules = _import(backend)
    assert not _roots(modules["added"]) & set(HEAVY)
    assert not set(modules["all"]) & set(LAZY)


@pytest.mark.parametrize(
    "statement",
    [
        "import keras_tricks",
        "import keras_tricks.callbacks, keras_tricks.data, keras_tricks.layers",
        "import keras_tricks.optimizers, keras_tricks.initializers",
        "import keras_tricks.regularizers, keras_tricks.diagnostics",
    ],
)
def test_jax_backend_never_imports_tensorflow(statement):
    assert "tensorflow" not in _roots(_import("jax", statement)["all"])


def test_lazy_subpackages_load_on_first_use():
    import keras_tricks

    assert keras_tricks.studies.__name__ == "keras_tricks.studies"
    assert "studies" in dir(keras_tricks)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        keras_tricks.nope  # noqa: B018


def test_lazy_lab_names_are_its_all_and_resolve():
    import keras_tricks.lab as lab

    assert sorted(lab.__all__) == sorted([*lab._EXPORTS, *lab._DATASETS])
    for name in lab.__all__:
        assert getattr(lab, name) is not None
