"""Exact population statistics for every BatchNormalization layer."""

import contextlib

import keras
import numpy as np
from keras import ops

from keras_tricks import _keras_compat, _layers
from keras_tricks._validation import check_number, invalid
from keras_tricks.report import Report


def recalibrate_batch_norm(model, data, *, steps=None, batch_size=256):
    """Sets each BatchNormalization layer's moving statistics to the population's.

    During training the moving averages trail the weights (momentum 0.99
    averages over about a hundred steps, taken while the weights changed);
    after weight averaging or a change of batch size they no longer match the
    network at all. This re-estimates them as the exact mean and (biased)
    variance of each layer's inputs over `data`, with the model in inference
    mode. Layers are done in the order the model calls them, so each one sees
    inputs normalised by the already-recalibrated layers before it: with `L`
    layers that is `L` passes over `data`, the pass for layer `l` stopping at
    layer `l`.

    Streaming: per batch, the count `n_b`, mean `m_b` and sum of squared
    deviations `M2_b` are computed in float32 and merged on the host in
    float64 (Chan, Golub & LeVeque 1979),

        n = n_a + n_b,   delta = m_b - m_a,   m = m_a + delta * n_b / n,
        M2 = M2_a + M2_b + delta^2 * n_a * n_b / n,   var = M2 / n

    so data larger than memory works. Covers `keras.layers.BatchNormalization`
    and its subclasses (`GhostBatchNormalization`), nested models included;
    with `renorm=True` the moving stddev is set to `sqrt(var + epsilon)` too.
    A layer called several times per forward pass is calibrated on its first
    call; masks are ignored.

    Args:
        model: a `keras.Model` with at least one BatchNormalization layer.
        data: the inputs: a `tf.data.Dataset` of batches (elements `x` or
            `(x, y[, sample_weight])`), a NumPy array or tensor (split into
            batches of `batch_size`), a `keras.utils.PyDataset`, a list of
            batches, or a generator function (called once per pass). A
            generator object can be read only once: it works for a model with
            a single BatchNormalization layer.
        steps: batches per pass (the first `steps`). Defaults to `None`: all
            (required for an infinite dataset).
        batch_size: rows per batch when `data` is an array. Defaults to `256`.

    Returns:
        A `keras_tricks.report.Report`, one row per layer in call order:
        `layer`, `samples` (values per channel), `mean_error` (largest
        `|old - new| / sqrt(new_var + epsilon)` over channels: how far the old
        moving mean was, in population standard deviations) and `var_ratio`
        (largest `max(old / new, new / old)` over channels; 1 is exact).

    Raises:
        ValueError: for a model without BatchNormalization layers, `steps < 1`,
            `batch_size < 1`, empty data, an infinite dataset without `steps`,
            or a one-shot generator for a model with several layers.
        TypeError: for `data` of an unsupported type.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...                           keras.layers.BatchNormalization()])
    >>> x = np.random.default_rng(0).normal(size=(1000, 4))
    >>> report = recalibrate_batch_norm(model, x)

    Reference:
        Ioffe & Szegedy, "Batch Normalization", ICML 2015 (Algorithm 2:
        population statistics for inference); Chan, Golub & LeVeque,
        "Updating formulae and a pairwise algorithm for computing sample
        variances", 1979.
    """
    if steps is not None:
        steps = check_number("steps", steps, low=1, integer=True)
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    layers = [
        layer
        for layer in _layers.walk(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    if not layers:
        raise invalid(
            "model",
            model,
            "a model with at least one BatchNormalization layer",
        )
    passes = _passes(data, batch_size, steps, one_pass_only=len(layers) == 1)
    if len(layers) > 1:
        first = next(iter(passes()), None)
        if first is None:
            raise invalid("data", data, "at least one batch")
        if not model.built:
            model(first, training=False)
        layers = [layer for layer, _ in _layers.outputs(model, first, layers)]
    rows = []
    for layer in layers:
        count, mean, variance = _population(model, layer, passes, data)
        rows.append(_row(layer, count, mean, variance))
        _assign(layer, mean, variance)
    return Report(rows, title="recalibrate_batch_norm")


def _passes(data, batch_size, steps, one_pass_only):
    """Returns a function that yields the input batches of one pass."""
    source = _source(data, batch_size, one_pass_only)
    if steps is None and hasattr(data, "cardinality"):
        import tensorflow as tf

        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise invalid("steps", None, "a number of batches for an infinite dataset")

    def batches():
        for step, element in enumerate(source()):
            if steps is not None and step >= steps:
                return
            yield keras.utils.unpack_x_y_sample_weight(element)[0]

    return batches


def _source(data, batch_size, one_pass_only):
    """Returns a zero-argument function giving an iterator over `data`."""
    if hasattr(data, "element_spec") or isinstance(data, list | tuple):
        return data.__iter__  # tf.data.Dataset or list of batches
    if hasattr(data, "shape"):
        if len(data.shape) == 0 or data.shape[0] == 0:
            raise invalid("data", data, "a non-empty batch")
        starts = range(0, data.shape[0], batch_size)
        return lambda: (data[s : s + batch_size] for s in starts)
    if isinstance(data, keras.utils.PyDataset):
        return lambda: (data[i] for i in range(data.num_batches))
    if callable(data):
        return data
    if hasattr(data, "__next__"):
        if not one_pass_only:
            raise invalid(
                "data",
                data,
                "data that can be read several times (one pass per "
                "BatchNormalization layer)",
                fix="Pass the generator function itself (e.g. `make_batches` "
                "instead of `make_batches()`), an array or a tf.data.Dataset",
            )
        return lambda: data
    raise invalid(
        "data",
        data,
        "a tf.data.Dataset, an array, a PyDataset, a list of batches or "
        "a generator function",
        TypeError,
    )


class _Stop(Exception):
    """Ends a forward pass once the wanted layer's inputs are captured."""


@contextlib.contextmanager
def _inputs_of(layer, capture):
    """Makes `layer.call` record its input into `capture` and stop the pass."""

    def call(inputs, *args, **kwargs):
        capture.append(inputs)
        raise _Stop

    with _keras_compat.replaced_call(layer, call):
        yield


def _batch_moments_fn(model, layer, example):
    """Returns `x -> (count, mean, M2)` of `layer`'s inputs per channel.

    On TensorFlow it is one `tf.function`, traced once for batches shaped
    like `example` with any number of rows.
    """

    def moments(x):
        capture = []
        with _inputs_of(layer, capture), contextlib.suppress(_Stop):
            model(x, training=False)
        values = ops.cast(capture[0], "float32")
        axis = layer.axis % len(values.shape)
        axes = [a for a in range(len(values.shape)) if a != axis]
        mean = ops.mean(values, axis=axes, keepdims=True)
        m2 = ops.sum(ops.square(values - mean), axis=axes)
        count = ops.cast(ops.size(values), "float32") / values.shape[axis]
        return count, ops.reshape(mean, [-1]), m2

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        spec = keras.tree.map_structure(
            lambda v: tf.TensorSpec((None, *v.shape[1:]), tf.as_dtype(v.dtype)),
            example,
        )
        return tf.function(moments, input_signature=[spec], autograph=False)
    return moments


def _population(model, layer, batches, data):
    """Streams `batches` through `model`; merges per-batch moments (Chan)."""
    moments = None
    count, mean, m2 = 0.0, 0.0, 0.0
    for x in batches():
        moments = moments or _batch_moments_fn(model, layer, x)
        n_b, mean_b, m2_b = (
            np.asarray(ops.convert_to_numpy(v), "float64") for v in moments(x)
        )
        n_b = float(n_b)
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * n_b / total
        m2 = m2 + m2_b + delta**2 * count * n_b / total
        count = total
    if count == 0:
        raise invalid("data", data, "at least one batch")
    return count, mean, m2 / count


def _row(layer, count, mean, variance):
    old_mean = np.asarray(ops.convert_to_numpy(layer.moving_mean), "float64")
    old_var = np.asarray(ops.convert_to_numpy(layer.moving_variance), "float64")
    tiny = np.finfo("float64").tiny
    ratio = np.maximum(old_var, tiny) / np.maximum(variance, tiny)
    return {
        "layer": layer.name,
        "samples": int(count),
        "mean_error": float(
            np.max(np.abs(old_mean - mean) / np.sqrt(variance + layer.epsilon))
        ),
        "var_ratio": float(np.max(np.maximum(ratio, 1 / ratio))),
    }


def _assign(layer, mean, variance):
    layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
    layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
    if getattr(layer, "renorm", False):
        stddev = np.sqrt(variance + layer.epsilon)
        layer.moving_stddev.assign(stddev.astype(layer.moving_stddev.dtype))
