"""The learning-rate range test as a callback: `LearningRateFinder`."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import keras
import numpy as np

from keras_tricks._validation import check_bool, check_choice, check_number, invalid
from keras_tricks.callbacks._base import TrainingCallback, check_settable_lr
from keras_tricks.lr_finder import RULES, LRFinderResult, _Snapshot, _Sweep


@keras.saving.register_keras_serializable(package="keras_tricks")
class LearningRateFinder(TrainingCallback):
    """Runs the range test on the first steps of `fit`, then sets the rate.

    PyTorch Lightning's `LearningRateFinder` callback, on Keras's `fit`: the
    first `num_training_steps` steps of the fit are a range test (the rate of
    step `i` as in `keras_tricks.lr_finder.find_learning_rate`, the loss of
    each step's batch recorded and smoothed, the sweep stopped early when the
    smoothed loss exceeds `early_stop_threshold` times the best one). Then
    the model's weights (trainable and not), the optimizer's variables
    (slots and iteration count) and its learning rate are restored exactly
    to their values at the start of `fit`, the compiled metrics are reset,
    and, with `update_attr=True`, the optimizer's rate is set to
    `result.suggest(rule, skip_begin, skip_end)`. Training then goes on from
    the same state as if the sweep had not happened, at the suggested rate.
    Afterwards `result` holds the `LRFinderResult` and `suggestion` the rate
    (`None` if the rule found none: the rate is left as it was, with a
    warning).

    The sweep uses the fit's own batches, as Lightning's uses the training
    data loader; Keras gives callbacks no access to the data before the
    first step, so the sweep takes the place of the first
    `num_training_steps` steps of the first epoch, which therefore trains on
    that many batches fewer (add them to `steps_per_epoch` or an epoch if
    that matters). The logs of the first epoch cover the steps after the
    sweep. `num_training_steps` must be below the number of steps of an
    epoch when Keras knows it. With `steps_per_execution > 1`, a step of the
    sweep is one execution. While the sweep runs, its batch hooks read the
    loss and set the rate at every step; afterwards they do nothing.

    Args:
        min_lr: the first rate, > 0. Defaults to `1e-8` (Lightning's).
        max_lr: the last rate, > `min_lr`. Defaults to `1.0` (Lightning's).
        num_training_steps: the length of the sweep, >= 2. Defaults to `100`.
        mode: `"exponential"` or `"linear"` rise. Defaults to
            `"exponential"`.
        early_stop_threshold: stop the sweep when the smoothed loss exceeds
            this multiple of the best, > 1; `None` never stops early.
            Defaults to `4.0`.
        rule: the suggestion rule, `"steepest"`, `"valley"` or
            `"minimum/10"` (see `LRFinderResult.suggest`). Defaults to
            `"steepest"`.
        skip_begin: points left out at the start, >= 0. Defaults to `0`.
        skip_end: points left out at the end, >= 0. Defaults to `0`.
        update_attr: set the optimizer's rate to the suggestion. Defaults to
            `True`.
        verbose: 1 prints the suggestion. Defaults to `0`.

    Raises:
        ValueError: for an argument out of range; at the start of `fit`, when
            an epoch has no more steps than `num_training_steps`.
        TypeError: at the start of `fit`, if the optimizer's learning rate is
            a schedule.

    Example:

    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(), "mse")
    >>> x = np.random.default_rng(0).normal(size=(512, 4))
    >>> y = x.sum(axis=1, keepdims=True)
    >>> finder = LearningRateFinder(min_lr=1e-4, num_training_steps=30)
    >>> _ = model.fit(x, y, batch_size=8, epochs=1, callbacks=[finder], verbose=0)
    >>> len(finder.result.lrs) <= 30
    True
    >>> bool(finder.suggestion == finder.result.suggestion)
    True

    Reference:
        Smith, "Cyclical Learning Rates for Training Neural Networks", WACV
        2017.
    """

    _state_attributes: ClassVar[tuple[str, ...]] = ("suggestion",)

    def __init__(
        self,
        min_lr: float = 1e-8,
        max_lr: float = 1.0,
        num_training_steps: int = 100,
        mode: str = "exponential",
        early_stop_threshold: float | None = 4.0,
        rule: str = "steepest",
        skip_begin: int = 0,
        skip_end: int = 0,
        update_attr: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        sweep = self._new_sweep(
            min_lr, max_lr, num_training_steps, mode, early_stop_threshold
        )
        self.min_lr, self.max_lr = sweep.min_lr, sweep.max_lr
        self.num_training_steps = sweep.steps
        self.mode, self.early_stop_threshold = sweep.mode, sweep.stop_factor
        self.rule = check_choice("rule", rule, RULES)
        self.skip_begin = check_number("skip_begin", skip_begin, low=0, integer=True)
        self.skip_end = check_number("skip_end", skip_end, low=0, integer=True)
        self.update_attr = check_bool("update_attr", update_attr)
        self.verbose = check_number("verbose", verbose, low=0, integer=True)

    @staticmethod
    def _new_sweep(
        min_lr: float,
        max_lr: float,
        steps: int,
        mode: str,
        threshold: float | None,
    ) -> _Sweep:
        return _Sweep(
            min_lr,
            max_lr,
            steps,
            stop_factor=threshold,
            mode=mode,
            steps_name="num_training_steps",
            stop_name="early_stop_threshold",
        )

    def reset_state(self) -> None:
        self.result: LRFinderResult | None = None
        self.suggestion: float | None = None
        self._sweep: _Sweep | None = None
        self._snapshot: _Snapshot | None = None
        self._holders: list[Any] = []

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "num_training_steps": self.num_training_steps,
            "mode": self.mode,
            "early_stop_threshold": self.early_stop_threshold,
            "rule": self.rule,
            "skip_begin": self.skip_begin,
            "skip_end": self.skip_end,
            "update_attr": self.update_attr,
            "verbose": self.verbose,
        }

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        steps = (self.params or {}).get("steps")
        if steps is not None and steps <= self.num_training_steps:
            raise invalid(
                "num_training_steps",
                self.num_training_steps,
                f"fewer steps than one epoch of this fit has ({steps})",
                fix="Lower num_training_steps, or use more batches per epoch",
            )
        model = self.model
        holders = check_settable_lr("LearningRateFinder", model.optimizer)
        self._holders = [holder for _, holder in holders]
        self._snapshot = _Snapshot(model, self._holders)
        self._sweep = self._new_sweep(
            self.min_lr,
            self.max_lr,
            self.num_training_steps,
            self.mode,
            self.early_stop_threshold,
        )

    def on_train_batch_begin(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        if self._sweep is None:
            return
        # `self.model` first, as in `_finish` (the JAX state).
        model = self.model
        model.reset_metrics()  # so the step's logged loss is its batch's loss
        rate = self._sweep.rate(len(self._sweep.lrs))
        for holder in self._holders:
            holder.learning_rate = rate

    def on_train_batch_end(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        if self._sweep is None:
            return
        loss = float(np.asarray((logs or {})["loss"]))
        if not self._sweep.record(loss):
            self._finish()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._sweep is not None:
            warnings.warn(
                f"LearningRateFinder: the epoch ended after {len(self._sweep.lrs)} "
                f"of num_training_steps={self.num_training_steps} sweep steps; "
                "this epoch's logs come from the sweep.",
                stacklevel=2,
            )
            self._finish()

    def _finish(self) -> None:
        sweep, snapshot = self._sweep, self._snapshot
        if sweep is None or snapshot is None:
            return
        self._sweep = self._snapshot = None
        # `self.model` first: on JAX it writes the trainer's state into the
        # variables, and the next step reads them back, restored.
        model = self.model
        snapshot.restore()
        model.reset_metrics()
        self.result = sweep.result()
        self.suggestion = self.result.suggest(self.rule, self.skip_begin, self.skip_end)
        if self.suggestion is None:
            warnings.warn(
                f"LearningRateFinder: no suggestion (rule={self.rule!r}, "
                f"{len(self.result.lrs)} steps recorded); the learning rate is "
                "left as it was. Use more num_training_steps or a lower min_lr.",
                stacklevel=3,
            )
            return
        if self.update_attr:
            for holder in self._holders:
                holder.learning_rate = self.suggestion
        if self.verbose:
            print(f"LearningRateFinder: learning rate set to {self.suggestion:.3g}")
