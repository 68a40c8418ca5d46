"""Gradient clipping: pure functions and the `GradientClipping` wrapper."""

from keras_tricks.optimizers.clipping import (
    adaptive_clip,
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    global_norm,
    normalize,
    unitwise_norm,
)
from keras_tricks.optimizers.gradient_clipping import GradientClipping

__all__ = [
    "GradientClipping",
    "adaptive_clip",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "global_norm",
    "normalize",
    "unitwise_norm",
]
