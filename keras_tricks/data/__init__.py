"""Train/dev/test splits from one distribution, in memory and streaming."""

from keras_tricks.data.sizes import auto_fraction, resolve_sizes
from keras_tricks.data.split import (
    TrainDevTestSplit,
    quantile_bins,
    train_dev_test_split,
)

__all__ = [
    "TrainDevTestSplit",
    "auto_fraction",
    "quantile_bins",
    "resolve_sizes",
    "train_dev_test_split",
]
