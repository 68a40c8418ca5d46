"""ReduceLROnPlateau that also works on top of a learning-rate schedule."""

import keras

from keras_tricks import _keras_compat
from keras_tricks._validation import check_choice, check_number, invalid
from keras_tricks.callbacks._base import (
    MonitorMixin,
    TrainingCallback,
    current_lr,
    innermost_optimizer,
)

Schedule = keras.optimizers.schedules.LearningRateSchedule


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

    def __init__(self, schedule, factor=1.0, min_lr=0.0):
        if isinstance(schedule, dict):
            schedule = keras.optimizers.schedules.deserialize(schedule)
        if not isinstance(schedule, Schedule):
            raise invalid("schedule", schedule, "a LearningRateSchedule", TypeError)
        self.schedule = schedule
        self.min_lr = check_number("min_lr", min_lr, low=0)
        factor = check_number("factor", factor, low=0, high=1, low_open=True)
        self.factor = keras.Variable(
            factor, dtype="float32", trainable=False, name="lr_factor"
        )

    def __call__(self, step):
        base = keras.ops.cast(self.schedule(step), "float32")
        floor = keras.ops.minimum(base, self.min_lr)
        return keras.ops.maximum(base * self.factor, floor)

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "factor": float(keras.ops.convert_to_numpy(self.factor)),
            "min_lr": self.min_lr,
        }


@keras.saving.register_keras_serializable(package="keras_tricks")
class ReduceLROnPlateau(MonitorMixin, TrainingCallback):
    """Reduces the learning rate when a metric has stopped improving.

    Keras's arguments and rule: when `monitor` has not improved by more than
    `min_delta` for `patience` epochs, `lr <- max(lr * factor, min_lr)`, then
    wait `cooldown` epochs before counting again. Unlike Keras's (which raises
    `TypeError`, tensorflow/tensorflow#36612), it also works when the
    optimizer's learning rate is a `LearningRateSchedule` (warmup, cosine,
    ...): at the start of `fit` it wraps the schedule in a `ScaledSchedule`
    and reduces that wrapper's `factor` instead, so the schedule keeps its
    shape and is scaled down. The wrapper is installed before the train
    function is traced (or the function is rebuilt once, when it was traced
    in an earlier `fit`), lives in the optimizer, is saved with the model,
    and is reused by later `fit` calls. The logs get the current rate as
    `learning_rate`.

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
    >>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=2,
    ...     verbose=0, callbacks=[ReduceLROnPlateau("loss", patience=0)])
    """

    _state_attributes = ("best", "wait", "cooldown_counter", "scale")

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        if not isinstance(monitor, str):
            raise invalid("monitor", monitor, "a metric name", TypeError)
        self.monitor = monitor
        self.factor = check_number(
            "factor", factor, low=0, high=1, low_open=True, high_open=True
        )
        self.patience = check_number("patience", patience, low=0, integer=True)
        self.verbose = check_number("verbose", verbose, low=0, integer=True)
        self.mode = check_choice("mode", mode, ("auto", "min", "max"))
        self.min_delta = abs(check_number("min_delta", min_delta))
        self.cooldown = check_number("cooldown", cooldown, low=0, integer=True)
        self.min_lr = check_number("min_lr", min_lr, low=0)
        self._mode = None
        self._schedule = None
        super().__init__()

    def reset_state(self):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0
        self.scale = None

    def get_config(self):
        return {
            "monitor": self.monitor,
            "factor": self.factor,
            "patience": self.patience,
            "verbose": self.verbose,
            "mode": self.mode,
            "min_delta": self.min_delta,
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
        }

    def set_state(self, state, arrays):
        super().set_state(state, arrays)
        if self._schedule is not None and self.scale is not None:
            self._schedule.factor.assign(self.scale)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._mode = self._resolve_mode()
        optimizer = innermost_optimizer(self.model.optimizer)
        learning_rate = _keras_compat.learning_rate_object(optimizer)
        if isinstance(learning_rate, ScaledSchedule):
            self._schedule = learning_rate
        elif isinstance(learning_rate, Schedule):
            self._schedule = ScaledSchedule(learning_rate, min_lr=self.min_lr)
            optimizer.learning_rate = self._schedule
            if getattr(self.model, "train_function", None) is not None:
                self.model.make_train_function(force=True)
        else:
            self._schedule = None
        if self._schedule is not None:
            if self.scale is None:
                self.scale = float(keras.ops.convert_to_numpy(self._schedule.factor))
            self._schedule.factor.assign(self.scale)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        self.last_epoch = epoch
        lr = current_lr(self.model)
        logs["learning_rate"] = lr
        current = self._monitor_value(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience and lr > self.min_lr:
            self._reduce(epoch, lr)
            self.cooldown_counter = self.cooldown
            self.wait = 0

    def _reduce(self, epoch, lr):
        if self._schedule is None:
            new_lr = max(lr * self.factor, self.min_lr)
            self.model.optimizer.learning_rate = new_lr
        else:
            self.scale *= self.factor
            self._schedule.factor.assign(self.scale)
            new_lr = current_lr(self.model)
        if self.verbose:
            print(
                f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                f"to {new_lr:.4g}."
            )
