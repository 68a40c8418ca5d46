"""Every access to Keras internals, in one place.

keras_tricks uses the public Keras 3 API everywhere else. Where Keras has no
public hook for what a trick needs, the private attribute is read (or the
method replaced) here, and only here. Each entry names the Keras version it
was checked against and the feature that depends on it;
`tests/test_keras_compat.py` asserts that every attribute still exists on the
installed Keras, so a Keras upgrade that renames one fails there first, with
the name of the feature, rather than somewhere inside a training run.

Nothing here replaces a method of a Keras or TensorFlow class, and nothing
reads Python stack frames. Where a trick must step into a call Keras makes,
an attribute is set on the user's own instance (their optimizer, their
model) for the duration of that call and restored in `try/finally`, as
Keras's own `LossScaleOptimizer` does with its inner optimizer.
"""

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import keras
from keras.src.saving.keras_saveable import KerasSaveable

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
    (keras.optimizers.Optimizer, "_clip_gradients"): (
        "GradientClipping (clips where Keras clips: after loss-scale unscaling "
        "and gradient accumulation, before weight decay)"
    ),
    (keras.layers.Layer, "_obj_type"): (
        "TiedRegularizer(reference=array) saved with the weights (Keras's "
        "saving walks KerasSaveable objects and asks each its `_obj_type`)"
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


_PATCHES_LOCK = threading.Lock()
_PATCHES: dict[tuple[int, str], tuple[int, Any]] = {}
_MISSING = object()


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    """Sets the instance attribute `obj.<name> = value` for the block.

    Whatever `obj` had as its own attribute before (usually nothing: the
    class's method shows through) is back when the block ends or raises.
    Blocks on the same attribute may nest or run at once in several threads
    (`tf.distribute.MirroredStrategy` traces each replica in its own thread):
    they are reference counted, the first block's value serves them all and
    the attribute is restored when the last one ends.
    """
    key = (id(obj), name)
    with _PATCHES_LOCK:
        depth, previous = _PATCHES.get(key, (0, _MISSING))
        if depth == 0:
            previous = vars(obj).get(name, _MISSING)
            setattr(obj, name, value)
        _PATCHES[key] = (depth + 1, previous)
    try:
        yield
    finally:
        with _PATCHES_LOCK:
            depth, previous = _PATCHES.pop(key)
            if depth > 1:
                _PATCHES[key] = (depth - 1, previous)
            elif previous is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, previous)


def clipping_replaced(
    optimizer: keras.optimizers.Optimizer, clip: Callable[[list], list]
) -> contextlib.AbstractContextManager[None]:
    """Makes `optimizer` clip its gradients with `clip(grads)` in the block.

    Keras 3.15.1 (`BaseOptimizer._backend_apply_gradients`, and the JAX
    backend's override) calls `self._clip_gradients(grads)` on the gradients
    left after dropping `None` entries and `overwrite_with_gradient`
    variables, after loss-scale unscaling and on the accumulated gradient,
    just before weight decay and the update; Keras has no public hook there.
    """
    return patched(optimizer, "_clip_gradients", clip)


TENSORFLOW_INTERNALS = {
    "tf.__internal__.distribute.strategy_supports_no_merge_call": (
        "GradientClipping(skip_nonfinite=True) under tf.distribute (whether a "
        "skipped step may run under a cond in the replica context)"
    ),
    "tensorflow.python.framework.ops._gradient_registry": (
        "GradientClipping / GradientMonitor free the traced graphs of a model "
        "that is gone (the custom-gradient registry holds them forever)"
    ),
}
"""TensorFlow internals read by keras_tricks, with the feature that needs them
(TensorFlow 2.21; checked by `tests/test_keras_compat.py` on TensorFlow)."""


def strategy_supports_no_merge_call() -> bool:
    """Whether the current `tf.distribute` strategy runs without `merge_call`.

    Keras's own `LossScaleOptimizer` asks the same question before it puts
    the inner optimizer's update under a `cond` (TensorFlow has no public
    equivalent).
    """
    import tensorflow as tf

    return bool(tf.__internal__.distribute.strategy_supports_no_merge_call())


@contextlib.contextmanager
def recording_custom_gradients(names: list[str]) -> Iterator[None]:
    """Appends to `names` the TensorFlow custom gradients registered in the block.

    In a traced function, every `tf.custom_gradient` op (tf.distribute's
    all-reduce in Keras's optimizer update is one) registers its gradient
    function in TensorFlow's global gradient registry under a new
    `CustomGradient-<n>` name, and nothing ever removes it; the function's
    closure holds the whole traced graph, so each model built, fitted and
    dropped leaves its train graph in memory (tensorflow/tensorflow#97697,
    #27492). The names let `forget_custom_gradients` release them once the
    graph is no longer used. A no-op on other backends.
    """
    if keras.backend.backend() != "tensorflow":
        yield
        return
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    before = set(registry)  # one C-level copy: safe beside tracing threads
    try:
        yield
    finally:
        added = set(registry) - before
        names.extend(sorted(n for n in added if n.startswith("CustomGradient-")))


def forget_custom_gradients(names: list[str]) -> None:
    """Removes the registry entries `recording_custom_gradients` collected.

    Call it only when no graph that was being built in the recorded blocks
    will be differentiated again (its owner was garbage collected, or the
    traced functions were dropped).
    """
    if not names:
        return
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    for name in names:
        registry.pop(name, None)
    names.clear()


SAVEABLE_BASE = KerasSaveable
"""The base of the objects Keras's saving walks (Keras 3.15.1,
`keras.src.saving.keras_saveable`).

`model.save` and `save_weights` visit every attribute of a layer that
derives from it (listed by `dir`), call its `save_own_variables(store)`, and
`load_model` / `load_weights` its `load_own_variables(store)`; the object
names its kind with `_obj_type()` (one of Keras's, which sets the attributes
not walked). `TiedRegularizer` derives from it so that fixed reference values
are stored as a weight of the layer they regularise, not as config text.
"""
