"""Callbacks for `model.fit`: learning rate, stopping, diagnosis, averaging, logs.

Every callback here derives from `TrainingCallback` (config round trip,
deepcopy, state saved in `keras.callbacks.BackupAndRestore` backups, runs
before Keras's loggers); the monitoring ones from `MonitoringCallback`
(Keras's `monitor`, `mode`, `min_delta`). `find_learning_rate`,
`LRFinderResult` (in `keras_tricks.lr_finder`) and `average_models` (in
`keras_tricks.ensembles`) are not callbacks; they are re-exported here, their
first home, so existing imports keep working.
"""

from keras_tricks.callbacks.activation_stats import ActivationStats
from keras_tricks.callbacks.early_stopping import EarlyStopping
from keras_tricks.callbacks.epoch_decay import EpochDecay
from keras_tricks.callbacks.fit_diagnosis import FitDiagnosis
from keras_tricks.callbacks.gradient_monitor import GradientMonitor
from keras_tricks.callbacks.learning_rate_finder import LearningRateFinder
from keras_tricks.callbacks.one_cycle_momentum import OneCycleMomentum
from keras_tricks.callbacks.penalty_logger import PenaltyLogger, weight_penalty
from keras_tricks.callbacks.reduce_lr_on_plateau import (
    ReduceLROnPlateau,
    ScaledSchedule,
)
from keras_tricks.callbacks.skip_nonfinite import SkipNonFinite
from keras_tricks.callbacks.weight_averaging import WeightAveraging
from keras_tricks.ensembles import average_models
from keras_tricks.lr_finder import LRFinderResult, find_learning_rate

__all__ = [
    "ActivationStats",
    "EarlyStopping",
    "EpochDecay",
    "FitDiagnosis",
    "GradientMonitor",
    "LRFinderResult",
    "LearningRateFinder",
    "OneCycleMomentum",
    "PenaltyLogger",
    "ReduceLROnPlateau",
    "ScaledSchedule",
    "SkipNonFinite",
    "WeightAveraging",
    "average_models",
    "find_learning_rate",
    "weight_penalty",
]
