"""Train/dev/test splits from one distribution, in memory and streaming."""

from keras_tricks.data.describe import SplitReport, describe_split
from keras_tricks.data.sizes import auto_fraction, resolve_sizes
from keras_tricks.data.split import (
    TrainDevTestSplit,
    quantile_bins,
    train_dev_test_split,
)
from keras_tricks.data.stream import split_dataset

__all__ = [
    "SplitReport",
    "TrainDevTestSplit",
    "auto_fraction",
    "describe_split",
    "quantile_bins",
    "resolve_sizes",
    "split_dataset",
    "train_dev_test_split",
]
