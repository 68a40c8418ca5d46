"""The ablation study: a plain deep network, then each trick alone and all together.

The baseline is the network the material starts from: a deep ReLU MLP with
small plain-Gaussian weights (N(0, 0.05), the old Keras default), no
normalisation, no regularisation, and plain SGD at a constant learning rate.
Each variant adds one trick to it (or all of them), trains `seeds` times on the
training split, and is judged on the dev split of `train_dev_test_split`; the
test split is evaluated once per run, for the record.
"""

import time
import warnings

import keras
import numpy as np

from keras_tricks import initializers
from keras_tricks.callbacks import EarlyStopping, EpochDecay, GradientMonitor
from keras_tricks.data import train_dev_test_split
from keras_tricks.datasets import standardize
from keras_tricks.optimizers import GradientClipping
from keras_tricks.report import Report

TRICKS = {
    "init": "He initialisation instead of N(0, 0.05)",
    "lsuv": "LSUV data-driven initialisation",
    "bn": "BatchNormalization before each activation",
    "dropout": "Dropout(0.1) after each hidden layer",
    "l2": "L2 penalty 1e-4 on the kernels",
    "clip": "GradientClipping(global_norm, threshold=5)",
    "decay": "EpochDecay(0.95): lr x 0.95 after each epoch",
    "early_stopping": "EarlyStopping(criterion='gl', alpha=5), best weights",
}
"""Trick name -> what adding it changes in the baseline."""

DEFAULT_TRICKS = ("init", "bn", "dropout", "l2", "clip", "decay", "early_stopping")


def build_variant(input_dim, classes, tricks, *, depth, width, seed):
    """The baseline MLP with `tricks` (a set of `TRICKS` names) added."""
    if "init" in tricks:
        init = initializers.get("he", seed=seed)
    elif "lsuv" in tricks:
        init = initializers.get("orthogonal", seed=seed)
    else:
        init = keras.initializers.RandomNormal(stddev=0.05, seed=seed)
    regularizer = keras.regularizers.L2(1e-4) if "l2" in tricks else None
    model = keras.Sequential([keras.Input((input_dim,))])
    for _ in range(depth):
        model.add(
            keras.layers.Dense(
                width, kernel_initializer=init, kernel_regularizer=regularizer
            )
        )
        if "bn" in tricks:
            model.add(keras.layers.BatchNormalization())
        model.add(keras.layers.Activation("relu"))
        if "dropout" in tricks:
            model.add(keras.layers.Dropout(0.1, seed=seed))
    model.add(keras.layers.Dense(classes, activation="softmax"))
    return model


def _callbacks(tricks):
    callbacks = [GradientMonitor()]
    if "decay" in tricks:
        callbacks.append(EpochDecay(0.95))
    if "early_stopping" in tricks:
        callbacks.append(EarlyStopping("val_loss", criterion="gl", alpha=5.0))
    return callbacks


def _gradient_flag(monitor):
    """'ok', or the worst problem GradientMonitor flagged during the run."""
    if monitor.exploding:
        return "exploding"
    if monitor.vanishing:
        return "vanishing"
    return "ok"


def train_variant(
    split, tricks, *, depth, width, epochs, batch_size, learning_rate, seed
):
    """Trains one variant once; returns its history and scores."""
    (x_train, y_train), (x_dev, y_dev), (x_test, y_test) = split
    keras.utils.set_random_seed(seed)
    classes = int(max(y_train.max(), y_dev.max(), y_test.max())) + 1
    model = build_variant(
        x_train.shape[1], classes, tricks, depth=depth, width=width, seed=seed
    )
    if "lsuv" in tricks:
        initializers.lsuv_initialize(model, x_train[:512], seed=seed)
    optimizer = keras.optimizers.SGD(learning_rate)
    if "clip" in tricks:
        optimizer = GradientClipping(optimizer, mode="global_norm", threshold=5.0)
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = _callbacks(tricks)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # GradientMonitor's warnings become the table's `gradients` column.
        warnings.simplefilter("ignore")
        history = model.fit(
            x_train,
            y_train,
            validation_data=(x_dev, y_dev),
            epochs=epochs,
            batch_size=batch_size,
            verbose=0,
            shuffle=True,
            callbacks=callbacks,
        )
    seconds = time.perf_counter() - start
    _, dev_accuracy = model.evaluate(x_dev, y_dev, verbose=0)
    _, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    curves = {
        key: list(map(float, history.history[key]))
        for key in ("loss", "accuracy", "val_loss", "val_accuracy")
    }
    return {
        "curves": curves,
        "dev_accuracy": float(dev_accuracy),
        "test_accuracy": float(test_accuracy),
        "best_epoch": _best_epoch(curves["val_loss"]),
        "epochs": len(curves["loss"]),
        "seconds": seconds,
        "gradients": _gradient_flag(callbacks[0]),
    }


