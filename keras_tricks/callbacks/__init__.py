"""Callbacks for `model.fit`."""

from keras_tricks.callbacks.gradient_monitor import GradientMonitor
from keras_tricks.callbacks.penalty_logger import PenaltyLogger, weight_penalty

__all__ = ["GradientMonitor", "PenaltyLogger", "weight_penalty"]
