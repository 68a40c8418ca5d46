"""Train-step overhead of gradient clipping and gradient monitoring.

All models are compiled with `jit_compile=True`; every ratio is ours / native
Keras, measured in one process with the two alternating.
"""

import statistics
import time

import keras

from benchmarks.harness import compare, row
from keras_tricks.callbacks import GradientMonitor
from keras_tricks.datasets import load_digits
from keras_tricks.optimizers import GradientClipping
from keras_tricks.report import Report

BATCH = 64


def _model(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(256, activation="relu") for _ in range(4)]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=True)
    return model


def _fit(model, x, y, callbacks=()):
    def fn():
        model.fit(
            x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=list(callbacks)
        )

    return fn


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def _steady_state(ours, native, x, y, epochs, rounds):
    """Median epoch time inside one `fit` (first epoch, with tracing, dropped).

    The monitor rebuilds the train function at each `fit`, so timing whole
    `fit` calls would charge one trace per call; this times steady-state
    epochs, alternating the two models round by round.
    """
    ours_t, native_t = [], []
    for i in range(rounds):
        pairs = [(ours, ours_t), (native, native_t)]
        for (model, callbacks), times in pairs if i % 2 == 0 else pairs[::-1]:
            timer = _EpochTimer()
            model.fit(
                x,
                y,
                batch_size=BATCH,
                epochs=epochs,
                verbose=0,
                callbacks=[*callbacks, timer],
            )
            times.append(statistics.median(timer.times[1:]))
    ratios = [o / n for o, n in zip(ours_t, native_t, strict=True)]
    return {
        "ours_s": statistics.median(ours_t),
        "native_s": statistics.median(native_t),
        "ratio": statistics.median(ratios),
    }


def run(quick=False):
    (x, y), _ = load_digits(seed=0)
    repeats = 3 if quick else 9
    rows = []
    ours = _model(GradientClipping(keras.optimizers.Adam(1e-3), threshold=1.0))
    native = _model(keras.optimizers.Adam(1e-3, global_clipnorm=1.0))
    result = compare(_fit(ours, x, y), _fit(native, x, y), repeats=repeats)
    rows.append(
        row(
            "global_norm vs Keras global_clipnorm (Adam)",
            result,
            1.05,
            "epoch of digits",
        )
    )
    ours = _model(
        GradientClipping(keras.optimizers.Adam(1e-3), mode="adaptive", threshold=0.01)
    )
    native = _model(keras.optimizers.Adam(1e-3))
    result = compare(_fit(ours, x, y), _fit(native, x, y), repeats=repeats)
    rows.append(row("adaptive vs no clipping (Adam)", result, 1.15, "epoch of digits"))
    monitored = (_model(keras.optimizers.Adam(1e-3)), [GradientMonitor()])
    plain = (_model(keras.optimizers.Adam(1e-3)), [])
    result = _steady_state(
        monitored, plain, x, y, epochs=4 if quick else 6, rounds=2 if quick else 5
    )
    rows.append(
        row(
            "GradientMonitor on vs off (Adam)",
            result,
            1.05,
            "median epoch inside one fit; each fit re-traces once",
        )
    )
    title = f"Optimizers: train-step overhead (digits MLP 4x256, batch {BATCH}, jit)"
    return [(title, Report(rows, title=title))]
