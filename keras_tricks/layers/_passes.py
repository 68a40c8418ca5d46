"""Compiled forward passes that measure the inputs of BatchNormalization layers.

`recalibrate_batch_norm` streams its data through one of these: a pass that
returns, per batch, whether the batch is finite and the count, mean and sum
of squared deviations of each measured layer's inputs.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import keras
from keras import ops

from keras_tricks import _backend, _layers

_RUNNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Compiled passes per model, reused by later calls (as `model.predict`
reuses its function); an entry goes when its model is garbage-collected."""


def runner(
    model: keras.Model, layers: list[keras.layers.Layer], single_pass: bool
) -> Pass:
    """The cached compiled pass of `model` that measures `layers`."""
    key: tuple[bool | int, ...] = (
        single_pass,
        bool(getattr(model, "jit_compile", False)),
        *(id(layer) for layer in layers),
    )
    runners = _RUNNERS.setdefault(model, {})
    if key not in runners:
        runners[key] = Pass(model, layers, single_pass)
    return runners[key]


class Pass:
    """A compiled forward pass returning `(finite, [(count, mean, M2)])`.

    `finite` says whether the batch is free of NaN and Inf; the moments are
    those of each layer's inputs, in call order (`order`, known once the
    pass was traced). The pass stops after the last of `layers`.
    """

    def __init__(
        self, model: keras.Model, layers: list[keras.layers.Layer], single_pass: bool
    ) -> None:
        self._model = weakref.ref(model)  # the cache must not keep it alive
        self._layers = layers
        self._single_pass = single_pass
        self._compiled: dict[str, Any] = {}  # by input dtype and row shape
        self.order: list[keras.layers.Layer] = []

    def __call__(self, x: Any) -> Any:
        signature = str(
            keras.tree.map_structure(
                lambda v: (
                    tuple(v.shape[1:]),
                    keras.backend.standardize_dtype(v.dtype),
                ),
                x,
            )
        )
        if signature not in self._compiled:
            self._compiled[signature] = _backend.compiled(self._model(), self._step, x)
        return self._compiled[signature](x)

    def _step(self, x):
        found = {}

        def normalise(layer, inputs):
            moments = _moments(layer, inputs)
            found.setdefault(id(layer), moments)
            return _batch_normalise(layer, inputs, moments)

        replace = normalise if self._single_pass else None
        with (
            _layers.capture(
                self._layers, record="inputs", stop=True, replace=replace
            ) as records,
            contextlib.suppress(_layers.Stop),
        ):
            self._model()(x, training=False)
        self.order = [layer for layer, _ in records]
        moments = [
            found[id(layer)] if self._single_pass else _moments(layer, value)
            for layer, value in records
        ]
        return _finite(x), moments


def _moments(layer, inputs):
    """`(count, mean, M2)` of a layer's inputs per channel, in float32.

    Two reductions (the mean, then the squared deviations from it), so that
    M2 keeps its digits when the mean is large against the deviation.
    """
    values = ops.cast(inputs, "float32")
    axis = layer.axis % len(values.shape)
    axes = [a for a in range(len(values.shape)) if a != axis]
    mean = ops.mean(values, axis=axes, keepdims=True)
    m2 = ops.sum(ops.square(values - mean), axis=axes)
    count = ops.cast(ops.size(values) // values.shape[axis], "float32")
    return count, ops.reshape(mean, [-1]), m2


def _batch_normalise(layer, inputs, moments):
    """A BatchNormalization layer's training-mode output (batch statistics)."""
    count, mean, m2 = moments
    x = ops.cast(inputs, "float32")
    outputs = ops.batch_normalization(
        x,
        mean,
        m2 / count,
        axis=layer.axis % len(x.shape),
        offset=ops.cast(layer.beta, x.dtype) if layer.center else None,
        scale=ops.cast(layer.gamma, x.dtype) if layer.scale else None,
        epsilon=layer.epsilon,
    )
    return ops.cast(outputs, layer.compute_dtype)


def _finite(x):
    """Whether every floating-point value of the batch `x` is finite."""
    flags = [
        ops.all(ops.isfinite(leaf))
        for leaf in keras.tree.flatten(x)
        if "float" in keras.backend.standardize_dtype(leaf.dtype)
    ]
    return ops.all(ops.stack(flags)) if flags else ops.convert_to_tensor(True)
