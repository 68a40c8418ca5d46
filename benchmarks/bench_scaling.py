"""Scaling: GradientClipping across processes (JAX) and across backends.

1. Under `keras.distribution.DataParallel` on the JAX backend, 1 and 2
   processes on 127.0.0.1 train the same 4x256 MLP on the same global batches,
   with `GradientClipping(global_norm)` and with Keras's `global_clipnorm`
   (alternating in each process, median ratio of the per-round times); the
   2-process rows also give the step time relative to 1 process.
2. The same clipped model on the JAX and the TensorFlow backend. A process
   has one backend, so the two run one after the other in two processes: this
   ratio is of medians, not alternated like the others.

Each measurement runs in its own child processes
(`python -m benchmarks.bench_scaling worker ...`), started from `run()`.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from keras_tricks.report import Report

GLOBAL_BATCH = 256
ROWS = GLOBAL_BATCH * 24
GOAL = 1.05
TIMEOUT_S = 900


def _worker(out_path, rounds):
    """Times ours vs native fits in this process; writes a JSON result."""
    import statistics
    import time

    import keras
    import numpy as np

    from keras_tricks.optimizers import GradientClipping

    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
    index = 0
    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        if processes > 1:
            keras.distribution.initialize()
            distribution = keras.distribution.DataParallel(devices=jax.devices())
            distribution.auto_shard_dataset = False
            keras.distribution.set_distribution(distribution)
        index = jax.process_index()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 64)).astype("float32")
    y = rng.integers(0, 10, ROWS).astype("int32")
    share = GLOBAL_BATCH // processes
    steps = ROWS // GLOBAL_BATCH
    rows = np.arange(ROWS).reshape(steps, processes, share)[:, index].ravel()

    def model(optimizer):
        keras.utils.set_random_seed(0)
        m = keras.Sequential(
            [keras.Input((64,))]
            + [keras.layers.Dense(256, activation="relu") for _ in range(4)]
            + [keras.layers.Dense(10, activation="softmax")]
        )
        m.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=True)
        return m

    ours = model(GradientClipping(keras.optimizers.Adam(1e-3), threshold=1.0))
    native = model(keras.optimizers.Adam(1e-3, global_clipnorm=1.0))

    def fit(m):
        start = time.perf_counter()
        m.fit(x[rows], y[rows], batch_size=share, epochs=1, verbose=0)
        return (time.perf_counter() - start) / steps

    fit(ours), fit(native)  # tracing and compilation
    ours_t, native_t, ratios = [], [], []
    for i in range(rounds):
        if i % 2:
            n, o = fit(native), fit(ours)
        else:
            o, n = fit(ours), fit(native)
        ours_t.append(o)
        native_t.append(n)
        ratios.append(o / n)
    if index == 0:
        Path(out_path).write_text(
            json.dumps(
                {
                    "ours_step_s": statistics.median(ours_t),
                    "native_step_s": statistics.median(native_t),
                    "ratio": statistics.median(ratios),
                }
            )
        )


def _launch(backend, processes, rounds):
    """Runs the worker in `processes` processes; returns process 0's result."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = Path(tempfile.mkdtemp(prefix="bench-scaling-")) / "result.json"
    children = []
    for index in range(processes):
        env = {
            **os.environ,
            "KERAS_BACKEND": backend,
            "JAX_PLATFORMS": "cpu",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        if processes > 1:
            env.update(
                KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes),
                KERAS_DISTRIBUTION_PROCESS_ID=str(index),
            )
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.bench_scaling",
                    "worker",
                    str(out),
                    str(rounds),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        errors = [child.communicate(timeout=TIMEOUT_S)[1] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, error in zip(children, errors, strict=True):
        if child.returncode:
            raise RuntimeError(f"benchmark worker failed:\n{error[-2000:]}")
    return json.loads(out.read_text())


def run(quick=False):
    rounds = 3 if quick else 9
    results = {n: _launch("jax", n, rounds) for n in (1, 2)}
    rows = []
    for n, result in results.items():
        rows.append(
            {
                "processes": n,
                "clipping_step_ms": 1e3 * result["ours_step_s"],
                "keras_global_clipnorm_step_ms": 1e3 * result["native_step_s"],
                "ratio": result["ratio"],
                "goal": f"<= {GOAL:g}x",
                "met": "yes" if result["ratio"] <= GOAL else "NO",
                "step_vs_1_process": result["ours_step_s"] / results[1]["ours_step_s"],
            }
        )
    tf_result = _launch("tensorflow", 1, rounds)
    backends = [
        {
            "model": "4x256 MLP, GradientClipping(Adam, global_norm), batch 256",
            "jax_step_ms": 1e3 * results[1]["ours_step_s"],
            "tensorflow_step_ms": 1e3 * tf_result["ours_step_s"],
            "jax_over_tensorflow": results[1]["ours_step_s"] / tf_result["ours_step_s"],
            "tensorflow_ratio_vs_global_clipnorm": tf_result["ratio"],
        }
    ]
    return [
        (
            "GradientClipping across processes (JAX DataParallel, 127.0.0.1, "
            f"global batch {GLOBAL_BATCH}, {os.cpu_count()} CPU cores shared)",
            Report(rows),
        ),
        (
            "JAX vs TensorFlow step time (medians of separate processes)",
            Report(backends),
        ),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        _worker(sys.argv[2], int(sys.argv[3]))
