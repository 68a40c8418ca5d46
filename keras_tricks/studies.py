"""Small experiments that show what a trick does (`keras-tricks init-study`)."""

import keras
import numpy as np

from keras_tricks import initializers
from keras_tricks.diagnostics import layer_stats
from keras_tricks.report import Report

INIT_VARIANTS = (
    ("N(0,1)", "tanh"),
    ("glorot", "tanh"),
    ("he", "relu"),
    ("lsuv", "tanh"),
)
"""(initialisation, activation) pairs of the initialisation study."""


def deep_mlp(input_dim, classes, *, depth, width, activation, initializer):
    """A plain `depth`-layer MLP classifier (no normalisation, no dropout)."""
    hidden = [
        keras.layers.Dense(width, activation=activation, kernel_initializer=initializer)
        for _ in range(depth)
    ]
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            *hidden,
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


def _initializer(name, seed):
    if name == "N(0,1)":
        return keras.initializers.RandomNormal(stddev=1.0, seed=seed)
    if name == "lsuv":
        return initializers.get("orthogonal", seed=seed)
    return initializers.get(name, seed=seed)


def init_study(
    train,
    dev,
    *,
    depth=20,
    width=64,
    epochs=10,
    batch_size=32,
    learning_rate=2e-3,
    seed=0,
    variants=INIT_VARIANTS,
):
    """Trains the same deep MLP under several initialisations.

    For each variant, reports at initialisation the activation standard
    deviation of the first and the last hidden layer, the share of saturated
    (tanh) or dead (ReLU) units in the last hidden layer and the gradient norm
    of the first hidden layer's kernel; then the dev accuracy after `epochs`
    epochs of Adam, at the end and at the best epoch.

    Args:
        train: `(x, y)` training arrays (integer labels).
        dev: `(x, y)` dev arrays.
        depth: number of hidden layers. Defaults to `20`.
        width: units per hidden layer. Defaults to `64`.
        epochs: training epochs. Defaults to `10`.
        batch_size: Defaults to `32`.
        learning_rate: Adam's learning rate. Defaults to `2e-3`.
        seed: seed of weights and shuffling. Defaults to `0`.
        variants: `(init, activation)` pairs; init is `"N(0,1)"`, `"lsuv"`
            or a name of `keras_tricks.initializers.get`.

    Returns:
        A `keras_tricks.report.Report`, one row per variant.
    """
    (x_train, y_train), (x_dev, y_dev) = train, dev
    classes = int(np.max(y_train)) + 1
    probe = slice(0, min(512, len(x_train)))
    rows = []
    for init, activation in variants:
        keras.utils.set_random_seed(seed)
        model = deep_mlp(
            x_train.shape[1],
            classes,
            depth=depth,
            width=width,
            activation=activation,
            initializer=_initializer(init, seed),
        )
        if init == "lsuv":
            initializers.lsuv_initialize(model, x_train[probe], seed=seed)
        model.compile(
            keras.optimizers.Adam(learning_rate),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        stats = layer_stats(model, x_train[probe], y_train[probe])
        first, last = stats[0], stats[depth - 1]
        history = model.fit(
            x_train,
            y_train,
            validation_data=(x_dev, y_dev),
            epochs=epochs,
            batch_size=batch_size,
            verbose=0,
        )
        unhealthy = last["saturated"] if activation != "relu" else last["dead"]
        rows.append(
            {
                "init": init,
                "activation": activation,
                "std_first": first["std"],
                "std_last": last["std"],
                "saturated_or_dead_last": unhealthy,
                "grad_norm_first": first["grad_norm"],
                "dev_accuracy": history.history["val_accuracy"][-1],
                "best_dev_accuracy": max(history.history["val_accuracy"]),
            }
        )
    return Report(
        rows, title=f"Initialisation study: {depth}-layer MLP, {epochs} epochs"
    )
