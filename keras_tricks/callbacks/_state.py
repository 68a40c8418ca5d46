"""Callback state that rides along in the model's weights file.

`keras.callbacks.BackupAndRestore` backs up a run with `model.save_weights`
at the end of every epoch and restores it with `model.load_weights` at the
start of the resumed `fit`. Keras's callbacks keep their counters in Python
attributes, so a resumed run forgets them. Ours register with a small
`CallbackState` object attached to the model (attribute
`_keras_tricks_callback_state`); Keras's saving walks the model's attributes,
so `save_weights` stores every registered callback's state (a JSON dict and a
list of arrays, e.g. the best weights) in the same file, and `load_weights`
gives it back. The holder is not a layer or variable: `model.weights`, the
model's outputs and the `.keras` format are unchanged (a model loaded from a
file simply has no holder until a callback attaches one).
"""

import hashlib
import json
import weakref

import keras
import numpy as np

ATTRIBUTE = "_keras_tricks_callback_state"


class CallbackState(keras.Operation):
    """Saves and restores the state of the callbacks registered on one model."""

    def __init__(self):
        super().__init__(name="keras_tricks_callback_state")
        self._callbacks = {}

    def register(self, callback):
        """Registers `callback` under a key fixed by its class and config."""
        config = json.dumps(callback.get_config(), sort_keys=True, default=repr)
        digest = hashlib.sha1(config.encode()).hexdigest()[:10]  # noqa: S324
        key = f"{type(callback).__name__}_{digest}"
        self._callbacks[key] = weakref.ref(callback)
        return key

    def _live(self):
        live = {key: ref() for key, ref in self._callbacks.items()}
        return {key: callback for key, callback in live.items() if callback}

    def save_own_variables(self, store):
        meta = {}
        for key, callback in self._live().items():
            state, arrays = callback.get_state()
            meta[key] = {"state": state, "arrays": len(arrays)}
            for i, array in enumerate(arrays):
                store[f"{key}.{i}"] = np.asarray(array)
        store["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    def load_own_variables(self, store):
        if "meta" not in store.keys():
            return
        meta = json.loads(bytes(np.asarray(store["meta"][()])).decode())
        for key, callback in self._live().items():
            if key in meta:
                count = meta[key]["arrays"]
                arrays = [np.asarray(store[f"{key}.{i}"][()]) for i in range(count)]
                callback.set_state(meta[key]["state"], arrays)


def attach(model, callback):
    """Registers `callback` on `model`'s state holder; returns its key."""
    holder = getattr(model, ATTRIBUTE, None)
    if holder is None:
        holder = CallbackState()
        setattr(model, ATTRIBUTE, holder)
    return holder.register(callback)


def registered(model):
    """The live callbacks registered on `model` (this and earlier fits)."""
    holder = getattr(model, ATTRIBUTE, None)
    return list(holder._live().values()) if holder is not None else []
