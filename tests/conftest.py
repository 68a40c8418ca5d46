"""Shared test set-up: backend, determinism, seeded RNGs, digits data, replicas.

The suite runs twice in `make test`: every test on the TensorFlow backend,
then the tests marked `jax` again with `KERAS_BACKEND=jax` (the backend is
fixed when Keras is imported, so each backend needs its own process). On a
backend other than TensorFlow the unmarked tests are skipped, not failed.
`make test` spreads each run over one pytest-xdist worker per core: a test
must not depend on another having run in the same process, and
session-scoped data is built once per worker.

Determinism: every test starts from `keras.utils.set_random_seed(0)`, and
TensorFlow runs deterministic kernels (`enable_op_determinism`), so a training
test gives the same numbers under any thread scheduling. Keras turns
`jit_compile=True` off while op determinism is on (`model_supports_jit`), so
the tests marked `xla` run with it off: they are the ones that check XLA
compilation, and XLA's CPU code is deterministic by itself.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()

if BACKEND == "tensorflow":
    import tensorflow as tf

    # Two logical CPU devices, so that MirroredStrategy runs two replicas.
    # This must happen before TensorFlow initialises its devices, i.e. at
    # collection time.
    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
    tf.config.experimental.enable_op_determinism()


def pytest_collection_modifyitems(config, items):
    if BACKEND == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"TensorFlow-only test (backend: {BACKEND})")
    for item in items:
        if "jax" not in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)


@pytest.fixture(autouse=True)
def _xla(request):
    """Op determinism off for a test marked `xla` on TensorFlow (see above).

    TensorFlow has no public switch back; its own tests use this function.
    """
    if BACKEND != "tensorflow" or request.node.get_closest_marker("xla") is None:
        yield
        return
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()
    try:
        yield
    finally:
        tf.config.experimental.enable_op_determinism()


@pytest.fixture(scope="session")
def digits():
    """`(x_train, y_train), (x_dev, y_dev)` of the standardised digits data."""
    from keras_tricks.datasets import load_digits

    return load_digits(seed=0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def strategy():
    """A MirroredStrategy over the two logical CPU devices (TensorFlow only)."""
    if BACKEND != "tensorflow":
        pytest.skip("MirroredStrategy needs the TensorFlow backend")
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
