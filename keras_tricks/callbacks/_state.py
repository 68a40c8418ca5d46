"""Callback state in `keras.callbacks.BackupAndRestore`'s backups, and only there.

`BackupAndRestore` backs up a run with `model.save_weights` at the end of
every epoch and restores it with `model.load_weights` at the start of the
resumed `fit`. Keras's callbacks keep their counters in Python attributes,
so a resumed run forgets them. When a `fit` has a `BackupAndRestore` among
its callbacks, ours register with a small `CallbackState` object attached to
the model (attribute `_keras_tricks_callback_state`); Keras's saving walks
the model's attributes, so the backup stores every registered callback's
state (a JSON dict and a list of arrays, e.g. the best weights) in the same
file, and the restore gives it back.

Nothing else sees it. Without `BackupAndRestore` no holder is attached (one
left by an earlier `fit` is removed), and the holder writes and reads state
only while `BackupAndRestore` itself saves or loads: `model.save`,
`save_weights`, `load_weights` and `ModelCheckpoint` neither store callback
state nor push an old run's state into live callbacks. The holder is not a
layer or variable: `model.weights`, the model's outputs and its config are
unchanged.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from keras_tricks import _keras_compat

if TYPE_CHECKING:
    from keras_tricks.callbacks._base import TrainingCallback

ATTRIBUTE = "_keras_tricks_callback_state"


class CallbackState(keras.Operation):
    """Saves and restores the state of the callbacks registered on one model."""

    def __init__(self) -> None:
        super().__init__(name="keras_tricks_callback_state")
        self._callbacks: dict[str, weakref.ref[TrainingCallback]] = {}

    def register(self, callback: TrainingCallback) -> str:
        """Registers `callback` under a key fixed by its class and config."""
        config = json.dumps(callback.get_config(), sort_keys=True, default=repr)
        digest = hashlib.sha1(config.encode()).hexdigest()[:10]  # noqa: S324
        key = f"{type(callback).__name__}_{digest}"
        self._callbacks[key] = weakref.ref(callback)
        return key

    def retain(self, keep: Callable[[TrainingCallback], bool]) -> None:
        """Forgets the registered callbacks that are dead or not `keep`."""
        self._callbacks = {
            key: ref
            for key, ref in self._callbacks.items()
            if (callback := ref()) is not None and keep(callback)
        }

    def live(self) -> dict[str, TrainingCallback]:
        """`{key: callback}` of the registered callbacks still alive."""
        live = {key: ref() for key, ref in self._callbacks.items()}
        return {key: callback for key, callback in live.items() if callback}

    def save_own_variables(self, store: Any) -> None:
        if _keras_compat.calling_instance(keras.callbacks.BackupAndRestore) is None:
            return
        meta = {}
        for key, callback in self.live().items():
            state, arrays = callback.get_state()
            meta[key] = {"state": state, "arrays": len(arrays)}
            for i, array in enumerate(arrays):
                store[f"{key}.{i}"] = np.asarray(array)
        store["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    def load_own_variables(self, store: Any) -> None:
        if _keras_compat.calling_instance(keras.callbacks.BackupAndRestore) is None:
            return
        if "meta" not in store.keys():
            return
        meta = json.loads(bytes(np.asarray(store["meta"][()])).decode())
        for key, callback in self.live().items():
            if key in meta:
                count = meta[key]["arrays"]
                arrays = [np.asarray(store[f"{key}.{i}"][()]) for i in range(count)]
                callback.set_state(meta[key]["state"], arrays)


def attach(model: keras.Model, callback: TrainingCallback, peers: list[Any]) -> str:
    """Registers `callback` on `model`'s state holder; returns its key.

    Callbacks registered by an earlier `fit` and not among `peers` (this
    `fit`'s callbacks) are forgotten: a backup is this run's state only.
    """
    holder = getattr(model, ATTRIBUTE, None)
    if holder is None:
        holder = CallbackState()
        setattr(model, ATTRIBUTE, holder)
    holder.retain(lambda other: any(other is peer for peer in peers))
    return holder.register(callback)


def detach(model: keras.Model, callback: TrainingCallback) -> None:
    """Unregisters `callback`; removes the holder once nothing is registered."""
    holder = getattr(model, ATTRIBUTE, None)
    if holder is None:
        return
    holder.retain(lambda other: other is not callback)
    if not holder.live():
        delattr(model, ATTRIBUTE)
