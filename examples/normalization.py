"""Normalisation: ghost batch norm, and exact population statistics at test time.

A small MLP with `GhostBatchNormalization` and `BatchNormalization` trains one
epoch (23 steps) with momentum 0.99, so its moving statistics are still far
from the data's and the dev accuracy suffers; after `recalibrate_batch_norm`
they are the exact training-set statistics.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_tricks.datasets import load_digits  # noqa: E402
from keras_tricks.layers import GhostBatchNormalization, recalibrate_batch_norm  # noqa: E402


def main():
    keras.utils.set_random_seed(0)
    (x, y), (x_dev, y_dev) = load_digits()
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            GhostBatchNormalization(virtual_batch_size=16, momentum=0.99),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.BatchNormalization(momentum=0.99),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    _, before = model.evaluate(x_dev, y_dev, verbose=0)
    print(recalibrate_batch_norm(model, x))
    _, after = model.evaluate(x_dev, y_dev, verbose=0)
    print(
        f"dev accuracy with moving averages {before:.3f}, "
        f"with population statistics {after:.3f}"
    )


if __name__ == "__main__":
    main()
