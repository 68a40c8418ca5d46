"""A two-layer linear network and its gradients in NumPy, for both backends.

`hidden` (4 -> 3) then `head` (3 -> 2), no activation, MSE loss: small
enough for an independent NumPy computation of every gradient, and the same
weights and data on TensorFlow and JAX.
"""

import keras
import numpy as np

BATCH = 4


def data(nan_batch=None, n_batches=3):
    """`(x, y)`: `n_batches` batches of 4; `nan_batch` has a NaN input."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n_batches * BATCH, 4)).astype("float32")
    y = rng.standard_normal((n_batches * BATCH, 2)).astype("float32")
    if nan_batch is not None:
        x[nan_batch * BATCH + 1, 2] = np.nan
    return x, y


def weights():
    rng = np.random.default_rng(2)
    return [
        rng.standard_normal((4, 3)).astype("float32"),
        0.1 * rng.standard_normal(3).astype("float32"),
        rng.standard_normal((3, 2)).astype("float32"),
        0.1 * rng.standard_normal(2).astype("float32"),
    ]


def model(optimizer):
    """The network with `weights()`, compiled with `jit_compile=True`."""
    net = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="hidden"),
            keras.layers.Dense(2, name="head"),
        ]
    )
    net.set_weights(weights())
    net.compile(optimizer, "mse", jit_compile=True)
    return net


def grads(w, x, y):
    """Gradients of the mean squared error over the batch and the outputs."""
    w1, b1, w2, b2 = (a.astype("float64") for a in w)
    x, y = x.astype("float64"), y.astype("float64")
    h = x @ w1 + b1
    d = 2.0 * (h @ w2 + b2 - y) / y.size
    dh = d @ w2.T
    return [x.T @ dh, dh.sum(0), h.T @ d, d.sum(0)]


def batches(x, y):
    for i in range(0, len(x), BATCH):
        yield x[i : i + BATCH], y[i : i + BATCH]
