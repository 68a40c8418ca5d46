"""Finding layers in a model and capturing what one of them computes."""

import contextlib

import keras
import numpy as np

from keras_tricks import _keras_compat
from keras_tricks._validation import invalid

KERNEL_LAYERS = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
"""Layers whose output is `activation(x @ kernel + bias)` (or a convolution)."""


def walk(model):
    """Yields every layer of `model`, descending into nested models."""
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from walk(layer)


def check_batch(model, x, name="x"):
    """Validates a calibration batch: non-empty and of the model's input rank."""
    arrays = list(x.values()) if isinstance(x, dict) else [x]
    for array in arrays:
        if not hasattr(array, "shape"):
            raise invalid(name, x, "a NumPy array or tensor", TypeError)
        if len(array.shape) == 0 or array.shape[0] == 0:
            raise invalid(name, x, "a non-empty batch (at least one row)")
    inputs = getattr(model, "inputs", None) if model.built else None
    if inputs and not isinstance(x, dict) and len(inputs) == 1:
        expected = len(inputs[0].shape)
        if len(x.shape) != expected:
            raise invalid(
                name,
                x,
                f"rank {expected} to match the model input {tuple(inputs[0].shape)}",
            )


class _Stop(Exception):
    """Raised inside a layer to end a forward pass early."""


@contextlib.contextmanager
def _patched(layer, capture, stop=False, pre_activation=True):
    """Makes `layer.call` record its output into `capture`.

    With `pre_activation=True` the layer's activation is taken out of the
    recorded value (and applied after); with `stop=True` the forward pass ends
    right after the layer.
    """
    original = layer.call

    def call(*args, **kwargs):
        if not pre_activation:
            output = original(*args, **kwargs)
            capture.append((layer, output))
            return output
        activation = layer.activation
        layer.activation = keras.activations.linear
        try:
            pre = original(*args, **kwargs)
        finally:
            layer.activation = activation
        capture.append((layer, pre))
        if stop:
            raise _Stop
        return activation(pre)

    with _keras_compat.replaced_call(layer, call):
        yield


def outputs(model, x, layers, pre_activation=False):
    """Runs `model` on `x` once and returns `[(layer, output)]` in call order.

    Only the first call of each layer is kept; layers the model does not call
    on `x` are left out.
    """
    capture = []
    with contextlib.ExitStack() as stack:
        for layer in layers:
            stack.enter_context(_patched(layer, capture, pre_activation=pre_activation))
        model(x, training=False)
    seen = {}
    for layer, output in capture:
        seen.setdefault(id(layer), (layer, output))
    return list(seen.values())


def pre_activation(model, x, layer):
    """Returns `layer`'s pre-activation output on `x` as a NumPy array.

    The forward pass stops right after `layer`, so later layers cost nothing.
    """
    capture = []
    with _patched(layer, capture, stop=True), contextlib.suppress(_Stop):
        model(x, training=False)
    return np.asarray(keras.ops.convert_to_numpy(capture[0][1]), dtype="float64")
