"""Bias / variance diagnosis of a fit, every epoch."""

from __future__ import annotations

import warnings
from typing import Any

import keras

from keras_tricks._validation import check_number, invalid
from keras_tricks.callbacks._base import TrainingCallback
from keras_tricks.report import Report

HIGH_BIAS = "high bias (underfitting)"
HIGH_VARIANCE = "high variance (overfitting)"
BOTH = "both"
GOOD_FIT = "good fit"
LABELS = (GOOD_FIT, HIGH_BIAS, HIGH_VARIANCE, BOTH)


class DiagnosisLabel(float):
    """A diagnosis in the logs: a number for Keras, a label for people.

    Keras's progress bar and TensorBoard average and plot every logged value,
    and fail on strings. This float is the code 0 (good fit), 1 (high bias),
    2 (high variance) or 3 (both); it prints as its label and compares equal
    to it (`history.history["fit_diagnosis"][-1] == "good fit"`).
    """

    label: str

    def __new__(cls, label: str) -> DiagnosisLabel:
        value = super().__new__(cls, LABELS.index(label))
        value.label = label
        return value

    def __str__(self) -> str:
        return self.label

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.label == other
        return float(self) == other

    __hash__ = float.__hash__


TRICKS = {
    HIGH_BIAS: (
        "a bigger network (more units or layers), train longer, a better "
        "optimiser or learning rate (find_learning_rate, Adam), better "
        "initialisation and normalisation, less regularisation"
    ),
    HIGH_VARIANCE: (
        "more training data (or augmentation), regularisation (L2 weight "
        "decay, dropout), early stopping (EarlyStopping), weight or model "
        "averaging (WeightAveraging, average_models), a smaller network"
    ),
    BOTH: "first reduce the bias (bigger network, train longer), then the variance",
    GOOD_FIT: "nothing urgent: check the test error once, at the very end",
}


def diagnose(
    train_error: float,
    dev_error: float,
    *,
    target_error: float = 0.0,
    gap_tolerance: float = 0.02,
) -> tuple[str, float, float]:
    """Classifies a fit from its train and dev errors.

    avoidable bias = train error - target error, variance = dev error - train
    error; each is "high" when above `gap_tolerance`.

    Returns:
        `(label, avoidable_bias, variance)`.
    """
    bias = train_error - target_error
    variance = dev_error - train_error
    high_bias, high_variance = bias > gap_tolerance, variance > gap_tolerance
    if high_bias and high_variance:
        return BOTH, bias, variance
    if high_bias:
        return HIGH_BIAS, bias, variance
    if high_variance:
        return HIGH_VARIANCE, bias, variance
    return GOOD_FIT, bias, variance


