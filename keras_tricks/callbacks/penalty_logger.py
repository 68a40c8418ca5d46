"""Logs the regularisation penalty beside the data loss."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_tricks.callbacks._base import TrainingCallback


def weight_penalty(model: keras.Model) -> float:
    """Sum of the weight regularizers of `model`'s trainable weights, now.

    This is lambda * Omega(theta) of J = loss + lambda * Omega for the current
    weights (Keras adds the same terms to the training loss).

    Example:

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(
    ...     1, kernel_regularizer=keras.regularizers.L2(0.1))])
    >>> _ = model.layers[0].kernel.assign([[1.0], [2.0]])
    >>> round(weight_penalty(model), 6)  # 0.1 * (1 ** 2 + 2 ** 2)
    0.5
    """
    total = 0.0
    for variable in model.trainable_weights:
        if variable.regularizer is not None:
            total += float(keras.ops.convert_to_numpy(variable.regularizer(variable)))
    return total


@keras.saving.register_keras_serializable(package="keras_tricks")
class PenaltyLogger(TrainingCallback):
    """Splits the logged loss into data loss and penalty, every epoch.

    Keras's `loss` is the objective J = data loss + lambda * Omega(theta). At
    the end of each epoch this callback adds to the logs (and so to History,
    CSVLogger and TensorBoard):

    - `penalty`: lambda * Omega(theta), the sum of the weight regularizers
      (Keras's L1/L2, `TiedRegularizer`, ...) at the epoch's final weights;
    - `val_data_loss` = `val_loss - penalty` (exact: Keras evaluates
      `val_loss` with those same weights);
    - `data_loss` = `loss - penalty`, unless the logs already hold a
      `data_loss`. `loss` is the average over the epoch's batches while the
      penalty is the value at its end, so this is exact only when the penalty
      changes little within an epoch. For an exact training data loss, compile
      with the loss as a metric named `data_loss`, e.g.
      `metrics=[keras.metrics.SparseCategoricalCrossentropy(name="data_loss")]`:
      it is then left as Keras computed it.

    Plotting `data_loss` against `penalty / lambda` over several lambdas shows
    the two-criteria trade-off of the regularised objective.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
    ...     1, kernel_regularizer=keras.regularizers.L2(0.1))])
    >>> model.compile("sgd", "mse")
    >>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=1,
    ...                     verbose=0, callbacks=[PenaltyLogger()])
    >>> sorted(k for k in history.history if "loss" in k or "penalty" in k)
    ['data_loss', 'loss', 'penalty']
    """

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.last_epoch = epoch
        if logs is None:
            return
        penalty = weight_penalty(self.model)
        logs["penalty"] = penalty
        if "loss" in logs and "data_loss" not in logs:
            logs["data_loss"] = float(np.asarray(logs["loss"])) - penalty
        if "val_loss" in logs:
            logs["val_data_loss"] = float(np.asarray(logs["val_loss"])) - penalty
