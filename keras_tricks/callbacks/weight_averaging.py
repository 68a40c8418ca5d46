"""Stochastic weight averaging (SWA) as a callback."""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np
from keras.optimizers.schedules import LearningRateSchedule as Schedule

from keras_tricks import _keras_compat, _layers
from keras_tricks._validation import (
    check_bool,
    check_choice,
    check_number,
    invalid,
    invalid_together,
)
from keras_tricks.callbacks._base import (
    TrainingCallback,
    final_weights,
    rate_holders,
    read_lr,
)
from keras_tricks.callbacks._swa_lr import (
    STRATEGIES,
    SWASchedule,
    anneal_float,
    annealing_factor,
    progress,
)
from keras_tricks.callbacks.early_stopping import EarlyStopping
from keras_tricks.layers import recalibrate_batch_norm

MODES = ("swa",)


@keras.saving.register_keras_serializable(package="keras_tricks")
class WeightAveraging(TrainingCallback):
    """Averages the weights of the last epochs and uses the average (SWA).

    At the end of every epoch `t >= start_from_epoch` the trainable weights are
    added to a running mean (`n` epochs averaged so far):

        w_swa <- w_swa + (w_t - w_swa) / (n + 1)

    When training ends the average replaces the trainable weights. The
    non-trainable ones (BatchNormalization moving statistics) belong to the
    last weights, not to the average; with `recalibrate_data` they are
    re-estimated for the averaged weights by
    `keras_tricks.layers.recalibrate_batch_norm` (population statistics over
    `recalibrate_data`, PyTorch's `update_bn`). Keras gives a callback no
    public access to the data passed to `fit`, so unlike Lightning's
    `StochasticWeightAveraging` (which runs one more epoch over its train
    loader) this cannot happen on its own: pass the training inputs (or a
    finite dataset of them) as `recalibrate_data`. A model with
    BatchNormalization and no `recalibrate_data` gets a warning, unless
    `recalibrate_batch_norm=False` says the last epoch's statistics are
    wanted. The optimizer state is left as it is, so a later `fit`
    continues from the averaged weights with the optimizer's moments.

    With `swa_learning_rate`, the learning rate follows the SWA schedule of
    Izmailov et al. and PyTorch's `torch.optim.swa_utils.SWALR`: from
    epoch `start_from_epoch` (step `k = epoch - start_from_epoch`) it moves
    from the current rate to `swa_learning_rate` over `annealing_epochs`
    epochs and stays there:

        t = min(1, k / annealing_epochs),  alpha = (1 - cos(pi t)) / 2 ("cos")
        or alpha = t ("linear"),  lr = alpha * swa_learning_rate
        + (1 - alpha) * lr_start

    Epoch `start_from_epoch` itself runs at the current rate (`k = 0`, as in
    Lightning, which starts `SWALR` at that epoch); with `annealing_epochs=0`
    it runs at `swa_learning_rate` already. A float rate is set at the start
    of each epoch, recovering `lr_start` from the rate found in the optimizer
    as `SWALR` does (so a `ReduceLROnPlateau` reduction made meanwhile
    carries through until `alpha` reaches 1). A `LearningRateSchedule` keeps
    running underneath: it is wrapped, once, in a schedule returning
    `alpha * swa_learning_rate + (1 - alpha) * schedule(step)`, with `alpha`
    in a variable (nothing is retraced), the way `ReduceLROnPlateau` wraps a
    schedule; the wrapper stays in the optimizer and is saved with it. The
    rate is logged as `learning_rate` (`learning_rate_<name>` per
    sub-optimizer of a `MultiOptimizer`) and is left at its SWA value when
    `fit` ends (PyTorch leaves it so too). Without `swa_learning_rate` the
    rate is not touched.

    With an optimizer using `use_ema=True` (Keras writes the moving averages
    into the model before `on_train_end`), the epochs' snapshots are the EMA
    weights, so the SWA average is an average of EMA weights and the
    averaging the user asked for is kept. With
    `EarlyStopping(restore_best_weights=True)` also in the list, the
    callback listed last decides the final weights, and a warning says so;
    use one of the two.

    Args:
        start_from_epoch: first epoch (0-based) whose weights enter the
            average (Keras's name for the same idea; required).
        mode: `"swa"` (equal weights, Izmailov et al.). Defaults to `"swa"`.
        recalibrate_data: inputs (array, or a dataset of inputs or of
            `(x, y)` batches) on which to recompute the BatchNormalization
            statistics. Not part of the config. Defaults to `None`.
        start_epoch: deprecated name of `start_from_epoch`.
        swa_learning_rate: the constant SWA learning rate (> 0) reached
            after the annealing. Defaults to `None` (the rate is left alone).
        annealing_epochs: epochs (>= 0) over which the rate moves to
            `swa_learning_rate`. Defaults to `10` (PyTorch's).
        annealing_strategy: `"cos"` or `"linear"`. Defaults to `"cos"`.
        recalibrate_batch_norm: `None` recomputes the BatchNormalization
            statistics when `recalibrate_data` is given and warns when a
            model with BatchNormalization has none; `True` requires
            `recalibrate_data`; `False` keeps the last epoch's statistics
            without a warning. Defaults to `None`.

    Raises:
        TypeError: if `swa_learning_rate` is set and the optimizer's rate is
            a callable that is not a `LearningRateSchedule`.

    Example:

    >>> model = keras.Sequential([keras.Input((1,)),
    ...                           keras.layers.Dense(1, use_bias=False)])
    >>> model.compile("sgd", "mse")
    >>> swa = WeightAveraging(start_from_epoch=1)
    >>> swa.set_model(model)
    >>> swa.on_train_begin()
    >>> for epoch, w in enumerate([4.0, 1.0, 2.0, 3.0]):
    ...     _ = model.layers[0].kernel.assign([[w]])
    ...     swa.on_epoch_end(epoch)
    >>> swa.on_train_end()
    >>> float(model.layers[0].kernel[0, 0])  # mean of epochs 1, 2 and 3
    2.0

    Reference:
        Izmailov, Podoprikhin, Garipov, Vetrov & Wilson, "Averaging Weights
        Leads to Wider Optima and Better Generalization", UAI 2018.
    """

    _state_attributes = ("averaged",)

    def __init__(
        self,
        start_from_epoch: int | None = None,
        *,
        mode: str = "swa",
        recalibrate_data: Any = None,
        start_epoch: int | None = None,
        swa_learning_rate: float | None = None,
        annealing_epochs: int = 10,
        annealing_strategy: str = "cos",
        recalibrate_batch_norm: bool | None = None,
    ) -> None:
        super().__init__()
        if start_epoch is not None:
            if start_from_epoch is not None:
                raise invalid_together(
                    {"start_from_epoch": start_from_epoch, "start_epoch": start_epoch},
                    "only `start_from_epoch` (`start_epoch` is its deprecated name)",
                )
            warnings.warn(
                "WeightAveraging(start_epoch=...) is deprecated: use "
                "start_from_epoch=..., Keras's name for the same argument.",
                DeprecationWarning,
                stacklevel=2,
            )
            start_from_epoch = start_epoch
        if start_from_epoch is None:
            raise TypeError(
                "WeightAveraging() missing required argument: 'start_from_epoch'"
            )
        self.start_from_epoch = check_number(
            "start_from_epoch", start_from_epoch, low=0, integer=True
        )
        self.mode = check_choice("mode", mode, MODES)
        self.recalibrate_data = recalibrate_data
        self.swa_learning_rate = (
            None
            if swa_learning_rate is None
            else check_number(
                "swa_learning_rate", swa_learning_rate, low=0, low_open=True
            )
        )
        self.annealing_epochs = check_number(
            "annealing_epochs", annealing_epochs, low=0, integer=True
        )
        self.annealing_strategy = check_choice(
            "annealing_strategy", annealing_strategy, STRATEGIES
        )
        if recalibrate_batch_norm is not None:
            check_bool("recalibrate_batch_norm", recalibrate_batch_norm)
            if recalibrate_batch_norm is (recalibrate_data is None):
                raise invalid_together(
                    {
                        "recalibrate_batch_norm": recalibrate_batch_norm,
                        "recalibrate_data": recalibrate_data,
                    },
                    "`recalibrate_data` (the training inputs) with "
                    "recalibrate_batch_norm=True, and none with False",
                )
        self.recalibrate_batch_norm = recalibrate_batch_norm
        self._holders: list[tuple[str, Any, SWASchedule | None]] = []

    @property
    def start_epoch(self) -> int:
        """Deprecated name of `start_from_epoch`."""
        warnings.warn(
            "WeightAveraging.start_epoch is deprecated: use start_from_epoch.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.start_from_epoch

    def reset_state(self) -> None:
        self.averaged = 0
        self.average: list[np.ndarray] | None = None

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "start_from_epoch": self.start_from_epoch,
            "mode": self.mode,
            "swa_learning_rate": self.swa_learning_rate,
            "annealing_epochs": self.annealing_epochs,
            "annealing_strategy": self.annealing_strategy,
            "recalibrate_batch_norm": self.recalibrate_batch_norm,
        }

    def _data_arguments(self) -> dict[str, Any]:
        return {"recalibrate_data": self.recalibrate_data}

    def _state_arrays(self) -> list[np.ndarray]:
        return list(self.average or [])

    def _set_state_arrays(self, arrays: list[np.ndarray]) -> None:
        self.average = list(arrays) or None

    def _trainable_indices(self) -> list[int]:
        trainable = {id(w) for w in self.model.trainable_weights}
        return [i for i, w in enumerate(self.model.weights) if id(w) in trainable]

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self._holders = []
        if self.swa_learning_rate is None:
            return
        installed = False
        for key, optimizer in rate_holders(self.model.optimizer):
            learning_rate = _keras_compat.learning_rate_object(optimizer)
            schedule = None
            if (
                isinstance(learning_rate, SWASchedule)
                and learning_rate.swa_learning_rate == self.swa_learning_rate
            ):
                schedule = learning_rate  # installed by an earlier fit
            elif isinstance(learning_rate, Schedule):
                if isinstance(learning_rate, SWASchedule):  # another SWA rate
                    learning_rate = learning_rate.schedule
                schedule = SWASchedule(learning_rate, self.swa_learning_rate)
                optimizer.learning_rate = schedule
                installed = True
            elif callable(learning_rate):
                raise invalid(
                    "learning_rate",
                    learning_rate,
                    "a float or a LearningRateSchedule for "
                    "WeightAveraging(swa_learning_rate=...)",
                    TypeError,
                )
            if schedule is not None:
                schedule.alpha.assign(0.0)
            self._holders.append((key, optimizer, schedule))
        if installed and getattr(self.model, "train_function", None) is not None:
            self.model.make_train_function(force=True)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.swa_learning_rate is None or epoch < self.start_from_epoch:
            return
        k = epoch - self.start_from_epoch
        alpha = annealing_factor(
            progress(k, self.annealing_epochs)[1], self.annealing_strategy
        )
        for _, optimizer, schedule in self._holders:
            if schedule is not None:
                schedule.alpha.assign(alpha)
                continue
            optimizer.learning_rate = anneal_float(
                read_lr(optimizer),
                k,
                self.swa_learning_rate,
                self.annealing_epochs,
                self.annealing_strategy,
            )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.last_epoch = epoch
        if logs is not None:
            for key, optimizer, _ in self._holders:
                logs[key] = read_lr(optimizer)
        if epoch < self.start_from_epoch:
            return
        weights = final_weights(self.model)
        current = [weights[i].astype("float64") for i in self._trainable_indices()]
        if self.average is None:
            self.average = current
        else:
            n = self.averaged + 1
            pairs = zip(self.average, current, strict=True)
            self.average = [a + (w - a) / n for a, w in pairs]
        self.averaged += 1

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        try:
            self._swap_in_average()
        finally:
            super().on_train_end(logs)

    def _swap_in_average(self) -> None:
        if not self.averaged or self.average is None:
            warnings.warn(
                f"WeightAveraging averaged no epoch: training ended before "
                f"start_from_epoch={self.start_from_epoch}. The weights are "
                "unchanged.",
                stacklevel=2,
            )
            return
        self._warn_if_early_stopping_restores()
        weights = self.model.weights
        for i, average in zip(self._trainable_indices(), self.average, strict=True):
            weights[i].assign(np.asarray(average, weights[i].dtype))
        self._recalibrate()

    def _warn_if_early_stopping_restores(self) -> None:
        for other in self._peers():
            if (
                isinstance(other, EarlyStopping)
                and other.restore_best_weights
                and other.best_weights is not None
                and other.last_epoch == self.last_epoch
            ):
                warnings.warn(
                    "WeightAveraging and EarlyStopping(restore_best_weights=True) "
                    "both replace the final weights in this fit: the one listed "
                    "last in `callbacks` wins and the other's weights are lost. "
                    "Use one of the two (or restore_best_weights=False).",
                    stacklevel=3,
                )
                return

    def _recalibrate(self) -> None:
        if self.recalibrate_batch_norm is False or not _has_batch_norm(self.model):
            return
        if self.recalibrate_data is None:
            warnings.warn(
                "WeightAveraging swapped in the averaged weights, but the "
                "BatchNormalization statistics still belong to the last "
                "epoch's weights. Pass `recalibrate_data` (the training "
                "inputs) to recompute them, or recalibrate_batch_norm=False "
                "to keep them.",
                stacklevel=3,
            )
            return
        recalibrate_batch_norm(self.model, self.recalibrate_data)


def _has_batch_norm(model: keras.Model) -> bool:
    return any(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in _layers.walk(model)
    )
