"""Ghost batch normalisation: batch statistics per small virtual batch."""

import keras
from keras import ops

from keras_tricks._validation import check_number, check_rank, invalid


@keras.saving.register_keras_serializable(package="keras_tricks")
class GhostBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalisation with statistics per virtual batch (ghost BN).

    In training, the batch is split along axis 0 into consecutive virtual
    batches of `virtual_batch_size` rows, and each virtual batch `g` is
    normalised with its own moments:

        y = gamma * (x - mean_g) / sqrt(var_g + epsilon) + beta

    Large-batch training then keeps the regularising noise of small-batch BN
    (Hoffer et al. 2017), while the step still processes the whole batch. The
    moving averages are updated once per step with the virtual-batch moments
    averaged over the batch (weighted by rows),

        moving_mean <- momentum * moving_mean + (1 - momentum) * mean(mean_g)
        moving_var  <- momentum * moving_var  + (1 - momentum) * mean(var_g)

    and inference uses them exactly like `keras.layers.BatchNormalization`.
    With `virtual_batch_size` equal to the batch size the layer is
    `BatchNormalization`.

    A batch that does not divide evenly (e.g. the last batch of an epoch) is
    zero-padded to a multiple of `virtual_batch_size` and the padding is
    masked out of the statistics: the last virtual batch is simply smaller
    (its moments are over its real rows only). This works with a dynamic
    (`None`) batch dimension, inside `jit_compile=True` functions too.

    Under `tf.distribute` each replica splits its own part of the batch; the
    statistics are not synchronised (`synchronized=True` is refused, as is
    `renorm=True`).

    Args:
        virtual_batch_size: rows per virtual batch, an integer >= 1.
        **batch_norm_args: every argument of `keras.layers.BatchNormalization`
            (`axis`, `momentum`, `epsilon`, `center`, `scale`, initializers,
            regularizers, constraints) and of `keras.layers.Layer`.

    Raises:
        ValueError: for `virtual_batch_size < 1`, `synchronized=True`,
            `renorm=True`, `axis` on the batch axis, or inputs of rank < 2.

    Example:

    >>> layer = GhostBatchNormalization(virtual_batch_size=8)
    >>> x = np.random.default_rng(0).normal(size=(32, 4))
    >>> y = layer(x, training=True)  # four virtual batches of 8 rows

    Reference:
        Hoffer, Hubara & Soudry, "Train longer, generalize better: closing the
        generalization gap in large batch training of neural networks",
        NeurIPS 2017.
    """

    def __init__(self, virtual_batch_size, **batch_norm_args):
        self.virtual_batch_size = check_number(
            "virtual_batch_size", virtual_batch_size, low=1, integer=True
        )
        for name in ("synchronized", "renorm"):
            if batch_norm_args.get(name):
                raise invalid(
                    name,
                    batch_norm_args[name],
                    "False: GhostBatchNormalization computes per-replica "
                    "statistics of each virtual batch",
                )
        super().__init__(**batch_norm_args)

    def build(self, input_shape):
        check_rank(self, input_shape, 2)
        if self.axis % len(input_shape) == 0:
            raise invalid("axis", self.axis, "a feature axis, not the batch axis 0")
        super().build(input_shape)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable):
            return super().call(inputs, training=False, mask=mask)
        dtype = "float64" if inputs.dtype == "float64" else "float32"
        x = ops.cast(inputs, dtype)
        rank = len(x.shape)
        axis = self.axis % rank
        size = self.virtual_batch_size
        rows = ops.shape(x)[0]
        groups = (rows + size - 1) // size
        padding = groups * size - rows
        grouped_shape = [groups, size, *ops.shape(x)[1:]]
        # Moments within each virtual batch: over every axis but the group
        # axis 0 and the feature axis (shifted by one by the grouping).
        axes = [a for a in range(rank + 1) if a not in (0, axis + 1)]
        even = isinstance(padding, int) and padding == 0 and mask is None
        if even:
            xg = ops.reshape(x, grouped_shape)
            mean, variance = ops.moments(xg, axes, keepdims=True)
            batch_mean = ops.mean(mean, axis=0)
            batch_variance = ops.mean(variance, axis=0)
        else:
            xg, weights = self._padded(x, rows, padding, grouped_shape, mask)
            weights = ops.broadcast_to(weights, ops.shape(xg))
            count = ops.sum(weights, axes, keepdims=True)
            safe = ops.maximum(count, keras.config.epsilon())
            mean = ops.sum(xg * weights, axes, keepdims=True) / safe
            variance = ops.sum(weights * ops.square(xg - mean), axes, keepdims=True)
            variance = variance / safe
            share = count / ops.sum(count, axis=0, keepdims=True)
            batch_mean = ops.sum(mean * share, axis=0)
            batch_variance = ops.sum(variance * share, axis=0)
        self._update_moving(
            ops.reshape(batch_mean, [-1]), ops.reshape(batch_variance, [-1])
        )
        inverse = ops.rsqrt(variance + self.epsilon)
        channels = [1] * (rank + 1)
        channels[axis + 1] = x.shape[axis]
        if self.scale:
            inverse = inverse * ops.reshape(ops.cast(self.gamma, dtype), channels)
        offset = -mean * inverse
        if self.center:
            offset = offset + ops.reshape(ops.cast(self.beta, dtype), channels)
        outputs = ops.reshape(xg * inverse + offset, [groups * size, *ops.shape(x)[1:]])
        if not even:
            outputs = outputs[:rows]
        return ops.cast(outputs, self.compute_dtype)

    def _padded(self, x, rows, padding, grouped_shape, mask):
        """Zero-pads `x` to whole virtual batches; returns it grouped and weights.

        The weights are 1 on real (and unmasked) positions, 0 on the padding.
        """
        rank = len(x.shape)
        total = grouped_shape[0] * grouped_shape[1]
        weights = ops.cast(ops.arange(total) < rows, x.dtype)
        weights = ops.reshape(weights, [-1] + [1] * (rank - 1))
        if mask is not None:
            mask = ops.expand_dims(ops.cast(mask, x.dtype), -1)
            weights = weights * _pad_rows(mask, padding)
        grouped = grouped_shape[:2] + list(ops.shape(weights)[1:])
        return ops.reshape(_pad_rows(x, padding), grouped_shape), ops.reshape(
            weights, grouped
        )

    def _update_moving(self, mean, variance):
        momentum = self.momentum
        for variable, value in (
            (self.moving_mean, mean),
            (self.moving_variance, variance),
        ):
            current = ops.cast(variable, value.dtype)
            variable.assign(
                ops.cast(current * momentum + value * (1.0 - momentum), variable.dtype)
            )

    def get_config(self):
        return {**super().get_config(), "virtual_batch_size": self.virtual_batch_size}


def _pad_rows(x, padding):
    """Appends `padding` rows of zeros to `x` (a static or dynamic count)."""
    zeros = ops.zeros([padding, *ops.shape(x)[1:]], x.dtype)
    return ops.concatenate([x, zeros], axis=0)
