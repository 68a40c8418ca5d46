"""Population statistics for every BatchNormalization layer: one pass, or exact."""

from __future__ import annotations

import itertools
from typing import Any, Literal

import keras
import numpy as np
from keras import ops

from keras_tricks import _layers
from keras_tricks._validation import check_choice, check_number, invalid
from keras_tricks.layers import _batches, _passes
from keras_tricks.report import Report

METHODS = ("single_pass", "sequential")
"""The two definitions `recalibrate_batch_norm(method=...)` computes."""


def recalibrate_batch_norm(
    model: keras.Model,
    data: Any,
    *,
    steps: int | None = None,
    batch_size: int = 256,
    method: Literal["single_pass", "sequential"] = "single_pass",
) -> Report:
    """Sets each BatchNormalization layer's moving statistics to the population's.

    During training the moving averages trail the weights (momentum 0.99
    averages over about a hundred steps, taken while the weights changed);
    after weight averaging or a change of batch size they no longer match the
    network at all. This re-estimates them as the mean and (biased) variance
    of each layer's inputs over `data`, in one of two ways:

    - `method="single_pass"` (the default; PyTorch's
      `torch.optim.swa_utils.update_bn`, fvcore's PreciseBN): one pass over
      `data` in which every BatchNormalization layer normalises its batch
      with that batch's own mean and variance, as in training, and
      accumulates the population statistics of its inputs; every other layer
      runs in inference mode (dropout off). The pass stops after the last
      BatchNormalization layer. A layer's inputs therefore depend, slightly,
      on the batch they came in (through the batch statistics of the layers
      before it): the larger `batch_size`, the smaller the difference.
    - `method="sequential"` (Ioffe & Szegedy's Algorithm 2, exact): layers are
      done in call order, each from inputs normalised by the already
      recalibrated layers before it, exactly as at inference: one pass per
      layer, the pass for layer `l` stopping at layer `l`.

    On the Fashion-MNIST benchmark network (3 BN layers, batch 1024) the two
    give the same dev accuracy and statistics within 0.3% of each other,
    and the single pass costs about one inference pass (see
    `docs/normalization.md`).

    Streaming: per batch, the count `n_b`, mean `m_b` and sum of squared
    deviations `M2_b` are computed in float32 and merged on the host in
    float64 (Chan, Golub & LeVeque 1979),

        n = n_a + n_b,   delta = m_b - m_a,   m = m_a + delta * n_b / n,
        M2 = M2_a + M2_b + delta^2 * n_a * n_b / n,   var = M2 / n

    so data larger than memory works. Covers `keras.layers.BatchNormalization`
    and its subclasses (`GhostBatchNormalization`, normalised with the whole
    batch's statistics in the single pass), nested models included; with
    `renorm=True` the moving stddev is set to `sqrt(var + epsilon)` too. A
    layer called several times per forward pass is calibrated on its first
    call; masks are ignored. Nothing is changed when an error is raised.

    Args:
        model: a `keras.Model` with at least one BatchNormalization layer.
        data: the inputs: a `tf.data.Dataset` of batches (elements `x` or
            `(x, y[, sample_weight])`), a NumPy array or tensor (split into
            batches of `batch_size`), a `keras.utils.PyDataset`, a list of
            batches, or a generator function (called once per pass). A
            generator object can be read only once: it works with the single
            pass, or for a model with one BatchNormalization layer.
        steps: batches per pass (the first `steps`). Defaults to `None`: all
            (required for an infinite dataset).
        batch_size: rows per batch when `data` is an array. Defaults to `256`.
        method: `"single_pass"` or `"sequential"`. Defaults to
            `"single_pass"`.

    Returns:
        A `keras_tricks.report.Report`, one row per layer in call order:
        `layer`, `samples` (values per channel), `mean_error` (largest
        `|old - new| / sqrt(new_var + epsilon)` over channels: how far the old
        moving mean was, in population standard deviations) and `var_ratio`
        (largest `max(old / new, new / old)` over channels; 1 is exact).

    Raises:
        ValueError: for a model without BatchNormalization layers, `steps < 1`,
            `batch_size < 1`, an unknown `method`, empty data, data with NaN
            or Inf (the message names the rows), an infinite dataset without
            `steps`, or a one-shot generator with `method="sequential"` and
            several layers.
        TypeError: for `data` of an unsupported type.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...                           keras.layers.BatchNormalization()])
    >>> x = np.random.default_rng(0).normal(size=(1000, 4))
    >>> report = recalibrate_batch_norm(model, x)
    >>> report[0]["samples"]
    1000
    >>> inputs = model.layers[0](x)
    >>> bool(np.allclose(model.layers[1].moving_variance, ops.var(inputs, 0)))
    True

    Reference:
        Ioffe & Szegedy, "Batch Normalization", ICML 2015 (Algorithm 2:
        population statistics for inference); Izmailov et al., "Averaging
        Weights Leads to Wider Optima and Better Generalization", UAI 2018
        (the single pass after weight averaging); Wu & Johnson, "Rethinking
        'Batch' in BatchNorm", 2021 (PreciseBN); Chan, Golub & LeVeque,
        "Updating formulae and a pairwise algorithm for computing sample
        variances", 1979.
    """
    if steps is not None:
        steps = check_number("steps", steps, low=1, integer=True)
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    method = check_choice("method", method, METHODS)
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
    reads = len(layers) if method == "sequential" else 1
    passes = _batches.passes(data, batch_size, steps, reads)
    first_pass = passes()
    first = next(first_pass, None)
    if first is None:
        raise invalid("data", data, "at least one batch")
    if not model.built:
        model(first, training=False)
    saved = [_moving(layer) for layer in layers]
    try:
        if method == "single_pass":
            batches = itertools.chain([first], first_pass)
            return _single_pass(model, layers, batches, data)
        return _sequential(model, layers, first, passes, data)
    except BaseException:
        for layer, values in zip(layers, saved, strict=True):
            for variable, value in zip(_moving_variables(layer), values, strict=True):
                variable.assign(value)
        raise


