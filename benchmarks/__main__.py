"""`make bench`: runs every `benchmarks/bench_*.py` and writes RESULTS.md.

Each benchmark module has `run(quick=False)` returning a list of sections, a
section being `(title, keras_tricks.report.Report)`. `python -m benchmarks
NAME ...` runs only the named modules (e.g. `layers`); `--quick` runs them
with fewer repeats, for a smoke test.
"""

import argparse
import datetime
import importlib
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def _modules(names):
    found = sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(HERE)])
        if m.name.startswith("bench_")
    )
    unknown = set(names) - set(found)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; have {found}")
    return [n for n in found if not names or n in names]


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", help="benchmark modules to run")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    names = _modules(args.names)
    if not names:
        print("No benchmarks are implemented yet; RESULTS.md was not written.")
        return 0
    import keras
    import tensorflow as tf

    started = time.time()
    sections = []
    for name in names:
        print(f"running benchmarks/bench_{name}.py ...", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        for title, report in module.run(quick=args.quick):
            print(f"\n{title}\n{report}\n", flush=True)
            sections.append(f"## {title}\n\n{report.to_markdown()}\n")
    header = [
        "# Benchmark results",
        "",
        "Ratios are keras_tricks / native Keras, timed alternately in one process "
        "(median of the per-repeat ratios); quality studies report their own "
        "columns.",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{platform.platform()}",
        f"- versions: Python {platform.python_version()}, tensorflow "
        f"{tf.__version__}, keras {keras.__version__}",
        f"- command: `python -m benchmarks {' '.join(argv or sys.argv[1:])}`",
        f"- wall time: {time.time() - started:.0f} s",
        "",
    ]
    Path(args.out).write_text("\n".join(header + sections))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
