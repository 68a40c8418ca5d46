"""The Fashion-MNIST study's plan: every scenario of both models, every seed
once, and per-command results that merge into the table of one whole run."""

import importlib.metadata
import math

import numpy as np
import pytest

from benchmarks import bench_studies
from keras_tricks.lab.ablation import AblationResult, _key_text
from keras_tricks.lab.output import write_outputs, write_runs
from keras_tricks.lab.scenarios import SCENARIOS, variants


def _seeds(arguments):
    offset = int(arguments[arguments.index("--seed-offset") + 1])
    return range(offset, offset + int(arguments[arguments.index("--seeds") + 1]))


@pytest.mark.parametrize("quick", [False, True])
def test_every_scenario_and_seed_runs_once_longest_first(quick):
    jobs = bench_studies._jobs("fashion-mnist", quick)
    seeds = 2 if quick else bench_studies.SEEDS
    covered = {}
    for model, scenario, offset, arguments in jobs:
        assert arguments[arguments.index("--model") + 1] == model
        assert arguments[arguments.index("--scenario") + 1] == scenario
        assert _seeds(arguments)[0] == offset
        for seed in _seeds(arguments):
            covered.setdefault((model, scenario), []).append(seed)
    assert sorted(covered) == sorted((m, s) for m in ("mlp", "cnn") for s in SCENARIOS)
    assert all(sorted(s) == list(range(seeds)) for s in covered.values())
    # The CNN's `long` scenario (all 48,000 rows) is the longest command,
    # split into two by seeds; the small-data MLP is among the shortest.
    assert [j[:2] for j in jobs[:2]] == [("cnn", "long")] * 2
    assert jobs.index(next(j for j in jobs if j[:2] == ("mlp", "small-data"))) >= 6


def _runs(scenario, seeds, rng):
    runs = []
    for variant in variants(SCENARIOS[scenario]):
        key = _key_text(variant)
        if any(r["key"] == key for r in runs):
            continue
        for seed in seeds:
            accuracy = float(rng.uniform(0.5, 0.9))
            runs.append(
                {
                    "scenario": scenario,
                    "key": key,
                    "variant": variant.label,
                    "seed": seed,
                    "curves": {"loss": [1.0], "val_accuracy": [accuracy]},
                    "dev_accuracy": accuracy,
                    "train_accuracy": accuracy + 0.05,
                    "test_accuracy": accuracy - 0.01,
                    "diverged": False,
                    "epochs": 1,
                    "seconds": 1.0,
                }
            )
    return runs


def _config(scenarios, seed_list, backend="jax"):
    return {
        "backend": backend,
        "dataset": "Fashion-MNIST",
        "model": "mlp",
        "seeds": len(seed_list),
        "seed_list": list(seed_list),
        "scenarios": {n: SCENARIOS[n].settings("mlp") for n in scenarios},
        "dev_rows": 5000,
        "chance": 0.1,
        "planned_runs": 0,
    }


def test_commands_split_by_seeds_merge_into_the_table_of_one_run(tmp_path):
    rng = np.random.default_rng(0)
    deep = _runs("deep", range(5), rng)
    long = _runs("long", range(5), rng)
    parts = {
        ("mlp", "deep", 0): deep,
        ("mlp", "long", 0): [r for r in long if r["seed"] < 3],
        ("mlp", "long", 3): [r for r in long if r["seed"] >= 3],
    }
    finished = {}
    for key, runs in parts.items():
        seeds = sorted({r["seed"] for r in runs})
        backend = "tensorflow" if key[1] == "long" else "jax"
        part = AblationResult(runs, _config([key[1]], seeds, backend))
        write_runs(part, tmp_path / "-".join(map(str, key)))
        finished[key] = (tmp_path / "-".join(map(str, key)), 10.0)

    merged = bench_studies._merged("mlp", finished)
    found = variants(SCENARIOS["deep"]) + variants(SCENARIOS["long"])
    whole = AblationResult(deep + long, _config(["deep", "long"], range(5)), found)
    assert merged.config["seeds"] == 5 and merged.config["seed_list"] == [0, 1, 2, 3, 4]
    assert list(merged.config["scenarios"]) == ["deep", "long"]
    assert merged.config["backend"] == "jax (long: tensorflow)"
    assert len(merged.table) == len(whole.table) > 0
    for got, want in zip(merged.table, whole.table, strict=True):
        for column, value in want.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(got[column]), column
            else:
                assert got[column] == value, column

    # The report names the backends of the runs and their versions, not
    # those of the process that writes it.
    write_outputs(merged, tmp_path / "merged")
    html = (tmp_path / "merged" / "report.html").read_text()
    assert "jax (long: tensorflow)" in html
    for name in ("jax", "tensorflow"):
        assert f"<td>{importlib.metadata.version(name)}</td>" in html


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.001, 0.03, True),  # excludes 0: helps
        (-0.03, -0.001, True),  # excludes 0: hurts
        (-0.004, 0.005, True),  # contains 0, half-width 0.0045 bounds it
        (-0.006, 0.005, False),  # half-width 0.0055: undecided
    ],
)
def test_an_effect_is_decided_by_its_sign_or_its_width(low, high, expected):
    from keras_tricks.lab.statistics import verdict

    row = {"ci_low": low, "ci_high": high, "verdict": verdict(low, high)}
    assert bench_studies.decided(row) is expected


def test_commands_run_an_mlp_beside_a_cnn_and_a_failure_stops_the_study(
    tmp_path, monkeypatch, capsys
):
    # Each "command" makes its output directory and exits 3 when told to.
    monkeypatch.setattr(
        bench_studies,
        "_CLI",
        "import pathlib, sys; pathlib.Path(sys.argv[sys.argv.index('--out') + 1])"
        ".mkdir(); sys.exit(3 if 'fail' in sys.argv else 0)",
    )
    jobs = [
        ("cnn", "long", 0, ["x"]),
        ("cnn", "long", 3, ["x"]),
        ("mlp", "long", 0, ["x"]),
    ]
    finished = bench_studies._run_jobs(jobs, tmp_path / "ok")
    assert sorted(finished) == sorted(job[:3] for job in jobs)
    assert all(out.is_dir() for out, _ in finished.values())
    started = [
        line.split()[1]
        for line in capsys.readouterr().out.splitlines()
        if line.strip().startswith("started")
    ]
    assert started == ["cnn-long-0", "mlp-long-0", "cnn-long-3"]

    with pytest.raises(RuntimeError, match=r"\('mlp', 'deep', 0\) exited with 3"):
        bench_studies._run_jobs([("mlp", "deep", 0, ["fail"])], tmp_path / "bad")