def _single_pass(model, layers, batches, data):
    """Every layer's statistics from one pass, each batch normalised by its own."""
    runner = _passes.runner(model, layers, single_pass=True)
    totals = _stream(runner, batches, data)
    rows = []
    for layer, (count, mean, variance) in zip(runner.order, totals, strict=True):
        _check_finite_statistics(layer, mean, variance, data)
        rows.append(_row(layer, count, mean, variance))
    for layer, (_, mean, variance) in zip(runner.order, totals, strict=True):
        _assign(layer, mean, variance)
    return Report(rows, title="recalibrate_batch_norm")


def _sequential(model, layers, first, passes, data):
    """Layer after layer in call order, each from the recalibrated ones before."""
    layers = [layer for layer, _ in _layers.outputs(model, first, layers)]
    rows = []
    for layer in layers:
        runner = _passes.runner(model, [layer], single_pass=False)
        ((count, mean, variance),) = _stream(runner, passes(), data)
        _check_finite_statistics(layer, mean, variance, data)
        rows.append(_row(layer, count, mean, variance))
        _assign(layer, mean, variance)
    return Report(rows, title="recalibrate_batch_norm")


def _stream(runner, batches, data):
    """Runs `runner` on every batch; merges each layer's moments (Chan et al.).

    Returns `[(count, mean, variance)]` per layer, in float64.
    """
    totals, seen = None, 0
    for x in batches:
        finite, moments = runner(x)
        if not bool(ops.convert_to_numpy(finite)):
            raise _nonfinite(data, itertools.chain([x], batches), seen)
        seen += _batches.rows(x)
        batch = [
            tuple(np.asarray(ops.convert_to_numpy(v), "float64") for v in m)
            for m in moments
        ]
        totals = (
            batch
            if totals is None
            else [_merge(a, b) for a, b in zip(totals, batch, strict=True)]
        )
    if totals is None:
        raise invalid("data", data, "at least one batch")
    return [(float(n), mean, m2 / n) for n, mean, m2 in totals]


def _nonfinite(data, batches, seen):
    """The error naming every row with NaN or Inf, from `seen` rows on."""
    rows = []
    for x in batches:
        rows.extend(_layers.nonfinite_rows(x) + seen)
        seen += _batches.rows(x)
    return _layers.nonfinite_error(
        "data", data, rows, " (counted from 0 over the batches of `data`)"
    )


def _merge(a, b):
    """Chan, Golub & LeVeque's merge of two `(count, mean, M2)` summaries."""
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    total = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * n_b / total
    return total, mean, m2_a + m2_b + delta**2 * n_a * n_b / total


def _moving_variables(layer):
    names = ("moving_mean", "moving_variance", "moving_stddev")
    return [getattr(layer, n) for n in names if getattr(layer, n, None) is not None]


def _moving(layer):
    return [ops.convert_to_numpy(v) for v in _moving_variables(layer)]


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


def _check_finite_statistics(layer, mean, variance, data):
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance))):
        raise invalid(
            "data",
            data,
            "data on which every BatchNormalization layer's inputs stay finite",
            fix=f"The inputs of layer '{layer.name}' overflow to NaN or Inf "
            "although the data are finite; nothing was changed",
        )


def _assign(layer, mean, variance):
    layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
    layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
    if getattr(layer, "renorm", False):
        stddev = np.sqrt(variance + layer.epsilon)
        layer.moving_stddev.assign(stddev.astype(layer.moving_stddev.dtype))
