"""The `keras-tricks` command: the ablation lab and the initialisation study.

Building the argument parser imports nothing heavy (the trick and scenario
names come from `keras_tricks.tricks` and `keras_tricks.lab.scenarios`), so
`--help` and `--version` answer at once; Keras is loaded only to run a
command. Every failure is one line on standard error and a non-zero exit
status (2 for bad input: arguments, data, an unwritable output directory);
`--debug` shows the traceback instead.

Example:

>>> build_parser().parse_args(["ablate", "--scenario", "deep", "--seeds", "2"]).seeds
2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from keras_tricks import __version__
from keras_tricks import tricks as registry
from keras_tricks.lab.scenarios import MODELS, SCENARIOS

DEMO = {"dataset": "digits", "seeds": 6}
"""`keras-tricks demo` = `ablate` with these settings and the demo's scenarios
(`keras_tricks.lab.scenarios.DEMO_SCENARIOS`, made for the small digits
data): 6 seeds per variant, so that a rerun with other seeds
(`--seed-offset`) gives the same verdicts."""

USER_ERRORS = (ValueError, OSError, ImportError)
"""Exceptions that mean bad input or environment: exit status 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _names(
    text: str, valid: Sequence[str], aliases: dict[str, str], what: str
) -> tuple[str, ...]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in valid and t not in aliases]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or repr(text)}; "
            f"choose among {', '.join(valid)}"
        )
    return tuple(dict.fromkeys(aliases.get(t, t) for t in names))


def _trick_list(text: str) -> tuple[str, ...]:
    return _names(text, registry.LAB_TRICKS, registry.ALIASES, "trick(s)")


def _scenario_list(text: str) -> tuple[str, ...]:
    return _names(text, tuple(SCENARIOS), {}, "scenario(s)")


def _command_line(args: argparse.Namespace) -> str:
    argv = getattr(args, "argv", None) or sys.argv[1:]
    return "keras-tricks " + " ".join(shlex.quote(a) for a in argv)


def _summary(result: Any) -> str:
    """The effects table: one line per variant, interval and verdict."""
    from keras_tricks.lab.output import summary_rows
    from keras_tricks.report import Report

    return str(Report(summary_rows(result), title=result.table.title))


def _backend_line(model: str) -> str:
    """Names the backend; hints at JAX for the MLP, which runs about 2x faster
    there (not the CNN: its `long` scenario runs faster on TensorFlow's CPU
    convolutions, 10 s an epoch against 13 s on JAX)."""
    import importlib.util

    import keras

    backend = keras.backend.backend()
    line = f"Backend: {backend}"
    if (
        model == "mlp"
        and backend != "jax"
        and importlib.util.find_spec("jax") is not None
    ):
        line += " (JAX is installed: KERAS_BACKEND=jax runs the MLP about 2x faster)"
    return line


def _resumed(args: argparse.Namespace) -> tuple[argparse.Namespace, list[Any]]:
    """The arguments and finished runs of the study in `args.resume`."""
    from keras_tricks.lab.output import read_runs

    stored = read_runs(args.resume)
    argv = stored.get("config", {}).get("argv")
    if not isinstance(argv, list):
        raise ValueError(
            f"Cannot resume {args.resume}: its runs.json does not record the "
            "command that started it."
        )
    resumed = build_parser().parse_args(argv)
    resumed.argv = argv
    resumed.out = args.resume
    resumed.resume = args.resume
    return resumed, list(stored.get("runs", []))


