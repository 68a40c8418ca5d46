"""ReduceLROnPlateau that also works on top of a learning-rate schedule."""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np
from keras.optimizers.schedules import LearningRateSchedule as Schedule

from keras_tricks import _keras_compat
from keras_tricks._validation import check_number, check_schedule
from keras_tricks.callbacks import _monitor
from keras_tricks.callbacks._base import MonitoringCallback, rate_holders, read_lr


@keras.saving.register_keras_serializable(package="keras_tricks")
class ScaledSchedule(Schedule):
    """A learning-rate schedule times a factor held in a variable.

    `lr(step) = max(schedule(step) * factor, min(schedule(step), min_lr))`:
    the wrapped schedule scaled by `factor`, but never pushed below `min_lr`
    by the scaling (nor lifted above the schedule's own value). `factor` is a
    non-trainable `keras.Variable`, so changing it never retraces a compiled
    (or `jit_compile`d) train step; `get_config` stores its current value, so
    a saved model keeps its reduced rate.

    Args:
        schedule: the wrapped `LearningRateSchedule` (or its config).
        factor: initial factor in (0, 1]. Defaults to `1.0`.
        min_lr: floor of the scaled rate. Defaults to `0.0`.
    """

    def __init__(
        self,
        schedule: Schedule | dict[str, Any],
        factor: float = 1.0,
        min_lr: float = 0.0,
    ) -> None:
        self.schedule = check_schedule(schedule)
        self.min_lr = check_number("min_lr", min_lr, low=0)
        factor = check_number("factor", factor, low=0, high=1, low_open=True)
        self.factor = keras.Variable(
            factor, dtype="float32", trainable=False, name="lr_factor"
        )

    def __call__(self, step: Any) -> Any:
        base = keras.ops.cast(self.schedule(step), "float32")
        floor = keras.ops.minimum(base, self.min_lr)
        return keras.ops.maximum(base * self.factor, floor)

    def get_config(self) -> dict[str, Any]:
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "factor": float(keras.ops.convert_to_numpy(self.factor)),
            "min_lr": self.min_lr,
        }


