"""keras_tricks.data against the scikit-learn way, and streaming overhead.

1. Scale curve of a stratified 98/1/1 split (4 float32 features, 100
   classes) at 10^5 to 10^7 rows: `train_dev_test_split(x, y, stratify=y)`
   against two chained `sklearn.model_selection.train_test_split(...,
   stratify=...)` calls, timed alternately in one process, with the peak of
   the allocations under `tracemalloc` for each; plotted to
   `benchmarks/data_scale.png`. At the largest size the time goal (>= 3x
   faster) is checked, and peak memory is measured a second way: the growth
   of the peak resident set size of a fresh subprocess that makes the data,
   resets its peak (`/proc/self/clear_refs`) and runs one split (`VmHWM`
   after minus `VmRSS` before, from `/proc/self/status`; Linux).
2. Streaming: iterating each split of `split_dataset` against iterating the
   unsplit `tf.data.Dataset` in batches of 256 consumed in Python. Each split
   reads the whole source and keeps its share, so the fair ratio is source
   elements read per second. Two sources: in memory (the worst case for the
   split's relative overhead), as single elements then `.batch(256)` and with
   `batch_size=256`; and a TFRecord file of `tf.train.Example`s parsed after
   the split, as the docs recommend. One pass over all three splits against
   one pass over the source is shown for information: the source is read
   three times, so it cannot reach 0.8x when reading dominates. Next to the
   wall-clock ratio (the goal), the process CPU time ratio of the same runs
   is shown: on a shared machine it varies less.
3. Stratified group splits (`stratify` and `groups` together): the
   class-proportion error and the size gap of ours against a split built
   from `sklearn.model_selection.StratifiedGroupKFold`, on clumpy data.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import tensorflow as tf
from sklearn.model_selection import train_test_split

from benchmarks.harness import compare, row, timed
from keras_tricks.data import split_dataset, train_dev_test_split
from keras_tricks.report import Report

DEV = TEST = 0.01
CLASSES = 100
BATCH = 256
SIZES = (10**5, 3 * 10**5, 10**6, 3 * 10**6, 10**7)
QUICK_SIZES = (10**5, 10**6)
PLOT = Path(__file__).parent / "data_scale.png"


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


def _scale_rows(sizes, quick):
    rows, largest = [], None
    for n in sizes:
        x, y = _data(n)
        repeats = 1 if quick else (3 if n >= 3 * 10**6 else 5)
        result = compare(
            lambda x=x, y=y: ours(x, y),
            lambda x=x, y=y: sklearn_way(x, y),
            repeats=repeats,
        )
        ours_mb, native_mb = _traced_peak(ours, x, y), _traced_peak(sklearn_way, x, y)
        rows.append(
            {
                "rows": n,
                "ours_s": result["ours_s"],
                "sklearn_s": result["native_s"],
                "time_ratio": result["ratio"],
                "ours_MiB": ours_mb,
                "sklearn_MiB": native_mb,
                "memory_ratio": ours_mb / native_mb,
                "data_MiB": (x.nbytes + y.nbytes) / 2**20,
            }
        )
        largest = result
    return rows, largest


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["rows"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.loglog(n, [r["ours_s"] for r in rows], "o-", label="train_dev_test_split")
    left.loglog(n, [r["sklearn_s"] for r in rows], "s-", label="2x train_test_split")
    left.set(xlabel="rows", ylabel="seconds (median)", title="time")
    right.loglog(n, [r["ours_MiB"] for r in rows], "o-", label="train_dev_test_split")
    right.loglog(n, [r["sklearn_MiB"] for r in rows], "s-", label="2x train_test_split")
    right.loglog(n, [r["data_MiB"] for r in rows], "k:", label="the data itself")
    right.set(xlabel="rows", ylabel="MiB", title="peak memory (tracemalloc)")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"stratified 98/1/1 split, 4 float32 features, {CLASSES} classes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _split_sections(quick):
    sizes = QUICK_SIZES if quick else SIZES
    rows, result = _scale_rows(sizes, quick)
    if quick:  # only checks that the plot draws, and keeps the real one
        with tempfile.TemporaryDirectory() as folder:
            _plot(rows, Path(folder) / PLOT.name)
    else:
        _plot(rows, PLOT)
    n = sizes[-1]
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
    largest = rows[-1]
    memory = Report(
        [
            _memory_row(
                "tracemalloc peak, same process",
                largest["ours_MiB"],
                largest["sklearn_MiB"],
            ),
            _memory_row(
                "peak RSS growth (VmHWM), fresh subprocess",
                _rss_growth("ours", n),
                _rss_growth("sklearn_way", n),
            ),
        ],
        title=f"peak memory of one split ({n:,} rows; data itself "
        f"{largest['data_MiB']:.0f} MiB)",
    )
    scale = Report(
        rows,
        title="scale: train_dev_test_split vs two chained train_test_split, "
        "stratified 98/1/1 (time: median of alternating runs; memory: "
        f"tracemalloc peak; plot: benchmarks/{PLOT.name})",
    )
    return [
        ("data: stratified split, time", speed),
        ("data: stratified split, peak memory", memory),
        ("data: stratified split, scale curve", scale),
    ]


def _iterate(dataset, parse=None, batched=False):
    if parse is not None:
        dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    count = 0
    for batch in dataset if batched else dataset.batch(BATCH):
        count += int(tf.nest.flatten(batch)[0].shape[0])
    return count


def _compare_with_cpu(ours_fn, native_fn, repeats):
    """`compare`, plus the median per-pair ratio of process CPU time."""
    cpu = {"ours": [], "native": []}

    def clocked(fn, side):
        def call():
            start = time.process_time()
            fn()
            cpu[side].append(time.process_time() - start)

        return call

    result = compare(
        clocked(ours_fn, "ours"), clocked(native_fn, "native"), repeats=repeats
    )
    pairs = list(zip(cpu["ours"], cpu["native"], strict=True))[1:]  # no warm-up
    result["cpu_ratio"] = statistics.median(o / n for o, n in pairs)
    return result


def _write_records(x, path):
    """Writes the rows of `x` to a TFRecord file as `tf.train.Example`s."""
    with tf.io.TFRecordWriter(path) as writer:
        for i, values in enumerate(x):
            feature = {
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=values)),
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


def _throughput_rows(source, n, parse, quick, batch_size=None):
    parts = split_dataset(source, dev_size=DEV, test_size=TEST, batch_size=batch_size)
    batched = batch_size is not None
    how = f"batch_size={batch_size}" if batched else f"elements, .batch({BATCH})"
    rows = []
    for name, part in zip(("train", "dev", "test"), parts, strict=True):
        count = _iterate(part, parse, batched)
        result = _compare_with_cpu(
            lambda p=part: _iterate(p, parse, batched),
            lambda: _iterate(source, parse),
            repeats=3 if quick else 7,
        )
        # Each split reads all n source elements: elements read per second
        # relative to iterating the source itself.
        ratio = 1 / result["ratio"]
        rows.append(
            {
                "benchmark": f"{name} split ({count:,} of {n:,}; {how}) vs unsplit",
                "ours_s": result["ours_s"],
                "native_s": result["native_s"],
                "throughput_ratio": ratio,
                "cpu_throughput_ratio": 1 / result["cpu_ratio"],
                "goal": ">= 0.8x",
                "met": "yes" if ratio >= 0.8 else "NO",
            }
        )
    all_three = sum(timed(lambda p=p: _iterate(p, parse, batched)) for p in parts)
    unsplit = timed(lambda: _iterate(source, parse))
    rows.append(
        {
            "benchmark": f"train + dev + test one pass each ({how}) vs unsplit once",
            "ours_s": all_three,
            "native_s": unsplit,
            "throughput_ratio": unsplit / all_three,
            "cpu_throughput_ratio": None,
            "goal": "info",
            "met": "-",
        }
    )
    return rows


def _stream_sections(quick):
    n = 20_000 if quick else 100_000
    x = np.random.default_rng(0).normal(size=(n, 32)).astype("float32")
    memory = tf.data.Dataset.from_tensor_slices((x, np.arange(n)))
    in_memory = _throughput_rows(memory, n, None, quick)
    in_memory += _throughput_rows(memory, n, None, quick, batch_size=BATCH)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "data.tfrecord")
        _write_records(x, path)
        records = tf.data.TFRecordDataset(path)
        from_file = _throughput_rows(records, n, _parse, quick)
    return [
        (
            "data: split_dataset throughput, in-memory source",
            Report(
                in_memory,
                title=f"split_dataset: source elements read per second, split / "
                f"unsplit ({n:,} in-memory elements of 32 float32, batches of "
                f"{BATCH}; the worst case for the split's overhead)",
            ),
        ),
        (
            "data: split_dataset throughput, TFRecord source",
            Report(
                from_file,
                title=f"split_dataset: source elements read per second, split / "
                f"unsplit ({n:,} tf.train.Examples read from a TFRecord file "
                f"and parsed after the split, batches of {BATCH})",
            ),
        ),
    ]


def run(quick=False):
    return _split_sections(quick) + group_stratified(quick) + _stream_sections(quick)


def clumpy_groups(seed, n=3000, n_groups=150, n_classes=4):
    """Zipf-sized groups (at most n/10), each with its own Dirichlet class mix."""
    rng = np.random.default_rng(seed)
    sizes = rng.zipf(1.6, n_groups).clip(1, n // 10)
    groups = np.repeat(np.arange(n_groups), sizes)
    mix = rng.dirichlet(np.ones(n_classes), n_groups)
    y = np.concatenate(
        [rng.choice(n_classes, s, p=mix[g]) for g, s in enumerate(sizes)]
    )
    return y, groups


def proportion_error(y, indices):
    """Mean over splits of the largest class-proportion gap to the whole data."""
    overall = np.bincount(y) / len(y)
    return float(
        np.mean(
            [
                np.abs(
                    np.bincount(y[i], minlength=overall.size) / len(i) - overall
                ).max()
                for i in indices
            ]
        )
    )


def sklearn_group_split(y, groups, n_folds, seed):
    """Train/dev/test from StratifiedGroupKFold: fold 0 test, fold 1 dev."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    folds = [test for _, test in splitter.split(np.zeros(len(y)), y, groups)]
    return [np.concatenate(folds[2:]), folds[1], folds[0]]


