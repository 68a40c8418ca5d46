"""Shared base of the training-control callbacks: config, state, monitoring.

Every callback here follows the same rules:

- `get_config()` returns every `__init__` argument that is plain data, and
  `from_config(config)` rebuilds the callback (data arguments such as
  `recalibrate_data` are not serialised).
- `copy.deepcopy(callback)` gives a fresh callback with the same arguments
  (KerasTuner deep-copies callbacks for every trial); `on_train_begin` resets
  the state, so one instance can serve several `fit` calls.
- The state (best value, wait counter, current factor, averaged weights) is
  `get_state()` / `set_state()`; it is saved with the model's weights file,
  so `keras.callbacks.BackupAndRestore` restores it (see `_state.py`). List
  `BackupAndRestore` *after* keras_tricks callbacks: Keras calls callbacks in
  list order and backs up in its own `on_epoch_end`.
- Only epoch hooks do work: no per-batch host synchronisation.
"""

import copy
import math
import warnings

import keras
import numpy as np

from keras_tricks import _keras_compat
from keras_tricks.callbacks import _state


class TrainingCallback(keras.callbacks.Callback):
    """Base class: config round trip, deepcopy, state saved for backups."""

    _state_attributes = ()

    def __init__(self):
        super().__init__()
        self._restored = False
        self.last_epoch = -1
        self.reset_state()

    def reset_state(self):
        """Sets the state to its value before training."""

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _data_arguments(self):
        """`__init__` arguments that are data, not config (kept by reference)."""
        return {}

    def __deepcopy__(self, memo):
        config = copy.deepcopy(self.get_config(), memo)
        return type(self)(**config, **self._data_arguments())

    def get_state(self):
        """Returns `(json_dict, arrays)`: the state to back up."""
        names = ("last_epoch", *self._state_attributes)
        state = {name: getattr(self, name) for name in names}
        return state, self._state_arrays()

    def set_state(self, state, arrays):
        """Restores what `get_state` returned (called by `load_weights`)."""
        for name in ("last_epoch", *self._state_attributes):
            setattr(self, name, state[name])
        self._set_state_arrays(arrays)
        self._restored = True

    def _state_arrays(self):
        return []

    def _set_state_arrays(self, arrays):
        del arrays

    def set_model(self, model):
        super().set_model(model)
        _state.attach(model, self)

    def on_train_begin(self, logs=None):
        # BackupAndRestore may have restored the state just before (when it is
        # listed first); otherwise it restores it right after this call.
        if not self._restored:
            self.last_epoch = -1
            self.reset_state()

    def on_epoch_begin(self, epoch, logs=None):
        if self._restored and self.last_epoch != epoch - 1:
            warnings.warn(
                f"{type(self).__name__} was restored with its state after epoch "
                f"{self.last_epoch + 1} but training resumes at epoch "
                f"{epoch + 1}: the backup was written before this callback "
                "updated its state. List keras.callbacks.BackupAndRestore after "
                "the keras_tricks callbacks.",
                stacklevel=2,
            )
        self._restored = False


class MonitorMixin:
    """Direction of a monitored quantity and the improvement test (Keras's)."""

    def _resolve_mode(self):
        if self.mode != "auto":
            return self.mode
        name = self.monitor.removeprefix("val_")
        if name == "loss" or "error" in name or "loss" in name:
            return "min"
        for metric in getattr(self.model, "metrics", []):
            for inner in getattr(metric, "metrics", [metric]):
                direction = _keras_compat.metric_direction(inner)
                if inner.name == name and direction is not None:
                    return "max" if direction == "up" else "min"
        if "acc" in name or "auc" in name:
            return "max"
        raise ValueError(
            f"{type(self).__name__} cannot tell whether `{self.monitor}` should "
            "be minimised or maximised. Pass mode='min' or mode='max'."
        )

    def _is_improvement(self, current, reference):
        if reference is None:
            return True
        if self._mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def _monitor_value(self, logs, name=None):
        name = name or self.monitor
        logs = logs or {}
        if name not in logs:
            warnings.warn(
                f"{type(self).__name__} is conditioned on metric `{name}` "
                f"which is not available. Available metrics are: "
                f"{','.join(logs)}",
                stacklevel=3,
            )
            return None
        return float(np.asarray(logs[name]))


def is_finite(value):
    return value is not None and math.isfinite(value)


def innermost_optimizer(optimizer):
    """Follows `inner_optimizer` through wrappers (LossScaleOptimizer, ...)."""
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


def current_lr(model):
    """The optimizer's current learning rate, as a Python float."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def final_weights(model):
    """The weights `fit` would end with now: the EMA weights with `use_ema`.

    Keras's `fit` ends by overwriting the trainable weights with their
    exponential moving averages when the optimizer has `use_ema=True`, before
    `on_train_end`. A callback that snapshots weights (best epoch, SWA) takes
    this same view, so what it restores keeps the averaging the user asked for.
    """
    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    optimizer = innermost_optimizer(getattr(model, "optimizer", None))
    pairs = _keras_compat.moving_average_pairs(optimizer)
    if not pairs:
        return weights
    ema = {id(variable): average for variable, average in pairs}
    return [
        keras.ops.convert_to_numpy(ema[id(w)]) if id(w) in ema else value
        for w, value in zip(model.weights, weights, strict=True)
    ]
