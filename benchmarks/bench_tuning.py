"""Memory of a KerasTuner search over the tricks: does it grow per trial?

keras-tuner#395 and #873 report memory growing from trial to trial until the
search dies. Each search here runs in a fresh process (`python -m
benchmarks.bench_tuning TRIALS`) that reports its own peak resident set size;
a 20-trial search's peak should stay within 20% of a 5-trial search's.
"""

import os
import resource
import subprocess
import sys
import tempfile

from keras_tricks.report import Report


def search(trials, directory):
    """A random search over every trick on the digits data; returns peak RSS."""
    import keras
    import keras_tuner

    from keras_tricks.datasets import load_digits
    from keras_tricks.tuning import TricksHyperModel

    (x, y), (x_dev, y_dev) = load_digits()

    def build(hp, tricks):
        model = keras.Sequential([keras.Input((64,))])
        for _ in range(hp.Int("layers", 1, 3)):
            model.add(
                keras.layers.Dense(
                    128,
                    kernel_initializer=tricks.initializer,
                    kernel_regularizer=tricks.kernel_regularizer,
                )
            )
            model.add(tricks.normalization())
            model.add(keras.layers.Activation("relu"))
            model.add(tricks.dropout())
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner = keras_tuner.RandomSearch(
        TricksHyperModel(build),
        objective="val_accuracy",
        max_trials=trials,
        seed=0,
        directory=directory,
        project_name="memory",
    )
    tuner.search(x, y, validation_data=(x_dev, y_dev), epochs=2, verbose=0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_mib(trials):
    with tempfile.TemporaryDirectory() as directory:
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_tuning", str(trials), directory],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    return float(result.stdout.split()[-1])


def run(quick=False):
    small, large = (3, 12) if quick else (5, 20)
    peaks = {trials: _peak_mib(trials) for trials in (small, large)}
    ratio = peaks[large] / peaks[small]
    rows = [
        {"search": f"{trials} trials", "peak_rss_mib": round(peak, 1)}
        for trials, peak in peaks.items()
    ]
    rows.append(
        {
            "search": f"ratio {large}/{small} (goal <= 1.2)",
            "peak_rss_mib": f"{ratio:.3f} {'ok' if ratio <= 1.2 else 'MISSED'}",
        }
    )
    return [
        (
            "KerasTuner search memory (RandomSearch over all tricks, digits, "
            "2 epochs per trial, one process per search)",
            Report(rows),
        )
    ]


if __name__ == "__main__":
    print(search(int(sys.argv[1]), sys.argv[2]))
