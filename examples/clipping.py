"""Gradient clipping: a learning rate that diverges trains once clipped.

Plain SGD at lr=1.0 on a 6-layer MLP blows up; wrapping the same optimizer in
`GradientClipping(mode="global_norm", threshold=1.0)` trains. `GradientMonitor`
logs the gradient norms of both runs.
"""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tricks.callbacks import GradientMonitor  # noqa: E402
from keras_tricks.datasets import load_digits  # noqa: E402
from keras_tricks.optimizers import GradientClipping  # noqa: E402


def run(optimizer, x, y, x_dev, y_dev):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(64, activation="relu") for _ in range(6)]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = model.fit(
            x,
            y,
            validation_data=(x_dev, y_dev),
            epochs=5,
            verbose=0,
            callbacks=[GradientMonitor()],
        )
    return history.history


def main():
    (x, y), (x_dev, y_dev) = load_digits()
    for name, optimizer in (
        ("SGD(1.0)", keras.optimizers.SGD(1.0)),
        (
            "GradientClipping(SGD(1.0))",
            GradientClipping(
                keras.optimizers.SGD(1.0), mode="global_norm", threshold=1.0
            ),
        ),
    ):
        logs = run(optimizer, x, y, x_dev, y_dev)
        print(
            f"{name:28s} loss per epoch {np.round(logs['loss'], 3)}  "
            f"max grad norm {np.nanmax(logs['grad_norm_max']):.3g}  "
            f"dev accuracy {logs['val_accuracy'][-1]:.3f}"
        )


if __name__ == "__main__":
    main()
