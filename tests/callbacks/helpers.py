"""Tiny models and data shared by the callback tests."""

import keras


@keras.saving.register_keras_serializable(package="tests")
class TraceCounter(keras.layers.Layer):
    """Identity layer counting how often its Python `call` runs (= traces)."""

    traces = 0

    def call(self, x):
        TraceCounter.traces += 1
        return x


def linear_model(optimizer, jit_compile=False):
    """Dense(1) on 4 features behind a `TraceCounter`, compiled with mse."""
    model = keras.Sequential([keras.Input((4,)), TraceCounter(), keras.layers.Dense(1)])
    model.compile(optimizer, "mse", jit_compile=jit_compile)
    return model


def linear_data(rng, n=32):
    """`(x, x.sum(axis=1))` with `n` standard normal rows of 4 features."""
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def feed(callback, model, values, monitor="val_loss"):
    """Calls the hooks with made-up logs; returns each epoch's learning rate."""
    callback.set_model(model)
    callback.on_train_begin()
    lrs = []
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {monitor: value})
        lrs.append(float(model.optimizer.learning_rate))
    return lrs
