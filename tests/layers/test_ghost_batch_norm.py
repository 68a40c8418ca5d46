import keras
import numpy as np
import pytest

from keras_tricks.layers import GhostBatchNormalization, ghost_batch_norm
from tests.conftest import BACKEND

EPSILON = 1e-3


def _np(value):
    return np.asarray(keras.ops.convert_to_numpy(value), "float64")


def _ghost_numpy(x, size, axis=-1, mask=None):
    """Independent ghost BN in NumPy (gamma 1, beta 0): per virtual batch."""
    axes = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    out, means, variances, counts = [], [], [], []
    for start in range(0, len(x), size):
        chunk = x[start : start + size]
        w = np.ones_like(chunk)
        if mask is not None:
            w = np.broadcast_to(mask[start : start + size, ..., None], chunk.shape)
        count = w.sum(axes, keepdims=True)
        mean = (chunk * w).sum(axes, keepdims=True) / count
        var = (w * (chunk - mean) ** 2).sum(axes, keepdims=True) / count
        out.append((chunk - mean) / np.sqrt(var + EPSILON))
        means.append(mean.ravel())
        variances.append(var.ravel())
        counts.append(count.ravel())
    counts = np.array(counts)
    share = counts / counts.sum(0)
    return (
        np.concatenate(out),
        (np.array(means) * share).sum(0),
        (np.array(variances) * share).sum(0),
    )


