"""keras_tricks: the classic tricks for training deep networks, for Keras 3.

Each family lives in its own subpackage: `initializers` (named schemes, LSUV),
`regularizers` (L1/L2 guidance, parameter tying), `diagnostics` (per-layer
statistics), `layers` (ghost batch norm, BN recalibration, dropout variants),
`optimizers` (gradient clipping), `callbacks`, `data` (train/dev/test
splits), `lab` (the ablation lab of `keras-tricks`); `tuning` (KerasTuner
search spaces) is imported on its own, as it needs the `tuner` extra.
"""

import os
import sys

__version__ = "0.1.0"

if os.path.basename(sys.argv[0]) == "keras-tricks":
    # Our own command: TensorFlow prints C++ log lines while it loads, before
    # its log level applies; hide standard error for that import only.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _stderr = os.dup(2)
    _devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(_devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(_stderr, 2)
        os.close(_stderr)
        os.close(_devnull)

from keras_tricks import (  # noqa: E402
    callbacks,
    data,
    datasets,
    diagnostics,
    initializers,
    lab,
    layers,
    optimizers,
    regularizers,
    studies,
)

__all__ = [
    "__version__",
    "callbacks",
    "data",
    "datasets",
    "diagnostics",
    "initializers",
    "lab",
    "layers",
    "optimizers",
    "regularizers",
    "studies",
]
