"""The networks of the lab and the studies: a ReLU MLP and a small ReLU CNN.

Both take their components from a `keras_tricks.tricks.Setup`: each hidden
layer is `Dense` (or `Conv2D`) with the setup's initializer and kernel
regularizer, then the setup's normalisation, the activation, the setup's
dropout. The output layer is a softmax `Dense` with Keras's default
initializer and the same regularizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from keras_tricks.tricks import Setup


def mlp(
    input_shape: int | Sequence[int],
    classes: int,
    *,
    depth: int,
    width: int,
    setup: Setup | None = None,
    activation: str = "relu",
) -> keras.Sequential:
    """A `depth`-layer MLP classifier built from `setup`'s components.

    Image inputs are flattened first.

    Args:
        input_shape: features per example (an int) or the input shape.
        classes: output classes (softmax units).
        depth: hidden layers.
        width: units per hidden layer.
        setup: the tricks' components. Defaults to `None` (no trick).
        activation: the hidden activation. Defaults to `"relu"`.

    Returns:
        An uncompiled `keras.Sequential`.

    Example:

    >>> model = mlp(64, 10, depth=2, width=32, setup=Setup.from_values({"bn": "batch"}))
    >>> [type(layer).__name__ for layer in model.layers][:4]
    ['Dense', 'BatchNormalization', 'Activation', 'Dense']
    """
    setup = setup or Setup()
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    layers: list[Any] = [keras.Input(shape)]
    if len(shape) > 1:
        layers.append(keras.layers.Flatten())
    for _ in range(depth):
        layers += [
            keras.layers.Dense(
                width,
                kernel_initializer=setup.initializer(),
                kernel_regularizer=setup.kernel_regularizer,
            ),
            setup.normalization(),
            keras.layers.Activation(activation),
            setup.dropout(),
        ]
    layers.append(_head(classes, setup))
    return keras.Sequential([layer for layer in layers if layer is not None])


def cnn(
    input_shape: Sequence[int],
    classes: int,
    *,
    depth: int,
    width: int,
    setup: Setup | None = None,
) -> keras.Sequential:
    """A small plain CNN classifier built from `setup`'s components.

    `depth` 3x3 convolutions: the first two have stride 2 and double the
    channels (`width`, `2 width`, then `4 width` for the rest), so a 28x28
    image is down to 7x7 after two layers; then a flatten and the softmax
    layer.

    Args:
        input_shape: `(height, width, channels)`.
        classes: output classes.
        depth: convolution layers (at least 1).
        width: channels of the first convolution.
        setup: the tricks' components. Defaults to `None` (no trick).

    Returns:
        An uncompiled `keras.Sequential`.

    Example:

    >>> model = cnn((8, 8, 1), 10, depth=3, width=4)
    >>> model.output_shape
    (None, 10)
    """
    setup = setup or Setup()
    layers: list[Any] = [keras.Input(tuple(input_shape))]
    for index in range(depth):
        layers += [
            keras.layers.Conv2D(
                width * 2 ** min(index, 2),
                3,
                strides=2 if index < 2 else 1,
                padding="same",
                kernel_initializer=setup.initializer(),
                kernel_regularizer=setup.kernel_regularizer,
            ),
            setup.normalization(),
            keras.layers.Activation("relu"),
            setup.dropout(),
        ]
    layers += [keras.layers.Flatten(), _head(classes, setup)]
    return keras.Sequential([layer for layer in layers if layer is not None])


def _head(classes: int, setup: Setup) -> keras.layers.Dense:
    return keras.layers.Dense(
        classes, activation="softmax", kernel_regularizer=setup.kernel_regularizer
    )


def build_model(
    model: str,
    input_shape: Sequence[int],
    classes: int,
    *,
    depth: int,
    width: int,
    setup: Setup | None = None,
) -> keras.Sequential:
    """`mlp(...)` or `cnn(...)`, by name (`"mlp"` or `"cnn"`)."""
    builder = {"mlp": mlp, "cnn": cnn}[model]
    return builder(input_shape, classes, depth=depth, width=width, setup=setup)
