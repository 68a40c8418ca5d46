"""Regularisation: L2 (Keras's own), parameter tying, and the penalty in the logs.

Two task towers on the digits data (even/odd and digit < 5) are tied with
`tie_weights`; `PenaltyLogger` splits the loss into data loss and penalty, so
the trade-off lambda makes is visible for a few strengths.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tricks.callbacks import PenaltyLogger  # noqa: E402
from keras_tricks.datasets import load_digits  # noqa: E402
from keras_tricks.regularizers import tie_weights  # noqa: E402


def towers(strength):
    inputs = keras.Input((64,))
    tower_a = keras.layers.Dense(32, activation="relu", name="tower_a")
    tower_b = keras.layers.Dense(32, activation="relu", name="tower_b")
    even = keras.layers.Dense(1, activation="sigmoid", name="even")(tower_a(inputs))
    small = keras.layers.Dense(1, activation="sigmoid", name="small")(tower_b(inputs))
    model = keras.Model(inputs, {"even": even, "small": small})
    tie_weights(tower_a, tower_b, strength=strength)
    model.compile(
        "adam", {"even": "binary_crossentropy", "small": "binary_crossentropy"}
    )
    return model, tower_a, tower_b


def main():
    keras.utils.set_random_seed(0)
    (x, y), (x_dev, y_dev) = load_digits()
    targets = {
        "even": (y % 2 == 0)[:, None].astype("float32"),
        "small": (y < 5)[:, None].astype("float32"),
    }
    dev_targets = {
        "even": (y_dev % 2 == 0)[:, None].astype("float32"),
        "small": (y_dev < 5)[:, None].astype("float32"),
    }
    print("strength  val_data_loss  penalty  ||W_A - W_B||^2")
    for strength in (0.0, 1e-3, 1e-1):
        model, tower_a, tower_b = towers(strength)
        history = model.fit(
            x,
            targets,
            validation_data=(x_dev, dev_targets),
            epochs=5,
            verbose=0,
            callbacks=[PenaltyLogger()],
        )
        gap = np.sum((tower_a.kernel.numpy() - tower_b.kernel.numpy()) ** 2)
        print(
            f"{strength:8g}  {history.history['val_data_loss'][-1]:13.4f}"
            f"  {history.history['penalty'][-1]:7.4f}  {gap:15.4f}"
        )
    print("Stronger ties pull the towers together (smaller gap) at some data loss.")


if __name__ == "__main__":
    main()
