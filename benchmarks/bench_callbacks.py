"""Training-control callbacks: overhead, Prechelt's trade-off, decay, SWA.

- Overhead: the time each callback's epoch hooks take inside a real digits
  `fit`, against the epoch itself (goal: under 1% more time per epoch).
- Prechelt's trade-off: an overfitting MLP (256-256, Adam, 1000 training
  examples) run to 60 epochs, over 3 seeds: epochs trained and final test
  error (best weights restored) per criterion, against patience=10 and
  against no stopping. Each seed trains once, recording every epoch's logs
  and weights; each criterion's `EarlyStopping` is then replayed on that
  trajectory (identical to separate fits, since stopping only truncates).
- EpochDecay(0.98) against a constant rate, and SWA against the last epoch's
  weights (5000 training examples, 15 epochs, 2 seeds).

The last two run on Fashion-MNIST when it is installed, digits otherwise.
"""

import statistics
import time

import keras
import numpy as np

from keras_tricks.callbacks import (
    EarlyStopping,
    EpochDecay,
    FitDiagnosis,
    ReduceLROnPlateau,
    WeightAveraging,
)
from keras_tricks.datasets import load_digits, load_fashion_mnist
from keras_tricks.report import Report


def _mlp(inputs, hidden, optimizer, seed):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((inputs,))]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _error(model, x, y):
    return 1.0 - model.evaluate(x, y, verbose=0, batch_size=1024)[1]


def _data(n_train):
    """`name, (x, y), (x_val, y_val), (x_test, y_test)`: Fashion-MNIST if any.

    Fashion-MNIST: `n_train` training images, validation = the first 1000
    test images, test = the next 2000 (pixels / 255). Digits otherwise: its
    training split (at most `n_train`), and its held-out split cut in two.
    """
    try:
        (x, y), (x_held, y_held) = load_fashion_mnist()
    except FileNotFoundError:
        (x, y), (x_held, y_held) = load_digits()
        half = len(x_held) // 2
        return (
            "digits",
            (x[:n_train], y[:n_train]),
            (x_held[:half], y_held[:half]),
            (x_held[half:], y_held[half:]),
        )

    def scale(a):
        return a.reshape(len(a), -1).astype("float32") / 255.0

    return (
        "Fashion-MNIST",
        (scale(x[:n_train]), y[:n_train]),
        (scale(x_held[:1000]), y_held[:1000]),
        (scale(x_held[1000:3000]), y_held[1000:3000]),
    )


class _HookTimer(keras.callbacks.Callback):
    """Runs `inner`'s epoch hooks inside a real `fit` and times them.

    The callbacks have no batch hooks (tested), so their per-epoch cost is
    exactly the time spent in `on_epoch_begin` and `on_epoch_end`; timing the
    hooks against the epoch they run in gives a ratio that shared-CPU noise
    (several % between whole `fit` calls) does not swamp.
    """

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.hook_s, self.epoch_s = [], []

    def set_model(self, model):
        super().set_model(model)
        self.inner.set_model(model)

    def on_train_begin(self, logs=None):
        self.inner.on_train_begin(logs)

    def on_train_end(self, logs=None):
        self.inner.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        start = time.perf_counter()
        self.inner.on_epoch_begin(epoch, logs)
        self._begin = time.perf_counter()
        self._hook = self._begin - start

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        self.inner.on_epoch_end(epoch, logs)
        self.hook_s.append(self._hook + time.perf_counter() - start)
        self.epoch_s.append(start - self._begin)


def overhead(quick):
    (x, y), (x_dev, y_dev) = load_digits()
    makers = {
        "EpochDecay(0.98)": lambda: EpochDecay(0.98),
        "EarlyStopping(gl)": lambda: EarlyStopping(criterion="gl", alpha=1e9),
        "EarlyStopping(pq)": lambda: EarlyStopping(criterion="pq", alpha=1e9),
        "ReduceLROnPlateau": lambda: ReduceLROnPlateau(patience=100),
        "FitDiagnosis": lambda: FitDiagnosis(verbose=0),
        "WeightAveraging(0)": lambda: WeightAveraging(0),
    }
    epochs = 4 if quick else 8
    rows = []
    for name, make in makers.items():
        model = _mlp(64, [64], keras.optimizers.SGD(0.01), 0)
        timer = _HookTimer(make())
        model.fit(
            x,
            y,
            validation_data=(x_dev, y_dev),
            epochs=epochs,
            batch_size=32,
            verbose=0,
            callbacks=[timer],
        )
        # The first epoch traces the train function: left out.
        hook = statistics.median(timer.hook_s[1:])
        epoch = statistics.median(timer.epoch_s[1:])
        ratio = 1.0 + hook / epoch
        rows.append(
            {
                "callback": name,
                "hook_ms": 1e3 * hook,
                "epoch_ms": 1e3 * epoch,
                "ratio": ratio,
                "goal": "<= 1.01x",
                "met": "yes" if ratio <= 1.01 else "NO",
            }
        )
    return Report(
        rows,
        title="Per-epoch overhead: callback hooks vs one digits epoch (MLP 64, "
        "batch 32, with validation; median over epochs 2..)",
    )


