"""The SWA learning rate: PyTorch's `SWALR` annealing, on a float or a schedule.

From the epoch averaging starts, the rate moves from the current one to the
constant SWA rate over `annealing_epochs` epochs, then stays there
(Izmailov et al. 2018, Section 3.2; `torch.optim.swa_utils.SWALR`). With
`k` the number of epochs since the start,

    t = min(1, k / annealing_epochs)        (t = 1 when annealing_epochs = 0)
    alpha = (1 - cos(pi * t)) / 2           ("cos")   or  alpha = t  ("linear")
    lr = alpha * swa_lr + (1 - alpha) * lr_start

`SWALR` recovers `lr_start` at every step from the rate it finds in the
optimizer, `lr_start = (lr - alpha_prev * swa_lr) / (1 - alpha_prev)`, so a
change made by someone else in between (a plateau reduction) carries
through; `anneal_float` does the same. A `LearningRateSchedule` is blended
instead: `SWASchedule` evaluates `alpha * swa_lr + (1 - alpha) *
schedule(step)` with `alpha` in a variable, so the schedule keeps running
under the annealing and nothing is retraced (the mechanism of
`ScaledSchedule`).
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras.optimizers.schedules import LearningRateSchedule as Schedule

from keras_tricks._validation import check_number, check_schedule

STRATEGIES = ("cos", "linear")


def annealing_factor(t: float, strategy: str) -> float:
    """`SWALR`'s `alpha` at annealing progress `t` in [0, 1]."""
    return (1 - math.cos(math.pi * t)) / 2 if strategy == "cos" else t


def progress(k: int, annealing_epochs: int) -> tuple[float, float]:
    """`(t_prev, t)` of `SWALR` at step `k` (epochs since the start), clipped."""
    step = max(1, k) if annealing_epochs == 0 else k
    span = max(1, annealing_epochs)
    return max(0.0, min(1.0, (step - 1) / span)), max(0.0, min(1.0, step / span))


def anneal_float(
    current: float, k: int, swa_lr: float, annealing_epochs: int, strategy: str
) -> float:
    """The rate of step `k` given the rate `current` of step `k - 1` (`SWALR`)."""
    t_prev, t = progress(k, annealing_epochs)
    previous = annealing_factor(t_prev, strategy)
    start = swa_lr if previous == 1 else (current - previous * swa_lr) / (1 - previous)
    alpha = annealing_factor(t, strategy)
    return swa_lr * alpha + start * (1 - alpha)


@keras.saving.register_keras_serializable(package="keras_tricks")
class SWASchedule(Schedule):
    """A learning-rate schedule blended towards a constant SWA rate.

    `lr(step) = alpha * swa_learning_rate + (1 - alpha) * schedule(step)`,
    with `alpha` in [0, 1] a non-trainable `keras.Variable` that
    `WeightAveraging` moves once per epoch (so nothing is retraced);
    `get_config` stores its current value.

    Args:
        schedule: the wrapped `LearningRateSchedule` (or its config).
        swa_learning_rate: the rate reached when `alpha = 1`.
        alpha: initial blending factor in [0, 1]. Defaults to `0.0`.
    """

    def __init__(
        self,
        schedule: Schedule | dict[str, Any],
        swa_learning_rate: float,
        alpha: float = 0.0,
    ) -> None:
        self.schedule = check_schedule(schedule)
        self.swa_learning_rate = check_number(
            "swa_learning_rate", swa_learning_rate, low=0, low_open=True
        )
        alpha = check_number("alpha", alpha, low=0, high=1)
        self.alpha = keras.Variable(
            alpha, dtype="float32", trainable=False, name="swa_alpha"
        )

    def __call__(self, step: Any) -> Any:
        base = keras.ops.cast(self.schedule(step), "float32")
        return self.alpha * self.swa_learning_rate + (1.0 - self.alpha) * base

    def get_config(self) -> dict[str, Any]:
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "swa_learning_rate": self.swa_learning_rate,
            "alpha": float(keras.ops.convert_to_numpy(self.alpha)),
        }
