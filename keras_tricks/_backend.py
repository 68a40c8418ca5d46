"""The few operations that differ between Keras backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras


def loss_gradients(model: keras.Model, x: Any, y: Any) -> list[Any]:
    """Gradients of the model's compiled loss on `(x, y)`.

    The forward pass runs with `training=True`, as in `model.fit`, and the
    loss includes the regularisation penalties (`model.losses`).

    Returns:
        A list aligned with `model.trainable_variables`.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred)
        return tape.gradient(loss, model.trainable_variables)
    if keras.backend.backend() == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        metrics = [v.value for v in model.metrics_variables]

        def loss_fn(values):
            y_pred, state = model.stateless_call(
                values, non_trainable, x, training=True
            )
            loss, _ = model.stateless_compute_loss(
                values, state, metrics, x=x, y=y, y_pred=y_pred
            )
            return loss

        return jax.grad(loss_fn)(trainable)
    raise NotImplementedError(
        "Gradients are computed on the TensorFlow and JAX backends only. "
        f"Current backend: {keras.backend.backend()}"
    )


def compiled(
    model: keras.Model, fn: Callable[[Any], Any], example: Any
) -> Callable[[Any], Any]:
    """Compiles `fn(x)`, a function that calls `model`, for repeated batches.

    On TensorFlow it is one `tf.function`, traced once for batches shaped
    like `example` with any number of rows (and compiled by XLA when the
    model was compiled with `jit_compile=True`). On JAX it is `jax.jit` of
    `fn` with the model's variables passed in (read at each call, so later
    assignments are seen); variables `fn` assigns are left unchanged.
    Elsewhere `fn` runs as it is.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        spec = keras.tree.map_structure(
            lambda v: tf.TensorSpec((None, *v.shape[1:]), tf.as_dtype(v.dtype)),
            example,
        )
        return tf.function(
            fn,
            input_signature=[spec],
            autograph=False,
            jit_compile=bool(getattr(model, "jit_compile", False)),
        )
    if keras.backend.backend() == "jax":
        import jax

        variables = list(model.variables)

        def pure(values, x):
            mapping = list(zip(variables, values, strict=True))
            with keras.StatelessScope(state_mapping=mapping):
                return fn(x)

        jitted = jax.jit(pure)
        return lambda x: jitted([v.value for v in variables], x)
    return fn
