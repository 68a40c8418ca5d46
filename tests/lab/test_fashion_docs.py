"""docs/lab.md's Fashion-MNIST section says what the committed study measured.

`docs/lab/fashion-mlp.csv` and `docs/lab/fashion-cnn.csv` are the
`results.csv` of the last `python -m benchmarks studies` run (the part of
`make bench` recorded in `benchmarks/RESULTS.md`); every effect, interval,
verdict and test accuracy of the section's tables must be those files'.
"""

import re

import pytest

from benchmarks import bench_studies
from tests.helpers import DOCS, docs_section, result_rows

ROOT = DOCS.parent
MODELS = ("mlp", "cnn")


@pytest.fixture(scope="module")
def section():
    return docs_section("lab.md", "## On Fashion-MNIST")


@pytest.fixture(scope="module")
def rows():
    return {m: result_rows(DOCS / "lab" / f"fashion-{m}.csv") for m in MODELS}


def _effect(row):
    if row["verdict"] == "mixed":
        return f"{float(row['effect']):+.3f} ({row['note']})"
    return (
        f"{float(row['effect']):+.3f} [{float(row['ci_low']):+.3f}, "
        f"{float(row['ci_high']):+.3f}], {row['verdict']}"
    )


def _cells(section, first):
    """The `| first | MLP | CNN |` rows of the section's tables."""
    pattern = re.compile(
        rf"^\| {first} \| (?P<mlp>[^|]+) \| (?P<cnn>[^|]+) \|$", re.MULTILINE
    )
    return [
        (m[0], m["mlp"].strip(), m["cnn"].strip()) for m in pattern.finditer(section)
    ]


def test_every_effect_of_the_table_is_the_committed_results(section, rows):
    cells = _cells(section, r"`([\w-]+): ([^`]+)`")
    compared = [k for k, r in rows["mlp"].items() if r["kind"] != "reference"]
    assert len(cells) == len(compared) > 20
    for line, mlp, cnn in cells:
        scenario, variant = re.match(r"\| `([\w-]+): ([^`]+)`", line).groups()
        assert mlp == _effect(rows["mlp"][scenario, variant]), line
        assert cnn == _effect(rows["cnn"][scenario, variant]), line


def test_the_recipe_accuracy_and_the_decided_count_are_the_results(section, rows):
    [(_, *recipe)] = _cells(section, r"`long` recipe test accuracy[^|]*")
    [(_, *counts)] = _cells(section, r"add-one effects decided[^|]*")
    for model, accuracy, decided in zip(MODELS, recipe, counts, strict=True):
        found = rows[model]
        assert accuracy.startswith(
            f"{float(found['long', 'recipe']['test_accuracy']):.3f}"
        )
        add_one = [r for r in found.values() if r["kind"] == "add-one"]
        count = sum(
            bench_studies.decided(
                {**r, "ci_low": float(r["ci_low"]), "ci_high": float(r["ci_high"])}
            )
            for r in add_one
        )
        assert decided.startswith(f"{count} of {len(add_one)}")


def test_the_results_file_records_the_same_study(rows):
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    for model in MODELS:
        recipe = rows[model]["long", "recipe"]
        assert f"| {round(float(recipe['test_accuracy']), 4)} |" in results