@keras.saving.register_keras_serializable(package="keras_tricks")
class ReduceLROnPlateau(MonitoringCallback):
    """Reduces the learning rate when a metric has stopped improving.

    Keras's arguments (in Keras's order) and rule: when `monitor` has not
    improved by more than `min_delta` for `patience` epochs,
    `lr <- max(lr * factor, min_lr)`, then wait `cooldown` epochs before
    counting again. A rate already at the floor is left alone (compared in
    float32, the optimizer's precision, as Keras does): no reduction, no
    message, no new cooldown. With a `keras.optimizers.MultiOptimizer`, every
    sub-optimizer is reduced, and the logs get one `learning_rate_<name>`
    per sub-optimizer (Keras's keys); otherwise the current rate is logged as
    `learning_rate`. A monitor missing from the logs gets one warning per
    `fit` listing the logged keys (Keras warns every epoch), at the first
    epoch end without it, or, for a `val_` monitor on epochs without
    validation (`validation_freq > 1`), at the end of training if it never
    appeared. A value logged as a one-element array is used as a number.

    Unlike Keras's (which raises `TypeError`, tensorflow/tensorflow#36612), it
    also works when the optimizer's learning rate is a
    `LearningRateSchedule` (warmup, cosine, ...): at the start of `fit` it
    wraps the schedule in a `ScaledSchedule` and reduces that wrapper's
    `factor` instead, so the schedule keeps its shape and is scaled down. The
    wrapper is installed before the train function is traced (or the
    function is rebuilt once, when it was traced in an earlier `fit`), lives
    in the optimizer, is saved with the model, and is reused by later `fit`
    calls.

    Args:
        monitor: quantity to monitor. Defaults to `"val_loss"`.
        factor: multiplier of the rate on a plateau, in (0, 1).
            Defaults to `0.1`.
        patience: epochs without improvement before reducing. Defaults to `10`.
        verbose: 1 prints every reduction. Defaults to `0`.
        mode: `"auto"`, `"min"` or `"max"`. Defaults to `"auto"`.
        min_delta: smallest change counted as an improvement. Defaults to
            `1e-4`.
        cooldown: epochs to wait after a reduction. Defaults to `0`.
        min_lr: lower bound on the rate. Defaults to `0.0`.

    Example:

    >>> schedule = keras.optimizers.schedules.CosineDecay(
    ...     0.0, decay_steps=100, warmup_target=0.1, warmup_steps=10)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(schedule), "mse")
    >>> reduce = ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=10.0)
    >>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=3,
    ...                     batch_size=4, verbose=0, callbacks=[reduce])
    >>> reduce.scale  # two plateaus: the schedule is scaled by 0.5 ** 2
    0.25
    >>> [round(lr, 4) for lr in history.history["learning_rate"]]
    [0.02, 0.04, 0.03]
    """

    _state_attributes = ("best", "wait", "cooldown_counter", "scale")

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.factor = check_number(
            "factor", factor, low=0, high=1, low_open=True, high_open=True
        )
        self.patience = check_number("patience", patience, low=0, integer=True)
        self.verbose = check_number("verbose", verbose, low=0, integer=True)
        self.cooldown = check_number("cooldown", cooldown, low=0, integer=True)
        self.min_lr = check_number("min_lr", min_lr, low=0)
        self._holders: list[tuple[str, Any, ScaledSchedule | None]] = []
        self._seen = self._warned = False

    def reset_state(self) -> None:
        self.best: float | None = None
        self.wait = 0
        self.cooldown_counter = 0
        self.scale: float | None = None

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "factor": self.factor,
            "patience": self.patience,
            "verbose": self.verbose,
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
        }

    def set_state(self, state: dict[str, Any], arrays: list[np.ndarray]) -> None:
        super().set_state(state, arrays)
        self._assign_scale()

    def _assign_scale(self) -> None:
        for _, _, schedule in self._holders:
            if schedule is not None and self.scale is not None:
                schedule.factor.assign(self.scale)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self._seen = self._warned = False
        self._holders = []
        installed = False
        for key, optimizer in rate_holders(self.model.optimizer):
            learning_rate = _keras_compat.learning_rate_object(optimizer)
            schedule = None
            if isinstance(learning_rate, ScaledSchedule):
                schedule = learning_rate
            elif isinstance(learning_rate, Schedule):
                schedule = ScaledSchedule(learning_rate, min_lr=self.min_lr)
                optimizer.learning_rate = schedule
                installed = True
            if schedule is not None and self.scale is None:
                self.scale = float(keras.ops.convert_to_numpy(schedule.factor))
            self._holders.append((key, optimizer, schedule))
        if installed and getattr(self.model, "train_function", None) is not None:
            self.model.make_train_function(force=True)
        self._assign_scale()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        self.last_epoch = epoch
        for key, optimizer, _ in self._holders:
            logs[key] = read_lr(optimizer)
        if self.monitor not in logs:
            if not _monitor.validation_skipped(self.monitor, logs):
                self._warn_missing(logs)
            return
        self._seen = True
        current = self._monitored_value(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.is_improvement(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience and self._reduce(epoch):
            self.cooldown_counter = self.cooldown
            self.wait = 0

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_end(logs)
        if not self._seen and self.last_epoch >= 0:
            self._warn_missing(logs or {})

    def _warn_missing(self, logs: dict[str, Any]) -> None:
        if not self._warned:
            self._warned = True
            message = _monitor.unavailable(type(self).__name__, self.monitor, logs)
            warnings.warn(
                f"{message}. The learning rate is never reduced.", stacklevel=3
            )

    def _reduce(self, epoch: int) -> bool:
        """Reduces every rate above `min_lr` (Keras's float32 test); any reduced?"""
        floor = np.float32(self.min_lr)
        above = [
            (key, optimizer, schedule)
            for key, optimizer, schedule in self._holders
            if read_lr(optimizer) > floor
        ]
        if any(schedule is not None for _, _, schedule in above):
            self.scale = (self.scale or 1.0) * self.factor
            self._assign_scale()
        for key, optimizer, schedule in above:
            if schedule is None:
                new_lr = max(read_lr(optimizer) * self.factor, self.min_lr)
                optimizer.learning_rate = new_lr
            else:
                new_lr = read_lr(optimizer)
            if self.verbose:
                name = "" if key == "learning_rate" else f" {optimizer.name}"
                print(
                    f"Epoch {epoch + 1}: ReduceLROnPlateau reducing{name} "
                    f"learning rate to {new_lr:.4g}."
                )
        return bool(above)
