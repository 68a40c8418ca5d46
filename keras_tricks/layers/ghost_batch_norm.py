"""Ghost batch normalisation: batch statistics per small virtual batch."""

from __future__ import annotations

from typing import Any

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

    The regular training batch (per replica under a distribution) must be a
    multiple of `virtual_batch_size`; a smaller batch, such as the last batch
    of an epoch, may leave a partial virtual batch: it is zero-padded to whole
    virtual batches and the padding is masked out of the statistics (the last
    virtual batch is simply smaller: its moments are over its real rows, and
    it weighs in the moving averages by its number of rows). This works with
    a dynamic (`None`) batch dimension, inside `jit_compile=True` functions
    too. The batch the layer checks is a static batch size of its input in
    `build` (`keras.Input(batch_size=...)`), else the first training batch it
    sees with a known size (and any larger one later): always on JAX, in
    eager calls and in `fit` on arrays; on TensorFlow, a `tf.data` pipeline
    batched without `drop_remainder=True` has an unknown batch size, a
    regular batch cannot be told from a last one, and every batch is padded
    as a last batch would be. A position masked by a Keras mask is left out of the
    statistics the same way; a virtual batch whose every position is masked
    has moments 0, and when the whole batch is masked the moving averages
    decay toward 0 exactly as in `BatchNormalization` (they stay finite).

    Under `tf.distribute` each replica splits its own part of the batch; the
    statistics are not synchronised (`synchronized=True` is refused, as is
    `renorm=True`). Under `keras.distribution.DataParallel` (JAX) the layer
    sees the global batch: its virtual batches are the same as on one device
    fed the same global batch, and a per-device batch that is a multiple of
    `virtual_batch_size` keeps each virtual batch on one device.

    Args:
        virtual_batch_size: rows per virtual batch, an integer >= 2 that
            divides the per-replica training batch.
        **batch_norm_args: every argument of `keras.layers.BatchNormalization`
            (`axis`, `momentum`, `epsilon`, `center`, `scale`, initializers,
            regularizers, constraints) and of `keras.layers.Layer`.

    Raises:
        ValueError: for `virtual_batch_size < 2`, `synchronized=True`,
            `renorm=True`, `axis` on the batch axis, or inputs of rank < 2;
            for a `virtual_batch_size` that exceeds or does not divide the
            regular per-replica batch: in `build` when the input has a static
            batch size, else at the first training call of known batch size.

    Example:

    >>> layer = GhostBatchNormalization(virtual_batch_size=8, momentum=0.0)
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    >>> y = layer(x, training=True)  # four virtual batches of 8 rows
    >>> first = x[:8]
    >>> expected = (first - first.mean(0)) / np.sqrt(first.var(0) + 1e-3)
    >>> bool(np.allclose(y[:8], expected, atol=1e-5))
    True
    >>> tuple(layer(x[:20], training=True).shape)  # a last batch: 8 + 8 + 4
    (20, 4)

    Reference:
        Hoffer, Hubara & Soudry, "Train longer, generalize better: closing the
        generalization gap in large batch training of neural networks",
        NeurIPS 2017.
    """

    def __init__(self, virtual_batch_size: int, **batch_norm_args: Any) -> None:
        self.virtual_batch_size = check_number(
            "virtual_batch_size", virtual_batch_size, low=1, integer=True
        )
        if self.virtual_batch_size == 1:
            # One row per virtual batch: every feature equals its own mean,
            # so the output would be `beta` whatever the input.
            raise invalid(
                "virtual_batch_size",
                virtual_batch_size,
                "an integer >= 2 (a virtual batch of one row normalises every "
                "feature to 0)",
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
        self._regular_rows: int | None = None

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        check_rank(self, input_shape, 2)
        if self.axis % len(input_shape) == 0:
            raise invalid("axis", self.axis, "a feature axis, not the batch axis 0")
        if input_shape[0] is not None:
            self._check_batch(int(input_shape[0]))
        super().build(input_shape)

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if not (training and self.trainable):
            return super().call(inputs, training=False, mask=mask)
        self._check_batch(inputs.shape[0])
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
            # As in BatchNormalization: an empty (fully masked) virtual batch
            # has moments 0, and so has a fully masked batch.
            tiny = keras.config.epsilon()
            safe = ops.maximum(count, tiny)
            mean = ops.sum(xg * weights, axes, keepdims=True) / safe
            variance = ops.sum(weights * ops.square(xg - mean), axes, keepdims=True)
            variance = variance / safe
            total = ops.sum(count, axis=0, keepdims=True)
            share = count / ops.maximum(total, tiny)
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

    def _check_batch(self, rows: int | None) -> None:
        """Checks that the regular per-replica batch is a multiple of the
        virtual batch size; a smaller batch (the last of an epoch) may not be.

        The regular batch is the first training batch of known size, or any
        larger one after it.
        """
        if rows is None:
            return
        per_replica = rows // _data_parallel_replicas()
        if self._regular_rows is not None and per_replica <= self._regular_rows:
            return
        if per_replica < self.virtual_batch_size:
            raise invalid(
                "virtual_batch_size",
                self.virtual_batch_size,
                "at most the per-replica training batch "
                f"({per_replica} rows, in layer '{self.name}')",
                fix="Lower `virtual_batch_size`, or train with a batch size "
                "that is a multiple of it",
            )
        if per_replica % self.virtual_batch_size:
            raise invalid(
                "virtual_batch_size",
                self.virtual_batch_size,
                "a divisor of the per-replica training batch "
                f"({per_replica} rows, in layer '{self.name}')",
                fix="Train with a batch size that is a multiple of "
                "`virtual_batch_size` (times the number of replicas); only a "
                "smaller last batch of an epoch may leave a partial virtual "
                "batch",
            )
        self._regular_rows = per_replica

    def _padded(
        self, x: Any, rows: Any, padding: Any, grouped_shape: list[Any], mask: Any
    ) -> tuple[Any, Any]:
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

    def _update_moving(self, mean: Any, variance: Any) -> None:
        momentum = self.momentum
        for variable, value in (
            (self.moving_mean, mean),
            (self.moving_variance, variance),
        ):
            current = ops.cast(variable, value.dtype)
            variable.assign(
                ops.cast(current * momentum + value * (1.0 - momentum), variable.dtype)
            )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "virtual_batch_size": self.virtual_batch_size}


def _data_parallel_replicas() -> int:
    """How many devices share the batch a layer sees: the data-parallel axis
    of a `keras.distribution` (the layer sees the global batch there), else 1
    (under `tf.distribute` a layer sees its replica's part already)."""
    distribution = keras.distribution.distribution()
    mesh = getattr(distribution, "device_mesh", None)
    name = getattr(distribution, "batch_dim_name", None)
    if mesh is None or name not in mesh.axis_names:
        return 1
    return int(mesh.shape[list(mesh.axis_names).index(name)])


def _pad_rows(x: Any, padding: Any) -> Any:
    """Appends `padding` rows of zeros to `x` (a static or dynamic count)."""
    zeros = ops.zeros([padding, *ops.shape(x)[1:]], x.dtype)
    return ops.concatenate([x, zeros], axis=0)
