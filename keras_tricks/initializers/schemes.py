"""The classic weight-initialisation schemes, by name.

A normal distribution is written N(mean, std) here: every scheme states which
number is the standard deviation. Where a Keras initializer
implements the formula it is used as is; only `"gaussian"` (std `1/n_in`,
which no Keras initializer produces) is our own class.

| name | distribution | standard deviation | Keras class |
|---|---|---|---|
| `uniform` | U(-1/sqrt(n_in), 1/sqrt(n_in)) | 1/sqrt(3 n_in) | `VarianceScaling` |
| `gaussian` | normal | 1/n_in | `InverseFanInNormal` (ours) |
| `lecun` | truncated normal | 1/sqrt(n_in) | `LecunNormal` |
| `glorot`, `xavier` | truncated normal | sqrt(2/(n_in+n_out)) | `GlorotNormal` |
| `he` | truncated normal | sqrt(2/n_in) | `HeNormal` |
| `orthogonal` | orthogonal matrix | 1/sqrt(max(n_in, n_out)) | `Orthogonal` |

`n_in` (fan-in) is the number of inputs of one unit: for a Dense kernel
`[n_in, n_out]` the first dimension, for a convolution kernel
`[*window, channels_in, channels_out]` the window size times `channels_in`.
Keras's truncated normals are rescaled so that the standard deviation after
truncation is the one in the table.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import keras

from keras_tricks._validation import invalid


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Fan-in and fan-out of a kernel shape, as Keras computes them."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


@keras.saving.register_keras_serializable(package="keras_tricks")
class InverseFanInNormal(keras.initializers.Initializer):
    """Normal initializer N(0, 1/n_in): standard deviation `1 / fan_in`.

    The `"gaussian"` scheme. LeCun et al. (1998) prescribe a *variance* of
    `1/n_in`; this scheme takes `1/n_in` as the standard deviation, a common
    misreading of "N(0, 1/n)". Its standard deviation shrinks with the number
    of inputs faster than LeCun's `1/sqrt(n_in)`, so in a deep network the
    activations shrink layer after layer (`docs/initializers.md` measures
    it); it is offered to reproduce that scheme, not as a recommendation.

    Args:
        seed: integer seed (or `keras.random.SeedGenerator`) for
            reproducible values. Defaults to `None`.

    Example:

    >>> init = InverseFanInNormal(seed=0)
    >>> w = init((256, 128))
    >>> round(float(keras.ops.std(w)) * 256, 1)
    1.0

    Reference:
        LeCun, Bottou, Orr & Müller, "Efficient BackProp", in Neural Networks:
        Tricks of the Trade, 1998 (section 4.6: weights of variance 1/n_in).
    """

    def __init__(self, seed: int | keras.random.SeedGenerator | None = None) -> None:
        if seed is not None and not isinstance(seed, int | keras.random.SeedGenerator):
            raise invalid(
                "seed", seed, "an integer, a SeedGenerator or None", TypeError
            )
        self.seed = seed
        self._generator = (
            seed
            if isinstance(seed, keras.random.SeedGenerator)
            else keras.random.SeedGenerator(seed)
        )

    def __call__(self, shape: Sequence[int], dtype: Any = None) -> Any:
        fan_in, _ = _fans(tuple(shape))
        return keras.random.normal(
            shape, stddev=1.0 / max(1, fan_in), dtype=dtype, seed=self._generator
        )

    def get_config(self) -> dict[str, Any]:
        seed = self.seed if isinstance(self.seed, int) else None
        return {"seed": seed}


def _uniform(seed: int | None) -> keras.initializers.Initializer:
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed
    )


_SCHEMES = {
    "uniform": _uniform,
    "gaussian": lambda seed: InverseFanInNormal(seed=seed),
    "lecun": lambda seed: keras.initializers.LecunNormal(seed=seed),
    "glorot": lambda seed: keras.initializers.GlorotNormal(seed=seed),
    "xavier": lambda seed: keras.initializers.GlorotNormal(seed=seed),
    "he": lambda seed: keras.initializers.HeNormal(seed=seed),
    "orthogonal": lambda seed: keras.initializers.Orthogonal(seed=seed),
}

NAMES = tuple(_SCHEMES)
"""The scheme names `get` accepts."""


def expected_std(name: str, shape: Sequence[int]) -> float:
    """The standard deviation that scheme `name` gives a kernel of `shape`.

    Args:
        name: one of `NAMES` (case-insensitive).
        shape: the kernel shape, e.g. `(512, 512)`.

    Returns:
        The standard deviation of the scheme's distribution, as a float.

    Raises:
        ValueError: if `name` is not a known scheme (the message lists them),
            or `shape` is empty or holds a dimension below 1.
        TypeError: if `shape` is not a sequence of integers.

    Example:

    >>> expected_std("he", (512, 256))  # sqrt(2 / 512)
    0.0625
    >>> expected_std("gaussian", (3, 3, 64, 32))  # 1 / (3 * 3 * 64)
    0.001736111111111111
    """
    _check_name(name)
    shape = _check_shape(shape)
    fan_in, fan_out = _fans(shape)
    formulas = {
        "uniform": 1.0 / math.sqrt(3.0 * fan_in),
        "gaussian": 1.0 / fan_in,
        "lecun": 1.0 / math.sqrt(fan_in),
        "glorot": math.sqrt(2.0 / (fan_in + fan_out)),
        "xavier": math.sqrt(2.0 / (fan_in + fan_out)),
        "he": math.sqrt(2.0 / fan_in),
        "orthogonal": 1.0 / math.sqrt(max(math.prod(shape[:-1]), shape[-1])),
    }
    return formulas[name.lower()]


def _check_shape(shape: Any) -> tuple[int, ...]:
    """A kernel shape: a non-empty sequence of integers >= 1."""
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise invalid("shape", shape, "a sequence of integers", TypeError)
    if any(isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in shape):
        raise invalid("shape", shape, "a sequence of integers", TypeError)
    if not shape or min(shape) < 1:
        raise invalid(
            "shape",
            shape,
            "a kernel shape with at least one dimension, every dimension >= 1",
        )
    return tuple(int(d) for d in shape)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or name.lower() not in _SCHEMES:
        raise invalid(
            "name",
            name,
            "one of " + ", ".join(repr(n) for n in NAMES),
            fix="Pass a scheme name or a keras.initializers.Initializer",
        )


def get(
    name: str | keras.initializers.Initializer, seed: int | None = None
) -> keras.initializers.Initializer:
    """Returns the initializer of a named scheme, for `kernel_initializer=`.

    Args:
        name: a scheme name (`"uniform"`, `"gaussian"`, `"lecun"`,
            `"glorot"`, `"xavier"`, `"he"`, `"orthogonal"`; case-insensitive),
            or a `keras.initializers.Initializer`, returned as is.
        seed: integer seed for reproducible values. Defaults to `None`.

    Returns:
        A `keras.initializers.Initializer`.

    Raises:
        ValueError: if `name` is not a known scheme (the message lists them).

    Example:

    >>> layer = keras.layers.Dense(64, kernel_initializer=get("he", seed=1))
    >>> type(get("Glorot")).__name__
    'GlorotNormal'
    >>> w = ops.convert_to_numpy(get("he", seed=1)((512, 256)))
    >>> round(float(w.std()), 2)  # expected_std("he", (512, 256)) = 0.0625
    0.06
    """
    if isinstance(name, keras.initializers.Initializer):
        return name
    _check_name(name)
    return _SCHEMES[name.lower()](seed)
