import importlib
import sys

import keras
import numpy as np
import pytest

from keras_tricks.ensembles import average_models
from tests.helpers import assert_roundtrip


def _member(i, units=3):
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(units, activation="softmax")],
        name=f"member_{i}",
    )


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.jax
def test_is_the_mean_and_saves(tmp_path, rng):
    members = [_member(i) for i in range(3)]
    ensemble = average_models(members)
    x = rng.normal(size=(5, 4)).astype("float32")
    expected = np.mean([keras.ops.convert_to_numpy(m(x)) for m in members], axis=0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ensemble(x)), expected, rtol=1e-6
    )
    ensemble.compile(keras.optimizers.SGD(0.1), "mse", jit_compile=True)
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), expected, rtol=1e-6)
    assert_roundtrip(ensemble, x, tmp_path)


@pytest.mark.parametrize(
    ("models", "error", "match"),
    [
        (lambda: [_member(0)], ValueError, "at least two models"),
        (lambda: [_member(0), "model"], TypeError, "built functional or Sequential"),
        (
            lambda: [
                _member(0),
                keras.Sequential(
                    [keras.Input((5,)), keras.layers.Dense(3)], name="wide"
                ),
            ],
            ValueError,
            "same input signature",
        ),
        (lambda: [_member(0), _member(0)], ValueError, "unique names"),
    ],
)
def test_bad_input(models, error, match):
    with pytest.raises(error, match=match):
        average_models(models())


def test_old_import_paths_keep_working():
    from keras_tricks.callbacks import average_models as reexported

    assert reexported is average_models
    sys.modules.pop("keras_tricks.callbacks.model_averaging", None)
    with pytest.warns(DeprecationWarning, match="import from keras_tricks.ensembles"):
        old = importlib.import_module("keras_tricks.callbacks.model_averaging")
    assert old.average_models is average_models
