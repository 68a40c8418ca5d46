"""Classic (unscaled) dropout, Monte-Carlo dropout and `mc_predict`.

`keras.layers.Dropout` is inverted dropout: kept units are scaled by
`1 / (1 - rate)` in training and inference is the identity. `ClassicDropout`
is the original form (Srivastava et al. 2014), which scales at inference
instead; `MCDropout` keeps dropping at inference, so that repeated predictions
sample an approximate posterior (Gal & Ghahramani 2016).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_tricks import _layers
from keras_tricks._validation import check_number, check_rank, invalid


def _check_rate(rate: Any) -> float:
    return check_number("rate", rate, low=0, high=1, high_open=True)


def _noise_shape(noise_shape: Any) -> Any:
    """Checks that `noise_shape` is None or a sequence of ints >= 1 and None."""
    if noise_shape is None:
        return None
    if not isinstance(noise_shape, Sequence) or isinstance(noise_shape, str):
        raise invalid(
            "noise_shape", noise_shape, "None or a sequence of ints and None", TypeError
        )
    for dim in noise_shape:
        if dim is None:
            continue
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer):
            raise invalid(
                "noise_shape",
                noise_shape,
                "None or a sequence of ints and None",
                TypeError,
            )
        if dim < 1:
            raise invalid(
                "noise_shape", noise_shape, "dimensions >= 1 (or None: the input's)"
            )
    return noise_shape


def _check_noise_shape(layer: keras.layers.Layer, input_shape: Any) -> None:
    """Checks in `build` that the mask shape broadcasts to the input's."""
    noise_shape = layer.noise_shape
    if noise_shape is None:
        return
    shape = tuple(input_shape)
    if len(noise_shape) != len(shape):
        raise invalid(
            "noise_shape",
            tuple(noise_shape),
            f"one dimension per input dimension: rank {len(shape)} for the "
            f"input shape {shape} of layer '{layer.name}'",
        )
    for n, s in zip(noise_shape, shape, strict=True):
        if n is not None and n != 1 and s is not None and n != s:
            raise invalid(
                "noise_shape",
                tuple(noise_shape),
                "dimensions that are None, 1 or the input's own, for the "
                f"input shape {shape} of layer '{layer.name}'",
            )


