"""Optional dependencies: import one, or say which extra installs it."""

import importlib


def require(module, extra, feature):
    """Imports `module`, or raises an `ImportError` naming the extra to install.

    Args:
        module: the module to import, e.g. `"matplotlib.pyplot"`.
        extra: the keras-tricks extra that provides it, e.g. `"lab"`.
        feature: what needs it, for the message, e.g. `"LRFinderResult.plot()"`.

    Returns:
        The imported module.

    Raises:
        ImportError: if `module` or the package holding it is not installed.
            A module that is installed but fails to import (one of its own
            dependencies missing) raises its own error.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if not _is_part_of(module, error.name):
            raise
        package = module.split(".")[0]
        raise ImportError(
            f"{feature} needs {package}, which is not installed. Install it with "
            f'pip install "keras-tricks[{extra}]"'
        ) from error


def import_keras():
    """Imports Keras, or says how to install the backend it is set to.

    Keras imports its backend when it is imported; TensorFlow, its default,
    is an extra of keras-tricks (`pip install keras-tricks` installs no
    backend).

    Returns:
        The `keras` module.

    Raises:
        ImportError: if the backend Keras is set to is not installed.
    """
    try:
        return importlib.import_module("keras")
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] not in _BACKENDS:
            raise
        raise ImportError(
            f"Keras cannot import its backend: {error.name} is not installed. "
            "Keras uses TensorFlow unless KERAS_BACKEND (or ~/.keras/keras.json) "
            'names another. Install one: pip install "keras-tricks[tensorflow]", '
            'or pip install "keras-tricks[jax]" and set KERAS_BACKEND=jax.'
        ) from error


_BACKENDS = ("tensorflow", "jax", "jaxlib", "torch")


def _is_part_of(module, missing):
    """Whether the missing module `missing` is `module` or a package above it."""
    return missing is not None and (
        module == missing or module.startswith(f"{missing}.")
    )
