"""The learning-rate range test (Smith 2017): `find_learning_rate`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from keras_tricks._extras import require
from keras_tricks._validation import check_number, check_same_length, invalid
from keras_tricks.callbacks._base import check_settable_lr, read_lr

SMOOTHING = 0.98
"""Weight of the past in the loss's moving average (as in fast.ai's finder)."""


class LRFinderResult:
    """What `find_learning_rate` measured.

    Attributes:
        lrs: the learning rate of every step taken (increasing).
        losses: the smoothed training loss after each step.
        raw_losses: the loss of each step's batch.
        suggestion: the rate where the smoothed loss falls fastest, i.e. the
            minimum of `d loss / d log(lr)` over the steps before the loss
            reaches its minimum, skipping the first tenth of the sweep (where
            the moving average has seen too few batches to be more than
            noise); `None` with fewer than 3 steps.

    Example:

    >>> lrs = np.logspace(-4, 0, 9)
    >>> result = LRFinderResult(lrs, [2.3, 2.3, 2.2, 1.8, 1.2, 0.9, 0.8, 1.5, 6.0],
    ...                         raw_losses=np.zeros(9))
    >>> bool(result.suggestion == lrs[3])  # steepest descent before the minimum
    True
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(), "mse")
    >>> round(result.apply(model), 5)
    0.00316
    >>> round(float(model.optimizer.learning_rate), 5)
    0.00316
    """

    def __init__(self, lrs: Any, losses: Any, raw_losses: Any) -> None:
        self.lrs = np.asarray(lrs, dtype="float64")
        self.losses = np.asarray(losses, dtype="float64")
        self.raw_losses = np.asarray(raw_losses, dtype="float64")
        self.suggestion = steepest_descent(self.lrs, self.losses)

    def __repr__(self) -> str:
        return (
            f"LRFinderResult(steps={len(self.lrs)}, "
            f"lrs=[{self.lrs[0]:.3g} .. {self.lrs[-1]:.3g}], "
            f"suggestion={self.suggestion})"
        )

    def apply(self, model: keras.Model) -> float:
        """Sets `model`'s optimizer learning rate to `suggestion`; returns it.

        Works through wrapper optimizers (`LossScaleOptimizer`,
        `GradientClipping`) and sets every sub-optimizer of a
        `keras.optimizers.MultiOptimizer`.

        Raises:
            ValueError: the sweep was too short to suggest a rate, or `model`
                is not compiled.
            TypeError: the optimizer's learning rate is a schedule.
        """
        if self.suggestion is None:
            raise ValueError(
                "LRFinderResult.apply(): the range test made no suggestion "
                f"({len(self.lrs)} steps, at least 3 are needed). Run "
                "find_learning_rate with more steps or a lower min_lr."
            )
        if getattr(model, "optimizer", None) is None:
            raise invalid(
                "model", model, "a compiled model", fix="Call model.compile()"
            )
        for _, holder in check_settable_lr("LRFinderResult.apply", model.optimizer):
            holder.learning_rate = self.suggestion
        return self.suggestion

    def loss_range(self) -> tuple[float, float]:
        """The y-range of `plot()`: the losses up to their minimum, plus 5%.

        The divergent tail after the minimum (often orders of magnitude
        larger) is left out, so the descent the suggestion comes from is
        readable.
        """
        shown = self.losses[: int(np.argmin(self.losses)) + 1]
        low, high = float(shown.min()), float(shown.max())
        margin = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
        return low - margin, high + margin

    def plot(self, ax: Any = None) -> Any:
        """Plots the smoothed loss against the rate (log axis); returns the axes.

        The y-range is `loss_range()` (the divergent tail is trimmed from
        it); the suggestion is drawn as a dashed line and a dot, labelled
        with its value. Needs matplotlib (`pip install "keras-tricks[lab]"`).
        """
        plt = require("matplotlib.pyplot", "lab", "LRFinderResult.plot()")
        if ax is None:
            _, ax = plt.subplots()
        ax.plot(self.lrs, self.losses, label="smoothed loss")
        if len(self.losses):
            ax.set_ylim(*self.loss_range())
        if self.suggestion is not None:
            index = int(np.flatnonzero(self.lrs == self.suggestion)[0])
            label = f"suggestion: lr = {self.suggestion:.3g}"
            ax.axvline(self.suggestion, linestyle="--", color="gray")
            ax.plot(self.suggestion, self.losses[index], "o", color="red", label=label)
            ax.annotate(
                f"{self.suggestion:.3g}",
                (self.suggestion, self.losses[index]),
                textcoords="offset points",
                xytext=(6, 6),
            )
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.legend()
        return ax


def steepest_descent(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """The rate where `losses` falls fastest against `log(lr)`.

    Only the steps up to the lowest loss count: past the minimum the loss is
    diverging, and its drops there are noise. The first tenth of the steps is
    skipped too: the moving average has seen only a few batches there, and
    one lucky batch looks like a steep descent.
    """
    end = int(np.argmin(losses)) + 1 if len(losses) else 0
    if end < 3:
        end = len(losses)
    if end < 3:
        return None
    start = min(len(losses) // 10, end - 3)
    slopes = np.gradient(losses[start:end], np.log(lrs[start:end]))
    return float(lrs[start + int(np.argmin(slopes))])


def _batches(x: Any, y: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
    """Endless `(x, y)` batches: a shuffled pass over arrays, or a dataset."""
    if y is None and not isinstance(x, np.ndarray):
        while True:
            yield from x
    x, y = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(0)
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(x) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            yield x[index], y[index]


def find_learning_rate(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    batch_size: int = 32,
    stop_factor: float = 4.0,
) -> LRFinderResult:
    """Learning-rate range test: train briefly with an exponentially rising rate.

    Step `i` (of `steps`) trains one batch with the rate

        lr_i = min_lr * (max_lr / min_lr) ** (i / (steps - 1))

    and records the loss, smoothed by a bias-corrected moving average
    (`s_i = 0.98 * s_{i-1} + 0.02 * loss_i`, divided by `1 - 0.98 ** (i+1)`).
    The sweep stops early once the smoothed loss exceeds `stop_factor` times
    the best one (or is NaN). Afterwards the model's weights (trainable and
    not), the optimizer's variables (moments, iteration count) and its
    learning rate are restored exactly as they were, so the model can be
    trained with the chosen rate right away. The suggested rate is where the
    smoothed loss decreases fastest per decade of learning rate.

    Args:
        model: a compiled, built `keras.Model` whose optimizer has a float
            learning rate.
        x: inputs (array), or a `tf.data.Dataset` of `(x, y)` batches with
            `y=None`.
        y: targets for array inputs. Defaults to `None`.
        min_lr: first rate, > 0. Defaults to `1e-7`.
        max_lr: last rate, > `min_lr`. Defaults to `10.0`.
        steps: number of steps (batches), >= 2. Defaults to `100`.
        batch_size: batch size for array inputs. Defaults to `32`.
        stop_factor: stop when the smoothed loss exceeds this multiple of the
            best, > 1. Defaults to `4.0`.

    Returns:
        An `LRFinderResult` with `lrs`, `losses`, `raw_losses`, `suggestion`,
        `apply(model)` (sets the optimizer's rate to the suggestion) and
        `plot()`.

    Raises:
        ValueError: for arguments out of range or an uncompiled model.
        TypeError: if the optimizer's learning rate is a schedule.

    Example:

    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(256, 4)); y = x.sum(axis=1, keepdims=True)
    >>> result = find_learning_rate(model, x, y, min_lr=1e-4, max_lr=1.0,
    ...                             steps=50)
    >>> 1e-4 <= result.suggestion <= 1.0
    True
    >>> result.apply(model) == result.suggestion
    True

    Reference:
        Smith, "Cyclical Learning Rates for Training Neural Networks", WACV
        2017.
    """
    check_same_length(x, y)
    min_lr = check_number("min_lr", min_lr, low=0, low_open=True)
    max_lr = check_number("max_lr", max_lr, low=0, low_open=True)
    if min_lr >= max_lr:
        raise invalid(
            "min_lr", min_lr, f"a rate below max_lr={max_lr}", fix="Swap them"
        )
    steps = check_number("steps", steps, low=2, integer=True)
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    stop_factor = check_number("stop_factor", stop_factor, low=1, low_open=True)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(model, "compiled", False):
        raise invalid("model", model, "a compiled model", fix="Call model.compile()")
    if isinstance(x, np.ndarray) and (y is None or len(x) < batch_size):
        raise invalid("y", y, f"targets, and at least batch_size={batch_size} examples")
    holders = [h for _, h in check_settable_lr("find_learning_rate", optimizer)]
    original_lrs = [read_lr(holder) for holder in holders]
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    weights = model.get_weights()
    optimizer_state = [keras.ops.convert_to_numpy(v) for v in optimizer.variables]

    lrs: list[float] = []
    losses: list[float] = []
    raw: list[float] = []
    average, best = 0.0, math.inf
    batches = _batches(x, y, batch_size)
    try:
        for i in range(steps):
            lr = min_lr * (max_lr / min_lr) ** (i / (steps - 1))
            for holder in holders:
                holder.learning_rate = lr
            xb, yb = next(batches)
            loss = float(model.train_on_batch(xb, yb, return_dict=True)["loss"])
            average = SMOOTHING * average + (1 - SMOOTHING) * loss
            smoothed = average / (1 - SMOOTHING ** (i + 1))
            if not math.isfinite(smoothed):
                break
            lrs.append(lr)
            raw.append(loss)
            losses.append(smoothed)
            best = min(best, smoothed)
            if smoothed > stop_factor * best:
                break
    finally:
        model.set_weights(weights)
        for variable, value in zip(optimizer.variables, optimizer_state, strict=True):
            variable.assign(value)
        for holder, original in zip(holders, original_lrs, strict=True):
            holder.learning_rate = original
        model.reset_metrics()
    return LRFinderResult(lrs, losses, raw)
