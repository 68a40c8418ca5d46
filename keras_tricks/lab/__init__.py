"""The ablation lab: each trick judged in the scenario where it has a job.

`run_ablation` trains every scenario's reference, add-one, recipe and
leave-one-out networks over several seeds; `write_outputs` writes the
tables, the plots and one HTML report. `keras-tricks ablate` and
`keras-tricks demo` run it from the command line (see `docs/lab.md`).

The names below load on first use, so that `keras_tricks.lab.scenarios` can
be read without importing Keras.
"""

import importlib
from typing import Any

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

__all__ = sorted([*_EXPORTS, *_DATASETS])


def __getattr__(name: str) -> Any:
    if name in _DATASETS:
        return getattr(importlib.import_module("keras_tricks.datasets"), name)
    if name in _EXPORTS:
        module = importlib.import_module(f"keras_tricks.lab.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'keras_tricks.lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
