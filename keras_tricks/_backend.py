"""The few operations that differ between Keras backends."""

import keras


def loss_gradients(model, x, y):
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
