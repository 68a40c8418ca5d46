"""The replica and conditional operations the gradient wrapper needs.

Keras applies `clipnorm`/`global_clipnorm` to each replica's gradient before
the all-reduce (tensorflow/tensorflow#33929). To clip the gradient of the
global batch, `GradientClipping` sums the gradients over the replicas first.
Outside a `tf.distribute` strategy, or on another backend, these are no-ops.

A skipped step is a `cond` around the inner optimizer's update. On
TensorFlow that is a plain `cond` (or one in the cross-replica context, see
`apply_if`); on JAX, where the train step is traced functionally, the
branches run in a `keras.StatelessScope` and return the new values of the
variables, which are assigned after the `cond` (the pattern of Keras's own
`LossScaleOptimizer.stateless_apply`).
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


def apply_if(
    condition: Any,
    apply_fn: Callable[..., Any],
    skip_fn: Callable[[], Any],
    args: Sequence[Any],
    variables: Sequence[keras.Variable],
) -> None:
    """Runs `apply_fn(*args)` if `condition`, else `skip_fn()`, in any context.

    `variables` are all the variables either branch may assign (used on JAX).

    A branch that calls the inner optimizer's `merge_call` cannot run under a
    `cond` in a replica context (the pattern of Keras's `LossScaleOptimizer`):
    there the `cond` runs in the cross-replica context instead. `condition`
    must be equal on every replica (it is computed from all-reduced
    gradients).
    """
    if keras.backend.backend() == "jax":
        _functional_cond(condition, lambda: apply_fn(*args), skip_fn, variables)
        return
    tf = _tf()
    if tf is None or replicas() == 1 or _keras_compat.strategy_supports_no_merge_call():
        ops.cond(condition, lambda: apply_fn(*args), skip_fn)
        return

    def cross_replica(distribution: Any, condition: Any, args: tuple) -> None:
        first = distribution.experimental_local_results(condition)[0]
        ops.cond(
            first,
            lambda: distribution.extended.call_for_each_replica(apply_fn, args=args),
            skip_fn,
        )

    tf.distribute.get_replica_context().merge_call(
        cross_replica, args=(condition, tuple(args))
    )


def _functional_cond(
    condition: Any,
    true_fn: Callable[[], Any],
    false_fn: Callable[[], Any],
    variables: Sequence[keras.Variable],
) -> None:
    """`cond` over stateful branches, for a functionally traced step (JAX).

    An assignment inside a traced `cond` branch would leak the branch's
    tracer into the variable; each branch instead runs in its own
    `keras.StatelessScope` and returns the variables' new values.
    """

    def branch(fn: Callable[[], Any]) -> Callable[[], list]:
        def run() -> list:
            mapping = [(v, v.value) for v in variables]
            with keras.StatelessScope(state_mapping=mapping) as scope:
                fn()
            return [scope.get_current_value(v) for v in variables]

        return run

    values = ops.cond(condition, branch(true_fn), branch(false_fn))
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)
