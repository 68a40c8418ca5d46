"""Assertions shared by the test modules."""

import keras
import numpy as np


def assert_roundtrip(model, x, tmp_path, *, atol=0.0):
    """Saves `model` to `.keras`, reloads it, and compares predictions on `x`.

    Returns the reloaded model.
    """
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    actual = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)
    return loaded
