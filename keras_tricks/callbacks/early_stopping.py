"""Early stopping with Prechelt's (1998) stopping criteria."""

from __future__ import annotations

import math
import warnings
from typing import Any, cast

import keras
import numpy as np

from keras_tricks._validation import (
    check_bool,
    check_choice,
    check_number,
    invalid,
    invalid_together,
)
from keras_tricks.callbacks import _monitor
from keras_tricks.callbacks._base import MonitoringCallback, final_weights

CRITERIA = ("patience", "gl", "pq", "up")

LOGGED = {"patience": (), "gl": ("gl",), "pq": ("gl", "pk", "pq"), "up": ("up_strips",)}
"""The quantities each criterion decides on, written into the logs every epoch."""


@keras.saving.register_keras_serializable(package="keras_tricks")
class EarlyStopping(MonitoringCallback):
    """Stops training when the validation error stops improving.

    A superset of `keras.callbacks.EarlyStopping`: Keras's arguments, in
    Keras's order (positional calls written for Keras work unchanged), and,
    with `criterion="patience"`, Keras's rule (stop once the monitored value
    has not improved by more than `min_delta` for `patience` epochs). The
    other criteria are Prechelt's, chosen with the keyword-only `criterion`.
    With `E_va(t)` the monitored validation error after epoch `t`, `E_tr(t)`
    the training counterpart (`loss` for `val_loss`, the monitor without its
    `val_` prefix), and `E_opt(t) = min_{t' <= t} E_va(t')`:

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

    The quantities a Prechelt criterion decides on go into the logs every
    epoch (so into History, CSVLogger and TensorBoard): `gl` for `"gl"`;
    `gl`, `pk` and `pq` for `"pq"` (`pk` and `pq` at strip ends, NaN in
    between); `up_strips`, the number of successive rising strips, for
    `"up"`. Before `start_from_epoch` they are NaN (`up_strips` 0).

    Whatever the criterion, three checks from PyTorch Lightning's
    `EarlyStopping` stop training at once, in this order (each from
    `start_from_epoch` on): a monitored value that is NaN or Inf
    (`check_finite`, reason `"nan"`), a value better than
    `stopping_threshold` (reason `"stopping_threshold"`: good enough, no need
    to go on), a value worse than `divergence_threshold` (reason
    `"divergence_threshold"`: the run diverged). "Better" and "worse" are
    strict and follow the direction of `monitor` (`mode`); `min_delta` does
    not apply to them. The reason is kept in `stop_reason` (`"patience"`,
    `"gl"`, `"pq"` or `"up"` for the criteria) and, with `verbose=1`,
    printed with Lightning's sentence, e.g. `Stopping threshold reached:
    val_loss = 0.09 < 0.1.`. Unlike Lightning's, the epoch that crosses a
    threshold still counts as a candidate best epoch for
    `restore_best_weights`.

    A monitor missing from the logs is an error (`ValueError` naming it and
    the logged keys) at the first epoch end that lacks it, as in Keras with
    `mode="auto"` and in Lightning (`strict=True`); only a `val_` monitor on
    an epoch without validation (`validation_freq > 1`) is skipped, with
    Keras's warning. A monitored value logged as a one-element array (e.g.
    `F1Score(average=None)` on one unit) is used as a number; several
    elements are an error.

    Unlike Keras's, the best weights are restored whenever training ends: on
    a stop, at the epoch limit, and when the monitored value becomes NaN or
    Inf, which also stops training (unless `check_finite=False`: then a
    non-finite value is never an improvement, as in Lightning). With an
    optimizer using `use_ema=True`,
    the saved "best weights" are the moving averages at the best epoch (what
    `fit` would have returned had it stopped there), so the averaging asked
    for is kept.

    Args:
        monitor: quantity to monitor. Defaults to `"val_loss"`.
        min_delta: smallest change counted as an improvement (`"patience"`).
            Defaults to `0.0`.
        patience: epochs without improvement before stopping (`"patience"`).
            Defaults to `0`.
        verbose: 1 prints when training stops and weights are restored.
            Defaults to `0`.
        mode: `"auto"`, `"min"` or `"max"`. Defaults to `"auto"`.
        baseline: value to beat before the patience counter resets
            (`"patience"`). Defaults to `None`.
        restore_best_weights: restore the weights of the best epoch when
            training ends. Defaults to `True` (Keras's: `False`).
        start_from_epoch: epochs to wait before monitoring. Defaults to `0`.
        criterion: `"patience"`, `"gl"`, `"pq"` or `"up"`. Defaults to
            `"patience"`.
        alpha: threshold of `"gl"` and `"pq"` (> 0), or the number of
            successive rising strips of `"up"` (integer >= 1). Required for
            those criteria, unused by `"patience"`. Defaults to `None`.
        strip_length: strip length `k` of `"pq"` and `"up"`. Defaults to `5`.
        stopping_threshold: stop as soon as the monitored value is better
            than this (Lightning's). Defaults to `None` (off).
        divergence_threshold: stop as soon as the monitored value is worse
            than this (Lightning's). Defaults to `None` (off).
        check_finite: stop when the monitored value is NaN or Inf.
            Defaults to `True`.

    Raises:
        ValueError: at an epoch end, if `monitor` is not in the logs, or if
            `stopping_threshold` is not better than `divergence_threshold`
            in the direction of `monitor`.

    Example:

    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> stopper = EarlyStopping(criterion="gl", alpha=5.0)
    >>> stopper.set_model(model)
    >>> stopper.on_train_begin()
    >>> for epoch, val_loss in enumerate([1.0, 0.8, 0.82, 0.9]):
    ...     logs = {"val_loss": val_loss}
    ...     stopper.on_epoch_end(epoch, logs)
    ...     print(epoch, round(logs["gl"], 2), model.stop_training)
    0 0.0 False
    1 0.0 False
    2 2.5 False
    3 12.5 True

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
        "stop_message",
        "val_errors",
        "train_errors",
        "rising_strips",
    )

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = True,
        start_from_epoch: int = 0,
        *,
        criterion: str = "patience",
        alpha: float | None = None,
        strip_length: int = 5,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        check_finite: bool = True,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = check_number("patience", patience, low=0, integer=True)
        self.verbose = check_number("verbose", verbose, low=0, integer=True)
        self.baseline = None if baseline is None else check_number("baseline", baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = check_number(
            "start_from_epoch", start_from_epoch, low=0, integer=True
        )
        self.criterion = check_choice("criterion", criterion, CRITERIA)
        self.alpha = _check_alpha(self.criterion, alpha)
        self.strip_length = check_number(
            "strip_length", strip_length, low=1, integer=True
        )
        self.stopping_threshold = _optional_number(
            "stopping_threshold", stopping_threshold
        )
        self.divergence_threshold = _optional_number(
            "divergence_threshold", divergence_threshold
        )
        self.check_finite = check_bool("check_finite", check_finite)
        if self.mode != "auto":
            self._check_thresholds(self.mode)

    def reset_state(self) -> None:
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.stopped_epoch = 0
        self.stop_reason: str | None = None
        self.stop_message = ""
        self.val_errors: list[float] = []
        self.train_errors: list[float | None] = []
        self.rising_strips = 0
        self.best_weights: list[np.ndarray] | None = None

    def _state_arrays(self) -> list[np.ndarray]:
        return list(self.best_weights or [])

    def _set_state_arrays(self, arrays: list[np.ndarray]) -> None:
        self.best_weights = list(arrays) or None

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "patience": self.patience,
            "verbose": self.verbose,
            "baseline": self.baseline,
            "restore_best_weights": self.restore_best_weights,
            "start_from_epoch": self.start_from_epoch,
            "criterion": self.criterion,
            "alpha": self.alpha,
            "strip_length": self.strip_length,
            "stopping_threshold": self.stopping_threshold,
            "divergence_threshold": self.divergence_threshold,
            "check_finite": self.check_finite,
        }

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.last_epoch = epoch
        logged = self._decide(epoch, logs)
        if logs is not None:
            logs.update(logged)

    def _decide(self, epoch: int, logs: dict[str, Any] | None) -> dict[str, float]:
        """Applies the criterion; returns the quantities it decided on."""
        logged = dict.fromkeys(LOGGED[self.criterion], math.nan)
        if self.criterion == "up":
            logged["up_strips"] = self.rising_strips
        if not self._has_monitor(logs or {}):
            return logged
        if epoch < self.start_from_epoch:
            return logged
        if self.criterion != "patience" and self.direction != "min":
            raise ValueError(
                f"criterion={self.criterion!r} is defined on an error "
                f"(lower is better), but `{self.monitor}` is maximised. "
                "Monitor a loss or an error, e.g. monitor='val_loss'."
            )
        self._check_thresholds(self.direction)
        current = self._monitored_value(logs)
        if current is None:
            return logged
        finite = math.isfinite(current)
        if self.check_finite and not finite:
            best = self.best if self.best is not None else self._worst()
            self._stop(
                epoch,
                "nan",
                f"Monitored metric {self.monitor} = {current} is not finite. "
                f"Previous best value was {best:.3f}.",
            )
            return logged
        threshold = self._threshold_reason(current)
        if self.criterion == "patience":
            self._patience(epoch, current if finite else math.nan)
        elif finite:
            logged.update(self._prechelt(epoch, current, logs))
        if threshold is not None:
            self._stop(epoch, *threshold)
        return logged

    def _has_monitor(self, logs: dict[str, Any]) -> bool:
        """Whether `monitor` was logged; raises if its name is wrong."""
        if self.monitor in logs:
            return True
        user = type(self).__name__
        if _monitor.validation_skipped(self.monitor, logs):
            warnings.warn(_monitor.unavailable(user, self.monitor, logs), stacklevel=4)
            return False
        raise ValueError(
            _monitor.unavailable(user, self.monitor, logs)
            + ". Pass one of them as `monitor` (a `val_` quantity needs "
            "validation data in `fit`)."
        )

    def _worst(self) -> float:
        return math.inf if self.direction == "min" else -math.inf

    def _threshold_reason(self, current: float) -> tuple[str, str] | None:
        """`(stop_reason, message)` when `current` crosses a threshold."""
        better, worse = ("<", ">") if self.direction == "min" else (">", "<")
        stop, diverge = self.stopping_threshold, self.divergence_threshold
        if stop is not None and _beyond(current, stop, better):
            return (
                "stopping_threshold",
                f"Stopping threshold reached: {self.monitor} = {current} "
                f"{better} {stop}.",
            )
        if diverge is not None and _beyond(current, diverge, worse):
            return (
                "divergence_threshold",
                f"Divergence threshold reached: {self.monitor} = {current} "
                f"{worse} {diverge}.",
            )
        return None

    def _check_thresholds(self, direction: str) -> None:
        stop, diverge = self.stopping_threshold, self.divergence_threshold
        if stop is None or diverge is None:
            return
        if (stop < diverge) if direction == "min" else (stop > diverge):
            return
        goal = "minimised" if direction == "min" else "maximised"
        raise invalid_together(
            {"stopping_threshold": stop, "divergence_threshold": diverge},
            "a stopping threshold better than the divergence threshold "
            f"(`{self.monitor}` is {goal})",
        )

    def _snapshot(self, epoch: int) -> None:
        self.best_epoch = epoch
        if self.restore_best_weights:
            self.best_weights = final_weights(self.model)

    def _stop(self, epoch: int, reason: str, message: str = "") -> None:
        self.stopped_epoch = epoch
        self.stop_reason = reason
        self.stop_message = message
        self.model.stop_training = True

    def _patience(self, epoch: int, current: float) -> None:
        # Keras's rule, step for step.
        if self.restore_best_weights and self.best_weights is None:
            self._snapshot(epoch)
        self.wait += 1
        if not math.isnan(current) and self.is_improvement(current, self.best):
            self.best = current
            self._snapshot(epoch)
            if self.baseline is None or self.is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self._stop(epoch, "patience")

    def _prechelt(
        self, epoch: int, current: float, logs: dict[str, Any] | None
    ) -> dict[str, float]:
        self.val_errors.append(current)
        if self.best is None or current < self.best:
            self.best = current
            self._snapshot(epoch)
        gl = _generalisation_loss(current, self.best)
        t, k = len(self.val_errors), self.strip_length
        alpha = cast(float, self.alpha)  # set for every Prechelt criterion
        if self.criterion == "gl":
            if gl > alpha:
                self._stop(epoch, "gl")
            return {"gl": gl}
        if self.criterion == "pq":
            train = self._monitored_value(logs, self.monitor.removeprefix("val_"))
            self.train_errors.append(train)
            strip = [error for error in self.train_errors[-k:] if error is not None]
            if t % k or len(strip) < k:
                return {"gl": gl}
            progress = training_progress(strip)
            quotient = gl / progress if progress > 0 else (math.inf if gl else 0.0)
            if quotient > alpha:
                self._stop(epoch, "pq")
            return {"gl": gl, "pk": progress, "pq": quotient}
        if t % k == 0 and t > k:
            rose = current > self.val_errors[t - 1 - k]
            self.rising_strips = self.rising_strips + 1 if rose else 0
            if self.rising_strips >= alpha:
                self._stop(epoch, "up")
        return {"up_strips": self.rising_strips}

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_end(logs)
        if self.stop_reason and self.verbose:
            epoch = self.stopped_epoch + 1
            message = f" {self.stop_message}" if self.stop_message else ""
            print(f"Epoch {epoch}: early stopping ({self.stop_reason}).{message}")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)


def _beyond(value: float, threshold: float, sign: str) -> bool:
    return value < threshold if sign == "<" else value > threshold


def _optional_number(name: str, value: float | None) -> float | None:
    return None if value is None else check_number(name, value)


def _generalisation_loss(current: float, best: float) -> float:
    """GL(t) = 100 * (E_va(t) / E_opt(t) - 1), in percent."""
    if best <= 0:
        return math.inf if current > best else 0.0
    return 100.0 * (current / best - 1.0)


def training_progress(strip: list[float]) -> float:
    """P_k = 1000 * (sum(strip) / (k * min(strip)) - 1), Prechelt's progress."""
    low = min(strip)
    if low <= 0:
        return math.inf if max(strip) > low else 0.0
    return 1000.0 * (sum(strip) / (len(strip) * low) - 1.0)


def _check_alpha(criterion: str, alpha: float | None) -> float | int | None:
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
