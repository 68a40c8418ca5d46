"""Where an optimizer keeps its learning rate, and how to read and set it.

Shared by the learning-rate range test (`keras_tricks.lr_finder`) and the
callbacks that change the rate (`keras_tricks.callbacks`). It imports
neither, so neither imports the other's package (no import cycle; checked by
tests/test_import_graph.py).
"""

from __future__ import annotations

from typing import Any

import keras


def innermost_optimizer(optimizer: Any) -> Any:
    """Follows `inner_optimizer` through wrappers (LossScaleOptimizer, ...)."""
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


def rate_holders(optimizer: Any) -> list[tuple[str, Any]]:
    """`[(log_key, optimizer)]`: where the learning rate lives.

    One entry `("learning_rate", innermost optimizer)`, or, for a
    `keras.optimizers.MultiOptimizer`, one `("learning_rate_<name>",
    sub-optimizer)` per sub-optimizer (Keras's `ReduceLROnPlateau` keys).
    """
    inner = innermost_optimizer(optimizer)
    subs = getattr(inner, "optimizers", None)
    if subs is None:
        return [("learning_rate", inner)]
    return [(f"learning_rate_{sub.name}", sub) for sub in subs]


def read_lr(optimizer: Any) -> float:
    """The optimizer's current learning rate, as a Python float."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def check_settable_lr(user: str, optimizer: Any) -> list[tuple[str, Any]]:
    """Returns `rate_holders(optimizer)`, or a clear `TypeError` for a schedule.

    Works through wrapper optimizers (LossScaleOptimizer, GradientClipping)
    and over the sub-optimizers of a `MultiOptimizer`.
    """
    holders = rate_holders(optimizer)
    for _, holder in holders:
        value = read_lr(holder)
        try:
            holder.learning_rate = value
        except (TypeError, AttributeError) as error:
            raise TypeError(
                f"{user} sets the learning rate as it goes, but this optimizer's "
                "learning rate is a LearningRateSchedule (or a callable), which "
                "already decides the rate at every step and cannot be set. "
                "Either pass a float `learning_rate` to the optimizer, or "
                "express the decay as a schedule, e.g. "
                "keras.optimizers.schedules.ExponentialDecay(lr, "
                "decay_steps=steps_per_epoch, decay_rate=factor, staircase=True)."
            ) from error
    return holders
