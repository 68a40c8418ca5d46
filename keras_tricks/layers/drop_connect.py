"""DropConnect: a Dense layer whose weights are dropped in training."""

import keras
from keras import ops

from keras_tricks._validation import check_number, check_rank


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

    >>> layer = DropConnectDense(8, rate=0.3, activation="relu", seed=0)
    >>> y = layer(np.ones((4, 16), "float32"), training=True)

    Reference:
        Wan, Zeiler, Zhang, LeCun & Fergus, "Regularization of Neural Networks
        using DropConnect", ICML 2013.
    """

    def __init__(self, units, rate, seed=None, **kwargs):
        super().__init__(units, **kwargs)
        self.rate = check_number("rate", rate, low=0, high=1, high_open=True)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        check_rank(self, input_shape, 2)
        super().build(input_shape)

    def call(self, inputs, training=None):
        kernel = ops.cast(self.kernel, self.compute_dtype)
        if training and self.rate > 0:
            kernel = keras.random.dropout(kernel, self.rate, seed=self.seed_generator)
        x = ops.matmul(inputs, kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
