"""Multi-process data parallelism: one model trained by 2 local processes.

Run `python examples/multi_process.py`: it starts 2 worker processes of itself
on 127.0.0.1, each on the JAX backend with
`keras.distribution.DataParallel`, each feeding its half of every global batch
of the digits data. The keras_tricks components (GradientClipping on the
gradient of the global batch, EpochDecay, EarlyStopping) behave as in one
process; both workers end with the same weights, and only process 0 prints
and writes files. The same worker code runs on N machines: set the
`KERAS_DISTRIBUTION_*` variables on each (see docs/scaling.md).
"""

import os
import socket
import subprocess
import sys
import tempfile

PROCESSES = 2
GLOBAL_BATCH = 64
TIMEOUT_S = 300
MODEL_FILE = "multi_process.keras"


def worker():
    """One process of the job: what every machine runs."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax

    # CPU processes exchange gradients through Gloo (GPUs use NCCL).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")

    import keras
    import numpy as np

    from keras_tricks.callbacks import EarlyStopping, EpochDecay
    from keras_tricks.datasets import load_digits
    from keras_tricks.optimizers import GradientClipping

    keras.distribution.initialize()  # reads KERAS_DISTRIBUTION_* variables
    distribution = keras.distribution.DataParallel(devices=jax.devices())
    distribution.auto_shard_dataset = False  # each process feeds its own rows
    keras.distribution.set_distribution(distribution)
    index, count = jax.process_index(), jax.process_count()

    (x, y), (x_dev, y_dev) = load_digits()
    steps = len(x) // GLOBAL_BATCH
    share = GLOBAL_BATCH // count
    # Global batch b is rows [64 b, 64 b + 64); process p feeds its part.
    rows = np.arange(steps * GLOBAL_BATCH).reshape(steps, count, share)[:, index]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(64, activation="relu") for _ in range(3)]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    optimizer = GradientClipping(keras.optimizers.SGD(0.1, momentum=0.9))
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        x[rows.ravel()],
        y[rows.ravel()],
        batch_size=share,
        epochs=8,
        shuffle=False,
        verbose=0,
        callbacks=[EpochDecay(0.9), EarlyStopping("loss", patience=1)],
    )
    _, accuracy = model.evaluate(x_dev, y_dev, verbose=0)
    # Saving creates variables, a collective step: every process saves, and
    # all but process 0 into a scratch directory that is then deleted.
    with tempfile.TemporaryDirectory() as scratch:
        model.save(os.path.join("." if index == 0 else scratch, MODEL_FILE))
    checksum = float(sum(np.abs(w).sum() for w in model.get_weights()))
    print(f"process {index}: weight checksum {checksum:.6f}")
    if index == 0:
        print(
            f"{count} processes, global batch {GLOBAL_BATCH} ({share} per process): "
            f"dev accuracy {accuracy:.3f}, clipped steps "
            f"{int(keras.ops.convert_to_numpy(optimizer.clipped_steps))}; "
            f"wrote {MODEL_FILE}"
        )


def launch(processes=PROCESSES):
    """Starts `processes` workers on this machine and prints what they say."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    children = []
    for index in range(processes):
        env = {
            **os.environ,
            "KERAS_BACKEND": "jax",
            "JAX_PLATFORMS": "cpu",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port}",
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(processes),
            "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
        }
        children.append(
            subprocess.Popen(
                [sys.executable, __file__],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        results = [child.communicate(timeout=TIMEOUT_S) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (out, err) in zip(children, results, strict=True):
        if child.returncode != 0:
            sys.exit(f"a worker failed:\n{err[-2000:]}")
        print(out.strip())


if __name__ == "__main__":
    if "KERAS_DISTRIBUTION_PROCESS_ID" in os.environ:
        worker()
    else:
        launch()
