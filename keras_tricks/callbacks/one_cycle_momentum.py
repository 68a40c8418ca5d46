"""`OneCycleMomentum`: the momentum half of the one-cycle policy."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_tricks import _keras_compat
from keras_tricks._learning_rate import rate_holders
from keras_tricks.callbacks._base import TrainingCallback
from keras_tricks.schedules import OneCycle

MOMENTUM_ATTRIBUTES = ("momentum", "beta_1")
"""Where Keras's optimizers keep the momentum a one-cycle policy cycles:
SGD's `momentum`, the Adam family's `beta_1`."""


@keras.saving.register_keras_serializable(package="keras_tricks")
class OneCycleMomentum(TrainingCallback):
    """Cycles the optimizer's momentum inversely to its `OneCycle` learning rate.

    With a `keras_tricks.schedules.OneCycle` learning rate, the momentum of
    the optimizer (SGD's `momentum`, `beta_1` of Adam, AdamW, Nadam, Adamax)
    follows `OneCycle.momentum(step)` during `fit`: from `max_momentum` down to
    `base_momentum` while the rate warms up, and back while it anneals, the
    values of PyTorch's `OneCycleLR(cycle_momentum=True)` at the optimizer's
    `iterations`. The value is computed inside the compiled step from the
    optimizer's step counter, so it changes every step at no host cost.

    For the duration of the `fit` the optimizer's attribute holds a number
    that evaluates to the schedule's momentum when the step reads it (still a
    `float` for `get_config`, so saving during the `fit` writes the
    optimizer's original value); the original float is put back at the end.

    Raises at the start of `fit` (`ValueError`) when the optimizer's learning
    rate is not a `OneCycle`, or it has no momentum to cycle (SGD with
    `momentum=0` has no velocity to apply one to).

    Example:

    >>> from keras_tricks.schedules import OneCycle
    >>> schedule = OneCycle(0.1, total_steps=20)
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(schedule, momentum=0.9), "mse")
    >>> x = np.ones((40, 2), "float32")
    >>> _ = model.fit(x, x[:, :1], batch_size=4, verbose=0,
    ...               callbacks=[OneCycleMomentum()])
    >>> model.optimizer.momentum  # the original value is back
    0.9

    Reference:
        Smith, "A disciplined approach to neural network hyper-parameters:
        Part 1 -- learning rate, batch size, momentum, and weight decay",
        2018.
    """

    def get_config(self) -> dict[str, Any]:
        return {}

    def reset_state(self) -> None:
        self._installed: list[tuple[Any, str, float]] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self._restore()
        for _, optimizer in rate_holders(self.model.optimizer):
            schedule = _one_cycle(_keras_compat.learning_rate_object(optimizer))
            if schedule is None:
                raise ValueError(
                    "OneCycleMomentum needs a keras_tricks.schedules.OneCycle "
                    f"learning rate; {optimizer.name} has "
                    f"{_keras_compat.learning_rate_object(optimizer)!r}."
                )
            name = next((n for n in MOMENTUM_ATTRIBUTES if hasattr(optimizer, n)), None)
            value = getattr(optimizer, name, 0.0) if name else 0.0
            if name is None or not isinstance(value, float) or value == 0:
                raise ValueError(
                    f"OneCycleMomentum: {type(optimizer).__name__} has no momentum "
                    "to cycle (SGD needs momentum > 0 when built; Adam's family "
                    "has beta_1)."
                )
            setattr(optimizer, name, _CycledMomentum(value, schedule, optimizer))
            self._installed.append((optimizer, name, float(value)))
        if getattr(self.model, "train_function", None) is not None:
            # A train function traced before read the plain float.
            self.model.make_train_function(force=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_end(logs)
        if self._installed:
            self._restore()
            # The compiled step reads the cycle: a later fit gets a plain one.
            self.model.make_train_function(force=True)

    def _restore(self) -> None:
        for optimizer, name, value in self._installed:
            setattr(optimizer, name, value)
        self._installed = []


def _one_cycle(schedule: Any) -> OneCycle | None:
    """The `OneCycle` of a learning rate, through schedule wrappers."""
    seen = 0
    while schedule is not None and seen < 8:
        if isinstance(schedule, OneCycle):
            return schedule
        schedule, seen = getattr(schedule, "schedule", None), seen + 1
    return None


class _CycledMomentum(float):
    """A float that, converted to a tensor, is the schedule's momentum now.

    Keras's optimizers read `momentum` / `beta_1` with `ops.cast` inside the
    update step: the conversion protocols of TensorFlow (`__tf_tensor__`) and
    JAX (`__jax_array__`) compute `schedule.momentum(iterations)` there, in
    the traced step. As a Python number it is the optimizer's original value.
    """

    schedule: OneCycle
    optimizer: Any

    def __new__(cls, value: float, schedule: OneCycle, optimizer: Any) -> Any:
        number = super().__new__(cls, value)
        number.schedule = schedule
        number.optimizer = optimizer
        return number

    def _now(self, dtype: Any = None) -> Any:
        value = self.schedule.momentum(self.optimizer.iterations)
        return ops.cast(value, dtype or "float32")

    def __tf_tensor__(self, dtype: Any = None, name: Any = None) -> Any:
        return self._now(dtype)

    def __jax_array__(self) -> Any:
        return self._now()
