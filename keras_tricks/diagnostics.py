"""Per-layer statistics that show whether a network is healthy at a glance.

A bad initialisation shows up as activations whose standard deviation
collapses towards 0 or saturates layer after layer; `layer_stats` prints it.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_tricks import _backend, _layers
from keras_tricks._validation import invalid
from keras_tricks.report import Report

SATURATION = 0.99
"""|tanh| above this, or sigmoid outside [1 - this, this], counts as saturated."""


def _activation_name(layer: keras.layers.Layer) -> str | None:
    if isinstance(layer, keras.layers.ReLU):
        return "relu"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None)


def _unit_stats(name: str | None, values: np.ndarray) -> tuple[Any, Any]:
    """Fractions of saturated values and of dead units in one output."""
    if name == "tanh":
        return float(np.mean(np.abs(values) > SATURATION)), None
    if name == "sigmoid":
        outside = (values > SATURATION) | (values < 1.0 - SATURATION)
        return float(np.mean(outside)), None
    if name == "relu":
        per_unit = values.reshape(-1, values.shape[-1])
        return None, float(np.mean(np.all(per_unit == 0, axis=0)))
    return None, None


def layer_stats(model: keras.Model, x: Any, y: Any = None) -> Report:
    """Activation statistics of every layer of `model` on a batch.

    For each layer, in the order the model calls them: the mean and standard
    deviation of its output on `x`; for tanh and sigmoid layers the fraction of
    saturated outputs (|tanh| > 0.99, sigmoid outside [0.01, 0.99]), where the
    derivative is nearly 0; for ReLU layers the fraction of dead units (units
    whose output is 0 for every example of `x`). With `y`, also the L2 norm of
    the gradient of the compiled loss with respect to each layer's kernel.

    Args:
        model: a `keras.Model`; compiled when `y` is given.
        x: a batch of inputs (NumPy array, tensor, or dict of them).
        y: targets of `x`. Defaults to `None` (no gradient column).

    Returns:
        A `keras_tricks.report.Report`: `print` it for a table, `.to_dict()`
        for `{layer name: row}`. Columns: `layer`, `activation`, `mean`,
        `std`, `saturated`, `dead` and, with `y`, `grad_norm`.

    Raises:
        ValueError: if `x` is empty or of the wrong rank, or `y` is given for a
            model that is not compiled.

    Example:

    >>> model = keras.Sequential([keras.Input((8,)),
    ...     keras.layers.Dense(8, activation="tanh", kernel_initializer="ones"),
    ...     keras.layers.Dense(2)])
    >>> report = layer_stats(model, np.ones((4, 8)))
    >>> [row["layer"] for row in report] == [l.name for l in model.layers]
    True
    >>> report[0]["activation"], report[0]["saturated"]  # tanh(8): saturated
    ('tanh', 1.0)
    """
    _layers.check_batch(model, x)
    if y is not None and getattr(model, "optimizer", None) is None:
        raise invalid(
            "y",
            y,
            "None for a model that is not compiled (gradient norms need the loss)",
            fix="Call `model.compile(loss=...)` first, or pass y=None",
        )
    if not model.built:
        model(x, training=False)
    leaves = [layer for layer in _layers.walk(model) if not hasattr(layer, "layers")]
    grads = {}
    if y is not None:
        for variable, grad in zip(
            model.trainable_variables, _backend.loss_gradients(model, x, y), strict=True
        ):
            if grad is not None:
                grads[id(variable)] = float(
                    np.linalg.norm(keras.ops.convert_to_numpy(grad))
                )
    rows = []
    for layer, output in _layers.outputs(model, x, leaves):
        values = np.asarray(keras.ops.convert_to_numpy(output), "float64")
        name = _activation_name(layer)
        saturated, dead = _unit_stats(name, values)
        row = {
            "layer": layer.name,
            "activation": name,
            "mean": float(values.mean()),
            "std": float(values.std()),
            "saturated": saturated,
            "dead": dead,
        }
        if y is not None:
            kernel = getattr(layer, "kernel", None)
            row["grad_norm"] = grads.get(id(kernel)) if kernel is not None else None
        rows.append(row)
    return Report(rows, title="Layer statistics")
