"""Explicit model averaging: one model whose output is the mean of several."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras

from keras_tricks._validation import invalid


def _signature(model: keras.Model) -> list[tuple[tuple[Any, ...], Any]]:
    return [(tuple(x.shape[1:]), x.dtype) for x in model.inputs]


def average_models(
    models: Iterable[keras.Model] | keras.Model, *, name: str = "average"
) -> keras.Model:
    """Builds a Keras model whose output is the mean of `models`' outputs.

    Several models trained independently (different seeds, data orders or
    architectures) make different errors; averaging their outputs (class
    probabilities or regression values) lowers the variance part of the
    error. The result is an ordinary functional model holding the members as
    sub-models: it can be evaluated, fine-tuned and saved with
    `model.save("x.keras")`.

        y(x) = (1 / M) * sum_m f_m(x)

    Args:
        models: two or more built functional or Sequential `keras.Model`s with
            the same input signature (shapes without the batch axis, dtypes)
            and the same output structure and shapes, each with a unique name.
        name: name of the averaged model. Defaults to `"average"`.

    Returns:
        A `keras.Model` taking the members' inputs.

    Raises:
        ValueError: fewer than two models, inputs or output shapes that
            differ, or two models with the same name.
        TypeError: a member that is not a built `keras.Model`.

    Example:

    >>> members = [keras.Sequential([keras.Input((4,)), keras.layers.Dense(
    ...     3, activation="softmax", name=f"head_{i}")], name=f"member_{i}")
    ...     for i in range(3)]
    >>> ensemble = average_models(members)
    >>> ensemble.output_shape
    (None, 3)
    >>> x = np.ones((2, 4), "float32")
    >>> mean = sum(m.predict(x, verbose=0) for m in members) / 3
    >>> bool(np.allclose(ensemble.predict(x, verbose=0), mean, atol=1e-6))
    True
    """
    models = list(models) if not isinstance(models, keras.Model) else [models]
    if len(models) < 2:
        raise invalid("models", models, "at least two models to average")
    for model in models:
        if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
            raise invalid(
                "models",
                model,
                "built functional or Sequential keras.Model instances (with `inputs`)",
                TypeError,
            )
    reference = _signature(models[0])
    for describe, what, verb, fix in (
        (_signature, "input signature", "takes", ""),
        (
            _output_shapes,
            "output shapes",
            "gives",
            "Average only models of the same task (e.g. the same number of classes)",
        ),
    ):
        expected = describe(models[0])
        for model in models[1:]:
            if describe(model) != expected:
                raise invalid(
                    "models",
                    [m.name for m in models],
                    f"models with the same {what}; {models[0].name!r} {verb} "
                    f"{expected} but {model.name!r} {verb} {describe(model)}",
                    fix=fix,
                )
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise invalid(
            "models",
            names,
            "models with unique names",
            fix="Give each model its own `name=` when building it",
        )
    inputs = [
        keras.Input(shape=shape, dtype=dtype, name=f"{name}_input_{i}")
        for i, (shape, dtype) in enumerate(reference)
    ]
    member_inputs = inputs[0] if len(inputs) == 1 else inputs
    outputs = [model(member_inputs) for model in models]
    if isinstance(outputs[0], (list, tuple)):
        averaged = [
            keras.layers.Average(name=f"{name}_{i}")(list(parts))
            for i, parts in enumerate(zip(*outputs, strict=True))
        ]
    else:
        averaged = keras.layers.Average(name=f"{name}_mean")(outputs)
    return keras.Model(member_inputs, averaged, name=name)


def _output_shapes(model: keras.Model) -> list[tuple[int | None, ...]]:
    """The shapes of a model's outputs, without the batch axis."""
    return [tuple(output.shape[1:]) for output in model.outputs]
