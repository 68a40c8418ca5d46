"""Drop-path (stochastic depth) for residual branches."""

from __future__ import annotations

from typing import Any

import keras

from keras_tricks._validation import check_number, check_rank


@keras.saving.register_keras_serializable(package="keras_tricks")
class DropPath(keras.layers.Layer):
    """Drops a whole residual branch per sample in training (stochastic depth).

    Applied to the output `f(x)` of a residual branch, before the sum
    `x + DropPath(rate)(f(x))`: in training each sample's branch is kept with
    probability `1 - rate` and scaled by `1 / (1 - rate)`, or zeroed so that
    the block is the identity for that sample,

        y_i = f(x)_i * b_i / (1 - rate),   b_i ~ Bernoulli(1 - rate)

    At inference `y = f(x)` (the expectation). Huang et al. scale at inference
    instead; scaling in training keeps inference free, as in timm.

    Args:
        rate: probability of dropping the branch, in [0, 1). Huang et al.
            grow it linearly with depth, to 0.5 at the last block.
        seed: integer seed of the masks. Defaults to `None`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`).

    Raises:
        ValueError: for `rate` outside [0, 1) or inputs of rank < 2.

    Example:

    >>> inputs = keras.Input((16,))
    >>> branch = keras.layers.Dense(16, activation="relu")(inputs)
    >>> outputs = keras.layers.Add()([inputs, DropPath(0.2, seed=0)(branch)])
    >>> layer = DropPath(0.5, seed=0)
    >>> y = ops.convert_to_numpy(layer(np.ones((64, 3), "float32"), training=True))
    >>> sorted(set(y.sum(axis=1).tolist()))  # each sample: all dropped or all kept
    [0.0, 6.0]

    Reference:
        Huang, Sun, Liu, Sedra & Weinberger, "Deep Networks with Stochastic
        Depth", ECCV 2016.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = check_number("rate", rate, low=0, high=1, high_open=True)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        check_rank(self, input_shape, 2, "(batch, ...): the drop is per sample")

    def call(self, inputs: Any, training: bool | None = False) -> Any:
        if not training or self.rate == 0:
            return inputs
        noise_shape = (None,) + (1,) * (len(inputs.shape) - 1)
        return keras.random.dropout(
            inputs, self.rate, noise_shape=noise_shape, seed=self.seed_generator
        )

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
