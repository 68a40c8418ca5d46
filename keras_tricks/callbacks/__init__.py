"""Callbacks for `model.fit`."""

from keras_tricks.callbacks.penalty_logger import PenaltyLogger, weight_penalty

__all__ = ["PenaltyLogger", "weight_penalty"]
