"""Memory of a KerasTuner search over the tricks: does it grow per trial?

keras-tuner#395 and #873 report memory growing from trial to trial until the
search dies. Each search here runs in a fresh process (`python -m
benchmarks.bench_tuning TRIALS`) that reports its own peak resident set size;
a 20-trial search's peak should stay within 20% of a 5-trial search's. The
same search written as a plain KerasTuner `build(hp)` (Adam, no tricks) shows
how much of the growth is KerasTuner's and TensorFlow's own.
"""

import os
import subprocess
import sys
import tempfile

from keras_tricks.report import Report


def search(trials, directory, native=False):
    """A random search on the digits data; returns the peak RSS in MiB.

    Tunes every trick with `TricksHyperModel`, or with `native=True` only the
    number of layers and Adam's learning rate in a plain `build(hp)`.
    """
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

    def build_native(hp):
        model = keras.Sequential([keras.Input((64,))])
        for _ in range(hp.Int("layers", 1, 3)):
            model.add(keras.layers.Dense(128, activation="relu"))
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.compile(
            keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-1, sampling="log")),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    tuner = keras_tuner.RandomSearch(
        build_native if native else TricksHyperModel(build),
        objective="val_accuracy",
        max_trials=trials,
        seed=0,
        directory=directory,
        project_name="memory",
    )
    tuner.search(x, y, validation_data=(x_dev, y_dev), epochs=2, verbose=0)
    return _high_water_mib()


def _high_water_mib():
    """This process's peak RSS (VmHWM; `ru_maxrss` would include the RSS of
    the process it was forked from)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmHWM in /proc/self/status (Linux only)")


def _peak_mib(trials, native):
    with tempfile.TemporaryDirectory() as directory:
        command = [sys.executable, "-m", "benchmarks.bench_tuning", str(trials)]
        result = subprocess.run(
            [*command, directory, *(["native"] if native else [])],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    return float(result.stdout.split()[-1])


def run(quick=False):
    small, large = (3, 12) if quick else (5, 20)
    rows = []
    for native, name in ((False, "TricksHyperModel"), (True, "plain build(hp)")):
        peaks = [_peak_mib(trials, native) for trials in (small, large)]
        ratio = peaks[1] / peaks[0]
        goal = "goal <= 1.2: " + ("ok" if ratio <= 1.2 else "MISSED")
        rows.append(
            {
                "search": name,
                f"peak_mib_{small}_trials": round(peaks[0], 1),
                f"peak_mib_{large}_trials": round(peaks[1], 1),
                "ratio": round(ratio, 3),
                "note": goal if not native else "reference",
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
    print(search(int(sys.argv[1]), sys.argv[2], native="native" in sys.argv[3:]))
