"""Step time of keras_tricks.layers against the closest Keras layer.

Each pair of models differs only in the layer under test; both train with
`model.fit(..., jit_compile=True)` on the same data, timed alternately (see
`harness.compare`). `recalibrate_batch_norm` over Fashion-MNIST's 60,000
training images is timed against one `model.predict` pass over the same data
at the same batch size, in both forms (single pass and sequential), at sizes
from 10^3 to 6x10^4 images (a table and `benchmarks/recalibrate_scale.png`);
the two forms are compared on a trained network (the gap between their
statistics and the dev accuracy each gives). Without Fashion-MNIST installed,
scikit-learn's digits (8x8 images, tiled to the same number of rows) stand in
for it.
"""

import time
from pathlib import Path

import keras
import numpy as np

from benchmarks.harness import compare, row
from keras_tricks.datasets import load_digits, load_fashion_mnist
from keras_tricks.layers import (
    ClassicDropout,
    DropConnectDense,
    GhostBatchNormalization,
    MCDropout,
    recalibrate_batch_norm,
)
from keras_tricks.report import Report

BATCH = 256
RECALIBRATION_BATCH = 1024
SCALE_PLOT = Path(__file__).parent / "recalibrate_scale.png"


def _images():
    """Training images `(n, side, side, 1)` in [0, 1]-ish scale, labels, name."""
    try:
        (x, y), _ = load_fashion_mnist()
        return (x.astype("float32") / 255.0)[..., None], y, "Fashion-MNIST"
    except FileNotFoundError:
        (x, y), _ = load_digits()
        tiles = -(-60000 // len(x))  # as many rows as Fashion-MNIST's 60k
        x = np.tile(x.reshape(-1, 8, 8, 1), (tiles, 1, 1, 1))[:60000]
        return x, np.tile(y, tiles)[:60000], "digits (Fashion-MNIST not installed)"


def _mlp(middle, features):
    """features-512-[middle]-512-10 MLP; `middle()` gives the layers in between."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((features,)), keras.layers.Dense(512, activation="relu")]
        + middle()
        + [keras.layers.Dense(10, activation="softmax")]
    )
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=True)
    return model


def _fitter(model, x, y):
    def fit():
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)

    return fit


def _drop_connect_pair(title, rate):
    """DropConnect at `rate` against Dense + Dropout at the same rate (goal
    1.5x): the random bits a mask needs depend on the rate."""
    return (
        title,
        lambda: [DropConnectDense(512, rate, activation="relu")],
        lambda: [
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dropout(rate),
        ],
        1.5,
    )


PAIRS = [
    (
        "ClassicDropout vs Dropout",
        lambda: [ClassicDropout(0.5), keras.layers.Dense(512, activation="relu")],
        lambda: [keras.layers.Dropout(0.5), keras.layers.Dense(512, activation="relu")],
        1.05,
    ),
    (
        "MCDropout vs Dropout",
        lambda: [MCDropout(0.5), keras.layers.Dense(512, activation="relu")],
        lambda: [keras.layers.Dropout(0.5), keras.layers.Dense(512, activation="relu")],
        1.05,
    ),
    (
        "GhostBatchNormalization(32) vs BatchNormalization",
        lambda: [
            keras.layers.Dense(512),
            GhostBatchNormalization(32),
            keras.layers.Activation("relu"),
        ],
        lambda: [
            keras.layers.Dense(512),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
        ],
        1.3,
    ),
    _drop_connect_pair("DropConnectDense vs Dense + Dropout", 0.5),
    _drop_connect_pair("DropConnectDense(0.3) vs Dense + Dropout(0.3)", 0.3),
    (
        "DropConnectDense vs Dense (no dropout)",
        lambda: [DropConnectDense(512, 0.5, activation="relu")],
        lambda: [keras.layers.Dense(512, activation="relu")],
        None,
    ),
]


def _conv_net(side):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((side, side, 1)),
            keras.layers.Conv2D(16, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def _fit_rows(x, y_train, source, quick):
    repeats = 3 if quick else 7
    rows_fit = 2048 if quick else 16384
    xs, ys = x[:rows_fit], y_train[:rows_fit]
    note = f"{rows_fit // BATCH} fit steps, batch {BATCH}, {source}"
    rows = []
    for title, ours, native, goal in PAIRS:
        result = compare(
            _fitter(_mlp(ours, x.shape[1]), xs, ys),
            _fitter(_mlp(native, x.shape[1]), xs, ys),
            repeats=repeats,
        )
        if goal is None:  # a reference point, not a goal
            rows.append({**row(title, result, 1.0, note=note), "goal": "-", "met": "-"})
        else:
            rows.append(row(title, result, goal, note=note))
    return Report(rows, title="layers: model.fit step time, jit_compile=True")


def _recalibration_timing(model, images, repeats):
    """`compare` results of both forms against one predict pass over `images`."""

    def predict():
        model.predict(images, batch_size=RECALIBRATION_BATCH, verbose=0)

    return {
        method: compare(
            lambda method=method: recalibrate_batch_norm(
                model, images, batch_size=RECALIBRATION_BATCH, method=method
            ),
            predict,
            repeats=repeats,
        )
        for method in ("single_pass", "sequential")
    }


def _recalibration_rows(images, source, quick):
    images = images[: 6000 if quick else None]
    model = _conv_net(images.shape[1])
    model.compile(jit_compile=True)
    timing = _recalibration_timing(model, images, 2 if quick else 5)
    note = f"{len(images)} {source} images, batch {RECALIBRATION_BATCH}, 3 BN layers"
    return Report(
        [
            row(
                "recalibrate_batch_norm single_pass vs one predict pass",
                timing["single_pass"],
                1.2,
                note=f"{note}: one pass, to the last BN layer",
            ),
            row(
                "recalibrate_batch_norm sequential vs one predict pass",
                timing["sequential"],
                1.5,
                note=f"{note}: 3 passes, each up to its layer",
            ),
        ],
        title="layers: recalibrate_batch_norm",
    )


def _moving(model):
    return [
        (
            layer.moving_mean.numpy().astype("float64"),
            layer.moving_variance.numpy().astype("float64"),
            layer.epsilon,
        )
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _gaps(statistics, exact):
    """Largest mean gap (in exact standard deviations) and variance ratio."""
    mean_gap, var_ratio = 0.0, 1.0
    for (mean, var, epsilon), (mean_x, var_x, _) in zip(statistics, exact, strict=True):
        mean_gap = max(
            mean_gap, float(np.max(np.abs(mean - mean_x) / np.sqrt(var_x + epsilon)))
        )
        ratio = (var + epsilon) / (var_x + epsilon)
        var_ratio = max(var_ratio, float(np.max(np.maximum(ratio, 1 / ratio))))
    return mean_gap, var_ratio


def _quality_rows(images, labels, source, quick):
    """Trains the network briefly, then compares the two forms' statistics
    and the dev accuracy each gives."""
    train, dev = (6000, 2000) if quick else (50000, 10000)
    x, y = images[:train], labels[:train]
    x_dev, y_dev = images[train : train + dev], labels[train : train + dev]
    model = _conv_net(images.shape[1])
    model.compile(
        "adam",
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=True,
    )
    model.fit(x, y, batch_size=128, epochs=1 if quick else 2, verbose=0)
    trained = model.get_weights()

    def accuracy():
        return model.evaluate(x_dev, y_dev, batch_size=RECALIBRATION_BATCH, verbose=0)[
            1
        ]

    results = {"moving averages (as trained)": (accuracy(), _moving(model), 0.0)}
    for method in ("single_pass", "sequential"):
        model.set_weights(trained)
        start = time.perf_counter()
        recalibrate_batch_norm(model, x, batch_size=RECALIBRATION_BATCH, method=method)
        seconds = time.perf_counter() - start
        results[method] = (accuracy(), _moving(model), seconds)
    exact = results["sequential"][1]
    rows = []
    for name, (dev_accuracy, statistics, seconds) in results.items():
        mean_gap, var_ratio = _gaps(statistics, exact)
        rows.append(
            {
                "statistics": name,
                "dev_accuracy": dev_accuracy,
                "mean_gap_to_exact": mean_gap,
                "var_ratio_to_exact": var_ratio,
                "recalibration_s": seconds,
                "note": f"{train} training / {dev} dev {source} images, "
                f"batch {RECALIBRATION_BATCH}",
            }
        )
    return Report(rows, title="layers: single-pass vs exact recalibration")


def _scale_rows(images, source, quick):
    """Time ratio against one predict pass, for 10^3 to 6x10^4 images."""
    sizes = (1000, 3000, 10000) if quick else (1000, 3000, 10000, 30000, 60000)
    model = _conv_net(images.shape[1])
    model.compile(jit_compile=True)
    rows = []
    for size in sizes:
        timing = _recalibration_timing(model, images[:size], 2 if quick else 3)
        rows.append(
            {
                "examples": size,
                "predict_s": timing["single_pass"]["native_s"],
                "single_pass_ratio": timing["single_pass"]["ratio"],
                "sequential_ratio": timing["sequential"]["ratio"],
                "note": f"{source}, batch {RECALIBRATION_BATCH}",
            }
        )
    _plot_scale(rows, source)
    return Report(rows, title="layers: recalibrate_batch_norm scale curve")


def _plot_scale(rows, source):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["examples"] for r in rows]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(sizes, [r["single_pass_ratio"] for r in rows], "o-", label="single_pass")
    axes.plot(sizes, [r["sequential_ratio"] for r in rows], "s-", label="sequential")
    axes.axhline(1.2, color="grey", linestyle="--", label="goal 1.2x (single pass)")
    axes.set_xscale("log")
    axes.set_xlabel(f"examples ({source.replace('$', '')})")
    axes.set_ylabel("time / one predict pass")
    axes.set_title("recalibrate_batch_norm cost against one inference pass")
    axes.legend()
    figure.tight_layout()
    figure.savefig(SCALE_PLOT, dpi=100)
    plt.close(figure)


def run(quick=False):
    images, labels, source = _images()
    x = images.reshape(len(images), -1)
    return [
        (
            "layers: model.fit step time (jit_compile=True)",
            _fit_rows(x, labels, source, quick),
        ),
        (
            "layers: recalibrate_batch_norm over Fashion-MNIST",
            _recalibration_rows(images, source, quick),
        ),
        (
            "layers: recalibrate_batch_norm, single pass vs exact (trained network)",
            _quality_rows(images, labels, source, quick),
        ),
        (
            "layers: recalibrate_batch_norm scale curve (plot: "
            "benchmarks/recalibrate_scale.png)",
            _scale_rows(images, source, quick),
        ),
    ]