@pytest.mark.parametrize(
    ("shape", "axis"), [((32, 5), -1), ((16, 4, 4, 3), -1), ((16, 3, 4, 4), 1)]
)
def test_matches_batch_normalization_with_one_virtual_batch(shape, axis, rng):
    x = (rng.normal(size=shape) * 3 + 2).astype("float32")
    kwargs = {"axis": axis, "momentum": 0.8, "gamma_initializer": "random_normal"}
    ghost = GhostBatchNormalization(shape[0], **kwargs)
    keras.utils.set_random_seed(1)
    native = keras.layers.BatchNormalization(**kwargs)
    ghost.build(shape)
    native.build(shape)
    ghost.set_weights(native.get_weights())
    for _ in range(3):
        np.testing.assert_allclose(
            _np(ghost(x, training=True)), _np(native(x, training=True)), atol=1e-5
        )
    for ours, theirs in zip(ghost.get_weights(), native.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    np.testing.assert_allclose(
        _np(ghost(x, training=False)), _np(native(x, training=False)), atol=1e-5
    )


@pytest.mark.parametrize(
    ("rows", "size"),
    [(32, 8), (29, 8), (5, 8), (30, 2)],
)
def test_statistics_per_virtual_batch(rows, size, rng):
    """A regular batch of 32 rows first; then 29 and 5 are last batches."""
    x = (rng.normal(size=(rows, 4)) * 2 - 1).astype("float32")
    layer = GhostBatchNormalization(size, momentum=0.0)
    layer(np.zeros((32, 4), "float32"), training=True)
    expected, mean, variance = _ghost_numpy(x.astype("float64"), size)
    np.testing.assert_allclose(_np(layer(x, training=True)), expected, atol=1e-4)
    # momentum 0: the moving statistics are this step's row-weighted average.
    np.testing.assert_allclose(_np(layer.moving_mean), mean, atol=1e-5)
    np.testing.assert_allclose(_np(layer.moving_variance), variance, atol=1e-5)


def test_uneven_dynamic_batch_under_jit(rng):
    import tensorflow as tf

    layer = GhostBatchNormalization(8, momentum=0.0)
    layer.build((None, 3))

    @tf.function(jit_compile=True, input_signature=[tf.TensorSpec((None, 3))])
    def step(x):
        return layer(x, training=True)

    for rows in (19, 24):
        x = rng.normal(size=(rows, 3)).astype("float32")
        expected, mean, _ = _ghost_numpy(x.astype("float64"), 8)
        np.testing.assert_allclose(_np(step(x)), expected, atol=1e-4)
        np.testing.assert_allclose(_np(layer.moving_mean), mean, atol=1e-5)


def test_mask_is_left_out_of_the_statistics(rng):
    x = rng.normal(size=(12, 5, 3)).astype("float32")
    mask = rng.random((12, 5)) > 0.3
    layer = GhostBatchNormalization(4, momentum=0.0)
    out = _np(layer(x, training=True, mask=mask))
    expected, mean, _ = _ghost_numpy(x.astype("float64"), 4, mask=mask)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    np.testing.assert_allclose(_np(layer.moving_mean), mean, atol=1e-5)


def test_mixed_precision_keeps_float32_statistics(rng):
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = GhostBatchNormalization(8, momentum=0.0)
        x = (rng.normal(size=(16, 4)) * 100 + 300).astype("float16")
        out = layer(x, training=True)
    finally:
        keras.config.set_dtype_policy(policy)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert layer.moving_variance.dtype == "float32"
    _, mean, variance = _ghost_numpy(x.astype("float64"), 8)
    np.testing.assert_allclose(_np(layer.moving_mean), mean, rtol=1e-5)
    np.testing.assert_allclose(_np(layer.moving_variance), variance, rtol=1e-4)


def test_replicas_split_their_own_batch_like_one_device(strategy, rng):
    """Per-replica batch 16, virtual batches of 8: the same virtual batches,
    so the same gradients and trained weights as on one device."""
    x, y = rng.normal(size=(64, 4)), rng.normal(size=(64, 1))
    weights = []
    for scope in (None, strategy):
        keras.utils.set_random_seed(2)
        with scope.scope() if scope else keras.name_scope("single"):
            model = keras.Sequential(
                [
                    keras.Input((4,)),
                    keras.layers.Dense(6),
                    GhostBatchNormalization(8, momentum=0.5),
                    keras.layers.Dense(1),
                ]
            )
            model.compile(keras.optimizers.SGD(0.05), "mse")
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        weights.append([_np(w) for w in model.trainable_weights])
    # The moving averages are updated per replica, as in BatchNormalization.
    for single, mirrored in zip(*weights, strict=True):
        np.testing.assert_allclose(mirrored, single, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"virtual_batch_size": 0}, ValueError, "Received: virtual_batch_size=0"),
        ({"virtual_batch_size": 1}, ValueError, ">= 2.*virtual_batch_size=1"),
        ({"virtual_batch_size": 2.5}, TypeError, "`virtual_batch_size`"),
        ({"virtual_batch_size": 8, "synchronized": True}, ValueError, "`synchron"),
        ({"virtual_batch_size": 8, "renorm": True}, ValueError, "`renorm`"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        GhostBatchNormalization(**kwargs)


def test_batch_axis_is_refused():
    with pytest.raises(ValueError, match="`axis`.*Received: axis=0"):
        GhostBatchNormalization(4, axis=0).build((8, 3))


def _masked_pair(shape, axis):
    """A ghost BN with one virtual batch and a Keras BN with equal weights."""
    kwargs = {"axis": axis, "momentum": 0.5}
    ghost = GhostBatchNormalization(shape[0], **kwargs)
    native = keras.layers.BatchNormalization(**kwargs)
    for layer in (ghost, native):
        layer.build(shape)
    return ghost, native


@pytest.mark.parametrize(
    ("shape", "axis", "masked"),
    [
        ((8, 5, 3), -1, np.s_[:, :]),  # the whole batch
        ((8, 5, 3), -1, np.s_[:4, :]),  # the first virtual batch of 4 rows
        ((8, 3, 5), 1, np.s_[:, 1]),  # channel 1, on every row
    ],
    ids=["batch", "virtual_batch", "channel"],
)
def test_fully_masked_batch_or_channel_stays_finite_like_batch_norm(
    shape, axis, masked, rng
):
    """Before: 0 / 0 in the virtual-batch weights made the moving statistics
    NaN, and every later prediction. Now they follow BatchNormalization: an
    empty batch or channel has moments 0."""
    x = rng.normal(size=shape).astype("float32") + 3
    mask = np.ones(shape[:2], bool)
    mask[masked] = False
    ghost, native = _masked_pair(shape, axis)
    for _ in range(2):
        np.testing.assert_allclose(
            _np(ghost(x, training=True, mask=mask)),
            _np(native(x, training=True, mask=mask)),
            atol=1e-4,
        )
    for ours, theirs in zip(ghost.get_weights(), native.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert np.all(np.isfinite(_np(ghost(x, training=False))))
    # Several virtual batches: the empty ones weigh 0, the rest as in NumPy.
    layer = GhostBatchNormalization(4, axis=axis, momentum=0.0)
    layer(x, training=True, mask=mask)
    channels_last = np.moveaxis(x, axis, -1) if axis == 1 else x
    weights = (
        mask[..., None]
        if axis == -1
        else np.moveaxis(np.broadcast_to(mask[..., None], shape), 1, -1)
    )
    means = []
    for start in (0, 4):
        w = np.broadcast_to(weights[start : start + 4], channels_last[:4].shape)
        chunk = channels_last[start : start + 4]
        count = w.sum(axis=(0, 1))
        means.append(((chunk * w).sum(axis=(0, 1)) / np.maximum(count, 1e-7), count))
    total = sum(count for _, count in means)
    expected = sum(m * c for m, c in means) / np.maximum(total, 1e-7)
    np.testing.assert_allclose(_np(layer.moving_mean), expected, atol=1e-5)


def test_virtual_batch_size_must_divide_the_regular_batch(rng):
    x = rng.normal(size=(48, 3)).astype("float32")
    layer = GhostBatchNormalization(16)
    layer(x[:32], training=True)  # the regular batch: 2 virtual batches
    layer(x[:20], training=True)  # a last batch: 16 + 4 rows, padded
    layer(x, training=False)  # inference: any size
    layer(x, training=True)  # a larger regular batch: 3 virtual batches
    message = (
        r"`virtual_batch_size`. Expected a divisor of the per-replica training "
        r"batch \({} rows.*Received: virtual_batch_size={}"
    )
    with pytest.raises(ValueError, match=message.format(20, 16)):
        GhostBatchNormalization(16)(x[:20], training=True)
    with pytest.raises(
        ValueError,
        match=r"`virtual_batch_size`. Expected at most the per-replica training "
        r"batch \(8 rows.*Received: virtual_batch_size=16",
    ):
        GhostBatchNormalization(16)(x[:8], training=True)  # larger than it


@pytest.mark.jax
def test_the_per_replica_batch_counts_under_a_data_parallel_distribution(
    monkeypatch, rng
):
    """Under keras.distribution.DataParallel (JAX) a layer sees the global
    batch: 2 devices x 12 rows divide into virtual batches of 12, not of 8."""

    class Mesh:
        shape, axis_names = (2,), ("batch",)

    class Distribution:
        device_mesh, batch_dim_name = Mesh(), "batch"

    monkeypatch.setattr(keras.distribution, "distribution", Distribution)
    assert ghost_batch_norm._data_parallel_replicas() == 2
    x = rng.normal(size=(24, 3)).astype("float32")
    GhostBatchNormalization(12)(x, training=True)
    with pytest.raises(ValueError, match=r"\(12 rows.*virtual_batch_size=8"):
        GhostBatchNormalization(8)(x, training=True)


@pytest.mark.compat
@pytest.mark.xla
@pytest.mark.jax
def test_fit_with_a_partial_last_batch_under_jit(rng):
    """44 rows in batches of 16: the last one (12 rows, traced with a static
    shape on JAX) is 8 + 4 rows; momentum 0 leaves its statistics."""
    x = rng.normal(size=(44, 3)).astype("float32") * 2 + 1
    model = keras.Sequential(
        [keras.Input((3,)), GhostBatchNormalization(8, momentum=0.0)]
    )
    model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=True)
    model.fit(x, x, batch_size=16, epochs=1, shuffle=False, verbose=0)
    _, mean, variance = _ghost_numpy(x[32:].astype("float64"), 8)
    layer = model.layers[0]
    np.testing.assert_allclose(_np(layer.moving_mean), mean, atol=1e-5)
    np.testing.assert_allclose(_np(layer.moving_variance), variance, atol=1e-5)


@pytest.mark.xla
@pytest.mark.jax
@pytest.mark.skipif(
    BACKEND == "tensorflow",
    reason="TensorFlow traces fit with an unknown batch size: nothing to check",
)
def test_fit_with_a_batch_that_virtual_batches_do_not_divide_fails(rng):
    x = rng.normal(size=(48, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), GhostBatchNormalization(8)])
    model.compile("sgd", "mse", jit_compile=True)
    with pytest.raises(ValueError, match=r"\(12 rows.*virtual_batch_size=8"):
        model.fit(x, x, batch_size=12, epochs=1, verbose=0)
