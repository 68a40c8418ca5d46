"""Every access to Keras internals, in one place.

keras_tricks uses the public Keras 3 API everywhere else. Where Keras has no
public hook for what a trick needs, the private attribute is read (or the
method replaced) here, and only here. Each entry names the Keras version it
was checked against and the feature that depends on it;
`tests/test_keras_compat.py` asserts that every attribute still exists on the
installed Keras, so a Keras upgrade that renames one fails there first, with
the name of the feature, rather than somewhere inside a training run.

Every patch is installed and removed in `try/finally` around the work that
needs it: nothing of the user's objects stays changed when that work ends or
raises.
"""

import contextlib
import sys

import keras

CHECKED_WITH = "3.15.1"
"""The Keras version every entry below was checked against."""

PRIVATE_ATTRIBUTES = {
    # (owner class, attribute): the feature that depends on it.
    (keras.optimizers.Optimizer, "_learning_rate"): (
        "ReduceLROnPlateau on a LearningRateSchedule (reads the schedule object)"
    ),
    (keras.optimizers.Optimizer, "_model_variables_moving_average"): (
        "EarlyStopping / WeightAveraging snapshots of EMA weights (use_ema=True)"
    ),
    (keras.optimizers.Optimizer, "_trainable_variables"): (
        "EarlyStopping / WeightAveraging snapshots of EMA weights (use_ema=True)"
    ),
    (keras.metrics.Metric, "_direction"): (
        "mode='auto' of the monitoring callbacks (a metric's direction)"
    ),
}
"""Private attributes read by keras_tricks, with the feature that needs them.

Attributes set on instances only (not on the class) are checked on a built
instance by the test.
"""

SHARED_OBJECT_ID = "shared_object_id"
"""Config key Keras's saving uses to create an object serialised twice once.

Used by `TiedRegularizer` so that a tied reference layer is the model's own
layer after `load_model` (Keras 3.15.1, `keras.src.saving.serialization_lib`).
"""


def learning_rate_object(optimizer):
    """The optimizer's learning rate as given: a schedule, a variable or None.

    `optimizer.learning_rate` evaluates a schedule at the current step;
    Keras keeps the schedule object itself only as `_learning_rate`.
    """
    return getattr(optimizer, "_learning_rate", None)


def moving_average_pairs(optimizer):
    """`[(variable, its EMA variable)]` of an optimizer with `use_ema=True`.

    Empty when the optimizer keeps no moving averages. Keras's own
    `SwapEMAWeights` callback pairs these two private lists the same way.
    """
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not getattr(optimizer, "use_ema", False) or not averages:
        return []
    return list(zip(optimizer._trainable_variables, averages, strict=True))


def metric_direction(metric):
    """`"up"`, `"down"` or `None`: whether a larger value of `metric` is better."""
    return getattr(metric, "_direction", None)


@contextlib.contextmanager
def replaced_call(layer, call):
    """Replaces `layer.call` by `call` for the duration of the block.

    Keras's `Layer.__call__` dispatches to `self.call`, so an instance
    attribute takes precedence over the class's method; the attribute is
    deleted in `finally`, whatever the block does.
    """
    layer.call = call
    try:
        yield
    finally:
        del layer.call


def calling_instance(cls):
    """The innermost `self` of class `cls` among the calling frames, or `None`.

    Keras gives a callback no handle on the other callbacks of its `fit`, nor
    tells `save_own_variables` who is saving. Two call structures (Keras
    3.15.1, `keras.src.callbacks.callback_list`, `backup_and_restore`) answer
    both: `keras.callbacks.CallbackList` calls each hook from its own method
    (`for callback in self.callbacks: callback.set_model(model)`), and
    `keras.callbacks.BackupAndRestore` writes and reads its backup with
    `model.save_weights` / `model.load_weights` from its own methods.
    Features: callbacks order themselves before Keras's loggers and backups
    (`TrainingCallback.set_model`), and callback state goes into backups only
    (`keras_tricks/callbacks/_state.py`). `tests/test_keras_compat.py` checks
    both structures.
    """
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, cls):
            return candidate
        frame = frame.f_back
    return None
