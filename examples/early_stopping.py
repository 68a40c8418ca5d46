"""Early stopping: Prechelt's criteria on a network that overfits.

A wide MLP trained on 300 digits overfits after a few epochs. Each criterion
stops it at a different epoch and restores the best weights; the table shows
the epochs trained, the dev accuracy of the restored model, and the last value
of the quantity the criterion decided on (logged as `gl`, `pq` or `up_strips`,
so it is in History, CSVLogger and TensorBoard too).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_tricks.callbacks import EarlyStopping  # noqa: E402
from keras_tricks.datasets import load_digits  # noqa: E402

CRITERIA = {
    "none": None,
    "patience=5": EarlyStopping(patience=5),
    "gl, alpha=5": EarlyStopping(criterion="gl", alpha=5.0),
    "pq, alpha=0.5": EarlyStopping(criterion="pq", alpha=0.5),
    "up, alpha=2": EarlyStopping(criterion="up", alpha=2),
}
DECIDED_ON = {"gl": "gl", "pq": "pq", "up": "up_strips"}


def main():
    (x, y), (x_dev, y_dev) = load_digits()
    x, y = x[:300], y[:300]
    for name, stopping in CRITERIA.items():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(
            keras.optimizers.Adam(3e-3),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        history = model.fit(
            x,
            y,
            validation_data=(x_dev, y_dev),
            epochs=30,
            verbose=0,
            callbacks=[stopping] if stopping else [],
        )
        loss, accuracy = model.evaluate(x_dev, y_dev, verbose=0)
        key = DECIDED_ON.get(getattr(stopping, "criterion", ""))
        decided = f"  last {key} {history.history[key][-1]:.3g}" if key else ""
        print(
            f"{name:14s} epochs trained {len(history.history['loss']):2d}"
            f"  dev loss {loss:.3f}  dev accuracy {accuracy:.3f}{decided}"
        )


if __name__ == "__main__":
    main()
