"""Multiplies the learning rate by a constant factor after every epoch."""

from __future__ import annotations

from typing import Any

import keras

from keras_tricks._validation import check_number
from keras_tricks.callbacks._base import TrainingCallback, check_settable_lr, read_lr


@keras.saving.register_keras_serializable(package="keras_tricks")
class EpochDecay(TrainingCallback):
    """Per-epoch learning-rate decay: `lr <- max(lr * factor, min_lr)`.

    After every epoch `t >= start_epoch` (0-based) the optimizer's learning
    rate is multiplied by `factor`, never going below `min_lr`. The rate used
    during epoch `t` is therefore

        lr_t = max(lr_0 * factor ** max(0, t - start_epoch), min_lr)

    (large steps early, small steps late). The rate used during the epoch is
    written to the logs as `learning_rate` (with a
    `keras.optimizers.MultiOptimizer`, every sub-optimizer decays and its
    rate is logged as `learning_rate_<name>`). The rate is a variable of the
    optimizer, so changing it never retraces the compiled train function, and
    `BackupAndRestore` restores it with the optimizer. Wrapper optimizers
    whose `learning_rate` property reads and writes an inner optimizer's
    (`keras.optimizers.LossScaleOptimizer`, keras_tricks' GradientClipping)
    work as they are.

    Args:
        factor: multiplier in (0, 1]. Defaults to `0.98`.
        min_lr: lower bound on the learning rate, >= 0. Defaults to `0.0`.
        start_epoch: first epoch after which the rate decays. Defaults to `0`.
        verbose: 1 prints every change. Defaults to `0`.

    Raises:
        ValueError: for arguments out of range.
        TypeError: at the start of `fit`, if the optimizer's learning rate is
            a `LearningRateSchedule`.

    Example:

    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.1), "mse")
    >>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=3,
    ...                     verbose=0, callbacks=[EpochDecay(0.5)])
    >>> [round(lr, 3) for lr in history.history["learning_rate"]]
    [0.1, 0.05, 0.025]
    """

    def __init__(
        self,
        factor: float = 0.98,
        *,
        min_lr: float = 0.0,
        start_epoch: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        self.factor = check_number("factor", factor, low=0, high=1, low_open=True)
        self.min_lr = check_number("min_lr", min_lr, low=0)
        self.start_epoch = check_number("start_epoch", start_epoch, low=0, integer=True)
        self.verbose = check_number("verbose", verbose, low=0, integer=True)
        self._holders: list[tuple[str, Any]] = []

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "factor": self.factor,
            "min_lr": self.min_lr,
            "start_epoch": self.start_epoch,
            "verbose": self.verbose,
        }

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self._holders = check_settable_lr("EpochDecay", self.model.optimizer)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.last_epoch = epoch
        for key, optimizer in self._holders:
            lr = read_lr(optimizer)
            if logs is not None:
                logs[key] = lr
            if epoch < self.start_epoch:
                continue
            new_lr = max(lr * self.factor, self.min_lr)
            if new_lr != lr:
                optimizer.learning_rate = new_lr
                if self.verbose:
                    name = "" if key == "learning_rate" else f" of {optimizer.name}"
                    print(
                        f"Epoch {epoch + 1}: EpochDecay sets learning rate{name} "
                        f"to {new_lr:.4g}."
                    )
