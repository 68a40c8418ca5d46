"""Callback state in the model's saved weights during a `fit`.

`keras.callbacks.BackupAndRestore` backs up a run with `model.save_weights`
at the end of every epoch and restores it with `model.load_weights` at the
start of the resumed `fit`. Keras's callbacks keep their counters in Python
attributes, so a resumed run forgets them. Ours register, when a `fit` sets
them up (`set_model`), with a small `CallbackState` object attached to the
model (attribute `_keras_tricks_callback_state`) until the `fit` ends; Keras's
saving walks the model's attributes, so weights saved during the `fit` (the
backup) hold every registered callback's state (a JSON dict and a list of
arrays, e.g. the best weights), and weights loaded during the `fit` (the
restore) give it back.

Outside a `fit` no holder is attached: `model.save`, `save_weights` and
`load_weights` are exactly plain Keras's. The holder is not a layer or
variable: `model.weights`, the model's outputs and its config are unchanged.
The same registry answers which keras_tricks callbacks share a `fit`
(`peers`).
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

if TYPE_CHECKING:
    from keras_tricks.callbacks._base import TrainingCallback

ATTRIBUTE = "_keras_tricks_callback_state"


class CallbackState(keras.Operation):
    """Saves and restores the state of the callbacks registered on one model."""

    def __init__(self) -> None:
        super().__init__(name="keras_tricks_callback_state")
        self._callbacks: dict[str, weakref.ref[TrainingCallback]] = {}
        self._ended: set[str] = set()

    def register(self, callback: TrainingCallback) -> str:
        """Registers `callback` under a key fixed by its class and config.

        The first registration after every registered callback ended starts
        a new `fit`: the earlier one's callbacks are forgotten.
        """
        if self._callbacks and self._ended >= set(self._callbacks):
            self._callbacks, self._ended = {}, set()
        config = json.dumps(callback.get_config(), sort_keys=True, default=repr)
        digest = hashlib.sha1(config.encode()).hexdigest()[:10]  # noqa: S324
        key = f"{type(callback).__name__}_{digest}"
        self._callbacks[key] = weakref.ref(callback)
        self._ended.discard(key)
        return key

    def end(self, callback: TrainingCallback) -> bool:
        """Marks `callback`'s `fit` as ended; whether every callback's has."""
        for key, ref in self._callbacks.items():
            if ref() is callback:
                self._ended.add(key)
        return all(k in self._ended or r() is None for k, r in self._callbacks.items())

    def live(self) -> dict[str, TrainingCallback]:
        """`{key: callback}` of the registered callbacks still alive."""
        live = {key: ref() for key, ref in self._callbacks.items()}
        return {key: callback for key, callback in live.items() if callback}

    def save_own_variables(self, store: Any) -> None:
        meta = {}
        for key, callback in self.live().items():
            state, arrays = callback.get_state()
            meta[key] = {"state": state, "arrays": len(arrays)}
            for i, array in enumerate(arrays):
                store[f"{key}.{i}"] = np.asarray(array)
        store["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    def load_own_variables(self, store: Any) -> None:
        if "meta" not in store.keys():
            return
        meta = json.loads(bytes(np.asarray(store["meta"][()])).decode())
        for key, callback in self.live().items():
            if key in meta:
                count = meta[key]["arrays"]
                arrays = [np.asarray(store[f"{key}.{i}"][()]) for i in range(count)]
                callback.set_state_restored(meta[key]["state"], arrays)


def attach(model: keras.Model, callback: TrainingCallback) -> str:
    """Registers `callback` on `model`'s state holder; returns its key."""
    holder = getattr(model, ATTRIBUTE, None)
    if holder is None:
        holder = CallbackState()
        setattr(model, ATTRIBUTE, holder)
    return holder.register(callback)


def detach(model: keras.Model, callback: TrainingCallback) -> None:
    """Marks `callback`'s `fit` as ended; removes the holder once all have."""
    holder = getattr(model, ATTRIBUTE, None)
    if holder is not None and holder.end(callback):
        delattr(model, ATTRIBUTE)


def peers(model: keras.Model) -> list[TrainingCallback]:
    """The keras_tricks callbacks registered on `model` for its current `fit`."""
    holder = getattr(model, ATTRIBUTE, None)
    return list(holder.live().values()) if holder is not None else []
