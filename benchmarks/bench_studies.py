"""Quality studies: what the tricks do to training, on Fashion-MNIST.

Falls back to the digits data (and says so in the titles) when the Debian
package `dataset-fashion-mnist` is not installed.
"""

import numpy as np

from keras_tricks.datasets import load_digits
from keras_tricks.lab import load_lab_dataset, run_ablation
from keras_tricks.studies import init_study


def _data(limit):
    try:
        x, y = load_lab_dataset("fashion-mnist")
        name = f"Fashion-MNIST ({limit} of 70,000 images)"
    except FileNotFoundError:
        x, y = load_lab_dataset("digits")
        name = "digits (Fashion-MNIST not installed)"
    keep = np.random.default_rng(0).permutation(len(x))[:limit]
    return x[keep], y[keep], name


def run(quick=False):
    limit = 3000 if quick else 12000
    epochs, seeds = (3, 1) if quick else (10, 2)
    x, y, name = _data(limit)
    sections = []
    train, dev = load_digits(seed=0)
    study = init_study(train, dev, depth=20, epochs=3 if quick else 10)
    sections.append(("Initialisation depth study (digits, 20-layer MLP)", study))
    ablation = run_ablation(x, y, depth=8, epochs=epochs, seeds=seeds, dataset=name)
    sections.append((f"Ablation, each trick alone, on {name}", ablation.table))
    high_lr = run_ablation(
        x,
        y,
        tricks=("clip",),
        depth=8,
        epochs=epochs,
        seeds=seeds,
        learning_rate=0.5,
        dataset=name,
    )
    sections.append(
        (f"Clipping at a high learning rate (SGD 0.5) on {name}", high_lr.table)
    )
    return sections
