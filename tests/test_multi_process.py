"""keras_tricks across 2 processes (and 2 local devices): JAX DataParallel.

Two worker processes on 127.0.0.1 train the same model with GradientClipping,
GhostBatchNormalization, EarlyStopping, EpochDecay, WeightAveraging and
GradientMonitor, each feeding its half of every global batch; a third
process trains alone on the whole global batches. The run is the same
computation, so the weights must agree (clipping acts on the gradient of the
global batch), both workers must stop at the same epoch with the same
averaged weights, and only process 0 writes the model file. One process with
2 local CPU devices (XLA_FLAGS) under DataParallel gives the same weights too.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).parent / "scripts" / "multi_process_worker.py"
TIMEOUT = 240


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(out_dir, processes, local_devices=1):
    """Runs the worker in `processes` processes; kills them all on failure."""
    port = _free_port()
    children = []
    for index in range(processes):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={local_devices}"
        env.pop("KERAS_BACKEND", None)
        if processes > 1:
            env.update(
                KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes),
                KERAS_DISTRIBUTION_PROCESS_ID=str(index),
            )
        children.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(out_dir)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:
        outputs = [child.communicate(timeout=TIMEOUT)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, output in zip(children, outputs, strict=True):
        assert child.returncode == 0, output[-3000:]
    return [dict(np.load(out_dir / f"process_{i}.npz")) for i in range(processes)]


MODES = ("global_norm", "adaptive")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    multi = tmp_path_factory.mktemp("multi")
    single = tmp_path_factory.mktemp("single")
    return _run(multi, 2), _run(single, 1)[0], multi


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("devices"), 1, local_devices=2)[0]


def test_workers_end_identical(runs):
    (first, second), _, _ = runs
    assert sorted(first) == sorted(second)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


@pytest.mark.parametrize("mode", MODES)
def test_two_processes_equal_one_fed_the_global_batches(runs, mode):
    (first, _), single, _ = runs
    for key, rtol, atol in (
        ("weights", 0, 1e-5),
        ("loss", 1e-5, 0),
        ("grad_norm", 1e-4, 0),
    ):
        np.testing.assert_allclose(
            first[f"{mode}.{key}"], single[f"{mode}.{key}"], rtol, atol, err_msg=key
        )
    for key in ("stopped_epoch", "averaged", "clipped"):
        assert first[f"{mode}.{key}"] == single[f"{mode}.{key}"], key


@pytest.mark.parametrize("mode", MODES)
def test_two_local_devices_equal_one(runs, two_devices, mode):
    _, single, _ = runs
    np.testing.assert_allclose(
        two_devices[f"{mode}.weights"], single[f"{mode}.weights"], atol=1e-5
    )
    assert two_devices[f"{mode}.stopped_epoch"] == single[f"{mode}.stopped_epoch"]


@pytest.mark.parametrize("mode", MODES)
def test_the_run_exercises_every_component(runs, mode):
    (first, _), _, _ = runs
    assert first[f"{mode}.clipped"] > 0  # the clipping was active
    assert first[f"{mode}.averaged"] >= 2  # SWA averaged several epochs
    assert 0 < first[f"{mode}.stopped_epoch"] < 4  # EarlyStopping stopped the run


def test_only_process_zero_writes_files(runs):
    _, _, multi = runs
    assert sorted(p.name for p in multi.iterdir()) == [
        "model.keras",
        "process_0.npz",
        "process_1.npz",
    ]


def test_a_skipped_global_batch_leaves_no_trace(runs):
    # SkipNonFinite under DataParallel: the NaN row sits in one process's half
    # of global batch 2; both processes skip it, as if it were not in the data.
    (first, second), single, _ = runs
    for result in (first, second, single):
        np.testing.assert_array_equal(result["skip.bad.skipped"], [1, 1])
        np.testing.assert_allclose(
            result["skip.bad.variables"], result["skip.clean.variables"], rtol=1e-6
        )
        np.testing.assert_allclose(
            result["skip.bad.loss"], result["skip.clean.loss"], rtol=1e-6
        )
    np.testing.assert_allclose(
        first["skip.bad.variables"], single["skip.bad.variables"], atol=1e-5
    )
