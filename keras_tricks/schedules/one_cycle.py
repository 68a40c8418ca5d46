"""The one-cycle learning-rate policy (Smith 2018), with torch's arguments.

Reference: Smith & Topin, "Super-Convergence: Very Fast Training of Neural
Networks Using Large Learning Rates", 2018; Smith, "A disciplined approach to
neural network hyper-parameters: Part 1", 2018. The arguments, defaults and
step boundaries are those of PyTorch's `torch.optim.lr_scheduler.OneCycleLR`
(two phases, `three_phase=False`).
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_tricks._validation import check_choice, check_number, invalid_together

ANNEAL_STRATEGIES = ("cos", "linear")


def _anneal(strategy: str, start: Any, end: Any, pct: Any) -> Any:
    """From `start` (pct 0) to `end` (pct 1): cosine or straight line."""
    if strategy == "cos":
        return end + (start - end) / 2.0 * (1.0 + ops.cos(math.pi * pct))
    return start + (end - start) * pct


@keras.saving.register_keras_serializable(package="keras_tricks")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One cycle: warm up to `max_learning_rate`, then anneal far below the start.

    Phase 1 (steps `0 .. pct_start * total_steps - 1`) moves the rate from
    `initial = max_learning_rate / div_factor` up to `max_learning_rate`;
    phase 2 (up to step `total_steps - 1`) moves it down to
    `minimum = initial / final_div_factor`. With `pct` the fraction of the
    current phase done, the cosine strategy gives
    `end + (start - end) / 2 * (1 + cos(pi * pct))` and the linear one
    `start + (end - start) * pct`: the values of PyTorch's `OneCycleLR`
    (`three_phase=False`) at the same step, with Keras's step being the
    optimizer's `iterations` (0 for the first update, as torch's first
    `step()` uses step 0). Past `total_steps` the rate stays at `minimum`
    (torch raises an error there). All math is `keras.ops`, so the schedule
    runs inside a `jit_compile=True` train step and is saved with the model.

    Momentum is cycled inversely (high while the rate is low):
    `momentum(step)` is torch's `cycle_momentum` value at a step, from
    `max_momentum` down to `base_momentum` in phase 1 and back up in phase 2.
    The schedule computes it; `keras_tricks.callbacks.OneCycleMomentum`
    writes it into the optimizer (SGD's `momentum`, Adam's `beta_1`) at every
    step of a `fit`.

    Args:
        max_learning_rate: the peak rate, > 0.
        total_steps: the number of optimizer steps in the cycle
            (`epochs * steps_per_epoch`), an integer > 1.
        pct_start: the fraction of the steps spent rising, in (0, 1), with
            `1 < pct_start * total_steps < total_steps`. Defaults to `0.3`.
        anneal_strategy: `"cos"` or `"linear"`. Defaults to `"cos"`.
        div_factor: `initial = max_learning_rate / div_factor`, > 0.
            Defaults to `25.0`.
        final_div_factor: `minimum = initial / final_div_factor`, > 0.
            Defaults to `1e4`.
        base_momentum: the lowest momentum (at the peak rate), in [0, 1].
            Defaults to `0.85`.
        max_momentum: the highest momentum (at the start and the end), in
            [`base_momentum`, 1]. Defaults to `0.95`.

    Raises:
        ValueError: for an argument out of its range.
        TypeError: for an argument of the wrong type.

    Example:

    >>> schedule = OneCycle(0.1, total_steps=100)
    >>> round(float(schedule(0)), 6)  # 0.1 / 25
    0.004
    >>> round(float(schedule(29)), 6)  # the end of phase 1
    0.1
    >>> round(float(schedule(99)), 10)  # 0.004 / 1e4
    4e-07
    >>> round(float(schedule.momentum(29)), 6)
    0.85
    >>> optimizer = keras.optimizers.SGD(schedule, momentum=0.9)

    Reference:
        Smith & Topin, "Super-Convergence: Very Fast Training of Neural
        Networks Using Large Learning Rates", 2018.
    """

    def __init__(
        self,
        max_learning_rate: float,
        total_steps: int,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
    ) -> None:
        self.max_learning_rate = check_number(
            "max_learning_rate", max_learning_rate, low=0, low_open=True
        )
        self.total_steps = check_number("total_steps", total_steps, low=2, integer=True)
        self.pct_start = check_number(
            "pct_start", pct_start, low=0, high=1, low_open=True, high_open=True
        )
        if not 1 < self.pct_start * self.total_steps < self.total_steps:
            raise invalid_together(
                {"pct_start": pct_start, "total_steps": total_steps},
                "1 < pct_start * total_steps < total_steps, so that both "
                "phases last at least a step",
                fix="Raise total_steps or pct_start",
            )
        self.anneal_strategy = check_choice(
            "anneal_strategy", anneal_strategy, ANNEAL_STRATEGIES
        )
        self.div_factor = check_number("div_factor", div_factor, low=0, low_open=True)
        self.final_div_factor = check_number(
            "final_div_factor", final_div_factor, low=0, low_open=True
        )
        self.max_momentum = check_number("max_momentum", max_momentum, low=0, high=1)
        self.base_momentum = check_number(
            "base_momentum", base_momentum, low=0, high=self.max_momentum
        )
        self.initial_learning_rate = self.max_learning_rate / self.div_factor
        self.minimum_learning_rate = self.initial_learning_rate / self.final_div_factor

    def _phases(self, step: Any) -> tuple[Any, Any, Any]:
        """`(in_phase_1, pct of phase 1, pct of phase 2)` at `step` (float32)."""
        step = ops.cast(step, "float32")
        # torch's boundaries: phase 1 ends at float(pct_start * total) - 1,
        # phase 2 at total - 1; phase 2 starts where phase 1 ends.
        end_1 = float(self.pct_start * self.total_steps) - 1.0
        end_2 = float(self.total_steps - 1)
        pct_1 = ops.clip(step / end_1, 0.0, 1.0)
        pct_2 = ops.clip((step - end_1) / (end_2 - end_1), 0.0, 1.0)
        return step <= end_1, pct_1, pct_2

    def _two_phases(self, step: Any, start: float, peak: float, end: float) -> Any:
        """`start` -> `peak` over phase 1, `peak` -> `end` over phase 2."""
        first, pct_1, pct_2 = self._phases(step)
        return ops.where(
            first,
            _anneal(self.anneal_strategy, start, peak, pct_1),
            _anneal(self.anneal_strategy, peak, end, pct_2),
        )

    def __call__(self, step: Any) -> Any:
        return self._two_phases(
            step,
            self.initial_learning_rate,
            self.max_learning_rate,
            self.minimum_learning_rate,
        )

    def momentum(self, step: Any) -> Any:
        """The momentum at `step`: `max_momentum` -> `base_momentum` -> back."""
        return self._two_phases(
            step, self.max_momentum, self.base_momentum, self.max_momentum
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "anneal_strategy": self.anneal_strategy,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "base_momentum": self.base_momentum,
            "max_momentum": self.max_momentum,
        }