@contextlib.contextmanager
def _interrupts() -> Iterator[list[int]]:
    """Ctrl-C stops a study even when Python drops its KeyboardInterrupt.

    A SIGINT that arrives while Python runs a finalizer (`__del__`, a weakref
    callback: they run whenever objects are freed, and every run frees a
    model's worth) is printed and lost, and the study would go on. While this
    context is open (on the main thread), each SIGINT is also recorded in the
    yielded list, which the study checks after every run; the previous
    handler comes back on exit.
    """
    interrupted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _ablate(args: argparse.Namespace) -> int:
    import numpy as np

    from keras_tricks.datasets import check_data, load_dataset
    from keras_tricks.lab.ablation import keep_compiled_programs, run_ablation
    from keras_tricks.lab.output import (
        check_writable,
        write_incomplete,
        write_outputs,
        write_runs,
    )
    from keras_tricks.lab.progress import Progress
    from keras_tricks.lab.scenarios import DEMO_SCENARIOS

    done: list[Any] = []
    if args.resume:
        args, done = _resumed(args)
    check_writable(args.out)
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    if args.max_examples:
        data = data.subsample(args.max_examples)
    check_data(data.x, data.y)
    if data.original_labels is not None:
        print(_label_note(data.original_labels), flush=True)
    test = (
        "its own test split"
        if data.test is not None
        else "split 60/20/20 train/dev/test"
    )
    seeds = f"seeds {args.seed_offset}-{args.seed_offset + args.seeds - 1}"
    print(
        f"{data.name}: {len(data.x)} examples, "
        f"{int(np.prod(data.x.shape[1:]))} features, "
        f"{data.classes} classes ({test}); model {args.model}, "
        f"{args.seeds} seed(s) per variant ({seeds})",
        flush=True,
    )
    print(_backend_line(args.model), flush=True)
    if done:
        print(f"Resuming {args.out}: {len(done)} finished runs kept.", flush=True)
    keep_compiled_programs()
    scenarios: Any = args.scenario
    if args.command == "demo":
        scenarios = [DEMO_SCENARIOS[n] for n in args.scenario or DEMO_SCENARIOS]
    latest: list[Any] = []

    def save(partial: Any) -> None:
        partial.config["command"] = _command_line(args)
        partial.config["argv"] = list(args.argv)
        partial.config["subcommand"] = args.command
        latest[:] = [partial]
        write_runs(partial, args.out)
        if interrupted and not partial.complete:
            raise KeyboardInterrupt

    try:
        with _interrupts() as interrupted, Progress() as progress:
            result = run_ablation(
                data,
                scenarios=scenarios,
                model=args.model,
                tricks=args.tricks,
                seeds=args.seeds,
                seed_offset=args.seed_offset,
                epochs=args.epochs,
                depth=args.depth,
                reporter=progress,
                done=done,
                on_run=save,
            )
    except KeyboardInterrupt:
        if latest and not latest[0].complete:
            paths = write_incomplete(latest[0], args.out)
            print(
                f"\nInterrupted after {len(latest[0].runs)} of "
                f"{latest[0].config['planned_runs']} runs. Kept "
                f"{', '.join(str(p) for p in paths)}; continue with: "
                f"keras-tricks {args.command} --resume {shlex.quote(str(args.out))}",
                file=sys.stderr,
            )
        raise
    result.config["command"] = _command_line(args)
    result.config["argv"] = list(args.argv)
    result.config["subcommand"] = args.command
    print(_summary(result))
    paths = write_outputs(result, args.out)
    print(f"\nWrote {', '.join(str(p) for p in paths)}")
    return 0


def _label_note(original: Any) -> str:
    """Says how the file's labels were remapped to class ids 0..k-1."""
    pairs = [f"{label} -> {i}" for i, label in enumerate(original.tolist())]
    shown = ", ".join(pairs[:10]) + (
        f", ... ({len(pairs)} in all)" if len(pairs) > 10 else ""
    )
    return (
        f"Note: the labels are not 0..{len(pairs) - 1}; remapped in sorted "
        f"order (label -> class id): {shown}."
    )


def _init_study(args: argparse.Namespace) -> int:
    from keras_tricks.datasets import load_digits
    from keras_tricks.lab.progress import Progress
    from keras_tricks.studies import init_conclusion, init_study

    train, dev = load_digits(seed=args.seed)
    print(
        f"Digits: {len(train[0])} training and {len(dev[0])} dev examples "
        "(scikit-learn's embedded copy, no download).",
        flush=True,
    )
    with Progress() as progress:
        table = init_study(
            train,
            dev,
            depth=args.depth,
            epochs=args.epochs,
            seed=args.seed,
            reporter=progress,
        )
    print(table)
    print("\n" + init_conclusion(table, classes=int(train[1].max()) + 1))
    return 0


