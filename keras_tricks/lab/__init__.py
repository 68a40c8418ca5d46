"""The ablation lab: what each trick does to training, measured."""

from keras_tricks.lab.ablation import (
    DEFAULT_TRICKS,
    TRICKS,
    AblationResult,
    build_variant,
    make_split,
    run_ablation,
)
from keras_tricks.lab.datasets import load_lab_dataset
from keras_tricks.lab.output import FILES, plot_curves, write_outputs

__all__ = [
    "DEFAULT_TRICKS",
    "FILES",
    "TRICKS",
    "AblationResult",
    "build_variant",
    "load_lab_dataset",
    "make_split",
    "plot_curves",
    "run_ablation",
    "write_outputs",
]
