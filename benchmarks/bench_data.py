"""keras_tricks.data against the scikit-learn way, and streaming overhead.

1. A stratified 98/1/1 split of 10 million rows (4 float32 features, 100
   classes): `train_dev_test_split(x, y, stratify=y)` against two chained
   `sklearn.model_selection.train_test_split(..., stratify=...)` calls, timed
   alternately in one process. Peak memory is measured two ways: the peak of
   NumPy's allocations under `tracemalloc` in this process, and the growth of
   the peak resident set size of a fresh subprocess that makes the data,
   resets its peak (`/proc/self/clear_refs`) and runs one split: `VmHWM`
   after minus `VmRSS` before, from `/proc/self/status` (Linux).
2. Streaming: iterating each split of `split_dataset` against iterating the
   unsplit `tf.data.Dataset` (batches of 256 consumed in Python). Each split
   reads the whole source and keeps its share, so the fair ratio is source
   elements read per second. Two sources: in memory (the worst case for the
   split's relative overhead) and a TFRecord file of `tf.train.Example`s
   parsed after the split, as the docs recommend. One pass over all three
   splits against one pass over the source is shown for information: the
   source is read three times, so it cannot reach 0.8x when reading
   dominates.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import tracemalloc

import numpy as np
import tensorflow as tf
from sklearn.model_selection import train_test_split

from benchmarks.harness import compare, row, timed
from keras_tricks.data import split_dataset, train_dev_test_split
from keras_tricks.report import Report

DEV = TEST = 0.01
CLASSES = 100


def _data(n):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4), dtype=np.float32), rng.integers(0, CLASSES, n)


def ours(x, y):
    return train_dev_test_split(
        x, y, dev_size=DEV, test_size=TEST, stratify=y, random_state=0
    )


def sklearn_way(x, y):
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=TEST, stratify=y, random_state=0
    )
    x_train, x_dev, y_train, y_dev = train_test_split(
        x_rest, y_rest, test_size=DEV / (1 - TEST), stratify=y_rest, random_state=0
    )
    return x_train, x_dev, x_test, y_train, y_dev, y_test


def _traced_peak(fn, x, y):
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = fn(x, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del out
    return peak / 2**20


_CHILD = textwrap.dedent(
    """
    import json
    from benchmarks.bench_data import _data, _rss_mib, {fn}
    x, y = _data({n})
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set size to the current one
    before = _rss_mib("VmRSS")
    out = {fn}(x, y)
    print(json.dumps(_rss_mib("VmHWM") - before))
    """
)


def _rss_mib(field):
    """`VmRSS` (current) or `VmHWM` (peak) resident set size in MiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _rss_growth(fn_name, n):
    """Peak RSS growth (MiB) of one split in a fresh process."""
    code = _CHILD.format(fn=fn_name, n=n)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _memory_row(method, ours_mb, native_mb):
    return {
        "measure": method,
        "ours_MiB": ours_mb,
        "sklearn_MiB": native_mb,
        "ratio": ours_mb / native_mb,
        "goal": "<= 1x",
        "met": "yes" if ours_mb <= native_mb else "NO",
    }


def _split_section(quick):
    n = 1_000_000 if quick else 10_000_000
    x, y = _data(n)
    result = compare(
        lambda: ours(x, y), lambda: sklearn_way(x, y), repeats=1 if quick else 3
    )
    speed = Report(
        [
            row(
                f"stratified 98/1/1 split, {n:,} rows, {CLASSES} classes",
                result,
                1 / 3,
                note=f"{1 / result['ratio']:.1f}x faster (goal >= 3x)",
            )
        ],
        title="time: train_dev_test_split vs two chained train_test_split",
    )
    memory = Report(
        [
            _memory_row(
                "tracemalloc peak, same process",
                _traced_peak(ours, x, y),
                _traced_peak(sklearn_way, x, y),
            ),
            _memory_row(
                "peak RSS growth (VmHWM), fresh subprocess",
                _rss_growth("ours", n),
                _rss_growth("sklearn_way", n),
            ),
        ],
        title=f"peak memory of one split ({n:,} rows; data itself "
        f"{(x.nbytes + y.nbytes) / 2**20:.0f} MiB)",
    )
    return [
        ("data: stratified split, time", speed),
        ("data: stratified split, peak memory", memory),
    ]


def _iterate(dataset, parse=None):
    if parse is not None:
        dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    count = 0
    for batch in dataset.batch(256):
        count += int(tf.nest.flatten(batch)[0].shape[0])
    return count


def _write_records(x, path):
    """Writes the rows of `x` to a TFRecord file as `tf.train.Example`s."""
    with tf.io.TFRecordWriter(path) as writer:
        for i, row in enumerate(x):
            feature = {
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=row)),
                "id": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


_SPEC = {
    "x": tf.io.FixedLenFeature([32], tf.float32),
    "id": tf.io.FixedLenFeature([], tf.int64),
}


def _parse(record):
    return tf.io.parse_single_example(record, _SPEC)


def _throughput_rows(source, n, parse, quick):
    parts = split_dataset(source, dev_size=DEV, test_size=TEST)
    rows = []
    for name, part in zip(("train", "dev", "test"), parts, strict=True):
        count = _iterate(part, parse)
        result = compare(
            lambda p=part: _iterate(p, parse),
            lambda: _iterate(source, parse),
            repeats=3 if quick else 5,
        )
        # Each split reads all n source elements: elements read per second
        # relative to iterating the source itself.
        ratio = 1 / result["ratio"]
        rows.append(
            {
                "benchmark": f"{name} split ({count:,} of {n:,}) vs unsplit",
                "ours_s": result["ours_s"],
                "native_s": result["native_s"],
                "throughput_ratio": ratio,
                "goal": ">= 0.8x",
                "met": "yes" if ratio >= 0.8 else "NO",
            }
        )
    all_three = sum(timed(lambda p=p: _iterate(p, parse)) for p in parts)
    unsplit = timed(lambda: _iterate(source, parse))
    rows.append(
        {
            "benchmark": "train + dev + test one pass each vs unsplit once",
            "ours_s": all_three,
            "native_s": unsplit,
            "throughput_ratio": unsplit / all_three,
            "goal": "info",
            "met": "-",
        }
    )
    return rows


def _stream_section(quick):
    n = 20_000 if quick else 100_000
    x = np.random.default_rng(0).normal(size=(n, 32)).astype("float32")
    memory = tf.data.Dataset.from_tensor_slices((x, np.arange(n)))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "data.tfrecord")
        _write_records(x, path)
        records = tf.data.TFRecordDataset(path)
        sections = [
            (
                "data: split_dataset throughput, in-memory source",
                Report(
                    _throughput_rows(memory, n, None, quick),
                    title=f"split_dataset: source elements read per second, split / "
                    f"unsplit ({n:,} in-memory elements of 32 float32, batches "
                    "of 256; the worst case for the split's overhead)",
                ),
            ),
            (
                "data: split_dataset throughput, TFRecord source",
                Report(
                    _throughput_rows(records, n, _parse, quick),
                    title=f"split_dataset: source elements read per second, split / "
                    f"unsplit ({n:,} tf.train.Examples read from a TFRecord file "
                    "and parsed after the split, batches of 256)",
                ),
            ),
        ]
    return sections


def run(quick=False):
    return _split_section(quick) + _stream_section(quick)
