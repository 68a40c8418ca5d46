"""Gradient clipping and gradient monitoring: step cost, scale curve, memory.

- Step cost: every model is compiled with `jit_compile=True` and trained
  with Adam on digits tiled to 7,188 rows (113 steps of 64 per epoch). The
  two models of a pair are fitted for 2 epochs each, alternately; an epoch
  is timed by a callback and the faster epoch of a fit counts (the first
  epoch of the first fit traces and compiles, and per-epoch overhead is one
  113th of an epoch). The ratio is the median over the rounds of ours /
  native. A 4x256 ReLU MLP and a small CNN (two 3x3 conv layers of 32, on
  the 8x8 images).
- Scale curve: `GradientClipping` (global_norm) against Keras's
  `global_clipnorm` on MLPs of 10^4 to 10^7 parameters (the curve is
  written to `benchmarks/clipping_scale.png`).
- Memory: RSS growth per model build + fit (`keras.backend.clear_session()`
  before each), each variant in a fresh process.
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np

from benchmarks.harness import row
from keras_tricks.callbacks import GradientMonitor, SkipNonFinite
from keras_tricks.datasets import load_digits
from keras_tricks.optimizers import GradientClipping
from keras_tricks.report import Report

BATCH = 64
ROWS = 7188
HERE = Path(__file__).parent
PLOT = HERE / "clipping_scale.png"


def _data(cnn=False, rows=ROWS):
    (x, y), _ = load_digits(seed=0)
    reps = -(-rows // len(x))
    x, y = np.concatenate([x] * reps)[:rows], np.concatenate([y] * reps)[:rows]
    return (x.reshape(-1, 8, 8, 1) if cnn else x), y


def _mlp(optimizer, width=256, depth=4):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(width, activation="relu") for _ in range(depth)]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=True)
    return model


def _cnn(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=True)
    return model


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def _fastest_epoch(model, x, y, callbacks=(), epochs=2, batch=BATCH):
    timer = _EpochTimer()
    model.fit(
        x,
        y,
        batch_size=batch,
        epochs=epochs,
        verbose=0,
        callbacks=[*callbacks(), timer] if callable(callbacks) else [timer],
    )
    return min(timer.times)


def _steady(ours, native, x, y, rounds, batch=BATCH):
    """Alternating 2-epoch fits; median over rounds of the epoch-time ratio.

    `ours` and `native` are `(model, callbacks factory or ())`.
    """
    for model, callbacks in (ours, native):  # trace and compile
        _fastest_epoch(model, x, y, callbacks, epochs=1, batch=batch)
    ours_t, native_t = [], []
    for i in range(rounds):
        pairs = [(ours, ours_t), (native, native_t)]
        for (model, callbacks), times in pairs if i % 2 == 0 else pairs[::-1]:
            times.append(_fastest_epoch(model, x, y, callbacks, batch=batch))
    ratios = [o / n for o, n in zip(ours_t, native_t, strict=True)]
    return {
        "ours_s": min(ours_t),
        "native_s": min(native_t),
        "ratio": statistics.median(ratios),
        "fastest_ratio": min(ours_t) / min(native_t),
    }


def _with_fastest(result, goal, note):
    line = row(note[0], result, goal, note[1])
    line["fastest_ratio"] = result["fastest_ratio"]
    return line


def step_cost(quick):
    rounds = 3 if quick else 9
    rows = []
    for name, build, cnn in (("MLP 4x256", _mlp, False), ("CNN 2x conv32", _cnn, True)):
        x, y = _data(cnn)
        pairs = [
            (
                "global_norm vs Keras global_clipnorm",
                GradientClipping(keras.optimizers.Adam(1e-3), threshold=1.0),
                keras.optimizers.Adam(1e-3, global_clipnorm=1.0),
                1.05,
            ),
            (
                "adaptive vs no clipping",
                GradientClipping(
                    keras.optimizers.Adam(1e-3), mode="adaptive", threshold=0.01
                ),
                keras.optimizers.Adam(1e-3),
                1.15,
            ),
        ]
        for label, ours, native, goal in pairs:
            result = _steady((build(ours), ()), (build(native), ()), x, y, rounds)
            rows.append(_with_fastest(result, goal, (f"{name}: {label}", "")))
        if not cnn:
            for label, ours, native, goal in pairs:  # fresh copies, batch 256
                ours = keras.optimizers.deserialize(keras.optimizers.serialize(ours))
                native = keras.optimizers.deserialize(
                    keras.optimizers.serialize(native)
                )
                result = _steady(
                    (build(ours), ()), (build(native), ()), x, y, rounds, batch=256
                )
                rows.append(
                    _with_fastest(result, goal, (f"{name}, batch 256: {label}", ""))
                )
            result = _steady(
                (
                    _mlp(GradientClipping(keras.optimizers.Adam(1e-3))),
                    lambda: [SkipNonFinite()],
                ),
                (_mlp(GradientClipping(keras.optimizers.Adam(1e-3))), ()),
                x,
                y,
                rounds,
            )
            rows.append(
                _with_fastest(
                    result,
                    1.05,
                    (
                        f"{name}: GradientClipping + SkipNonFinite() vs "
                        "GradientClipping",
                        "restores BN/metric state of a skipped step",
                    ),
                )
            )
            result = _steady(
                (_mlp(keras.optimizers.Adam(1e-3)), lambda: [GradientMonitor()]),
                (_mlp(keras.optimizers.Adam(1e-3)), ()),
                x,
                y,
                rounds,
            )
            rows.append(
                _with_fastest(
                    result,
                    1.05,
                    (
                        f"{name}: GradientMonitor() vs none",
                        "update ratio sampled 1 step in 16",
                    ),
                )
            )
    return Report(
        rows,
        title="Step cost (Adam, batch 64, jit_compile=True, 113 steps an epoch, "
        "median over alternating rounds of the faster epoch of 2)",
    )


def _width(params):
    """Hidden width w of a 64 -> w -> w -> 10 MLP with about `params` weights."""
    a, b, c = 1.0, 64 + 1 + 10 + 2, 10 - params  # w^2 + (64+10+3)w + 10
    return int((-b + (b * b - 4 * a * c) ** 0.5) / (2 * a))


def scale_curve(quick):
    sizes = [10**4, 10**5, 10**6] + ([] if quick else [10**7])
    rows = []
    for size in sizes:
        width = _width(size)
        # Fewer rows for the large models: 40 steps an epoch is plenty there.
        x, y = _data(rows=BATCH * (40 if size >= 10**6 else 113))
        ours = _mlp(GradientClipping(keras.optimizers.Adam(1e-3)), width, depth=2)
        native = _mlp(keras.optimizers.Adam(1e-3, global_clipnorm=1.0), width, 2)
        result = _steady((ours, ()), (native, ()), x, y, 3 if quick else 5)
        rows.append(
            {
                "parameters": ours.count_params(),
                "hidden_width": width,
                "ours_s": result["ours_s"],
                "native_s": result["native_s"],
                "ratio": result["ratio"],
                "fastest_ratio": result["fastest_ratio"],
            }
        )
    _plot(rows)
    return Report(
        rows,
        title="Scale curve: GradientClipping(global_norm) / Keras global_clipnorm "
        f"per epoch, MLP 64-w-w-10, Adam, batch 64, jit (plot: {PLOT.name})",
    )


def _plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.semilogx([r["parameters"] for r in rows], [r["ratio"] for r in rows], "o-")
    ax.axhline(1.05, color="grey", linestyle="--", label="goal 1.05")
    ax.axhline(1.0, color="black", linewidth=0.5)
    ax.set_xlabel("parameters")
    ax.set_ylabel("epoch time / Keras global_clipnorm")
    ax.set_title("GradientClipping(global_norm) cost")
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)
    plt.close(fig)


_CHILD = """
import gc, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, numpy as np
from keras_tricks.callbacks import GradientMonitor
from keras_tricks.datasets import load_digits
from keras_tricks.optimizers import GradientClipping
variant, builds = sys.argv[1], int(sys.argv[2])
(x, y), _ = load_digits(seed=0)
x, y = x[:256], y[:256]
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
marks = []
for _ in range(builds):
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input((64,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax")])
    callbacks = []
    if variant == "keras":
        optimizer = keras.optimizers.Adam(1e-3, global_clipnorm=1.0)
    elif variant == "clipping":
        optimizer = GradientClipping(keras.optimizers.Adam(1e-3))
    else:
        optimizer, callbacks = keras.optimizers.Adam(1e-3), [GradientMonitor()]
    model.compile(optimizer, "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=64, verbose=0, callbacks=callbacks)
    del model, optimizer, callbacks
    gc.collect()
    marks.append(rss())
skip = builds // 5
print((marks[-1] - marks[skip]) / (builds - 1 - skip))
"""


def _growth(variant, builds):
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, variant, str(builds)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=1800,
    )
    return float(out.stdout.split()[-1])


def memory(quick):
    builds = 20 if quick else 50
    keras_mb = _growth("keras", builds)
    rows = []
    for variant, label in (
        ("clipping", "GradientClipping(Adam) vs Adam(global_clipnorm)"),
        ("monitor", "Adam + GradientMonitor vs Adam(global_clipnorm)"),
    ):
        ours_mb = _growth(variant, builds)
        rows.append(
            {
                "benchmark": label,
                "ours_mb_per_build": ours_mb,
                "keras_mb_per_build": keras_mb,
                "ratio": ours_mb / keras_mb,
                "goal": "<= 1x",
                "met": "yes" if ours_mb <= keras_mb else "NO",
            }
        )
    return Report(
        rows,
        title=f"Memory: RSS growth per model build + fit ({builds} builds, "
        "clear_session each, fresh process per variant; Keras keeps every "
        "traced train graph through TensorFlow's custom-gradient registry, "
        "keras_tricks releases the entries of its own steps)",
    )


def run(quick=False):
    return [
        ("Optimizers: step cost", step_cost(quick)),
        ("Optimizers: clipping scale curve", scale_curve(quick)),
        ("Optimizers: memory per build", memory(quick)),
    ]
