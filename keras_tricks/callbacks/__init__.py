"""Callbacks for `model.fit`: penalty logging and training control."""

from keras_tricks.callbacks.early_stopping import EarlyStopping
from keras_tricks.callbacks.epoch_decay import EpochDecay
from keras_tricks.callbacks.fit_diagnosis import FitDiagnosis
from keras_tricks.callbacks.gradient_monitor import GradientMonitor
from keras_tricks.callbacks.lr_finder import LRFinderResult, find_learning_rate
from keras_tricks.callbacks.model_averaging import average_models
from keras_tricks.callbacks.penalty_logger import PenaltyLogger, weight_penalty
from keras_tricks.callbacks.reduce_lr_on_plateau import (
    ReduceLROnPlateau,
    ScaledSchedule,
)
from keras_tricks.callbacks.weight_averaging import WeightAveraging

__all__ = [
    "EarlyStopping",
    "EpochDecay",
    "FitDiagnosis",
    "GradientMonitor",
    "LRFinderResult",
    "PenaltyLogger",
    "ReduceLROnPlateau",
    "ScaledSchedule",
    "WeightAveraging",
    "average_models",
    "find_learning_rate",
    "weight_penalty",
]