@keras.saving.register_keras_serializable(package="keras_tricks")
class FitDiagnosis(TrainingCallback):
    """Labels every epoch as high bias, high variance, both, or a good fit.

    After each epoch it reads the train and dev errors from the logs
    (`error_metric` and `val_<error_metric>`; an accuracy becomes the error
    `1 - accuracy`, any other metric is taken as an error already) and
    applies the bias / variance rules (Ng, "Machine Learning Yearning", 2018):

        avoidable bias = train error - target_error
        variance       = dev error - train error

    Bias is high when the avoidable bias exceeds `gap_tolerance`, variance
    when the train/dev gap does; both high gives `"both"`, neither
    `"good fit"`. The logs get `fit_diagnosis` (the label, as a
    `DiagnosisLabel`: a float code that prints as the label, since Keras's
    progress bar fails on strings), `avoidable_bias` and `variance`. At the
    end of training it prints the final diagnosis and the tricks to try;
    `report()` returns every epoch.

    The train error is Keras's running average over the epoch (weights change
    during the epoch, dropout is on), which reads slightly higher than the
    error of the final weights; no extra pass over the data is made.

    Args:
        target_error: the error reachable (human level, Bayes error), >= 0;
            an error rate in [0, 1) with an accuracy metric. Defaults to
            `0.0`.
        gap_tolerance: largest bias or variance counted as small.
            Defaults to `0.02`.
        error_metric: name of the logged metric (compile it with
            `metrics=[...]` and pass validation data). Defaults to
            `"accuracy"`.
        verbose: 1 prints the final diagnosis. Defaults to `1`.

    Raises:
        ValueError: for a negative `target_error` or `gap_tolerance`, a
            `target_error` >= 1 with an accuracy metric, or a negative
            `verbose`.
        TypeError: for an `error_metric` that is not a metric name.

    Example:

    >>> diagnosis = FitDiagnosis(gap_tolerance=0.05)
    >>> logs = {"accuracy": 0.99, "val_accuracy": 0.85}
    >>> diagnosis.on_epoch_end(0, logs)
    >>> print(logs["fit_diagnosis"], round(logs["variance"], 2))
    high variance (overfitting) 0.14
    >>> logs = {"accuracy": 0.80, "val_accuracy": 0.79}
    >>> diagnosis.on_epoch_end(1, logs)
    >>> diagnosis.diagnosis
    'high bias (underfitting)'
    """

    _state_attributes = ("epochs",)

    def __init__(
        self,
        *,
        target_error: float = 0.0,
        gap_tolerance: float = 0.02,
        error_metric: str = "accuracy",
        verbose: int = 1,
    ) -> None:
        super().__init__()
        self.target_error = check_number("target_error", target_error, low=0)
        self.gap_tolerance = check_number("gap_tolerance", gap_tolerance, low=0)
        if not isinstance(error_metric, str) or not error_metric:
            raise invalid("error_metric", error_metric, "a metric name", TypeError)
        self.error_metric = error_metric.removeprefix("val_")
        if "acc" in self.error_metric and self.target_error >= 1:
            raise invalid(
                "target_error",
                target_error,
                "an error rate in [0, 1) with the accuracy metric "
                f"{self.error_metric!r} (the error is 1 - accuracy)",
                fix="Pass the reachable error as a fraction, e.g. 0.05 for 5%",
            )
        self.verbose = check_number("verbose", verbose, low=0, integer=True)

    def reset_state(self) -> None:
        self.epochs: list[dict[str, Any]] = []

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "target_error": self.target_error,
            "gap_tolerance": self.gap_tolerance,
            "error_metric": self.error_metric,
            "verbose": self.verbose,
        }

    def _errors(self, logs: dict[str, Any]) -> list[float] | None:
        names = (self.error_metric, "val_" + self.error_metric)
        missing = [name for name in names if name not in logs]
        if missing:
            warnings.warn(
                f"FitDiagnosis is conditioned on metric `{missing[0]}` which is "
                f"not available. Available metrics are: {','.join(logs)}. "
                f"Compile the model with metrics=[{self.error_metric!r}] and "
                "pass validation data, or set `error_metric`.",
                stacklevel=3,
            )
            return None
        values = [float(keras.ops.convert_to_numpy(logs[name])) for name in names]
        if "acc" in self.error_metric:
            return [1.0 - value for value in values]
        return values

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        self.last_epoch = epoch
        errors = self._errors(logs)
        if errors is None:
            return
        train, dev = errors
        label, bias, variance = diagnose(
            train,
            dev,
            target_error=self.target_error,
            gap_tolerance=self.gap_tolerance,
        )
        logs.update(
            fit_diagnosis=DiagnosisLabel(label), avoidable_bias=bias, variance=variance
        )
        self.epochs.append(
            {
                "epoch": epoch + 1,
                "train_error": train,
                "dev_error": dev,
                "avoidable_bias": bias,
                "variance": variance,
                "diagnosis": label,
            }
        )

    @property
    def diagnosis(self) -> str | None:
        """The label of the last epoch, or `None` before training."""
        return self.epochs[-1]["diagnosis"] if self.epochs else None

    def report(self) -> Report:
        """Returns a `Report` with one row per epoch."""
        return Report(self.epochs, title="Bias / variance diagnosis")

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_end(logs)
        if not self.epochs or not self.verbose:
            return
        last = self.epochs[-1]
        print(
            f"Fit diagnosis after epoch {last['epoch']}: {last['diagnosis']} "
            f"(train error {last['train_error']:.4f}, dev error "
            f"{last['dev_error']:.4f}, target {self.target_error:.4f}; "
            f"avoidable bias {last['avoidable_bias']:.4f}, variance "
            f"{last['variance']:.4f}).\nTry: {TRICKS[last['diagnosis']]}."
        )
