"""A small TricksHyperModel search run as its own process by the tuning tests.

Usage: python tuning_search.py DIRECTORY MAX_TRIALS [HANG_AFTER]

Appends the id of each trial it builds to DIRECTORY/built.txt and of each
trial it completes to DIRECTORY/done.txt. With HANG_AFTER > 0 it hangs after
completing that many trials, waiting to be killed. KerasTuner's distributed mode is
driven by the KERASTUNER_* environment variables, as in production.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402

from keras_tricks.tuning import TricksHyperModel  # noqa: E402

directory, max_trials = sys.argv[1], int(sys.argv[2])
hang_after = int(sys.argv[3]) if len(sys.argv) > 3 else 0
tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "solo")


def build(hp, tricks):
    with open(os.path.join(directory, "built.txt"), "a") as f:
        f.write(f"{tuner_id} {hp.values}\n")
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(4, kernel_initializer=tricks.initializer),
            keras.layers.Dense(2),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Recorder(keras_tuner.RandomSearch):
    completed = 0

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        with open(os.path.join(directory, "done.txt"), "a") as f:
            f.write(f"{tuner_id} {trial.trial_id}\n")
        self.completed += 1
        if self.completed == hang_after:
            time.sleep(600)


rng = np.random.default_rng(0)
x = rng.normal(size=(64, 8)).astype("float32")
y = (x[:, 0] > 0).astype("int32")
tuner = Recorder(
    TricksHyperModel(build, tricks=("init", "lr")),
    objective="val_accuracy",
    max_trials=max_trials,
    directory=directory,
    project_name="search",
    overwrite=False,
    seed=1,
)
tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=32, verbose=0)
