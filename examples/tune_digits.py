"""A 6-trial random search over the tricks on the digits data.

Splits the 1797 digits 60/20/20 with `train_dev_test_split`, tunes on the dev
split with KerasTuner's RandomSearch, prints the best tricks, and evaluates the
best model once on the test split. Runs in about a minute on 2 CPU cores.

    python examples/tune_digits.py [--trials 6] [--epochs 8] [--dir /tmp/tune_digits]
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_tuner  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from keras_tricks.data import train_dev_test_split  # noqa: E402
from keras_tricks.tuning import TricksHyperModel, trials_table  # noqa: E402


def build(hp, tricks):
    """Architecture search space; the tricks come from `tricks`."""
    model = keras.Sequential([keras.Input((64,))])
    for _ in range(hp.Int("layers", 1, 3)):
        model.add(
            keras.layers.Dense(
                hp.Choice("units", [32, 64, 128]),
                kernel_initializer=tricks.initializer,
                kernel_regularizer=tricks.kernel_regularizer,
            )
        )
        model.add(tricks.normalization())
        model.add(keras.layers.Activation(hp.Choice("activation", ["relu", "tanh"])))
        model.add(tricks.dropout())
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--dir", default=None, help="tuner directory (default: temp)")
    args = parser.parse_args(argv)

    digits = load_digits()
    x, y = digits.data.astype("float32") / 16.0, digits.target
    x_train, x_dev, x_test, y_train, y_dev, y_test = train_dev_test_split(
        x, y, dev_size=0.2, test_size=0.2, stratify=y, random_state=0
    )
    normalize = keras.layers.Normalization()
    normalize.adapt(x_train)  # statistics of the training split only
    x_train, x_dev, x_test = (
        keras.ops.convert_to_numpy(normalize(a)) for a in (x_train, x_dev, x_test)
    )

    with tempfile.TemporaryDirectory() as scratch:
        tuner = keras_tuner.RandomSearch(
            TricksHyperModel(build),
            objective="val_accuracy",
            max_trials=args.trials,
            seed=0,
            overwrite=True,
            directory=args.dir or scratch,
            project_name="tune_digits",
        )
        tuner.search(
            x_train,
            y_train,
            validation_data=(x_dev, y_dev),
            epochs=args.epochs,
            verbose=0,
        )
        print(trials_table(tuner))
        best = tuner.get_best_hyperparameters(1)[0]
        print("\nBest tricks:", best.values)
        model = tuner.get_best_models(1)[0]
        _, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy of the best model (touched once): {test_accuracy:.4f}")
    return test_accuracy


if __name__ == "__main__":
    main()
