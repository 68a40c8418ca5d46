"""Quality study: the ablation lab on Fashion-MNIST, with the MLP and the CNN.

Runs every scenario of `keras_tricks.lab` (5 seeds, each scenario's own
settings) on the 60,000 Fashion-MNIST training images (48,000 train, 12,000
dev; the 10,000 test images are scored once per run, never used to choose)
with `--model mlp` and `--model cnn`, and reports the goals:

- the full recipe (the `long` scenario's recipe, trained on all the data)
  reaches >= 0.89 test accuracy with the MLP and >= 0.91 with the CNN;
- every add-one effect is decided: its interval excludes 0, or its
  half-width is at most `DECIDED_HALF_WIDTH`, which bounds the effect.

It also says, for the record, whether each of init, bn, dropout, clip and
decay helps in the scenario made for it (`HOPES`): a finding, not a goal.

Each (model, scenario) pair is one `keras-tricks ablate` command, run as its
own process, `WORKERS` at a time, the longest first and an MLP beside a CNN
where possible (the longest is split into two commands by seeds): a process
of the lab keeps one to two of the two cores busy (XLA's and oneDNN's CPU
kernels for these small networks are mostly single-threaded), so two at a
time cut the wall time by about a third. Each command runs on its faster
backend (`BACKENDS`) and leaves its `runs.json` and report in its own
directory; the runs of each model are then merged into one report.

Falls back to the digits data (and says so in the titles) when Fashion-MNIST
is not installed. `--quick` runs 2 seeds, 2 epochs on 6,000 images, as a
smoke test of the machinery only.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keras_tricks.report import Report

HOPES = (
    ("init", "deep"),
    ("bn", "deep"),
    ("dropout", "small-data"),
    ("clip", "high-lr"),
    ("decay", "long"),
)
"""(trick, scenario) pairs each scenario was designed to show helping."""

RECIPE_GOAL = {"mlp": 0.89, "cnn": 0.91}
"""Test accuracy the `long` recipe should reach on Fashion-MNIST."""

SEEDS = 5
"""Seeds per variant: t(0.975, 4) = 2.78 against 4.30 for 3 seeds."""

DECIDED_HALF_WIDTH = 0.005
"""An interval this narrow decides an effect even when it contains 0."""

WORKERS = 2
"""`keras-tricks ablate` processes run at a time."""

COST_PER_ROW_EPOCH = {"mlp": 1.0, "cnn": 8.0}
"""Relative cost of one example-epoch, to start the longest commands first."""

BACKENDS = {("cnn", "long"): "tensorflow"}
"""Commands that run faster on TensorFlow; the others run on JAX. Measured
alone on a 2-core CPU, seconds per epoch, JAX against TensorFlow: the MLP
about 2x faster on JAX; the CNN's `long` scenario 13.3 against 10.1
(TensorFlow's oneDNN convolutions at batch 128), its `deep` 6.0 against 6.9
and `high-lr` 3.5 against 3.7. Where a backend is not installed, the other
one runs."""

SPLIT_SEEDS = 0.25
"""A command estimated at more than this share of the whole study runs as two
commands, each with part of the seeds, so that the workers finish together."""

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
"""Headless browsers that take the screenshots of the reports, if one is
installed (`apt-get install chromium`)."""

HERE = Path(__file__).parent

_CLI = "import sys; from keras_tricks.cli import main; sys.exit(main(sys.argv[1:]))"


def _dataset():
    """`("fashion-mnist", title)`, or digits when Fashion-MNIST is missing."""
    from keras_tricks.datasets import load_dataset

    try:
        load_dataset("fashion-mnist")
    except FileNotFoundError:
        return "digits", "digits (Fashion-MNIST not installed)"
    return "fashion-mnist", "Fashion-MNIST"


def _jobs(dataset, quick):
    """`(model, scenario, first seed, arguments)` of every command, the
    longest first."""
    from keras_tricks.lab.scenarios import SCENARIOS, variants

    jobs = []
    for model in ("mlp", "cnn"):
        for name, scenario in SCENARIOS.items():
            settings = scenario.settings(model)
            rows = settings["train_examples"]
            rows = 48000 if rows is None else 1000 if rows == "small" else rows
            networks = len({v.key for v in variants(scenario)})
            cost = COST_PER_ROW_EPOCH[model] * rows * settings["epochs"] * networks
            jobs.append((cost, model, name))
    total = sum(job[0] for job in jobs)
    seeds = 2 if quick else SEEDS
    commands = []
    for cost, model, name in jobs:
        common = ["--dataset", dataset, "--model", model, "--scenario", name]
        if quick:
            common += ["--epochs", "2", "--max-examples", "6000"]
        chunks = [(0, seeds)]
        if cost > SPLIT_SEEDS * total and seeds > 1:
            chunks = [(0, (seeds + 1) // 2), ((seeds + 1) // 2, seeds // 2)]
        for offset, count in chunks:
            arguments = [*common, "--seeds", str(count), "--seed-offset", str(offset)]
            commands.append((cost * count / seeds, model, name, offset, arguments))
    commands.sort(key=lambda command: -command[0])
    return [command[1:] for command in commands]


def _backend(model, scenario):
    """The backend of a command: its `BACKENDS` entry or JAX, when installed."""
    wanted = BACKENDS.get((model, scenario), "jax")
    installed = [
        b for b in ("jax", "tensorflow") if importlib.util.find_spec(b) is not None
    ]
    return wanted if wanted in installed else installed[0]


def _run_jobs(jobs, root):
    """Runs the commands `WORKERS` at a time; returns `{(model, scenario,
    first seed): (output directory, wall seconds)}`.

    The next command is the longest one whose model no running command has:
    an MLP beside a CNN slows each other less than two CNNs (which both use
    the convolutions' two threads).

    Raises:
        RuntimeError: when a command fails (with the end of its output).
    """
    root.mkdir(parents=True, exist_ok=True)
    pending, running, finished = list(jobs), {}, {}
    start = time.perf_counter()
    while pending or running:
        while pending and len(running) < WORKERS:
            busy = {key[0] for key in running}
            index = next((i for i, job in enumerate(pending) if job[0] not in busy), 0)
            model, scenario, offset, arguments = pending.pop(index)
            name = f"{model}-{scenario}-{offset}"
            log = open(root / f"{name}.log", "w")  # noqa: SIM115
            command = [sys.executable, "-c", _CLI, "ablate", *arguments]
            backend = _backend(model, scenario)
            process = subprocess.Popen(
                [*command, "--out", str(root / name)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3"),
            )
            key = (model, scenario, offset)
            running[key] = (process, log, root / name, time.perf_counter())
            print(f"  started {name} on {backend}", flush=True)
        time.sleep(1)
        for key, (process, log, out, began) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[key]
            if process.returncode != 0:
                for other, *_ in running.values():
                    other.kill()
                tail = Path(log.name).read_text()[-3000:]
                raise RuntimeError(
                    f"keras-tricks ablate for {key} exited with "
                    f"{process.returncode}:\n{tail}"
                )
            finished[key] = (out, time.perf_counter() - began)
            print(
                f"  finished {'-'.join(map(str, key))} in {finished[key][1]:.0f} s "
                f"({time.perf_counter() - start:.0f} s since the start)",
                flush=True,
            )
    return finished


def screenshot(report, png):
    """Saves a headless browser's view of `report` (an HTML file) as `png`,
    1280 pixels wide, what a reader sees first; returns `png`, or `None`
    when no browser of `BROWSERS` is installed."""
    browser = next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser is None:
        return None
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,5000",
            f"--screenshot={Path(png).resolve()}",
            Path(report).resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return Path(png)


def _merged(model, finished):
    """One `AblationResult` of `model`'s commands (scenarios in lab order)."""
    from keras_tricks.lab.ablation import AblationResult
    from keras_tricks.lab.output import read_runs
    from keras_tricks.lab.scenarios import SCENARIOS, variants

    keys = sorted(
        (k for k in finished if k[0] == model),
        key=lambda k: (list(SCENARIOS).index(k[1]), k[2]),
    )
    stored = [read_runs(finished[k][0]) for k in keys]
    names = list(dict.fromkeys(k[1] for k in keys))
    config = dict(stored[0]["config"])
    config["scenarios"] = {
        k[1]: s["config"]["scenarios"][k[1]] for k, s in zip(keys, stored, strict=True)
    }
    config["seed_list"] = sorted({r["seed"] for s in stored for r in s["runs"]})
    config["seeds"] = len(config["seed_list"])
    config["planned_runs"] = sum(s["config"]["planned_runs"] for s in stored)
    backends = {k[1]: s["config"]["backend"] for k, s in zip(keys, stored, strict=True)}
    usual = max(backends.values(), key=list(backends.values()).count)
    others = [f"{n}: {b}" for n, b in backends.items() if b != usual]
    config["backend"] = usual + (f" ({', '.join(others)})" if others else "")
    config["command"] = f"python -m benchmarks studies ({model})"
    config.pop("argv", None)
    runs = [run for s in stored for run in s["runs"]]
    found = [v for n in names for v in variants(SCENARIOS[n])]
    return AblationResult(runs, config, found)


def _settings(result, model, walls):
    rows = []
    for scenario, settings in result.config["scenarios"].items():
        rows.append(
            {
                "scenario": scenario,
                "train_rows": settings["train_rows"],
                "depth": settings["depth"],
                "width": settings["width"],
                "epochs": settings["epochs"],
                "optimizer": settings["optimizer"],
                "learning_rate": settings["learning_rate"],
                "batch_size": settings["batch_size"],
                "runs": sum(1 for r in result.runs if r["scenario"] == scenario),
                "backend": _backend(model, scenario),
                "wall_time_s": round(walls[scenario]),
            }
        )
    return Report(rows)


def _effects(result):
    rows = []
    for row in result.table:
        rows.append(
            {
                "scenario": row["scenario"],
                "variant": row["variant"],
                "dev_accuracy": round(row["mean"], 4),
                "std": round(row["std"], 4),
                "effect": round(row["effect"], 4),
                "ci_low": round(row["ci_low"], 4),
                "ci_high": round(row["ci_high"], 4),
                "verdict": row["verdict"],
                "gap": round(row["gap"], 4),
                "diverged": round(row["diverged"], 2),
                "test_accuracy": round(row["test_accuracy"], 4),
            }
        )
    return Report(rows)


def _interval(row):
    return (
        f"{row['effect']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] "
        f"{row['verdict']}"
    )


def decided(row):
    """Whether an effect is decided: an interval that excludes 0, or one
    narrow enough (half-width <= `DECIDED_HALF_WIDTH`) to bound it."""
    half = (row["ci_high"] - row["ci_low"]) / 2
    return row["verdict"] in ("helps", "hurts") or half <= DECIDED_HALF_WIDTH


def _goals(result, model):
    rows = {(r["scenario"], r["variant"]): r for r in result.table}
    recipe = rows[("long", "recipe")]
    goal = RECIPE_GOAL[model]
    found = [
        {
            "goal": f"long recipe test accuracy >= {goal}",
            "measured": round(recipe["test_accuracy"], 4),
            "met": "yes" if recipe["test_accuracy"] >= goal else "NO",
        }
    ]
    for row in result.table:
        if row["kind"] == "add-one":
            found.append(
                {
                    "goal": f"{row['trick']} decided in {row['scenario']}",
                    "measured": _interval(row),
                    "met": "yes" if decided(row) else "NO",
                }
            )
    return Report(found)


def _hopes(result):
    rows = {(r["scenario"], r["variant"]): r for r in result.table}
    return Report(
        [
            {
                "trick": trick,
                "scenario": scenario,
                "measured": _interval(rows[scenario, f"+ {trick}"]),
                "helps": "yes"
                if rows[scenario, f"+ {trick}"]["verdict"] == "helps"
                else "no",
            }
            for trick, scenario in HOPES
        ]
    )


def run(quick=False):
    from keras_tricks.lab import write_outputs

    dataset, name = _dataset()
    if quick:
        name += ", 6,000 images (--quick)"
    jobs = _jobs(dataset, quick)
    root = Path(tempfile.mkdtemp(prefix="keras-tricks-studies-"))
    print(
        f"  {len(jobs)} keras-tricks ablate commands, {WORKERS} at a time; "
        f"outputs and logs in {root}",
        flush=True,
    )
    start = time.perf_counter()
    finished = _run_jobs(jobs, root)
    wall = time.perf_counter() - start
    sections = []
    for model in ("mlp", "cnn"):
        result = _merged(model, finished)
        write_outputs(result, root / model)
        print(f"{model}: report in {root / model}/report.html", flush=True)
        png = screenshot(root / model / "report.html", HERE / f"studies_{model}.png")
        if png is not None:
            print(f"{model}: screenshot of the report in {png}", flush=True)
        title = (
            f"Ablation lab on {name}, --model {model}, {result.config['seeds']} seeds"
        )
        walls = {
            n: sum(wall for k, (_, wall) in finished.items() if k[:2] == (model, n))
            for n in result.config["scenarios"]
        }
        sections += [
            (
                f"{title}: settings and wall time (s) of each command (the "
                f"whole study, both models: {wall:.0f} s)",
                _settings(result, model, walls),
            ),
            (f"{title}: goals", _goals(result, model)),
            (f"{title}: does the trick help where it should?", _hopes(result)),
            (
                f"{title}: effects on dev accuracy (95% paired t interval)",
                _effects(result),
            ),
        ]
    return sections
