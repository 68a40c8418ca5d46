"""Small experiments that show what a trick does (`keras-tricks init-study`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_tricks.diagnostics import layer_stats
from keras_tricks.lab.models import mlp
from keras_tricks.report import Report
from keras_tricks.tricks import Setup

INIT_VARIANTS = (
    ("N(0,1)", "tanh"),
    ("glorot", "tanh"),
    ("he", "relu"),
    ("lsuv", "tanh"),
)
"""(initialisation, activation) pairs of the initialisation study."""

STANDARD_NORMAL = "N(0,1)"
"""The study's name for unit-variance Gaussian weights (no registry scheme)."""


def deep_mlp(
    input_dim: int,
    classes: int,
    *,
    depth: int,
    width: int,
    activation: str,
    initializer: Any,
) -> keras.Sequential:
    """A plain `depth`-layer MLP classifier (no normalisation, no dropout).

    The lab's MLP (`keras_tricks.lab.models.mlp`) with every hidden kernel
    drawn from `initializer`.

    Args:
        input_dim: features per example.
        classes: output classes.
        depth: hidden layers.
        width: units per hidden layer.
        activation: hidden activation, e.g. `"tanh"`.
        initializer: a Keras initializer (instance or name) for the hidden
            kernels.

    Returns:
        An uncompiled `keras.Sequential`.

    Example:

    >>> model = deep_mlp(8, 3, depth=2, width=4, activation="tanh",
    ...                  initializer="he_normal")
    >>> len(model.layers)
    5
    """
    setup = Setup(init=keras.initializers.get(initializer))
    return mlp(
        input_dim, classes, depth=depth, width=width, setup=setup, activation=activation
    )


def _setup(init: str, seed: int) -> Setup:
    if init == STANDARD_NORMAL:
        return Setup(seed=seed, init=keras.initializers.RandomNormal(stddev=1.0))
    return Setup.from_values({"init": init}, seed=seed)


