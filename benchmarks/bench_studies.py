"""Quality studies: what the tricks do to training, on Fashion-MNIST.

Falls back to the digits data (and says so in the titles) when the Debian
package `dataset-fashion-mnist` is not installed.
"""

import keras
import numpy as np

from keras_tricks.datasets import load_digits
from keras_tricks.lab import build_variant, load_lab_dataset, make_split, run_ablation
from keras_tricks.optimizers import GradientClipping
from keras_tricks.report import Report
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
    sections.append(
        (
            f"Clipping at high learning rates on {name}: 8-layer He-initialised "
            f"MLP, plain SGD, {epochs} epochs, {seeds} seed(s)",
            clipping_study(x, y, epochs=epochs, seeds=seeds),
        )
    )
    return sections


def clipping_study(x, y, *, epochs, seeds, learning_rates=(0.5, 1.0)):
    """Plain SGD at high rates, without and with global-norm clipping to 1."""
    (x_train, y_train), (x_dev, y_dev), _ = make_split(x, y)
    classes = int(y.max()) + 1
    rows = []
    for learning_rate in learning_rates:
        for clip in (False, True):
            accuracy, losses = [], []
            for seed in range(seeds):
                keras.utils.set_random_seed(seed)
                model = build_variant(
                    x_train.shape[1], classes, {"init"}, depth=8, width=64, seed=seed
                )
                optimizer = keras.optimizers.SGD(learning_rate)
                if clip:
                    optimizer = GradientClipping(optimizer, threshold=1.0)
                model.compile(
                    optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"]
                )
                history = model.fit(
                    x_train,
                    y_train,
                    validation_data=(x_dev, y_dev),
                    epochs=epochs,
                    batch_size=32,
                    verbose=0,
                )
                accuracy.append(history.history["val_accuracy"][-1])
                losses.append(history.history["loss"][-1])
            rows.append(
                {
                    "learning_rate": learning_rate,
                    "optimizer": "GradientClipping(SGD, global_norm 1)"
                    if clip
                    else "SGD",
                    "dev_accuracy": _mean_std(accuracy),
                    "final_train_loss": float(np.mean(losses)),
                    "diverged_runs": int(np.sum(~np.isfinite(losses))),
                }
            )
    return Report(rows)


def _mean_std(values):
    return f"{np.mean(values):.4f} +- {np.std(values):.4f}"
