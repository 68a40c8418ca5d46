"""docs/lab.md's demo section says what the committed `make demo` run measured.

`docs/lab/results.csv` is the `results.csv` of an actual `make demo` run
(its figures are `docs/img/ablation-effects.png` and
`docs/img/ablation-curves.png`, its settings `docs/lab/settings.json`);
every number and verdict of the demo section must be that file's.
"""

import json
import re

import pytest

from keras_tricks.lab.output import markdown_summary
from tests.helpers import DOCS, docs_section, result_rows

RESULTS = DOCS / "lab" / "results.csv"
SETTINGS = DOCS / "lab" / "settings.json"

CLAIM = re.compile(
    r"`(?P<scenario>[\w-]+): (?P<variant>[^`]+)` (?P<effect>[+-]\d\.\d{3}) "
    r"(?:\[(?P<low>[+-]\d\.\d{3}), (?P<high>[+-]\d\.\d{3})\], (?P<verdict>helps|"
    r"hurts|no clear effect)|\((?P<note>[^)]*trained in \d+ of \d+ seeds)\))"
)
"""A claim of the prose: "`deep: + init` +0.721 [+0.650, +0.790], helps" or
"`deep: + init` +0.400 (trained in 3 of 6 seeds)"."""


@pytest.fixture(scope="module")
def section():
    return docs_section("lab.md", "## What the demo shows")


@pytest.fixture(scope="module")
def rows():
    return result_rows(RESULTS)


def test_the_table_is_the_committed_results(section):
    assert markdown_summary(RESULTS) in section


def test_every_claim_is_a_row_of_the_results(section, rows):
    prose = section.replace(markdown_summary(RESULTS), "")
    claims = list(CLAIM.finditer(prose))
    assert len(claims) >= 4
    for claim in claims:
        row = rows[claim["scenario"], claim["variant"]]
        assert claim["effect"] == f"{float(row['effect']):+.3f}", claim[0]
        if claim["note"]:
            assert row["verdict"] == "mixed" and claim["note"].endswith(row["note"])
        else:
            assert claim["verdict"] == row["verdict"], claim[0]
            assert claim["low"] == f"{float(row['ci_low']):+.3f}", claim[0]
            assert claim["high"] == f"{float(row['ci_high']):+.3f}", claim[0]


def test_every_other_number_of_the_prose_is_in_the_results(section, rows):
    prose = section.replace(markdown_summary(RESULTS), "")
    known = set()
    for row in rows.values():
        for key in ("mean", "effect", "ci_low", "ci_high", "gap", "test_accuracy"):
            if row[key]:
                known |= {f"{float(row[key]):.3f}", f"{float(row[key]):+.3f}"}
    for number in re.findall(r"[+-]?\d\.\d{3}", prose):
        assert number in known, number
    seeds = {int(r["seeds"]) for r in rows.values()}
    assert len(seeds) == 1 and f"{seeds.pop()} seeds" in prose


def test_the_figures_exist():
    for name in ("ablation-effects.png", "ablation-curves.png"):
        assert (DOCS / "img" / name).read_bytes()[:4] == b"\x89PNG"


def test_the_demo_scenarios_are_those_of_the_committed_run(rows):
    """`docs/lab/settings.json` holds the committed run's settings.

    The demo's scenarios derive from the full ones: a change made for
    Fashion-MNIST (the `long` MLP's width, the `deep` MLP's epochs) must not
    move the demo away from the run its docs describe. A reference never
    stops early.
    """
    from keras_tricks.lab.scenarios import DEMO_SCENARIOS

    committed = json.loads(SETTINGS.read_text())
    assert (committed["dataset"], committed["model"]) == ("digits", "mlp")
    assert sorted(committed["scenarios"]) == sorted(DEMO_SCENARIOS)
    for name, scenario in DEMO_SCENARIOS.items():
        settings = json.loads(json.dumps(scenario.settings("mlp")))
        assert settings.items() <= committed["scenarios"][name].items(), name
        assert float(rows[name, "reference"]["epochs_run"]) == settings["epochs"]
