"""Normalisation: ghost batch norm, and exact population statistics at test time.

A small MLP with `GhostBatchNormalization` and `BatchNormalization` trains one
epoch (23 steps) with momentum 0.99, so its moving statistics are still far
from the data's and the dev accuracy suffers. `recalibrate_batch_norm` replaces
them with population statistics of the training set, in one pass (the
default) or layer after layer (`method="sequential"`, exact).
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
    trained = model.get_weights()
    print(recalibrate_batch_norm(model, x))  # how far the moving averages were
    _, single_pass = model.evaluate(x_dev, y_dev, verbose=0)
    model.set_weights(trained)
    recalibrate_batch_norm(model, x, method="sequential")
    _, sequential = model.evaluate(x_dev, y_dev, verbose=0)
    print(
        f"dev accuracy with moving averages {before:.3f}, with population "
        f"statistics {single_pass:.3f} (single pass), {sequential:.3f} (sequential)"
    )


if __name__ == "__main__":
    main()
