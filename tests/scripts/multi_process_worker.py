"""One process of the multi-process test (run by tests/test_multi_process.py).

`python multi_process_worker.py OUT_DIR` trains a small model with keras_tricks
components on the JAX backend, once per GradientClipping mode in `MODES`.
With the `KERAS_DISTRIBUTION_*` variables set (2 processes) each process feeds
its half of every global batch, under `keras.distribution.DataParallel`;
without them, one process feeds the whole global batches, on 2 local devices
under `DataParallel` when XLA_FLAGS makes 2, or on one (the reference).
Each process saves what it ended with to `OUT_DIR/process_<id>.npz`; only
process 0 writes the model file.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")

import keras  # noqa: E402
import numpy as np  # noqa: E402

GLOBAL_BATCH = 16
STEPS = 6
EPOCHS = 5
MODES = ("global_norm", "adaptive")


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH * STEPS, 8)).astype("float32")
    y = (x[:, :3].sum(1) > 0).astype("int32") + (x[:, 3] > 1).astype("int32")
    return x, y


def train(mode, index, processes):
    """Trains the model with clipping `mode`; returns what it ended with."""
    from keras_tricks.callbacks import (
        EarlyStopping,
        EpochDecay,
        GradientMonitor,
        WeightAveraging,
    )
    from keras_tricks.layers import GhostBatchNormalization
    from keras_tricks.optimizers import GradientClipping

    x, y = data()
    # Global batch b = rows [16 b, 16 b + 16); process p feeds its half.
    share = GLOBAL_BATCH // processes
    rows = np.arange(len(x)).reshape(STEPS, processes, share)[:, index].ravel()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16),
            GhostBatchNormalization(virtual_batch_size=4),
            keras.layers.Activation("relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    optimizer = GradientClipping(
        keras.optimizers.SGD(0.5, momentum=0.9), mode=mode, threshold=0.05
    )
    model.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=True)
    # Loss decrements are 0.1-0.35 early and < 0.06 by epoch 3: each mode
    # stops before the last epoch, a decision taken on the global loss.
    stopper = EarlyStopping(
        "loss", min_delta=0.1, patience=0, restore_best_weights=False
    )
    averaging = WeightAveraging(1)
    monitor = GradientMonitor()
    history = model.fit(
        x[rows],
        y[rows],
        batch_size=share,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[EpochDecay(0.5), monitor, stopper, averaging],
    )
    return dict(
        weights=np.concatenate([np.ravel(w) for w in model.get_weights()]),
        loss=np.array(history.history["loss"]),
        grad_norm=np.array(history.history["grad_norm_mean"]),
        stopped_epoch=stopper.stopped_epoch,
        averaged=averaging.averaged,
        clipped=int(keras.ops.convert_to_numpy(optimizer.clipped_steps)),
        model=model,
    )


def skip_run(index, processes, bad):
    """Trains with SkipNonFinite on data whose global batch 2 has a NaN row
    (`bad`), or on the same data without that batch; returns what it ended
    with."""
    from keras_tricks.callbacks import SkipNonFinite
    from keras_tricks.optimizers import GradientClipping

    x, y = data()
    weights = np.ones(len(x), "float32")
    if bad:
        x, weights = x.copy(), weights.copy()
        x[2 * GLOBAL_BATCH + 3, 1] = np.nan
        weights[2 * GLOBAL_BATCH + 3] = np.nan
        steps = STEPS
    else:
        keep = np.r_[0 : 2 * GLOBAL_BATCH, 3 * GLOBAL_BATCH : len(x)]
        x, y, weights = x[keep], y[keep], weights[keep]
        steps = STEPS - 1
    share = GLOBAL_BATCH // processes
    rows = np.arange(len(x)).reshape(steps, processes, share)[:, index].ravel()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    optimizer = GradientClipping(keras.optimizers.SGD(0.5, momentum=0.9))
    model.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=True)
    history = model.fit(
        x[rows],
        y[rows],
        sample_weight=weights[rows],
        batch_size=share,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[SkipNonFinite()] if bad else [],
    )
    return dict(
        variables=np.concatenate([np.ravel(v) for v in model.variables]),
        loss=np.array(history.history["loss"]),
        skipped=np.array(history.history.get("skipped_steps", [0, 0])),
    )


def main(out_dir):
    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
    if processes > 1:
        keras.distribution.initialize()
    if jax.device_count() > 1:  # several processes, or several local devices
        distribution = keras.distribution.DataParallel(devices=jax.devices())
        distribution.auto_shard_dataset = False
        keras.distribution.set_distribution(distribution)
    index = jax.process_index()
    results = {}
    for mode in MODES:
        result = train(mode, index, processes)
        model = result.pop("model")
        results.update({f"{mode}.{key}": value for key, value in result.items()})
    for bad in (True, False):
        result = skip_run(index, processes, bad)
        name = "skip.bad" if bad else "skip.clean"
        results.update({f"{name}.{key}": value for key, value in result.items()})
    np.savez(Path(out_dir) / f"process_{index}.npz", **results)
    # Saving creates variables, a collective step on JAX: every process
    # saves, and all but process 0 into a scratch directory they delete.
    with tempfile.TemporaryDirectory() as scratch:
        model.save(Path(out_dir if index == 0 else scratch) / "model.keras")


if __name__ == "__main__":
    main(sys.argv[1])
