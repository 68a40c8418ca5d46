"""The ablation lab: each trick judged in the scenario where it has a job.

`run_ablation` trains every scenario's reference, add-one, recipe and
leave-one-out networks over several seeds; `write_outputs` writes the
tables, the plots and one HTML report. `keras-tricks ablate` and
`keras-tricks demo` run it from the command line (see `docs/lab.md`).

The names below load on first use, so that `keras_tricks.lab.scenarios` can
be read without importing Keras.
"""

import importlib
import typing
from typing import Any

if typing.TYPE_CHECKING:  # what the names are, for type checkers and the docs
    from keras_tricks.datasets import LabDataset, load_dataset, load_lab_dataset
    from keras_tricks.lab.ablation import (
        DEFAULT_TRICKS,
        TRICKS,
        AblationResult,
        build_variant,
        make_split,
        run_ablation,
        split_dataset,
    )
    from keras_tricks.lab.models import cnn, mlp
    from keras_tricks.lab.output import FILES, plot_curves, plot_effects, write_outputs
    from keras_tricks.lab.scenarios import SCENARIOS, Scenario, Variant, variants
    from keras_tricks.lab.statistics import paired_interval, verdict

_EXPORTS = {
    "AblationResult": "ablation",
    "DEFAULT_TRICKS": "ablation",
    "TRICKS": "ablation",
    "build_variant": "ablation",
    "make_split": "ablation",
    "run_ablation": "ablation",
    "split_dataset": "ablation",
    "cnn": "models",
    "mlp": "models",
    "FILES": "output",
    "plot_curves": "output",
    "plot_effects": "output",
    "write_outputs": "output",
    "SCENARIOS": "scenarios",
    "Scenario": "scenarios",
    "Variant": "scenarios",
    "variants": "scenarios",
    "paired_interval": "statistics",
    "verdict": "statistics",
}
_DATASETS = ("LabDataset", "load_dataset", "load_lab_dataset")

__all__ = [
    "AblationResult",
    "DEFAULT_TRICKS",
    "FILES",
    "LabDataset",
    "SCENARIOS",
    "Scenario",
    "TRICKS",
    "Variant",
    "build_variant",
    "cnn",
    "load_dataset",
    "load_lab_dataset",
    "make_split",
    "mlp",
    "paired_interval",
    "plot_curves",
    "plot_effects",
    "run_ablation",
    "split_dataset",
    "variants",
    "verdict",
    "write_outputs",
]


def __getattr__(name: str) -> Any:
    if name in _DATASETS:
        return getattr(importlib.import_module("keras_tricks.datasets"), name)
    if name in _EXPORTS:
        module = importlib.import_module(f"keras_tricks.lab.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'keras_tricks.lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
