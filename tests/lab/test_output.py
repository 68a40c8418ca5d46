"""The lab's files: CSV with numeric columns, strict JSON, plots, one HTML report."""

import csv
import json
import math
import re

import numpy as np
import pytest

from keras_tricks.lab.ablation import AblationResult, _key_text
from keras_tricks.lab.output import FILES, check_writable, write_outputs
from keras_tricks.lab.scenarios import SCENARIOS, variants

pytestmark = pytest.mark.jax

NUMERIC = ("mean", "std", "effect", "ci_low", "ci_high", "gap", "diverged")
NUMERIC += ("test_accuracy", "seeds", "epochs_run", "wall_time_s")


def _result(dataset="digits", seeds=3):
    """A result from made-up runs: no training needed to test the files."""
    rng = np.random.default_rng(0)
    runs, found = [], []
    for name in ("deep", "high-lr"):
        scenario_variants = variants(SCENARIOS[name])
        found += scenario_variants
        for key in dict.fromkeys(_key_text(v) for v in scenario_variants):
            for seed in range(seeds):
                epochs = int(rng.integers(2, 5))
                accuracy = list(np.linspace(0.3, rng.uniform(0.5, 0.9), epochs))
                diverged = name == "high-lr" and key == "init=he" and seed == 0
                loss = [1.0] * epochs
                if diverged:
                    loss[-1] = math.nan
                runs.append(
                    {
                        "scenario": name,
                        "key": key,
                        "variant": key,
                        "seed": seed,
                        "curves": {
                            "loss": loss,
                            "accuracy": accuracy,
                            "val_loss": loss,
                            "val_accuracy": accuracy,
                        },
                        "dev_accuracy": accuracy[-1],
                        "train_accuracy": accuracy[-1] + 0.05,
                        "test_accuracy": accuracy[-1] - 0.01,
                        "diverged": diverged,
                        "epochs": epochs,
                        "seconds": 1.0,
                    }
                )
    config = {
        "dataset": dataset,
        "model": "mlp",
        "seeds": seeds,
        "scenarios": {n: SCENARIOS[n].settings("mlp") for n in ("deep", "high-lr")},
        "command": "keras-tricks ablate --scenario deep,high-lr",
    }
    return AblationResult(runs, config, found)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The files of one made-up result, its dataset path holding `$` signs
    (which matplotlib would parse as mathtext in a title)."""
    root = tmp_path_factory.mktemp("lab")
    paths = write_outputs(_result(dataset="data/$HOME/x_$1$.npz"), root / "out")
    return root, paths


def test_files_are_written_all_at_once(written):
    root, paths = written
    assert [p.name for p in paths] == list(FILES)
    assert list(root.iterdir()) == [root / "out"]
    for name in ("effects.png", "curves.png"):
        assert (root / "out" / name).read_bytes()[:4] == b"\x89PNG"


def test_results_csv_has_numeric_columns(written):
    tmp_path = written[0] / "out"
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(variants(SCENARIOS["deep"])) + len(
        variants(SCENARIOS["high-lr"])
    )
    assert list(rows[0])[:4] == ["scenario", "variant", "kind", "trick"]
    for row in rows:
        values = [float(row[c]) for c in NUMERIC]  # parses: no "+-", no markers
        assert all(math.isfinite(v) for v in values) or row["kind"] == "reference"
        assert row["verdict"] in ("helps", "hurts", "no clear effect", "")
    diverged = [float(r["diverged"]) for r in rows if r["variant"] == "reference"]
    assert diverged == [0.0, pytest.approx(1 / 3)]


def test_runs_json_is_strict_json_with_every_curve(written):
    tmp_path = written[0] / "out"

    def refuse(constant):
        raise ValueError(constant)

    text = (tmp_path / "runs.json").read_text()
    data = json.loads(text, parse_constant=refuse)
    assert len(data["runs"]) == len(_result().runs)
    assert data["runs"][0]["curves"]["val_accuracy"]
    assert data["config"]["seeds"] == 3


def test_report_puts_the_effects_first_and_says_how_to_reproduce(written):
    page = (written[0] / "out" / "report.html").read_text()
    assert page.index("effect of each trick") < page.index("<h2>deep</h2>")
    assert page.index("<h2>deep</h2>") < page.index("<h2>high-lr</h2>")
    assert page.count("data:image/png;base64,") == 3
    assert "keras-tricks ablate --scenario deep,high-lr" in page
    assert "keras" in page and "Versions" in page
    assert "data/$HOME/x_$1$.npz" in page


def test_unwritable_output_directory_is_found_at_once(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="Cannot write the output directory"):
        check_writable(tmp_path / "file" / "out")
    with pytest.raises(OSError, match="not a directory"):
        check_writable(tmp_path / "file")
    assert check_writable(tmp_path / "new" / "out") == tmp_path / "new" / "out"
    assert not (tmp_path / "new" / "out").exists()


def _visible_text(page):
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)


def test_report_reads_like_a_table_not_a_dump(written):
    page = _visible_text((written[0] / "out" / "report.html").read_text())
    results = re.sub(r'<table class="settings">.*?</table>', "", page)
    cells = re.findall(r"<td>([^<]*)</td>", results)
    numbers = [c for c in cells if re.fullmatch(r"[+-]?\d+\.\d+", c)]
    assert numbers and all(len(n.split(".")[1]) == 3 for n in numbers)
    assert any(re.fullmatch(r"\[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]", c) for c in cells)
    assert page.count('<table class="settings">') == 3  # 2 scenarios, versions
    assert "<th>learning rate</th>" in page and '{"depth"' not in page


def test_small_multiples_have_at_most_4_lines_and_forest_panels(monkeypatch):
    import matplotlib.figure

    from keras_tricks.lab import output

    result = _result()
    for name in ("deep", "high-lr"):
        panels = output._panels(result, name)
        assert [trick for trick, _ in panels] == list(SCENARIOS[name].tricks)
        assert all(len(lines) <= 4 for _, lines in panels)
    saved = []
    monkeypatch.setattr(
        matplotlib.figure.Figure,
        "savefig",
        lambda figure, *args, **kwargs: saved.append(figure),
    )
    output.plot_effects(result, "unused.png")
    panels = [axis for axis in saved[0].axes if axis.get_visible()]
    assert [axis.get_title(loc="left") for axis in panels] == ["deep", "high-lr"]
    assert panels[0].get_xlim() != panels[1].get_xlim()


def test_an_incomplete_result_never_looks_complete(tmp_path):
    from keras_tricks.lab.output import INCOMPLETE, write_runs

    out = tmp_path / "out"
    write_outputs(_result(), out)  # an earlier, complete study in the same place
    full = _result()
    partial = AblationResult(
        full.runs[:5],
        {**full.config, "planned_runs": 30},
        full.variants,
        complete=False,
    )
    write_runs(partial, out)
    assert sorted(p.name for p in out.iterdir()) == [INCOMPLETE, "runs.json"]
    paths = write_outputs(partial, out)
    assert sorted(p.name for p in paths) == [INCOMPLETE, "report.html", "runs.json"]
    page = (out / "report.html").read_text()
    assert "INCOMPLETE" in page and "5 of 30 runs" in page
    assert json.loads((out / "runs.json").read_text())["complete"] is False
    write_outputs(full, out)
    assert not (out / INCOMPLETE).exists()
    assert "INCOMPLETE" not in (out / "report.html").read_text()
