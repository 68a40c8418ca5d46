"""Dropout: classic vs inverted dropout, and Monte-Carlo dropout uncertainty.

`ClassicDropout` (no rescaling in training, x(1 - p) at test) and Keras's
inverted `Dropout` reach the same accuracy; `MCDropout` + `mc_predict` gives a
predictive standard deviation that is larger on the examples the model gets
wrong.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tricks.datasets import load_digits  # noqa: E402
from keras_tricks.layers import ClassicDropout, MCDropout, mc_predict  # noqa: E402


def mlp(dropout):
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            dropout,
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def main():
    (x, y), (x_dev, y_dev) = load_digits()
    for name, layer in (
        ("keras Dropout(0.5)", keras.layers.Dropout(0.5, seed=0)),
        ("ClassicDropout(0.5)", ClassicDropout(0.5, seed=0)),
        ("MCDropout(0.5)", MCDropout(0.5, seed=0)),
    ):
        keras.utils.set_random_seed(0)
        model = mlp(layer)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=8, verbose=0)
        _, accuracy = model.evaluate(x_dev, y_dev, verbose=0)
        print(f"{name:20s} dev accuracy {accuracy:.3f}")
    mean, std = mc_predict(model, x_dev, samples=30, seed=0)
    wrong = mean.argmax(axis=1) != y_dev
    spread = std[np.arange(len(y_dev)), mean.argmax(axis=1)]
    print(
        f"MC dropout: std of the predicted class {spread[wrong].mean():.3f} on "
        f"wrong predictions vs {spread[~wrong].mean():.3f} on right ones"
    )


if __name__ == "__main__":
    main()