def _size_gap(indices, wanted):
    return max(abs(len(i) - w) for i, w in zip(indices, wanted, strict=True))


def group_stratified(quick):
    """Class-proportion error of stratified group splits, ours vs scikit-learn.

    Clumpy data (Zipf group sizes, a class mix per group, 5 classes): ours is
    `TrainDevTestSplit(dev_size=1/k, test_size=1/k).split(n, stratify=y,
    groups=groups)`; scikit-learn's is `StratifiedGroupKFold(k, shuffle=True)`
    with fold 0 as test, fold 1 as dev and the rest as train (k = 5: 60/20/20,
    k = 10: 80/10/10). Error: mean over the three splits of the largest gap
    between a class's share in the split and overall; size: the largest gap
    between a split's size and the requested one, in examples.
    """
    from keras_tricks.data import TrainDevTestSplit, resolve_sizes

    n, n_groups = (3_000, 150) if quick else (20_000, 600)
    rows = []
    for seed in range(2 if quick else 5):
        y, groups = clumpy_groups(seed, n, n_groups, 5)
        for n_folds in (5, 10):
            wanted = resolve_sizes(len(y), None, 1 / n_folds, 1 / n_folds)
            splitter = TrainDevTestSplit(
                dev_size=1 / n_folds, test_size=1 / n_folds, random_state=seed
            )
            start = time.perf_counter()
            ours = splitter.split(len(y), stratify=y, groups=groups)
            ours_s = time.perf_counter() - start
            start = time.perf_counter()
            theirs = sklearn_group_split(y, groups, n_folds, seed)
            theirs_s = time.perf_counter() - start

            rows.append(
                {
                    "seed": seed,
                    "split": f"{100 - 200 // n_folds}/{100 // n_folds}/"
                    f"{100 // n_folds}",
                    "rows": len(y),
                    "largest_group": int(np.bincount(groups).max()),
                    "ours_error": proportion_error(y, ours),
                    "sklearn_error": proportion_error(y, theirs),
                    "ours_size_gap": _size_gap(ours, wanted),
                    "sklearn_size_gap": _size_gap(theirs, wanted),
                    "ours_s": ours_s,
                    "sklearn_s": theirs_s,
                }
            )
    ours_mean = statistics.mean(r["ours_error"] for r in rows)
    theirs_mean = statistics.mean(r["sklearn_error"] for r in rows)
    wins = sum(r["ours_error"] <= r["sklearn_error"] for r in rows)
    return [
        (
            "data: stratified group split, class-proportion error",
            Report(
                rows,
                title="stratified group split vs a StratifiedGroupKFold-based "
                f"split, {n_groups} Zipf-sized groups, 5 classes: mean error "
                f"{ours_mean:.4f} vs {theirs_mean:.4f}, ours <= theirs in "
                f"{wins}/{len(rows)}",
            ),
        )
    ]
