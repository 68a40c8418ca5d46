"""keras_tricks: the classic tricks for training deep networks, for Keras 3.

Each family lives in its own subpackage: `initializers` (named schemes, LSUV),
`regularizers` (parameter tying), `diagnostics` (per-layer statistics),
`layers` (ghost batch norm, BN recalibration, dropout variants), `optimizers`
(gradient clipping), `callbacks`, `schedules` (one-cycle), `lr_finder` (the
learning-rate range test), `ensembles` (explicit model averaging), `data`
(train/dev/test splits). Importing
the package loads these light subpackages only. The heavier ones are loaded
on first use: `datasets` (embedded data for demos), `lab` and `studies` (the
experiments behind the `keras-tricks` command), `tuning` (KerasTuner search
spaces, needs the `tuner` extra).
"""

import importlib

__version__ = "0.1.0"

from keras_tricks import _extras, _versions  # noqa: E402

# Before the subpackages: a Keras too old, or a backend not installed, fails
# here with a message saying what to install; an untested version warns.
_versions.check()
_extras.import_keras()

from keras_tricks import (  # noqa: E402
    callbacks,
    data,
    diagnostics,
    ensembles,
    initializers,
    layers,
    lr_finder,
    optimizers,
    regularizers,
    schedules,
)

_LAZY = ("datasets", "lab", "studies", "tuning")

__all__ = [
    "__version__",
    "callbacks",
    "data",
    "datasets",
    "diagnostics",
    "ensembles",
    "initializers",
    "lab",
    "layers",
    "lr_finder",
    "optimizers",
    "regularizers",
    "schedules",
    "studies",
    "tuning",
]


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"keras_tricks.{name}")
    raise AttributeError(f"module 'keras_tricks' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
