"""`make bench`: runs every `benchmarks/bench_*.py` and writes RESULTS.md.

Each benchmark module has `run(quick=False)` returning a list of sections, a
section being `(title, keras_tricks.report.Report)`. `python -m benchmarks
NAME ...` runs only the named modules (e.g. `layers`) and replaces only their
part of the results file, keeping the other modules' parts as they were: each
part starts with a line naming its module, the date, the wall time and the
command that produced it. `--quick` runs fewer repeats, for a smoke test.
"""

import argparse
import datetime
import importlib
import os
import pkgutil
import platform
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
PART = re.compile(r"^<!-- bench_(\w+) -->$", re.MULTILINE)


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


def _parts(path):
    """`{module: its part of the results file}` of an existing file."""
    if not path.exists():
        return {}
    text = path.read_text()
    marks = list(PART.finditer(text))
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return {
        m.group(1): text[m.start() : end] for m, end in zip(marks, ends, strict=True)
    }


def _header():
    import keras
    import tensorflow as tf

    return "\n".join(
        [
            "# Benchmark results",
            "",
            "Ratios are keras_tricks / native Keras, timed alternately in one "
            "process (median of the per-repeat ratios); quality studies report "
            "their own columns. Each part below says when and how it was run.",
            "",
            f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
            f"{platform.platform()}",
            f"- versions: Python {platform.python_version()}, tensorflow "
            f"{tf.__version__}, keras {keras.__version__}",
            "- data: Fashion-MNIST from Debian's `dataset-fashion-mnist` where a "
            "title says so, digits elsewhere.",
            "",
            "",
        ]
    )


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", help="benchmark modules to run")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    names = _modules(args.names)
    out = Path(args.out)
    parts = _parts(out)
    command = "python -m benchmarks " + " ".join(argv or sys.argv[1:])
    for name in names:
        print(f"running benchmarks/bench_{name}.py ...", flush=True)
        started = time.time()
        module = importlib.import_module(f"benchmarks.bench_{name}")
        sections = []
        for title, report in module.run(quick=args.quick):
            print(f"\n{title}\n{report}\n", flush=True)
            sections.append(f"## {title}\n\n{report.to_markdown()}\n")
        stamp = (
            f"<!-- bench_{name} -->\n_bench_{name}.py: "
            f"{datetime.date.today().isoformat()}, {time.time() - started:.0f} s, "
            f"`{command.strip()}`_\n\n"
        )
        parts[name] = stamp + "\n".join(sections) + "\n"
        # Written after each module, so an interrupted run keeps what it did.
        out.write_text(_header() + "".join(parts[n] for n in sorted(parts)))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