@keras.saving.register_keras_serializable(package="keras_tricks")
class ClassicDropout(keras.layers.Dropout):
    """Dropout without rescaling in training, scaled by `(1 - rate)` at inference.

    In training each unit is kept with probability `1 - rate` and otherwise
    set to zero, with **no** rescaling: `y = m * x`, `m ~ Bernoulli(1 - rate)`.
    At inference the output is `y = (1 - rate) * x` (equivalently the next
    layer's weights scaled by `1 - rate`), so that the expected training
    output `E[m * x] = (1 - rate) * x` equals the inference output.

    The learned weights differ from those under `keras.layers.Dropout` (by the
    factor `1 - rate` behind the layer) but the function computed at inference
    is the same; the two reach the same accuracy.

    Args:
        rate: fraction of units to drop, in [0, 1).
        noise_shape: shape of the binary mask, as in `keras.layers.Dropout`
            (e.g. `(None, 1, features)` to share it over time steps). Defaults
            to `None` (the input shape).
        seed: integer seed of the masks. Defaults to `None`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`).

    Raises:
        ValueError: for `rate` outside [0, 1) or a scalar input; in `build`,
            for a `noise_shape` whose rank differs from the input's or with a
            dimension that is not None, 1 or the input's.
        TypeError: for a `noise_shape` that is not a sequence of ints and
            None.

    Example:

    >>> layer = ClassicDropout(0.5, seed=0)
    >>> x = np.ones((2, 4), "float32")
    >>> ops.convert_to_numpy(layer(x, training=False))
    array([[0.5, 0.5, 0.5, 0.5],
           [0.5, 0.5, 0.5, 0.5]], dtype=float32)
    >>> y = ops.convert_to_numpy(layer(np.ones((8, 64), "float32"), training=True))
    >>> sorted(set(y.ravel().tolist()))  # dropped or kept as they are
    [0.0, 1.0]

    Reference:
        Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov, "Dropout: a
        simple way to prevent neural networks from overfitting", JMLR 2014.
    """

    def __init__(
        self,
        rate: float,
        noise_shape: Sequence[int | None] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            _check_rate(rate),
            noise_shape=_noise_shape(noise_shape),
            seed=seed,
            **kwargs,
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        check_rank(self, input_shape, 1, "(a batch axis first)")
        _check_noise_shape(self, input_shape)
        super().build(input_shape)

    def call(self, inputs: Any, training: bool | None = False) -> Any:
        if self.rate == 0:
            return inputs
        if not training:
            return inputs * ops.cast(1.0 - self.rate, inputs.dtype)
        shape = ops.shape(inputs)
        if self.noise_shape is not None:
            shape = [
                s if n is None else n
                for s, n in zip(shape, self.noise_shape, strict=True)
            ]
        keep = keras.random.uniform(shape, seed=self.seed_generator) >= self.rate
        return ops.where(keep, inputs, ops.zeros_like(inputs))


@keras.saving.register_keras_serializable(package="keras_tricks")
class MCDropout(keras.layers.Dropout):
    """Inverted dropout that stays on at inference (Monte-Carlo dropout).

    In training and at inference alike, `y = m * x / (1 - rate)` with
    `m ~ Bernoulli(1 - rate)`. Each prediction is then one sample of the
    model's approximate predictive distribution; `mc_predict` averages many
    of them and reports their spread as an uncertainty.

    Args:
        rate: fraction of units to drop, in [0, 1).
        noise_shape: shape of the binary mask, as in `keras.layers.Dropout`.
            Defaults to `None` (the input shape).
        seed: integer seed of the masks. Defaults to `None`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`).

    Raises:
        ValueError: for `rate` outside [0, 1) or a scalar input; in `build`,
            for a `noise_shape` whose rank differs from the input's or with a
            dimension that is not None, 1 or the input's.
        TypeError: for a `noise_shape` that is not a sequence of ints and
            None.

    Example:

    >>> layer = MCDropout(0.5, seed=0)
    >>> x = np.ones((8, 64), "float32")
    >>> y = ops.convert_to_numpy(layer(x, training=False))  # still dropping
    >>> sorted(set(y.ravel().tolist()))  # zeros, and ones scaled by 1 / 0.5
    [0.0, 2.0]

    Reference:
        Gal & Ghahramani, "Dropout as a Bayesian Approximation: Representing
        Model Uncertainty in Deep Learning", ICML 2016.
    """

    def __init__(
        self,
        rate: float,
        noise_shape: Sequence[int | None] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            _check_rate(rate),
            noise_shape=_noise_shape(noise_shape),
            seed=seed,
            **kwargs,
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        check_rank(self, input_shape, 1, "(a batch axis first)")
        _check_noise_shape(self, input_shape)
        super().build(input_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return super().call(inputs, training=True)


def mc_predict(
    model: keras.Model,
    x: Any,
    *,
    samples: int = 30,
    seed: int | None = None,
    batch_size: int | None = None,
) -> tuple[Any, Any]:
    """Monte-Carlo prediction: mean and std over stochastic forward passes.

    Runs `model.predict(x)` `samples` times, each one batched pass over all of
    `x` with fresh dropout masks in every `MCDropout` layer (other layers in
    inference mode), and returns

        mean = (1 / S) * sum_s f_s(x),   std = sqrt((1 / S) * sum_s (f_s(x) - mean)^2)

    The std is the model's (epistemic) uncertainty: larger where the masks
    disagree. With `seed`, the masks are reproducible, and the layers' own
    random state is restored afterwards.

    Args:
        model: a `keras.Model` with at least one `MCDropout` layer of rate > 0.
        x: inputs, anything `model.predict` accepts (an array, a dict, or a
            `tf.data.Dataset` that yields the same batches in the same order
            on every pass).
        samples: number of stochastic passes S, an integer >= 1. Defaults to
            `30`.
        seed: integer seed of the masks. Defaults to `None` (the layers' own
            random state).
        batch_size: rows per batch of `model.predict`. Defaults to `None`
            (Keras's default, 32).

    Returns:
        `(mean, std)`, NumPy arrays shaped like one prediction (nested like
        the model outputs for a multi-output model).

    Raises:
        ValueError: for `samples < 1`, or a model without `MCDropout` layers
            (its predictions would be deterministic and the std zero).

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...                           MCDropout(0.5, seed=0), keras.layers.Dense(1)])
    >>> x = np.random.default_rng(0).normal(size=(16, 4))
    >>> mean, std = mc_predict(model, x, samples=20, seed=0)
    >>> mean.shape, std.shape
    ((16, 1), (16, 1))
    >>> bool(std.min() > 0)  # every prediction varies with the masks
    True

    Reference:
        Gal & Ghahramani, "Dropout as a Bayesian Approximation: Representing
        Model Uncertainty in Deep Learning", ICML 2016.
    """
    samples = check_number("samples", samples, low=1, integer=True)
    if seed is not None:
        seed = check_number("seed", seed, low=0, integer=True)
    layers = [
        layer
        for layer in _layers.walk(model)
        if isinstance(layer, MCDropout) and layer.rate > 0
    ]
    if not layers:
        raise invalid(
            "model",
            model,
            "a model with at least one MCDropout layer of rate > 0",
            fix="Without stochastic layers every pass gives the same prediction "
            "and the std would be zero; replace keras.layers.Dropout with "
            "keras_tricks.layers.MCDropout",
        )
    states = [layer.seed_generator.state for layer in layers]
    saved = [keras.ops.convert_to_numpy(state) for state in states]
    if seed is not None:
        for index, state in enumerate(states):
            # A distinct stream per layer: [seed, counter], counters far apart.
            start = np.array([seed, index * 2**20], dtype=saved[index].dtype)
            state.assign(start)
    try:
        runs = [
            model.predict(x, batch_size=batch_size, verbose=0) for _ in range(samples)
        ]
    finally:
        if seed is not None:
            for state, value in zip(states, saved, strict=True):
                state.assign(value)
    stacked = keras.tree.map_structure(lambda *r: np.stack(r), *runs)
    mean = keras.tree.map_structure(lambda s: s.mean(axis=0), stacked)
    std = keras.tree.map_structure(lambda s: s.std(axis=0), stacked)
    return mean, std
