"""Layer-sequential unit-variance initialisation (LSUV)."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from keras_tricks import _layers
from keras_tricks._validation import check_number, invalid
from keras_tricks.report import Report


def lsuv_initialize(
    model: keras.Model,
    x: Any,
    *,
    target_std: float = 1.0,
    tol: float = 0.05,
    max_iters: int = 10,
    seed: int | None = None,
) -> Report:
    """Initialises a model's kernels by LSUV, in place, on a batch of data.

    Mishkin & Matas's data-driven initialisation: every Dense and convolution
    kernel first gets an orthonormal matrix (`keras.initializers.Orthogonal`);
    then, layer by layer in the order the model calls them, the kernel is
    rescaled

        W <- W * target_std / std(x_l @ W + b)

    until the standard deviation of the layer's pre-activation output on the
    calibration batch `x` is within `tol` of `target_std` (or `max_iters`
    rescalings were made). Each layer sees inputs produced by the already
    calibrated layers before it. Layers without kernels are skipped; nested
    models are descended into. Biases are left as they are.

    Args:
        model: a built or unbuilt `keras.Model` (Sequential, functional or
            subclassed).
        x: calibration batch, a NumPy array or tensor (or a dict for a
            multi-input model); a few hundred rows are typical.
        target_std: wanted standard deviation of every pre-activation output.
            Defaults to `1.0`.
        tol: tolerance on `|std - target_std|`. Defaults to `0.05`.
        max_iters: maximum rescalings per layer. Defaults to `10`.
        seed: integer seed of the orthonormal start. Defaults to `None`.

    Returns:
        A `keras_tricks.report.Report` with one row per calibrated layer:
        `layer`, `iterations`, `initial_std` (after the orthonormal start),
        `final_std` and `converged`.

    Raises:
        ValueError: for `target_std <= 0`, `tol <= 0`, `max_iters < 1`, an
            empty `x`, one whose rank does not match the model input, one
            with NaN or Inf (the message names the rows), or a layer whose
            output is not finite on `x`. The kernels are left unchanged.

    Example:

    >>> model = keras.Sequential([keras.Input((64,))] +
    ...     [keras.layers.Dense(64, activation="tanh") for _ in range(5)])
    >>> x = np.random.default_rng(0).normal(size=(256, 64))
    >>> report = lsuv_initialize(model, x, seed=0)
    >>> all(abs(row["final_std"] - 1.0) <= 0.05 for row in report)
    True

    Reference:
        Mishkin & Matas, "All you need is a good init", ICLR 2016
        (arXiv:1511.06422).
    """
    target_std = check_number("target_std", target_std, low=0, low_open=True)
    tol = check_number("tol", tol, low=0, low_open=True)
    max_iters = check_number("max_iters", max_iters, low=1, integer=True)
    _layers.check_batch(model, x)
    _layers.check_finite(x)
    candidates = [
        layer
        for layer in _layers.walk(model)
        if isinstance(layer, _layers.KERNEL_LAYERS)
    ]
    if not model.built:
        model(x, training=False)
    layers = [
        layer for layer, _ in _layers.outputs(model, x, candidates, pre_activation=True)
    ]
    saved = [keras.ops.convert_to_numpy(layer.kernel) for layer in layers]
    try:
        return _calibrate(model, x, layers, target_std, tol, max_iters, seed)
    except BaseException:
        for layer, kernel in zip(layers, saved, strict=True):
            layer.kernel.assign(kernel)
        raise


def _calibrate(model, x, layers, target_std, tol, max_iters, seed):
    orthogonal = keras.initializers.Orthogonal(seed=seed)
    for layer in layers:
        layer.kernel.assign(orthogonal(layer.kernel.shape, layer.kernel.dtype))
    rows = []
    for layer in layers:
        std = initial = _std(model, x, layer)
        iterations = 0
        while abs(std - target_std) > tol and iterations < max_iters:
            if std == 0.0:
                break
            layer.kernel.assign(layer.kernel * (target_std / std))
            iterations += 1
            std = _std(model, x, layer)
        rows.append(
            {
                "layer": layer.name,
                "iterations": iterations,
                "initial_std": initial,
                "final_std": std,
                "converged": abs(std - target_std) <= tol,
            }
        )
    return Report(rows, title="LSUV initialisation")


def _std(model, x, layer):
    """Standard deviation of `layer`'s pre-activation output on `x`."""
    std = float(np.std(_layers.pre_activation(model, x, layer)))
    if not math.isfinite(std):
        raise invalid(
            "x",
            x,
            "a batch on which every layer's output stays finite",
            fix=f"The output of layer '{layer.name}' holds NaN or Inf (an "
            "overflow: scale the inputs down); the kernels were left unchanged",
        )
    return std
