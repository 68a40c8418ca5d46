"""The few `tf.distribute` operations the gradient wrapper needs.

Keras applies `clipnorm`/`global_clipnorm` to each replica's gradient before
the all-reduce (tensorflow/tensorflow#33929). To clip the gradient of the
global batch, `GradientClipping` sums the gradients over the replicas first.
On other backends, or outside a strategy, these are no-ops.
"""

import keras
from keras import ops


def _tf():
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf


def replicas():
    """Number of replicas whose gradients the current train step sums."""
    tf = _tf()
    if tf is None:
        return 1
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def all_reduce_mean(grads):
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


def apply_if(finite, apply_fn, skip_fn, args):
    """`ops.cond(finite, apply_fn(*args), skip_fn())`, also in a replica context.

    A branch that calls the inner optimizer's `merge_call` cannot run under a
    `cond` in a replica context (the pattern of Keras's `LossScaleOptimizer`):
    there the `cond` runs in the cross-replica context instead. `finite` must
    be equal on every replica (it is computed from all-reduced gradients).
    """
    tf = _tf()
    if (
        tf is None
        or replicas() == 1
        or tf.__internal__.distribute.strategy_supports_no_merge_call()
    ):
        ops.cond(finite, lambda: apply_fn(*args), skip_fn)
        return

    def cross_replica(distribution, finite, args):
        first = distribution.experimental_local_results(finite)[0]
        ops.cond(
            first,
            lambda: distribution.extended.call_for_each_replica(apply_fn, args=args),
            skip_fn,
        )

    tf.distribute.get_replica_context().merge_call(
        cross_replica, args=(finite, tuple(args))
    )
