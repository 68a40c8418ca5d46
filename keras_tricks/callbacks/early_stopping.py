"""Early stopping with Prechelt's (1998) stopping criteria."""

import math

import keras

from keras_tricks._validation import check_choice, check_number, invalid
from keras_tricks.callbacks._base import MonitorMixin, TrainingCallback, final_weights

CRITERIA = ("patience", "gl", "pq", "up")


@keras.saving.register_keras_serializable(package="keras_tricks")
class EarlyStopping(MonitorMixin, TrainingCallback):
    """Stops training when the validation error stops improving.

    A superset of `keras.callbacks.EarlyStopping`: same arguments and, with
    `criterion="patience"`, the same rule (stop once the monitored value has
    not improved by more than `min_delta` for `patience` epochs). The other
    criteria are Prechelt's. With `E_va(t)` the monitored validation error
    after epoch `t`, `E_tr(t)` the training counterpart (`loss` for
    `val_loss`, the monitor without its `val_` prefix), and
    `E_opt(t) = min_{t' <= t} E_va(t')`:

    - `"gl"`: generalisation loss, stop as soon as
      `GL(t) = 100 * (E_va(t) / E_opt(t) - 1) > alpha` (percent above the
      best value so far).
    - `"pq"`: progress quotient, stop at the end of a strip (every
      `strip_length = k` epochs) when `GL(t) / P_k(t) > alpha`, where
      `P_k(t) = 1000 * (sum_{t'=t-k+1..t} E_tr(t') / (k * min E_tr(t')) - 1)`
      measures how much the training error still moves within the strip.
    - `"up"`: stop at the end of a strip when the validation error has
      risen, `E_va(t) > E_va(t - k)`, at `alpha` successive strip ends
      (`UP_s` with `s = alpha`, an integer).

    Epochs are counted from `start_from_epoch` (epoch `start_from_epoch` is
    `t = 1`), so strip ends are the epochs where `t` is a multiple of `k`.
    Prechelt's criteria are defined on an error, so they need a monitored
    quantity that is minimised, and they use the exact minimum (`min_delta`
    and `baseline` only apply to `"patience"`).

    Unlike Keras's, the best weights are restored whenever training ends: on
    a stop, at the epoch limit, and when the monitored value becomes NaN or
    Inf, which also stops training. With an optimizer using `use_ema=True`,
    the saved "best weights" are the moving averages at the best epoch (what
    `fit` would have returned had it stopped there), so the averaging asked
    for is kept.

    Args:
        monitor: quantity to monitor. Defaults to `"val_loss"`.
        criterion: `"patience"`, `"gl"`, `"pq"` or `"up"`. Defaults to
            `"patience"`.
        min_delta: smallest change counted as an improvement (`"patience"`).
            Defaults to `0`.
        patience: epochs without improvement before stopping (`"patience"`).
            Defaults to `0`.
        alpha: threshold of `"gl"` and `"pq"` (> 0), or the number of
            successive rising strips of `"up"` (integer >= 1). Required for
            those criteria, unused by `"patience"`. Defaults to `None`.
        strip_length: strip length `k` of `"pq"` and `"up"`. Defaults to `5`.
        mode: `"auto"`, `"min"` or `"max"`. Defaults to `"auto"`.
        baseline: value to beat before the patience counter resets
            (`"patience"`). Defaults to `None`.
        restore_best_weights: restore the weights of the best epoch when
            training ends. Defaults to `True`.
        start_from_epoch: epochs to wait before monitoring. Defaults to `0`.
        verbose: 1 prints when training stops and weights are restored.
            Defaults to `0`.

    Example:

    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> stopper = EarlyStopping(criterion="gl", alpha=5.0)
    >>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=3,
    ...                     validation_split=0.5, verbose=0, callbacks=[stopper])

    Reference:
        Prechelt, "Early Stopping - But When?", Neural Networks: Tricks of the
        Trade, 1998.
    """

    _state_attributes = (
        "best",
        "best_epoch",
        "wait",
        "stopped_epoch",
        "stop_reason",
        "val_errors",
        "train_errors",
        "rising_strips",
    )

    def __init__(
        self,
        monitor="val_loss",
        *,
        criterion="patience",
        min_delta=0,
        patience=0,
        alpha=None,
        strip_length=5,
        mode="auto",
        baseline=None,
        restore_best_weights=True,
        start_from_epoch=0,
        verbose=0,
    ):
        if not isinstance(monitor, str):
            raise invalid("monitor", monitor, "a metric name", TypeError)
        self.monitor = monitor
        self.criterion = check_choice("criterion", criterion, CRITERIA)
        self.min_delta = abs(check_number("min_delta", min_delta))
        self.patience = check_number("patience", patience, low=0, integer=True)
        self.alpha = _check_alpha(self.criterion, alpha)
        self.strip_length = check_number(
            "strip_length", strip_length, low=1, integer=True
        )
        self.mode = check_choice("mode", mode, ("auto", "min", "max"))
        self.baseline = None if baseline is None else check_number("baseline", baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = check_number(
            "start_from_epoch", start_from_epoch, low=0, integer=True
        )
        self.verbose = check_number("verbose", verbose, low=0, integer=True)
        self._mode = None
        super().__init__()

    def reset_state(self):
        self.best = None
        self.best_epoch = 0
        self.wait = 0
        self.stopped_epoch = 0
        self.stop_reason = None
        self.val_errors = []
        self.train_errors = []
        self.rising_strips = 0
        self.best_weights = None

    def _state_arrays(self):
        return list(self.best_weights or [])

    def _set_state_arrays(self, arrays):
        self.best_weights = list(arrays) or None

    def get_config(self):
        return {
            "monitor": self.monitor,
            "criterion": self.criterion,
            "min_delta": self.min_delta,
            "patience": self.patience,
            "alpha": self.alpha,
            "strip_length": self.strip_length,
            "mode": self.mode,
            "baseline": self.baseline,
            "restore_best_weights": self.restore_best_weights,
            "start_from_epoch": self.start_from_epoch,
            "verbose": self.verbose,
        }

    def on_epoch_end(self, epoch, logs=None):
        self.last_epoch = epoch
        if epoch < self.start_from_epoch:
            return
        if self._mode is None:
            self._mode = self._resolve_mode()
            if self.criterion != "patience" and self._mode != "min":
                raise ValueError(
                    f"criterion={self.criterion!r} is defined on an error "
                    f"(lower is better), but `{self.monitor}` is maximised. "
                    "Monitor a loss or an error, e.g. monitor='val_loss'."
                )
        current = self._monitor_value(logs)
        if current is None:
            return
        if not math.isfinite(current):
            self._stop(epoch, "nan")
            return
        if self.criterion == "patience":
            self._patience(epoch, current)
        else:
            self._prechelt(epoch, current, logs)

    def _snapshot(self, epoch):
        self.best_epoch = epoch
        if self.restore_best_weights:
            self.best_weights = final_weights(self.model)

    def _stop(self, epoch, reason):
        self.stopped_epoch = epoch
        self.stop_reason = reason
        self.model.stop_training = True

    def _patience(self, epoch, current):
        # Keras's rule, step for step.
        if self.restore_best_weights and self.best_weights is None:
            self._snapshot(epoch)
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self._snapshot(epoch)
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self._stop(epoch, "patience")

    def _prechelt(self, epoch, current, logs):
        self.val_errors.append(current)
        if self.best is None or current < self.best:
            self.best = current
            self._snapshot(epoch)
        gl = _generalisation_loss(current, self.best)
        t, k = len(self.val_errors), self.strip_length
        if self.criterion == "gl":
            if gl > self.alpha:
                self._stop(epoch, "gl")
            return
        if self.criterion == "pq":
            train = self._monitor_value(logs, self.monitor.removeprefix("val_"))
            self.train_errors.append(train)
            if t % k or None in self.train_errors[-k:]:
                return
            progress = training_progress(self.train_errors[-k:])
            quotient = gl / progress if progress > 0 else (math.inf if gl else 0.0)
            if quotient > self.alpha:
                self._stop(epoch, "pq")
            return
        if t % k or t <= k:
            return
        rose = current > self.val_errors[t - 1 - k]
        self.rising_strips = self.rising_strips + 1 if rose else 0
        if self.rising_strips >= self.alpha:
            self._stop(epoch, "up")

    def on_train_end(self, logs=None):
        if self.stop_reason and self.verbose:
            epoch = self.stopped_epoch + 1
            print(f"Epoch {epoch}: early stopping ({self.stop_reason}).")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)


def _generalisation_loss(current, best):
    """GL(t) = 100 * (E_va(t) / E_opt(t) - 1), in percent."""
    if best <= 0:
        return math.inf if current > best else 0.0
    return 100.0 * (current / best - 1.0)


def training_progress(strip):
    """P_k = 1000 * (sum(strip) / (k * min(strip)) - 1), Prechelt's progress."""
    low = min(strip)
    if low <= 0:
        return math.inf if max(strip) > low else 0.0
    return 1000.0 * (sum(strip) / (len(strip) * low) - 1.0)


def _check_alpha(criterion, alpha):
    if criterion == "patience":
        if alpha is not None:
            raise invalid(
                "alpha", alpha, "None with criterion='patience'", fix="Use `patience`"
            )
        return None
    if alpha is None:
        raise invalid("alpha", alpha, f"a threshold > 0 for criterion={criterion!r}")
    if criterion == "up":
        return check_number("alpha", alpha, low=1, integer=True)
    return check_number("alpha", alpha, low=0, low_open=True)
