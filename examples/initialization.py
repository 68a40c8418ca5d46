"""Initialisation: why N(0, 1) breaks a deep net, and what He and LSUV fix.

Prints `layer_stats` (activation std, saturated/dead units, gradient norms) of
a 12-layer MLP on the digits data under three initialisations, then trains
each for 3 epochs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_tricks import initializers  # noqa: E402
from keras_tricks.datasets import load_digits  # noqa: E402
from keras_tricks.diagnostics import layer_stats  # noqa: E402


def mlp(initializer, activation):
    return keras.Sequential(
        [keras.Input((64,))]
        + [
            keras.layers.Dense(
                64, activation=activation, kernel_initializer=initializer
            )
            for _ in range(12)
        ]
        + [keras.layers.Dense(10, activation="softmax")]
    )


def main():
    keras.utils.set_random_seed(0)
    (x, y), (x_dev, y_dev) = load_digits()
    variants = {
        "N(0,1), tanh": mlp(keras.initializers.RandomNormal(stddev=1.0), "tanh"),
        "he, relu": mlp(initializers.get("he", seed=0), "relu"),
        "lsuv, tanh": mlp(initializers.get("orthogonal", seed=0), "tanh"),
    }
    initializers.lsuv_initialize(variants["lsuv, tanh"], x[:512], seed=0)
    for name, model in variants.items():
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        stats = layer_stats(model, x[:256], y[:256])
        first, last = stats[0], stats[-2]
        model.fit(x, y, epochs=3, verbose=0)
        _, accuracy = model.evaluate(x_dev, y_dev, verbose=0)
        print(
            f"{name:14s} std first/last hidden {first['std']:.3f}/{last['std']:.3f}"
            f"  grad norm first layer {first['grad_norm']:.3g}"
            f"  dev accuracy after 3 epochs {accuracy:.3f}"
        )


if __name__ == "__main__":
    main()
