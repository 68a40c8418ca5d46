"""The learning-rate range test (Smith 2017): `find_learning_rate`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from keras_tricks._extras import require
from keras_tricks._learning_rate import check_settable_lr, read_lr
from keras_tricks._validation import (
    check_choice,
    check_number,
    check_same_length,
    invalid,
)

SMOOTHING = 0.98
"""Weight of the past in the loss's moving average (as in fast.ai's finder)."""

RULES = ("steepest", "valley", "minimum/10")
"""The suggestion rules of `LRFinderResult.suggest`."""

MODES = ("exponential", "linear")
"""How the rate rises over a sweep (`find_learning_rate`'s `mode`)."""


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

    @property
    def suggestion(self) -> float | None:
        """`suggest()`: the steepest-descent rate, or `None`."""
        return self.suggest()

    def suggest(
        self, rule: str = "steepest", skip_begin: int = 0, skip_end: int = 0
    ) -> float | None:
        """A learning rate read off the sweep by one of three rules.

        Points whose smoothed loss is NaN or infinite are dropped first (as
        PyTorch Lightning's `suggestion` does), then the first `skip_begin`
        and the last `skip_end` of the remaining points; the rule sees the
        rest. With fewer than 3 points left the answer is `None`.

        - `"steepest"`: `steepest_descent` (the default; `suggestion`).
        - `"valley"`: fastai's default rule (`valley` in
          `fastai/callback/schedule.py`): the longest strictly decreasing
          subsequence of the losses is the valley; with `L` its length and
          `e` the index of its last point, the suggestion is the rate at
          index `e - L + floor(L / 3) + floor(L / 6)`, about halfway down
          the valley. `None` when the loss never decreases (fastai returns
          the last rate there).
        - `"minimum/10"`: a tenth of the rate at the lowest loss (fastai's
          `minimum`, Smith's rule of thumb).

        Args:
            rule: `"steepest"`, `"valley"` or `"minimum/10"`. Defaults to
                `"steepest"`.
            skip_begin: finite points left out at the start, >= 0. Defaults
                to `0`.
            skip_end: finite points left out at the end, >= 0. Defaults to
                `0`.

        Returns:
            The suggested rate as a float, or `None`.

        Raises:
            ValueError: for an unknown rule or a negative skip.
        """
        rule = check_choice("rule", rule, RULES)
        skip_begin = check_number("skip_begin", skip_begin, low=0, integer=True)
        skip_end = check_number("skip_end", skip_end, low=0, integer=True)
        finite = np.isfinite(self.losses) & np.isfinite(self.lrs) & (self.lrs > 0)
        lrs, losses = self.lrs[finite], self.losses[finite]
        end = len(losses) - skip_end
        lrs, losses = lrs[skip_begin:end], losses[skip_begin:end]
        if len(losses) < 3:
            return None
        if rule == "valley":
            return valley(lrs, losses)
        if rule == "minimum/10":
            return float(lrs[int(np.argmin(losses))]) / 10
        return steepest_descent(lrs, losses)

    def __repr__(self) -> str:
        return (
            f"LRFinderResult(steps={len(self.lrs)}, "
            f"lrs=[{self.lrs[0]:.3g} .. {self.lrs[-1]:.3g}], "
            f"suggestion={self.suggestion})"
        )

    def apply(
        self,
        model: keras.Model,
        rule: str = "steepest",
        skip_begin: int = 0,
        skip_end: int = 0,
    ) -> float:
        """Sets `model`'s optimizer learning rate to `suggest(...)`; returns it.

        `rule`, `skip_begin` and `skip_end` are `suggest`'s (by default the
        rate is `suggestion`).

        Works through wrapper optimizers (`LossScaleOptimizer`,
        `GradientClipping`) and sets every sub-optimizer of a
        `keras.optimizers.MultiOptimizer`.

        Raises:
            ValueError: the sweep was too short to suggest a rate, or `model`
                is not compiled.
            TypeError: the optimizer's learning rate is a schedule.
        """
        rate = self.suggest(rule, skip_begin, skip_end)
        if rate is None:
            finite = int(np.isfinite(self.losses).sum())
            raise ValueError(
                f"LRFinderResult.apply(): the range test made no suggestion "
                f"(rule={rule!r}: {len(self.lrs)} steps, {finite} with a finite "
                "loss, at least 3 are needed after skipping). Run "
                "find_learning_rate with more steps or a lower min_lr."
            )
        if getattr(model, "optimizer", None) is None:
            raise invalid(
                "model", model, "a compiled model", fix="Call model.compile()"
            )
        for _, holder in check_settable_lr("LRFinderResult.apply", model.optimizer):
            holder.learning_rate = rate
        return rate

    def loss_range(self) -> tuple[float, float]:
        """The y-range of `plot()`: the losses up to their minimum, plus 5%.

        The divergent tail after the minimum (often orders of magnitude
        larger) is left out, so the descent the suggestion comes from is
        readable.
        """
        losses = self.losses[np.isfinite(self.losses)]
        shown = losses[: int(np.argmin(losses)) + 1]
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
        if np.isfinite(self.losses).any():
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
    one lucky batch looks like a steep descent. Steps whose loss is NaN or
    infinite are dropped first; `None` when fewer than 3 steps remain.
    """
    lrs, losses = np.asarray(lrs, "float64"), np.asarray(losses, "float64")
    finite = np.isfinite(losses)
    lrs, losses = lrs[finite], losses[finite]
    end = int(np.argmin(losses)) + 1 if len(losses) else 0
    if end < 3:
        end = len(losses)
    if end < 3:
        return None
    start = min(len(losses) // 10, end - 3)
    slopes = np.gradient(losses[start:end], np.log(lrs[start:end]))
    return float(lrs[start + int(np.argmin(slopes))])


def valley(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """fastai's `valley` rule: about halfway down the longest valley.

    The valley is the longest strictly decreasing subsequence of `losses`
    (the first one to reach that length); with `L` its length and `e` the
    index of its last point, the rate at index `e - L + floor(L / 3) +
    floor(L / 6)` is returned, clipped at 0. `None` when no loss is lower
    than an earlier one (fastai returns the last rate there).

    Reference:
        fastai `fastai/callback/schedule.py` (`valley`), 2021.
    """
    losses = np.asarray(losses, "float64")
    # longest[i]: length of the longest strictly decreasing run ending at i.
    longest = np.ones(len(losses), dtype=int)
    for i in range(1, len(losses)):
        higher = losses[:i] > losses[i]
        if higher.any():
            longest[i] = longest[:i][higher].max() + 1
    length = int(longest.max()) if len(losses) else 0
    if length < 2:
        return None
    end = int(np.argmax(longest))  # the first index reaching the maximum
    index = max(end - length + length // 3 + length // 6, 0)
    return float(lrs[index])


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
    stop_factor: float | None = 4.0,
    mode: str = "exponential",
) -> LRFinderResult:
    """Learning-rate range test: train briefly with an exponentially rising rate.

    Step `i` (of `steps`) trains one batch with the rate

        lr_i = min_lr * (max_lr / min_lr) ** (i / (steps - 1))

    (`mode="linear"`: `lr_i = min_lr + (max_lr - min_lr) * i / (steps - 1)`)
    and records the loss, smoothed by a bias-corrected moving average
    (`s_i = 0.98 * s_{i-1} + 0.02 * loss_i`, divided by `1 - 0.98 ** (i+1)`).
    The sweep stops early once the smoothed loss exceeds `stop_factor` times
    the best one, and always once it is NaN or infinite (every later average
    would be too). Afterwards the model's weights (trainable and
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
            best, > 1; `None` runs all `steps` (up to a non-finite loss).
            Defaults to `4.0`.
        mode: how the rate rises, `"exponential"` or `"linear"`. Defaults to
            `"exponential"`.

    Returns:
        An `LRFinderResult` with `lrs`, `losses`, `raw_losses`, `suggestion`,
        `suggest(rule)` (`"steepest"`, `"valley"`, `"minimum/10"`),
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
    sweep = _Sweep(min_lr, max_lr, steps, stop_factor=stop_factor, mode=mode)
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(model, "compiled", False):
        raise invalid("model", model, "a compiled model", fix="Call model.compile()")
    if isinstance(x, np.ndarray) and (y is None or len(x) < batch_size):
        raise invalid("y", y, f"targets, and at least batch_size={batch_size} examples")
    holders = [h for _, h in check_settable_lr("find_learning_rate", optimizer)]
    snapshot = _Snapshot(model, holders)
    batches = _batches(x, y, batch_size)
    try:
        for i in range(steps):
            for holder in holders:
                holder.learning_rate = sweep.rate(i)
            xb, yb = next(batches)
            loss = float(model.train_on_batch(xb, yb, return_dict=True)["loss"])
            if not sweep.record(loss):
                break
    finally:
        snapshot.restore()
        model.reset_metrics()
    return sweep.result()


class _Sweep:
    """The rates of a range test, and the smoothed losses it has seen so far.

    Shared by `find_learning_rate` and the `LearningRateFinder` callback.
    `rate(i)` is step `i`'s rate; `record(loss)` adds a step's loss and says
    whether to go on; `result()` returns the `LRFinderResult`. Arguments are
    validated here, as `find_learning_rate` documents them.
    """

    def __init__(
        self,
        min_lr: float,
        max_lr: float,
        steps: int,
        *,
        stop_factor: float | None = 4.0,
        mode: str = "exponential",
        steps_name: str = "steps",
        stop_name: str = "stop_factor",
    ) -> None:
        self.min_lr = check_number("min_lr", min_lr, low=0, low_open=True)
        self.max_lr = check_number("max_lr", max_lr, low=0, low_open=True)
        if self.min_lr >= self.max_lr:
            raise invalid(
                "min_lr", min_lr, f"a rate below max_lr={max_lr}", fix="Swap them"
            )
        self.steps = check_number(steps_name, steps, low=2, integer=True)
        self.stop_factor = (
            None
            if stop_factor is None
            else check_number(stop_name, stop_factor, low=1, low_open=True)
        )
        self.mode = check_choice("mode", mode, MODES)
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.raw_losses: list[float] = []
        self._average, self._best = 0.0, math.inf

    def rate(self, i: int) -> float:
        """The rate of step `i` (0-based) of `steps`."""
        fraction = i / (self.steps - 1)
        if self.mode == "linear":
            return self.min_lr + (self.max_lr - self.min_lr) * fraction
        return self.min_lr * (self.max_lr / self.min_lr) ** fraction

    def record(self, loss: float) -> bool:
        """Adds the loss of the next step; `False` once the sweep should stop."""
        i = len(self.lrs)
        self._average = SMOOTHING * self._average + (1 - SMOOTHING) * loss
        smoothed = self._average / (1 - SMOOTHING ** (i + 1))
        if not math.isfinite(smoothed):
            return False
        self.lrs.append(self.rate(i))
        self.raw_losses.append(loss)
        self.losses.append(smoothed)
        self._best = min(self._best, smoothed)
        diverged = self.stop_factor is not None and (
            smoothed > self.stop_factor * self._best
        )
        return not diverged and len(self.lrs) < self.steps

    def result(self) -> LRFinderResult:
        """The steps recorded so far as an `LRFinderResult`."""
        return LRFinderResult(self.lrs, self.losses, self.raw_losses)


class _Snapshot:
    """A copy of a model's weights, its optimizer's variables and rates.

    `restore()` puts them back exactly (trainable and non-trainable weights,
    the optimizer's slots and iteration count, the learning rate of every
    holder in `holders`). Builds the optimizer first if it is not built.
    """

    def __init__(self, model: keras.Model, holders: list[Any]) -> None:
        self.model, self.holders = model, holders
        self.rates = [read_lr(holder) for holder in holders]
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self.weights = model.get_weights()
        self.optimizer_state = [
            keras.ops.convert_to_numpy(v) for v in optimizer.variables
        ]

    def restore(self) -> None:
        """Writes the copied values back."""
        self.model.set_weights(self.weights)
        variables = self.model.optimizer.variables
        for variable, value in zip(variables, self.optimizer_state, strict=True):
            variable.assign(value)
        for holder, rate in zip(self.holders, self.rates, strict=True):
            holder.learning_rate = rate
