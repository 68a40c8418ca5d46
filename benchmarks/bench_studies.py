"""Quality study: the ablation lab on Fashion-MNIST, with the MLP and the CNN.

Runs every scenario of `keras_tricks.lab` (5 seeds, each scenario's own
settings; on JAX, with `KERAS_BACKEND=jax`, about twice as fast, and each
network compiles once for all its seeds) on the 60,000 Fashion-MNIST
training images (48,000 train, 12,000 dev; the 10,000 test images are
scored once per run, never used to choose) with `--model mlp` and
`--model cnn`, and reports the effects and the goals:
the full recipe (the `long` scenario's recipe, trained on all the data)
reaches >= 0.89 test accuracy with the MLP and >= 0.91 with the CNN, and each
of init, bn, dropout, clip and decay `helps` (interval above 0) when added
to the reference of its own scenario. Every add-one effect is also checked
for being decided: an interval that excludes 0, or one whose half-width is
at most `DECIDED_HALF_WIDTH`, which bounds the effect.

Falls back to the digits data (and says so in the titles) when Fashion-MNIST
is not installed. `--quick` runs 2 seeds, 2 epochs on 6,000 images, as a
smoke test of the machinery only.
"""

import tempfile
import time

from keras_tricks.report import Report

GOALS = (
    ("init", "deep"),
    ("bn", "deep"),
    ("dropout", "small-data"),
    ("clip", "high-lr"),
    ("decay", "long"),
)
"""(trick, scenario) pairs that should show `helps` when added."""

RECIPE_GOAL = {"mlp": 0.89, "cnn": 0.91}
"""Test accuracy the `long` recipe should reach on Fashion-MNIST."""

SEEDS = 5
"""Seeds per variant: t(0.975, 4) = 2.78 against 4.30 for 3 seeds."""

DECIDED_HALF_WIDTH = 0.005
"""An interval this narrow decides an effect even when it contains 0."""


def _data(quick):
    from keras_tricks.datasets import load_dataset

    try:
        data = load_dataset("fashion-mnist")
        name = "Fashion-MNIST"
    except FileNotFoundError:
        data = load_dataset("digits")
        name = "digits (Fashion-MNIST not installed)"
    if quick:
        data = data.subsample(6000)
        name += ", 6,000 images (--quick)"
    return data, name


def _settings(result, seconds):
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
                "wall_time_s": round(
                    sum(r["seconds"] for r in result.runs if r["scenario"] == scenario)
                ),
            }
        )
    rows.append({"scenario": "total", "wall_time_s": round(seconds)})
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
        if row["kind"] != "add-one":
            continue
        half = (row["ci_high"] - row["ci_low"]) / 2
        decided = row["verdict"] in ("helps", "hurts") or half <= DECIDED_HALF_WIDTH
        found.append(
            {
                "goal": f"{row['trick']} decided in {row['scenario']}",
                "measured": f"{row['effect']:+.4f} "
                f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] {row['verdict']}",
                "met": "yes" if decided else "NO",
            }
        )
    for trick, scenario in GOALS:
        row = rows[(scenario, f"+ {trick}")]
        found.append(
            {
                "goal": f"{trick} helps in {scenario}",
                "measured": f"{row['effect']:+.4f} "
                f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] {row['verdict']}",
                "met": "yes" if row["verdict"] == "helps" else "NO",
            }
        )
    return Report(found)


def run(quick=False):
    from keras_tricks.lab import run_ablation, write_outputs
    from keras_tricks.lab.ablation import keep_compiled_programs
    from keras_tricks.lab.progress import Progress

    keep_compiled_programs()

    data, name = _data(quick)
    sections = []
    for model in ("mlp", "cnn"):
        start = time.perf_counter()
        with Progress() as progress:
            result = run_ablation(
                data,
                model=model,
                seeds=2 if quick else SEEDS,
                epochs=2 if quick else None,
                reporter=progress,
            )
        seconds = time.perf_counter() - start
        out = tempfile.mkdtemp(prefix=f"lab-{model}-")
        result.config["command"] = f"python -m benchmarks studies ({model})"
        write_outputs(result, out)
        print(f"{model}: report in {out}/report.html", flush=True)
        title = (
            f"Ablation lab on {name}, --model {model}, {result.config['seeds']} seeds"
        )
        sections += [
            (f"{title}: settings and wall time (s)", _settings(result, seconds)),
            (f"{title}: goals", _goals(result, model)),
            (
                f"{title}: effects on dev accuracy (95% paired t interval)",
                _effects(result),
            ),
        ]
    return sections