def _add_ablation_arguments(
    parser: argparse.ArgumentParser, defaults: dict[str, Any]
) -> None:
    parser.add_argument(
        "--scenario",
        type=_scenario_list,
        default=None,
        help="comma-separated scenarios (default: all, or those judging --tricks): "
        + ", ".join(SCENARIOS),
    )
    parser.add_argument(
        "--model",
        choices=MODELS,
        default="mlp",
        help="a ReLU MLP, or a small CNN for image data (default mlp)",
    )
    parser.add_argument(
        "--dataset",
        default=defaults["dataset"],
        help="digits, fashion-mnist or PATH.npz with arrays x and y "
        f"(default {defaults['dataset']})",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="directory of the Fashion-MNIST idx files (default: Debian's "
        "/usr/share/datasets/fashion-mnist, then ~/.keras/datasets/fashion-mnist)",
    )
    parser.add_argument(
        "--tricks",
        type=_trick_list,
        default=None,
        help="comma-separated tricks to judge (default all): "
        + ", ".join(registry.LAB_TRICKS),
    )
    parser.add_argument(
        "--seeds",
        type=_positive_int,
        default=defaults["seeds"],
        help=f"runs per variant (default {defaults['seeds']})",
    )
    parser.add_argument(
        "--seed-offset",
        type=_non_negative_int,
        default=0,
        help="first seed: the runs use seeds N, N+1, ... (default 0); a rerun "
        "with other seeds checks that the verdicts hold",
    )
    parser.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the interrupted study in DIR (its runs.json) without "
        "redoing its finished runs; the other arguments come from DIR",
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="epochs of every run (default: each scenario's own)",
    )
    parser.add_argument(
        "--depth",
        type=_positive_int,
        default=None,
        help="hidden layers of every network (default: each scenario's own)",
    )
    parser.add_argument(
        "--max-examples",
        type=_positive_int,
        default=None,
        help="subsample the dataset to this many examples",
    )
    parser.add_argument(
        "--out",
        default="ablation-out",
        help="output directory (default ./ablation-out)",
    )
    parser.set_defaults(run=_ablate)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `keras-tricks` (imports nothing heavy)."""
    parser = argparse.ArgumentParser(
        prog="keras-tricks",
        description="Show what each deep-learning training trick does.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        parents=[debug],
        help="the demo scenarios on the embedded digits data, 6 seeds (< 5 min)",
    )
    _add_ablation_arguments(demo, DEMO)
    ablate = commands.add_parser(
        "ablate",
        parents=[debug],
        help="each trick judged in its scenario: add-one and leave-one-out",
    )
    _add_ablation_arguments(ablate, {"dataset": "digits", "seeds": 3})
    study = commands.add_parser(
        "init-study",
        parents=[debug],
        help="N(0,1) vs Glorot vs He vs LSUV in a deep MLP",
    )
    study.add_argument(
        "--depth", type=_positive_int, default=20, help="hidden layers (default 20)"
    )
    study.add_argument(
        "--epochs",
        type=_positive_int,
        default=10,
        help="training epochs per variant (default 10)",
    )
    study.add_argument("--seed", type=int, default=0, help="random seed")
    study.set_defaults(run=_init_study)
    return parser


def _quiet_tensorflow() -> None:
    """Loads Keras (and TensorFlow) with the start-up C++ log lines hidden.

    TensorFlow writes them to file descriptor 2 while it loads and initialises
    its devices, before `TF_CPP_MIN_LOG_LEVEL` applies; standard error is
    redirected for those two steps only, so later diagnostics still show.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_logical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    if keras.backend.backend() == "tensorflow":
        import absl.logging
        import tensorflow as tf

        absl.logging.set_verbosity(absl.logging.ERROR)
        tf.get_logger().setLevel("ERROR")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `keras-tricks` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    _quiet_tensorflow()
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("keras-tricks: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, USER_ERRORS):
            print(f"keras-tricks: error: {message}", file=sys.stderr)
            return 2
        print(
            f"keras-tricks: internal error ({type(error).__name__}): {message} "
            "(run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