class _Recorder(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights, self.logs = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        self.logs.append(dict(logs))


def _replay(model, recorder, callback):
    """Feeds a recorded run to `callback` as `fit` would; returns epochs run.

    Stopping only truncates training (the callback observes and does not
    change the updates), so a replay of one recorded trajectory is the same
    run as a separate `fit` with the callback, at a fraction of the cost.
    """
    model.stop_training = False
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, (weights, logs) in enumerate(
        zip(recorder.weights, recorder.logs, strict=True)
    ):
        model.set_weights(weights)
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    callback.on_train_end()
    return epoch + 1


def prechelt(quick):
    dataset, (x, y), (x_val, y_val), (x_test, y_test) = _data(1000)
    criteria = {
        "no stopping": None,
        "patience=10": dict(patience=10),
        "gl, alpha=1": dict(criterion="gl", alpha=1.0),
        "gl, alpha=5": dict(criterion="gl", alpha=5.0),
        "gl, alpha=20": dict(criterion="gl", alpha=20.0),
        "pq, alpha=0.5": dict(criterion="pq", alpha=0.5),
        "pq, alpha=2": dict(criterion="pq", alpha=2.0),
        "up, alpha=2": dict(criterion="up", alpha=2),
        "up, alpha=3": dict(criterion="up", alpha=3),
    }
    seeds = [0] if quick else [0, 1, 2]
    epochs = 20 if quick else 60
    results = {name: ([], []) for name in criteria}
    for seed in seeds:
        model = _mlp(x.shape[1], [256, 256], keras.optimizers.Adam(1e-3), seed)
        recorder = _Recorder()
        model.fit(
            x,
            y,
            validation_data=(x_val, y_val),
            epochs=epochs,
            batch_size=64,
            verbose=0,
            callbacks=[recorder],
        )
        for name, kwargs in criteria.items():
            if kwargs is None:
                model.set_weights(recorder.weights[-1])
                trained = epochs
            else:
                trained = _replay(model, recorder, EarlyStopping(**kwargs))
            results[name][0].append(trained)
            results[name][1].append(_error(model, x_test, y_test))
    rows = [
        {
            "criterion": name,
            "epochs_trained": float(np.mean(trained)),
            "test_error": float(np.mean(errors)),
            "test_error_std": float(np.std(errors)),
            "seeds": len(seeds),
        }
        for name, (trained, errors) in results.items()
    ]
    return Report(
        rows,
        title=f"Prechelt's criteria on an overfitting MLP ({dataset}, {len(x)} "
        f"training examples, MLP 256-256, Adam 1e-3, max {epochs} epochs, "
        "monitor val_loss, best weights restored)",
    )


def decay_and_swa(quick):
    name, (x, y), _, (x_test, y_test) = _data(2000 if quick else 5000)
    epochs = 4 if quick else 15
    seeds = [0] if quick else [0, 1]
    rows = []
    for label, callbacks in [
        ("constant lr 0.1", lambda: []),
        ("EpochDecay(0.98)", lambda: [EpochDecay(0.98)]),
        ("EpochDecay(0.9)", lambda: [EpochDecay(0.9)]),
    ]:
        errors = []
        for seed in seeds:
            model = _mlp(x.shape[1], [256], keras.optimizers.SGD(0.1), seed)
            model.fit(
                x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=callbacks()
            )
            errors.append(_error(model, x_test, y_test))
        rows.append({"run": label, "test_error": float(np.mean(errors))})

    swa_errors, last_errors = [], []
    for seed in seeds:
        model = _mlp(x.shape[1], [256], keras.optimizers.SGD(0.1, momentum=0.9), seed)
        last = []
        keep = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs, model=model, last=last: last.append(
                model.get_weights()
            )
        )
        model.fit(
            x,
            y,
            epochs=epochs,
            batch_size=64,
            verbose=0,
            callbacks=[keep, WeightAveraging(epochs // 2)],
        )
        swa_errors.append(_error(model, x_test, y_test))
        model.set_weights(last[-1])
        last_errors.append(_error(model, x_test, y_test))
    rows.append(
        {"run": "SGD+momentum, last epoch", "test_error": float(np.mean(last_errors))}
    )
    rows.append(
        {
            "run": f"SGD+momentum, SWA from epoch {epochs // 2}",
            "test_error": float(np.mean(swa_errors)),
        }
    )
    return Report(
        rows,
        title=f"Learning-rate decay and SWA ({name}, {len(x)} training examples, "
        f"{epochs} epochs, {len(seeds)} seed(s), MLP 256)",
    )


def run(quick=False):
    return [
        ("Callback overhead", overhead(quick)),
        ("Prechelt's early-stopping trade-off", prechelt(quick)),
        ("EpochDecay and SWA", decay_and_swa(quick)),
        ("ActivationStats overhead", activation_stats_overhead(quick)),
    ]


def activation_stats_overhead(quick):
    """ActivationStats at its default `every_n_steps` against a plain `fit`.

    Two identical MLPs (64-128-128-10 on digits, batch 32, 5 epochs = 225
    steps per `fit`), one fit with `ActivationStats(x[:256])` (records at
    steps 0, 100, 200), one without; the fits alternate and the median of
    the per-pair time ratios is the result (goal: <= 1.05x).
    """
    from benchmarks.harness import compare, row
    from keras_tricks.callbacks import ActivationStats

    (x, y), _ = load_digits()
    epochs = 5
    plain = _mlp(64, [128, 128], keras.optimizers.SGD(0.01), 0)
    watched = _mlp(64, [128, 128], keras.optimizers.SGD(0.01), 0)
    stats = ActivationStats(x[:256])

    def fit(model, callbacks):
        return lambda: model.fit(
            x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks
        )

    result = compare(fit(watched, [stats]), fit(plain, []), repeats=3 if quick else 7)
    steps = epochs * -(-len(x) // 32)
    return Report(
        [
            row(
                f"ActivationStats(every_n_steps={stats.every_n_steps})",
                result,
                1.05,
                note=f"{len(stats.steps)} records in {steps} steps, "
                f"{len(stats.stats)} layers",
            )
        ],
        title="ActivationStats: fit with it vs a plain fit (digits MLP 128-128, "
        "batch 32; median ratio of alternating fits)",
    )
