"""The callback family: `TrainingCallback` and `MonitoringCallback`.

Every keras_tricks callback derives from `TrainingCallback` and follows the
same rules:

- Config: `get_config()` returns every `__init__` argument that is plain
  data (`{**super().get_config(), ...}`), and `from_config(config)` rebuilds
  the callback (data arguments such as `recalibrate_data` are not
  serialised).
- `copy.deepcopy(callback)` gives a fresh callback with the same arguments
  (KerasTuner deep-copies callbacks for every trial); `on_train_begin` resets
  the state, so one instance can serve several `fit` calls.
- Order: Keras calls the callbacks of a `fit` in list order, with one `logs`
  dict, and gives no callback a handle on the others. List keras_tricks
  callbacks before Keras's loggers and checkpoints (`CSVLogger`,
  `TensorBoard`, `ModelCheckpoint`, `BackupAndRestore`): a logger listed
  earlier writes its row before our values are in the logs
  (keras-team/keras#4443 is the same problem for Keras's own callbacks).
  `History` and the progress bar are added by `fit` after every listed
  callback, so they always see our values.
- State: the state (best value, wait counter, current factor, averaged
  weights) is `get_state()` / `set_state()`; during a `fit` it goes into the
  weights the model saves (`keras.callbacks.BackupAndRestore`'s backups) and
  comes back when `BackupAndRestore` restores them (see `_state.py`). A
  backup written before one of our callbacks finished its epoch (the backup
  listed first) is refused with an error when the run resumes from it.
- Only epoch hooks do work: no per-batch host synchronisation.

`MonitoringCallback` adds what every callback watching one logged quantity
shares (Keras's `monitor`, `mode` and `min_delta`): the arguments validated
once, the direction inferred at the first epoch end, and one decision method,
`is_improvement`.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, ClassVar

import keras
import numpy as np

from keras_tricks import _keras_compat
from keras_tricks._learning_rate import (  # noqa: F401 (re-exported)
    check_settable_lr,
    innermost_optimizer,
    rate_holders,
    read_lr,
)
from keras_tricks._validation import check_choice, check_number, invalid
from keras_tricks.callbacks import _monitor, _state

MODES = ("auto", "min", "max")


class TrainingCallback(keras.callbacks.Callback):
    """Root of the keras_tricks callbacks: config, deepcopy, state, order.

    Subclasses call `super().__init__()` first, set their own arguments, list
    the attributes that make up their state in `_state_attributes`, and
    initialise them in `reset_state` (called at construction and at the
    start of every `fit`).
    """

    _state_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self.last_epoch = -1
        self._epoch: int | None = None
        self._restored = False
        self.reset_state()

    def reset_state(self) -> None:
        """Sets the state to its value before training."""

    def get_config(self) -> dict[str, Any]:
        """Returns the `__init__` arguments that are plain data."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TrainingCallback:
        """Rebuilds a callback from `get_config()`."""
        return cls(**config)

    def _data_arguments(self) -> dict[str, Any]:
        """`__init__` arguments that are data, not config (kept by reference)."""
        return {}

    def __deepcopy__(self, memo: dict[int, Any]) -> TrainingCallback:
        config = copy.deepcopy(self.get_config(), memo)
        return type(self)(**config, **self._data_arguments())

    def get_state(self) -> tuple[dict[str, Any], list[np.ndarray]]:
        """Returns `(json_dict, arrays)`: the state to back up."""
        names = ("last_epoch", *self._state_attributes)
        state = {name: getattr(self, name) for name in names}
        return state, self._state_arrays()

    def set_state(self, state: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """Restores what `get_state` returned (from a `BackupAndRestore` backup)."""
        for name in ("last_epoch", *self._state_attributes):
            setattr(self, name, state[name])
        self._set_state_arrays(arrays)

    def _state_arrays(self) -> list[np.ndarray]:
        return []

    def _set_state_arrays(self, arrays: list[np.ndarray]) -> None:
        del arrays

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        _state.attach(model, self)

    def _peers(self) -> list[keras.callbacks.Callback]:
        """The keras_tricks callbacks of the current `fit` of this model."""
        return _state.peers(self.model) if self.model is not None else []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._restored:
            # `BackupAndRestore`, listed before this callback, already put
            # the backed-up state back.
            self._restored = False
            return
        self.last_epoch = -1
        self.reset_state()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._epoch is None and self.last_epoch >= 0 and self.last_epoch < epoch - 1:
            raise ValueError(
                f"{type(self).__name__} resumes at epoch {epoch + 1} from a backup "
                f"that holds its state after epoch {self.last_epoch + 1}: the "
                "backup was written before this callback finished its epoch. "
                "List `keras.callbacks.BackupAndRestore` after the keras_tricks "
                "callbacks in `callbacks`."
            )
        self._epoch = epoch
        self._restored = False

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._epoch = None
        if self.model is not None:
            _state.detach(self.model, self)

    def set_state_restored(self, state: dict[str, Any], arrays: list) -> None:
        """`set_state` from a backup being restored at the start of a `fit`."""
        self.set_state(state, arrays)
        self._restored = True


class MonitoringCallback(TrainingCallback):
    """Base of the callbacks that watch one logged quantity (Keras's arguments).

    The direction of `monitor` (`"min"` or `"max"`) is `mode`, or, with
    `mode="auto"`, inferred at the first epoch end, once the model's metrics
    are built: a name holding `loss` or `error` is minimised, a
    compiled metric has its own direction, a name holding `acc` or `auc` is
    maximised. `is_improvement(current, reference)` is the one decision:
    `current + min_delta < reference` when minimising, `current - min_delta >
    reference` when maximising (Keras's rule).

    Args:
        monitor: the logged quantity to watch. Defaults to `"val_loss"`.
        mode: `"auto"`, `"min"` or `"max"`. Defaults to `"auto"`.
        min_delta: smallest change counted as an improvement (its absolute
            value is used). Defaults to `0.0`.
    """

    def __init__(
        self, monitor: str = "val_loss", mode: str = "auto", min_delta: float = 0.0
    ) -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise invalid("monitor", monitor, "a metric name", TypeError)
        self.monitor = monitor
        self.mode = check_choice("mode", mode, MODES)
        self.min_delta = abs(check_number("min_delta", min_delta))
        self._direction: str | None = None

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "monitor": self.monitor,
            "mode": self.mode,
            "min_delta": self.min_delta,
        }

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self._direction = None

    @property
    def direction(self) -> str:
        """`"min"` or `"max"`: `mode`, or the direction inferred for `monitor`."""
        if self._direction is None:
            self._direction = self._infer_direction()
        return self._direction

    def _infer_direction(self) -> str:
        if self.mode != "auto":
            return self.mode
        name = self.monitor.removeprefix("val_")
        if "loss" in name or "error" in name:
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

    def is_improvement(self, current: float, reference: float | None) -> bool:
        """Whether `current` improves on `reference` by more than `min_delta`."""
        if reference is None:
            return True
        if self.direction == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference

    def _monitored_value(
        self, logs: dict[str, Any] | None, name: str | None = None
    ) -> float | None:
        """`logs[name or monitor]` as a float; warns and returns `None` if absent."""
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
        return _monitor.scalar(type(self).__name__, name, logs[name])


def final_weights(model: keras.Model) -> list[np.ndarray]:
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
