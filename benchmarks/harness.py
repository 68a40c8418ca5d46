"""Timing helpers: alternate ours and native Keras in one process, median ratio.

Machines are shared and noisy, so no absolute time is reported alone: each
benchmark times the keras_tricks component and its native Keras equivalent in
the same process, alternating the two, and reports the median of the
per-repeat ratios ours / native.
"""

import statistics
import time


def timed(fn):
    """Seconds one call of `fn` takes (wall clock, `time.perf_counter`)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(ours, native, *, repeats=7, warmup=1):
    """Times `ours()` against `native()` alternately.

    Args:
        ours: zero-argument callable running the keras_tricks version.
        native: zero-argument callable running the native Keras version.
        repeats: timed pairs. Defaults to `7`.
        warmup: untimed pairs first (tracing, compilation). Defaults to `1`.

    Returns:
        dict with `ours_s` and `native_s` (median seconds) and `ratio` (median
        of the per-pair ratios ours / native).
    """
    for _ in range(warmup):
        ours()
        native()
    ours_times, native_times, ratios = [], [], []
    for i in range(repeats):
        # Alternate which goes first, so drift does not favour one side.
        if i % 2:
            n, o = timed(native), timed(ours)
        else:
            o, n = timed(ours), timed(native)
        ours_times.append(o)
        native_times.append(n)
        ratios.append(o / n)
    return {
        "ours_s": statistics.median(ours_times),
        "native_s": statistics.median(native_times),
        "ratio": statistics.median(ratios),
    }


def row(benchmark, result, goal, note=""):
    """One line of the results table for an overhead benchmark.

    `goal` is the highest acceptable ratio (e.g. 1.05).
    """
    return {
        "benchmark": benchmark,
        "ours_s": result["ours_s"],
        "native_s": result["native_s"],
        "ratio": result["ratio"],
        "goal": f"<= {goal:g}x",
        "met": "yes" if result["ratio"] <= goal else "NO",
        "note": note,
    }
