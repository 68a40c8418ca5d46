"""Learning rate: the range test picks a rate, EpochDecay lowers it each epoch.

Runs `find_learning_rate` on a fresh MLP (its weights and optimizer state are
restored afterwards), applies the suggested rate, trains with `EpochDecay(0.9)`,
and prints the learning rate and dev accuracy per epoch.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_tricks.callbacks import EpochDecay  # noqa: E402
from keras_tricks.datasets import load_digits  # noqa: E402
from keras_tricks.lr_finder import find_learning_rate  # noqa: E402


def main():
    keras.utils.set_random_seed(0)
    (x, y), (x_dev, y_dev) = load_digits()
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        keras.optimizers.SGD(momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    sweep = find_learning_rate(model, x, y, min_lr=1e-5, max_lr=10.0, steps=100)
    print(
        f"range test: {len(sweep.lrs)} steps up to lr {sweep.lrs[-1]:.3g}, "
        f"suggested lr {sweep.suggestion:.3g}"
    )
    sweep.apply(model)  # model.optimizer.learning_rate = sweep.suggestion
    history = model.fit(
        x,
        y,
        validation_data=(x_dev, y_dev),
        epochs=5,
        verbose=0,
        callbacks=[EpochDecay(0.9)],
    )
    for epoch, (lr, accuracy) in enumerate(
        zip(
            history.history["learning_rate"],
            history.history["val_accuracy"],
            strict=True,
        ),
        start=1,
    ):
        print(f"epoch {epoch}: lr {lr:.4g}  dev accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
