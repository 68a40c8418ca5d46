"""Step time of keras_tricks.layers against the closest Keras layer.

Each pair of models differs only in the layer under test; both train with
`model.fit(..., jit_compile=True)` on the same data, timed alternately (see
`harness.compare`). `recalibrate_batch_norm` over Fashion-MNIST's 60,000
training images is timed against one `model.predict` pass over the same data
at the same batch size. Without Fashion-MNIST installed, scikit-learn's
digits (8x8 images, tiled to the same number of rows) stand in for it.
"""

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
    (
        "DropConnectDense vs Dense + Dropout",
        lambda: [DropConnectDense(512, 0.5, activation="relu")],
        lambda: [
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dropout(0.5),
        ],
        1.5,
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


def run(quick=False):
    images, y_train, source = _images()
    x = images.reshape(len(images), -1)
    repeats = 3 if quick else 7
    rows_fit = 2048 if quick else 16384
    rows = []
    for title, ours, native, goal in PAIRS:
        xs, ys = x[:rows_fit], y_train[:rows_fit]
        result = compare(
            _fitter(_mlp(ours, x.shape[1]), xs, ys),
            _fitter(_mlp(native, x.shape[1]), xs, ys),
            repeats=repeats,
        )
        steps = rows_fit // BATCH
        note = f"{steps} fit steps, batch {BATCH}, {source}"
        rows.append(row(title, result, goal, note=note))
    fit_report = Report(rows, title="layers: model.fit step time, jit_compile=True")

    images = images[: 6000 if quick else None]
    model = _conv_net(images.shape[1])
    model.compile(jit_compile=True)
    batch = 1024
    result = compare(
        lambda: recalibrate_batch_norm(model, images, batch_size=batch),
        lambda: model.predict(images, batch_size=batch, verbose=0),
        repeats=2 if quick else 5,
    )
    recal_report = Report(
        [
            row(
                "recalibrate_batch_norm vs one predict pass",
                result,
                1.5,
                note=f"{len(images)} {source} images, batch {batch}, 3 BN layers: "
                "3 sequential passes, each up to its layer",
            )
        ],
        title="layers: recalibrate_batch_norm",
    )
    return [
        ("layers: model.fit step time (jit_compile=True)", fit_report),
        ("layers: recalibrate_batch_norm over Fashion-MNIST", recal_report),
    ]
