"""Finding layers in a model, checking a batch, and capturing what layers compute."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

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

MAX_ROWS_SHOWN = 10
"""How many offending row numbers an error message lists."""


def walk(model: Any) -> Iterator[keras.layers.Layer]:
    """Yields every layer of `model`, descending into nested models."""
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from walk(layer)


def check_batch(model: keras.Model, x: Any, name: str = "x") -> None:
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


def nonfinite_rows(x: Any) -> np.ndarray:
    """Indices of the rows of `x` (an array, tensor or nested structure of
    them, rows on axis 0) that hold a NaN or an infinity."""
    bad = None
    for leaf in keras.tree.flatten(x):
        values = np.asarray(keras.ops.convert_to_numpy(leaf))
        if not np.issubdtype(values.dtype, np.inexact) or values.ndim == 0:
            continue
        rows = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        bad = rows if bad is None else bad | rows
    return np.zeros(0, "int64") if bad is None else np.flatnonzero(bad)


def nonfinite_error(
    name: str, value: Any, rows: Sequence[int] | np.ndarray, where: str = ""
) -> Exception:
    """The error for data with NaN or Inf in `rows` (row numbers of `value`)."""
    shown = ", ".join(str(int(r)) for r in rows[:MAX_ROWS_SHOWN])
    more = (
        f" and {len(rows) - MAX_ROWS_SHOWN} more" if len(rows) > MAX_ROWS_SHOWN else ""
    )
    return invalid(
        name,
        value,
        "finite values (no NaN or Inf)",
        fix=f"Rows {shown}{more}{where} hold NaN or Inf: drop or impute them "
        "first; nothing was changed",
    )


def check_finite(x: Any, name: str = "x") -> None:
    """Raises a `ValueError` naming the rows of `x` that hold NaN or Inf."""
    rows = nonfinite_rows(x)
    if len(rows):
        raise nonfinite_error(name, x, rows)


class Stop(Exception):
    """Ends a forward pass early, once every captured layer has recorded."""


Record = Literal["inputs", "outputs", "pre_activation"]


@contextlib.contextmanager
def capture(
    layers: Sequence[keras.layers.Layer],
    *,
    record: Record = "outputs",
    stop: bool = False,
    replace: Callable[[keras.layers.Layer, Any], Any] | None = None,
) -> Iterator[list[tuple[keras.layers.Layer, Any]]]:
    """Makes `layers` record what they compute while the block runs.

    Yields a list to which the first call of each layer appends
    `(layer, value)`, in call order; `value` is the layer's first input
    (`record="inputs"`), its output (`"outputs"`), or its output without its
    activation (`"pre_activation"`, the activation is applied after).

    Args:
        layers: the layers to capture.
        record: what to record. Defaults to `"outputs"`.
        stop: raise `Stop` (end the forward pass) as soon as every layer has
            recorded; wrap the model call in `contextlib.suppress(Stop)`.
            Defaults to `False`.
        replace: `replace(layer, inputs) -> outputs`, computed instead of the
            layer's own call. Defaults to `None`.

    Each layer's `call` is replaced for the duration of the block only
    (`_keras_compat.replaced_call`), whatever the block does.
    """
    records: list[tuple[keras.layers.Layer, Any]] = []
    pending = {id(layer) for layer in layers}

    def tap(layer, original):
        def call(*args, **kwargs):
            inputs = args[0] if args else kwargs["inputs"]
            value = inputs
            if replace is not None:
                outputs = replace(layer, inputs)
            elif record == "pre_activation":
                activation = layer.activation
                layer.activation = keras.activations.linear
                try:
                    value = original(*args, **kwargs)
                finally:
                    layer.activation = activation
                outputs = activation(value)
            else:
                outputs = original(*args, **kwargs)
            if record == "outputs":
                value = outputs
            if id(layer) in pending:
                records.append((layer, value))
                pending.discard(id(layer))
                if stop and not pending:
                    raise Stop
            return outputs

        return call

    with contextlib.ExitStack() as stack:
        for layer in layers:
            stack.enter_context(
                _keras_compat.replaced_call(layer, tap(layer, layer.call))
            )
        yield records


def outputs(
    model: keras.Model,
    x: Any,
    layers: Sequence[keras.layers.Layer],
    pre_activation: bool = False,
) -> list[tuple[keras.layers.Layer, Any]]:
    """Runs `model` on `x` once and returns `[(layer, output)]` in call order.

    Only the first call of each layer is kept; layers the model does not call
    on `x` are left out.
    """
    record: Record = "pre_activation" if pre_activation else "outputs"
    with capture(layers, record=record) as records:
        model(x, training=False)
    return records


def pre_activation(model: keras.Model, x: Any, layer: keras.layers.Layer) -> np.ndarray:
    """Returns `layer`'s pre-activation output on `x` as a NumPy array.

    The forward pass stops right after `layer`, so later layers cost nothing.
    """
    with (
        capture([layer], record="pre_activation", stop=True) as records,
        contextlib.suppress(Stop),
    ):
        model(x, training=False)
    return np.asarray(keras.ops.convert_to_numpy(records[0][1]), dtype="float64")
