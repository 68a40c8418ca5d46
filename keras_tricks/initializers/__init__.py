"""Named weight-initialisation schemes and LSUV."""

from keras_tricks.initializers.lsuv import lsuv_initialize
from keras_tricks.initializers.schemes import (
    NAMES,
    InverseFanInNormal,
    expected_std,
    get,
)

__all__ = ["NAMES", "InverseFanInNormal", "expected_std", "get", "lsuv_initialize"]
