"""Deprecated module path: the range test lives in `keras_tricks.lr_finder`.

`from keras_tricks.callbacks import find_learning_rate` keeps working without
a warning; importing this module warns.
"""

import warnings

from keras_tricks.lr_finder import LRFinderResult, find_learning_rate, steepest_descent

warnings.warn(
    "keras_tricks.callbacks.lr_finder is deprecated: import from "
    "keras_tricks.lr_finder (or keras_tricks.callbacks).",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["LRFinderResult", "find_learning_rate", "steepest_descent"]
