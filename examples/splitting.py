"""Splitting: train/dev/test from one distribution, checked, scaler fit on train.

Splits the raw digits 60/20/20 with stratification, prints `describe_split`
of the `(x, y)` pairs (class proportions, shift of every pixel, leaked
rows), adapts a `keras.layers.Normalization` on the training split only,
trains on train, reads dev, and evaluates once on test.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from keras_tricks.data import describe_split, train_dev_test_split  # noqa: E402


def main():
    keras.utils.set_random_seed(0)
    digits = load_digits()
    x, y = digits.data.astype("float32"), digits.target
    x_train, x_dev, x_test, y_train, y_dev, y_test = train_dev_test_split(
        x, y, dev_size=0.2, test_size=0.2, stratify=y, random_state=0
    )
    train, dev, test = (x_train, y_train), (x_dev, y_dev), (x_test, y_test)
    # The same (x, y) pairs that fit's validation_data takes.
    print(describe_split(train, dev, test))
    normalize = keras.layers.Normalization()
    normalize.adapt(x_train)  # statistics of train only
    model = keras.Sequential(
        [
            keras.Input((64,)),
            normalize,
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*train, validation_data=dev, epochs=10, verbose=0)
    _, dev_accuracy = model.evaluate(*dev, verbose=0)
    _, test_accuracy = model.evaluate(*test, verbose=0)  # once, at the end
    print(f"\ndev accuracy {dev_accuracy:.3f}, test accuracy {test_accuracy:.3f}")


if __name__ == "__main__":
    main()
