"""The learning-rate range test (Smith 2017)."""

import math

import keras
import numpy as np

from keras_tricks._validation import check_number, invalid
from keras_tricks.callbacks.epoch_decay import check_settable_lr

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
    """

    def __init__(self, lrs, losses, raw_losses):
        self.lrs = np.asarray(lrs, dtype="float64")
        self.losses = np.asarray(losses, dtype="float64")
        self.raw_losses = np.asarray(raw_losses, dtype="float64")
        self.suggestion = steepest_descent(self.lrs, self.losses)

    def __repr__(self):
        return (
            f"LRFinderResult(steps={len(self.lrs)}, "
            f"lrs=[{self.lrs[0]:.3g} .. {self.lrs[-1]:.3g}], "
            f"suggestion={self.suggestion})"
        )

    def plot(self, ax=None):
        """Plots the smoothed loss against the rate (log axis); returns the axes.

        Needs matplotlib (`pip install matplotlib`).
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as error:
            raise ImportError(
                "LRFinderResult.plot() needs matplotlib: pip install matplotlib"
            ) from error
        if ax is None:
            _, ax = plt.subplots()
        ax.plot(self.lrs, self.losses, label="smoothed loss")
        if self.suggestion is not None:
            ax.axvline(self.suggestion, linestyle="--", color="gray")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        return ax


def steepest_descent(lrs, losses):
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


def _batches(x, y, batch_size):
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
    model,
    x,
    y=None,
    *,
    min_lr=1e-7,
    max_lr=10.0,
    steps=100,
    batch_size=32,
    stop_factor=4.0,
):
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
        An `LRFinderResult` with `lrs`, `losses`, `raw_losses`, `suggestion`
        and `plot()`.

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

    Reference:
        Smith, "Cyclical Learning Rates for Training Neural Networks", WACV
        2017.
    """
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
    original_lr = check_settable_lr("find_learning_rate", optimizer)
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    weights = model.get_weights()
    optimizer_state = [keras.ops.convert_to_numpy(v) for v in optimizer.variables]

    lrs, losses, raw = [], [], []
    average, best = 0.0, math.inf
    batches = _batches(x, y, batch_size)
    try:
        for i in range(steps):
            lr = min_lr * (max_lr / min_lr) ** (i / (steps - 1))
            optimizer.learning_rate = lr
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
        optimizer.learning_rate = original_lr
        model.reset_metrics()
    return LRFinderResult(lrs, losses, raw)
