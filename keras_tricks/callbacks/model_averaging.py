"""Deprecated module path: `average_models` lives in `keras_tricks.ensembles`.

`from keras_tricks.callbacks import average_models` keeps working without a
warning; importing this module warns.
"""

import warnings

from keras_tricks.ensembles import average_models

warnings.warn(
    "keras_tricks.callbacks.model_averaging is deprecated: import from "
    "keras_tricks.ensembles (or keras_tricks.callbacks).",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["average_models"]
