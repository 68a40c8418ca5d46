"""Moved to `keras_tricks.datasets`; these names are re-exported from there."""

from keras_tricks.datasets import BUILTIN, load_dataset, load_lab_dataset

__all__ = ["BUILTIN", "load_dataset", "load_lab_dataset"]
