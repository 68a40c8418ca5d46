"""Doctest set-up: the names every docstring example may use without importing.

`pytest --doctest-modules keras_tricks` runs the `>>>` examples of the
package's docstrings with `keras`, `np` (NumPy) and `ops` (`keras.ops`) in
scope, from the same seed, and on TensorFlow with `tf` too.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    keras.utils.set_random_seed(0)
    doctest_namespace.update(keras=keras, np=np, ops=keras.ops)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        doctest_namespace["tf"] = tf
