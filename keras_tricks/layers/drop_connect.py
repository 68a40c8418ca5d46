"""DropConnect: a Dense layer whose weights are dropped in training."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_tricks._validation import check_number, check_rank

MASK_BITS = 15
"""Most bits of each uniform number the masks are drawn from. A rate that is
a multiple of `2**-k` for a smaller `k` (0.5: 1 bit, 0.25: 2 bits) uses `k`
bits; every random 30-bit word gives `30 // k` numbers."""
WORD_BITS = 30


@keras.saving.register_keras_serializable(package="keras_tricks")
class DropConnectDense(keras.layers.Dense):
    """`keras.layers.Dense` with DropConnect on its kernel in training.

    Instead of dropping activations, each weight of the kernel is dropped
    with probability `rate` (Wan et al. 2013):

        y = activation(x @ (M * W) / (1 - rate) + b),   M ~ Bernoulli(1 - rate)

    The kept weights are rescaled by `1 / (1 - rate)` (as in inverted
    dropout), so inference is the plain Dense layer `activation(x @ W + b)`
    rather than the paper's Gaussian moment-matching approximation. One mask
    is drawn per training step and shared by the rows of the batch (the paper
    draws one per example; that needs a `(batch, in, out)` mask and a batched
    matmul, far slower). The bias is not dropped.

    Random numbers are most of the layer's cost, so the mask is drawn from
    `k`-bit uniform numbers packed into random 30-bit words, `k` the fewest
    bits that represent `rate` exactly, at most 15: one bit per weight for
    `rate=0.5` (30 weights per random word), two for 0.25 or 0.75, fourteen
    for 0.3 (two per word). The drop probability is therefore `rate` rounded
    to a multiple of `2**-15` below 1 (within 1.5e-5 of it for rates up to
    0.99998; exact for rates such as 0.5 or 0.375), and the kept weights are rescaled by
    `1 / (1 - that probability)`, so that the expected output is exactly the
    Dense layer's.

    Args:
        units: output dimension, as in `Dense`.
        rate: fraction of weights to drop, in [0, 1).
        seed: integer seed of the masks. Defaults to `None`.
        **kwargs: every other argument of `keras.layers.Dense` (`activation`,
            `use_bias`, initializers, regularizers, constraints, `lora_rank`)
            and of `keras.layers.Layer`.

    Raises:
        ValueError: for `rate` outside [0, 1) or inputs of rank < 2.

    Example:

    >>> layer = DropConnectDense(8, rate=0.5, seed=0, kernel_initializer="ones")
    >>> x = np.eye(4, dtype="float32")  # row i of the output is row i of W
    >>> y = ops.convert_to_numpy(layer(x, training=True))
    >>> sorted(set(y.ravel().tolist()))  # dropped, or kept and scaled by 2
    [0.0, 2.0]
    >>> ops.convert_to_numpy(layer(x))[0]  # inference: the Dense layer
    array([1., 1., 1., 1., 1., 1., 1., 1.], dtype=float32)

    Reference:
        Wan, Zeiler, Zhang, LeCun & Fergus, "Regularization of Neural Networks
        using DropConnect", ICML 2013.
    """

    def __init__(
        self, units: int, rate: float, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(units, **kwargs)
        self.rate = check_number("rate", rate, low=0, high=1, high_open=True)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        check_rank(self, input_shape, 2)
        super().build(input_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        kernel = ops.cast(self.kernel, self.compute_dtype)
        if training and self.rate > 0:
            kernel = kernel * _scaled_mask(
                kernel.shape, self.rate, kernel.dtype, self.seed_generator
            )
        x = ops.matmul(inputs, kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def _scaled_mask(
    shape: tuple[int, ...], rate: float, dtype: Any, seed: keras.random.SeedGenerator
) -> Any:
    """`M / (1 - p)` with `M ~ Bernoulli(1 - p)`, `p` = `rate` in 15-bit steps.

    `threshold / 2**bits` is `p` with the fewest `bits`; each random word
    (drawn in [0, 2**30)) gives `30 // bits` uniform integers `u` of `bits`
    bits, and a weight is kept when `u >= threshold`.
    """
    bits, threshold = _mask_bits(rate)
    levels = 2**bits
    per_word = WORD_BITS // bits
    size = math.prod(shape)
    words = keras.random.randint(
        (-(-size // per_word),), 0, 2**WORD_BITS, dtype="int32", seed=seed
    )
    fields = [
        ops.bitwise_and(ops.right_shift(words, bits * i), levels - 1)
        for i in range(per_word)
    ]
    uniform = ops.concatenate(fields) if per_word > 1 else fields[0]
    keep = ops.reshape(uniform[:size] >= threshold, shape)
    return ops.cast(keep, dtype) * (levels / (levels - threshold))


def _mask_bits(rate: float) -> tuple[int, int]:
    """The fewest bits `k <= 15` and the integer `t` with `t / 2**k` = `rate`
    rounded to a multiple of `2**-15` (at most `1 - 2**-15`).

    >>> _mask_bits(0.5), _mask_bits(0.75), _mask_bits(0.3), _mask_bits(0.99999)
    ((1, 1), (2, 3), (14, 4915), (15, 32767))
    """
    threshold = min(round(rate * 2**MASK_BITS), 2**MASK_BITS - 1)
    bits = MASK_BITS
    while bits > 1 and threshold % 2 == 0:
        threshold //= 2
        bits -= 1
    return bits, threshold
