"""The replica and conditional operations the gradient wrapper needs.

Keras applies `clipnorm`/`global_clipnorm` to each replica's gradient before
the all-reduce (tensorflow/tensorflow#33929). To clip the gradient of the
global batch, `GradientClipping` sums the gradients over the replicas first.
Outside a `tf.distribute` strategy, or on another backend, these are no-ops.

A skipped step (see `apply_if`) is, on JAX, where the train step is traced
functionally, the update run in a `keras.StatelessScope` with each new value
selected against the old one; on TensorFlow, a `cond` around the update.
"""

from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import ops

from keras_tricks import _keras_compat


def _tf() -> Any:
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf


def replicas() -> int:
    """Number of replicas whose gradients the current train step sums."""
    tf = _tf()
    if tf is None:
        return 1
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def all_reduce_mean(grads: Sequence[Any]) -> list[Any]:
    """Replaces each replica's gradient by the mean over the replicas.

    The inner optimizer then sums the (now equal) per-replica values again,
    so it applies exactly the all-reduced gradient Keras would have applied.
    `None` entries stay `None`.
    """
    n = replicas()
    if n == 1:
        return list(grads)
    tf = _tf()
    present = [tf.convert_to_tensor(g) for g in grads if g is not None]
    summed = iter(
        tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, present
        )
    )
    return [None if g is None else next(summed) / n for g in grads]


def on_every_replica(flag: Any) -> Any:
    """Whether the boolean scalar `flag` holds on every replica of the step."""
    n = replicas()
    if n == 1:
        return flag
    tf = _tf()
    failures = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(flag), tf.float32)
    )
    return failures == 0


def apply_if(
    condition: Any,
    apply_fn: Callable[..., Any],
    args: Sequence[Any],
    variables: Sequence[keras.Variable],
) -> None:
    """Runs `apply_fn(*args)`; its assignments take effect only if `condition`.

    `variables` are all the variables `apply_fn` may assign (used on JAX).

    On JAX every assignment becomes `where(condition, new value, current
    value)`, which XLA fuses into the update. On TensorFlow the update runs
    under a `cond`: everything `apply_fn` traces, nested `tf.function`s
    included, belongs to the branch and to nothing else. (Under XLA the
    `cond` copies the variables it assigns, each step: the price of leaving
    TensorFlow's variable classes alone.) A branch that calls the inner
    optimizer's `merge_call` cannot run under a `cond` in a replica context
    (the pattern of Keras's `LossScaleOptimizer`), so there the `cond` runs
    in the cross-replica context. `condition` must be equal on every replica
    (it is computed from all-reduced gradients).
    """
    if keras.backend.backend() == "jax":
        _masked_stateless(condition, lambda: apply_fn(*args), variables)
        return
    tf = _tf()
    if tf is None or replicas() == 1 or _keras_compat.strategy_supports_no_merge_call():
        ops.cond(condition, lambda: apply_fn(*args), lambda: None)
        return

    def cross_replica(distribution: Any, condition: Any, args: tuple) -> None:
        first = distribution.experimental_local_results(condition)[0]
        ops.cond(
            first,
            lambda: distribution.extended.call_for_each_replica(apply_fn, args=args),
            lambda: None,
        )

    tf.distribute.get_replica_context().merge_call(
        cross_replica, args=(condition, tuple(args))
    )


def _masked_stateless(
    condition: Any, fn: Callable[[], Any], variables: Sequence[keras.Variable]
) -> None:
    """`fn()`'s assignments, kept only if `condition`, in a functional step (JAX).

    `fn` runs in a `keras.StatelessScope`, so its assignments are new values
    rather than effects on the traced variables; each variable then takes
    `where(condition, new value, old value)`.
    """
    mapping = [(v, v.value) for v in variables]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        fn()
    for variable, old in mapping:
        new = scope.get_current_value(variable)
        if new is not old:
            variable.assign(ops.where(condition, new, old))