def init_study(
    train: tuple[np.ndarray, np.ndarray],
    dev: tuple[np.ndarray, np.ndarray],
    *,
    depth: int = 20,
    width: int = 64,
    epochs: int = 10,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    seed: int = 0,
    variants: Sequence[tuple[str, str]] = INIT_VARIANTS,
    reporter: Any = None,
) -> Report:
    """Trains the same deep MLP under several initialisations.

    For each variant, reports at initialisation the activation standard
    deviation of the first and the last hidden layer, the share of saturated
    (tanh) or dead (ReLU) units in the last hidden layer and the gradient norm
    of the first hidden layer's kernel; then the dev accuracy after `epochs`
    epochs of Adam, at the end and at the best epoch.

    Args:
        train: `(x, y)` training arrays (integer labels).
        dev: `(x, y)` dev arrays.
        depth: number of hidden layers. Defaults to `20`.
        width: units per hidden layer. Defaults to `64`.
        epochs: training epochs. Defaults to `10`.
        batch_size: Defaults to `32`.
        learning_rate: Adam's learning rate. Defaults to `2e-3`.
        seed: seed of weights and shuffling. Defaults to `0`.
        variants: `(init, activation)` pairs; init is `"N(0,1)"` or a value
            of the `init` trick (`"glorot"`, `"he"`, `"lsuv"`, ...).
        reporter: optional progress display with `start(total_epochs)`,
            `epoch(description)` and `run_done(description, skipped)`.

    Returns:
        A `keras_tricks.report.Report`, one row per variant.
    """
    (x_train, y_train), (x_dev, y_dev) = train, dev
    classes = int(np.max(y_train)) + 1
    probe = slice(0, min(512, len(x_train)))
    if reporter is not None:
        reporter.start(len(variants) * epochs)
    rows = []
    for init, activation in variants:
        keras.utils.set_random_seed(seed)
        setup = _setup(init, seed)
        model = mlp(
            x_train.shape[1],
            classes,
            depth=depth,
            width=width,
            setup=setup,
            activation=activation,
        )
        setup.prepare(model, x_train)
        model.compile(
            keras.optimizers.Adam(learning_rate),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        stats = layer_stats(model, x_train[probe], y_train[probe])
        first, last = stats[0], stats[depth - 1]
        callbacks = []
        if reporter is not None:
            callbacks.append(
                keras.callbacks.LambdaCallback(
                    on_epoch_end=lambda epoch, logs, name=init: reporter.epoch(
                        f"{name}: epoch {epoch + 1}/{epochs}"
                    )
                )
            )
        history = model.fit(
            x_train,
            y_train,
            validation_data=(x_dev, y_dev),
            epochs=epochs,
            batch_size=batch_size,
            verbose=0,
            callbacks=callbacks,
        )
        unhealthy = last["saturated"] if activation != "relu" else last["dead"]
        rows.append(
            {
                "init": init,
                "activation": activation,
                "std_first": first["std"],
                "std_last": last["std"],
                "saturated_or_dead_last": unhealthy,
                "grad_norm_first": first["grad_norm"],
                "dev_accuracy": history.history["val_accuracy"][-1],
                "best_dev_accuracy": max(history.history["val_accuracy"]),
            }
        )
        if reporter is not None:
            reporter.run_done(
                f"{init}: best dev accuracy {rows[-1]['best_dev_accuracy']:.3f}", 0
            )
    return Report(
        rows, title=f"Initialisation study: {depth}-layer MLP, {epochs} epochs"
    )


def init_conclusion(table: Sequence[dict[str, Any]], classes: int = 10) -> str:
    """What the initialisation study's table shows, in sentences.

    Computed from the rows only: the variant with the best dev accuracy,
    which variants trained (best dev accuracy at least twice chance,
    `2 / classes`) and which did not, with the last layer's share of
    saturated or dead units and the first layer's gradient norm of each that
    did not, and whether He beat Glorot.

    Args:
        table: the rows of `init_study`.
        classes: number of classes (chance is `1 / classes`). Defaults to
            `10`.

    Returns:
        The conclusion, one sentence per line.

    Example:

    >>> rows = [
    ...     {"init": "N(0,1)", "saturated_or_dead_last": 0.97,
    ...      "grad_norm_first": 3e3, "best_dev_accuracy": 0.11},
    ...     {"init": "glorot", "saturated_or_dead_last": 0.0,
    ...      "grad_norm_first": 0.4, "best_dev_accuracy": 0.93},
    ...     {"init": "he", "saturated_or_dead_last": 0.4,
    ...      "grad_norm_first": 0.9, "best_dev_accuracy": 0.95}]
    >>> print(init_conclusion(rows))  # doctest: +NORMALIZE_WHITESPACE
    Best: he, 0.950 best dev accuracy.
    Trained (best dev accuracy >= 0.2): glorot (0.930), he (0.950).
    Did not train: N(0,1) (0.110; 97% of the last layer's units saturated or
    dead, first-layer gradient norm 3e+03).
    He beats Glorot by 0.020.
    """
    if not table:
        return "No variant was trained."
    threshold = 2.0 / classes
    best = max(table, key=lambda row: row["best_dev_accuracy"])
    lines = [
        f"Best: {best['init']}, {best['best_dev_accuracy']:.3f} best dev accuracy."
    ]
    trained = [r for r in table if r["best_dev_accuracy"] >= threshold]
    failed = [r for r in table if r["best_dev_accuracy"] < threshold]
    if trained:
        names = ", ".join(
            f"{r['init']} ({r['best_dev_accuracy']:.3f})" for r in trained
        )
        lines.append(f"Trained (best dev accuracy >= {threshold:.2g}): {names}.")
    if failed:
        names = ", ".join(
            f"{r['init']} ({r['best_dev_accuracy']:.3f}; "
            f"{r['saturated_or_dead_last']:.0%} of the last layer's units saturated "
            f"or dead, first-layer gradient norm {r['grad_norm_first']:.2g})"
            for r in failed
        )
        lines.append(f"Did not train: {names}.")
    scores = {r["init"]: r["best_dev_accuracy"] for r in table}
    if "he" in scores and "glorot" in scores:
        gap = scores["he"] - scores["glorot"]
        if gap > 0:
            lines.append(f"He beats Glorot by {gap:.3f}.")
        else:
            lines.append(f"He does not beat Glorot here ({-gap:.3f} behind).")
    return "\n".join(lines)