def _best_epoch(val_loss):
    """1-based epoch of the lowest dev loss; 0 when no epoch had a finite one."""
    finite = np.isfinite(val_loss)
    if not finite.any():
        return 0
    return int(np.argmin(np.where(finite, val_loss, np.inf))) + 1


def make_split(x, y, *, seed=0):
    """60/20/20 stratified split, features z-scored on the training split."""
    x_train, x_dev, x_test, y_train, y_dev, y_test = train_dev_test_split(
        x, y, dev_size=0.2, test_size=0.2, stratify=y, random_state=seed
    )
    x_train, x_dev, x_test = standardize(x_train, x_dev, x_test)
    return (x_train, y_train), (x_dev, y_dev), (x_test, y_test)


def _mean_std(values):
    return f"{np.mean(values):.4f} +- {np.std(values):.4f}"


class AblationResult:
    """What `run_ablation` measured.

    Attributes:
        runs: dict variant -> list (one per seed) of run dicts with `curves`
            (per-epoch loss, accuracy, val_loss, val_accuracy), `dev_accuracy`,
            `test_accuracy`, `best_epoch`, `epochs`, `seconds`, `gradients`.
        table: `keras_tricks.report.Report`, one row per variant.
        best: the single-trick variant with the largest mean dev-accuracy gain
            over the baseline (marked `*` in the table), or `None`.
    """

    def __init__(self, runs, config):
        self.runs = runs
        self.config = config
        baseline = np.mean([r["dev_accuracy"] for r in runs["baseline"]])
        gains = {
            name: np.mean([r["dev_accuracy"] for r in seeds]) - baseline
            for name, seeds in runs.items()
            if name not in ("baseline", "all")
        }
        self.best = max(gains, key=gains.get) if gains else None
        rows = []
        for name, seeds in runs.items():
            dev = [r["dev_accuracy"] for r in seeds]
            rows.append(
                {
                    "variant": name + (" *" if name == self.best else ""),
                    "dev_accuracy": _mean_std(dev),
                    "dev_gain": float(np.mean(dev) - baseline),
                    "test_accuracy": _mean_std([r["test_accuracy"] for r in seeds]),
                    "best_epoch": float(np.mean([r["best_epoch"] for r in seeds])),
                    "epochs_run": float(np.mean([r["epochs"] for r in seeds])),
                    "wall_time_s": float(np.mean([r["seconds"] for r in seeds])),
                    "gradients": ", ".join(sorted({r["gradients"] for r in seeds})),
                }
            )
        self.table = Report(
            rows,
            title=(
                f"Ablation on {config['dataset']}: {config['depth']}-layer MLP, "
                f"{config['epochs']} epochs, {config['seeds']} seed(s); "
                "* = the trick that helps most alone"
            ),
        )


def run_ablation(
    x,
    y,
    *,
    tricks=DEFAULT_TRICKS,
    depth=8,
    width=64,
    epochs=20,
    seeds=1,
    batch_size=32,
    learning_rate=0.05,
    dataset="data",
    progress=None,
):
    """Trains the baseline, each trick alone, and all tricks together.

    Args:
        x: features, shape `(n, features)`.
        y: integer class labels, shape `(n,)`.
        tricks: names from `TRICKS`. Defaults to `DEFAULT_TRICKS`.
        depth: hidden layers. Defaults to `8`.
        width: units per hidden layer. Defaults to `64`.
        epochs: maximum epochs per run. Defaults to `20`.
        seeds: runs per variant (seeds 0..seeds-1). Defaults to `1`.
        batch_size: Defaults to `32`.
        learning_rate: SGD's constant learning rate. Defaults to `0.05`.
        dataset: name shown in the table. Defaults to `"data"`.
        progress: optional callable `progress(done, total, variant, seed)`
            called after each run.

    Returns:
        An `AblationResult`.
    """
    split = make_split(x, y)
    variants = {"baseline": set()}
    variants.update({name: {name} for name in tricks})
    if len(tricks) > 1:
        all_tricks = set(tricks)
        if {"init", "lsuv"} <= all_tricks:
            all_tricks.discard("init")
        variants["all"] = all_tricks
    total = len(variants) * seeds
    runs = {}
    for name, chosen in variants.items():
        runs[name] = []
        for seed in range(seeds):
            runs[name].append(
                train_variant(
                    split,
                    chosen,
                    depth=depth,
                    width=width,
                    epochs=epochs,
                    batch_size=batch_size,
                    learning_rate=learning_rate,
                    seed=seed,
                )
            )
            if progress is not None:
                progress(sum(map(len, runs.values())), total, name, seed)
    config = {
        "dataset": dataset,
        "depth": depth,
        "width": width,
        "epochs": epochs,
        "seeds": seeds,
        "tricks": list(tricks),
        "batch_size": batch_size,
        "learning_rate": learning_rate,
    }
    return AblationResult(runs, config)
