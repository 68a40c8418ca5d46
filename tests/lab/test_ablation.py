"""The lab's runs, table, statistics and reproducibility, on tiny settings."""

import math

import keras
import numpy as np
import pytest

from keras_tricks.datasets import LabDataset, load_dataset
from keras_tricks.lab import build_variant, make_split, run_ablation
from keras_tricks.lab.ablation import split_dataset, train_run, train_subset
from keras_tricks.lab.scenarios import SCENARIOS
from keras_tricks.lab.statistics import VERDICTS, paired_interval

TINY = {"epochs": 2, "depth": 1, "seeds": 2}
NUMERIC = ("mean", "std", "effect", "ci_low", "ci_high", "gap", "diverged")


@pytest.fixture(scope="session")
def tiny_digits():
    data = load_dataset("digits")
    return data.subsample(400)


@pytest.fixture(scope="session")
def result(tiny_digits):
    """high-lr (clip, bn), 2 seeds, 2 epochs: 8 small runs."""
    return run_ablation(
        tiny_digits, scenarios=["high-lr"], tricks=("clip", "bn"), **TINY
    )


def test_table_rows_columns_and_types(result):
    table = result.table
    assert [(r["scenario"], r["variant"]) for r in table] == [
        ("high-lr", "reference"),
        ("high-lr", "+ clip"),
        ("high-lr", "+ bn"),
        ("high-lr", "recipe"),
        ("high-lr", "recipe - clip"),
        ("high-lr", "recipe - bn"),
    ]
    for row in table:
        assert all(isinstance(row[c], float) for c in NUMERIC)
        assert isinstance(row["seeds"], int) and row["seeds"] == 2
        assert 1 <= row["epochs_run"] <= TINY["epochs"]
        assert row["verdict"] in (*VERDICTS, "")
        assert (row["verdict"] == "") == (row["kind"] == "reference")
        assert "*" not in row["variant"] and "+-" not in str(row["mean"])


def test_effects_are_paired_differences_of_the_runs(result):
    def dev(scenario, label):
        runs = [r for r in result.runs if r["scenario"] == scenario]
        runs = [r for r in runs if label in r["variant"].split(" = ")]
        return [r["dev_accuracy"] for r in sorted(runs, key=lambda r: r["seed"])]

    rows = {(r["scenario"], r["variant"]): r for r in result.table}
    checks = {
        ("high-lr", "+ clip"): (dev("high-lr", "+ clip"), dev("high-lr", "reference")),
        ("high-lr", "recipe - clip"): (
            dev("high-lr", "recipe"),
            dev("high-lr", "recipe - clip"),
        ),
        ("high-lr", "+ bn"): (dev("high-lr", "+ bn"), dev("high-lr", "reference")),
    }
    resolution = 1 / result.config["dev_rows"]
    assert resolution == 1 / 80
    for key, (a, b) in checks.items():
        effect, low, high = paired_interval(a, b, resolution=resolution)
        assert rows[key]["effect"] == pytest.approx(effect)
        assert rows[key]["ci_low"] == pytest.approx(low)
        assert rows[key]["ci_high"] == pytest.approx(high)
        assert rows[key]["mean"] == pytest.approx(np.mean(a if "+" in key[1] else b))


def test_shared_networks_train_once(result):
    labels = {r["variant"] for r in result.runs if r["scenario"] == "high-lr"}
    assert labels == {
        "reference",
        "+ clip = recipe - bn",
        "+ bn = recipe - clip",
        "recipe",
    }
    assert len(result.runs) == 8


def test_same_seeds_give_the_same_numbers(result, tiny_digits):
    split = split_dataset(tiny_digits)
    settings = {**result.config["scenarios"]["high-lr"]}
    (twin,) = [r for r in result.runs if r["variant"] == "reference" and r["seed"] == 1]
    again = train_run(
        split, train_subset(split, None), {"init": "he"}, settings, seed=1
    )
    assert again["curves"] == twin["curves"]
    assert again["dev_accuracy"] == twin["dev_accuracy"]
    other = [r for r in result.runs if r["variant"] == "reference" and r["seed"] == 0]
    assert other[0]["curves"]["loss"] != twin["curves"]["loss"]


def test_a_diverging_run_is_reported_and_stopped(tiny_digits):
    split = split_dataset(tiny_digits)
    settings = {**SCENARIOS["high-lr"].settings("mlp"), "depth": 2, "epochs": 4}
    settings["learning_rate"] = 1e4
    run = train_run(split, split.train, {"init": "he"}, settings)
    assert run["diverged"] and run["epochs"] < 4
    assert not math.isfinite(run["curves"]["loss"][-1])
    y_dev = split.dev[1]
    assert run["dev_accuracy"] == pytest.approx(np.bincount(y_dev).max() / len(y_dev))


def test_cnn_on_images_and_its_error_on_flat_features(tiny_digits):
    split = split_dataset(tiny_digits, "cnn")
    assert split.train[0].shape[1:] == (8, 8, 1)
    settings = {**SCENARIOS["deep"].settings("cnn"), "depth": 2, "width": 4}
    settings["epochs"] = 1
    run = train_run(split, split.train, {"bn": "batch"}, settings, model="cnn")
    assert 0.0 <= run["dev_accuracy"] <= 1.0 and run["epochs"] == 1
    flat = LabDataset("flat", tiny_digits.x.reshape(400, -1), tiny_digits.y)
    with pytest.raises(ValueError, match="--model cnn needs image data"):
        split_dataset(flat, "cnn")


def test_splits_and_subsets(tiny_digits):
    x = tiny_digits.x.reshape(400, -1)
    (x_train, _), (x_dev, _), (x_test, _) = make_split(x, tiny_digits.y)
    assert len(x_train) == 240 and len(x_dev) == len(x_test) == 80
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-5)
    split = split_dataset(tiny_digits)
    x_small, y_small = train_subset(split, "small")
    assert len(x_small) == 60 and set(np.unique(y_small)) == set(range(10))
    assert train_subset(split, None)[0] is split.train[0]


def test_build_variant_keeps_working():
    model = build_variant(64, 10, {"bn", "dropout", "l2", "init"}, depth=2, width=8)
    names = [type(layer).__name__ for layer in model.layers]
    assert names.count("BatchNormalization") == 2 and names.count("Dropout") == 2
    assert model.layers[0].kernel_regularizer is not None
    assert isinstance(model.layers[0].kernel_initializer, keras.initializers.HeNormal)


def test_unknown_scenario_lists_the_valid_ones(tiny_digits):
    with pytest.raises(ValueError, match="one of deep, small-data, high-lr, long"):
        run_ablation(tiny_digits, scenarios=["wide"])


@pytest.mark.jax
def test_one_run_trains_on_every_backend():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    split = split_dataset(LabDataset("blobs", x, y))
    settings = {**SCENARIOS["long"].settings("mlp"), "depth": 1, "width": 8}
    settings.update(epochs=4, batch_size=16)
    values = {"init": "he", "bn": "batch", "decay": 0.85, "swa": 0.75}
    run = train_run(split, split.train, values, settings)
    assert run["epochs"] == 4 and not run["diverged"]
    assert run["dev_accuracy"] > 0.8


def test_seed_offset_and_resume_skip_finished_runs(tiny_digits, monkeypatch):
    """Seeds start at `seed_offset`; runs passed as `done` are kept, not
    trained again; `on_run` sees every finished run, complete at the last."""
    import keras_tricks.lab.ablation as ablation

    calls = []
    real = ablation.train_run

    def counting(*args, **kwargs):
        calls.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ablation, "train_run", counting)
    seen = []
    settings = dict(scenarios=["high-lr"], tricks=("clip",), epochs=1, depth=1)
    first = run_ablation(
        tiny_digits, seeds=2, seed_offset=10, on_run=seen.append, **settings
    )
    assert sorted(set(calls)) == [10, 11] and len(calls) == 4
    assert [p.complete for p in seen] == [False, False, False, True]
    assert [len(p.runs) for p in seen] == [1, 2, 3, 4]
    assert first.config["seed_list"] == [10, 11]
    calls.clear()
    again = run_ablation(
        tiny_digits, seeds=3, seed_offset=10, done=first.runs[:3], **settings
    )
    assert calls == [12, 11, 12]  # reference seed 12, + clip seeds 11 and 12
    assert again.runs[:2] == first.runs[:2] and again.runs[3] == first.runs[2]
    assert len(again.runs) == 6


def _made_up(dev):
    """An AblationResult from made-up dev accuracies {label: [per seed]}."""
    from keras_tricks.lab.ablation import AblationResult, _key_text
    from keras_tricks.lab.scenarios import DEMO_SCENARIOS, variants

    found = variants(DEMO_SCENARIOS["deep"])
    runs = []
    for variant in found:
        for seed, score in enumerate(dev[variant.label]):
            runs.append(
                {
                    "scenario": "deep",
                    "key": _key_text(variant),
                    "variant": variant.label,
                    "seed": seed,
                    "dev_accuracy": score,
                    "train_accuracy": score,
                    "test_accuracy": score,
                    "diverged": False,
                    "epochs": 3,
                    "seconds": 1.0,
                    "curves": {"val_accuracy": [score] * 3},
                }
            )
    config = {"dataset": "d", "model": "mlp", "seeds": 5, "dev_rows": 100}
    return AblationResult(runs, {**config, "chance": 0.1}, found)


def test_seeds_split_between_trained_and_not_give_a_mixed_verdict():
    rows = {
        r["variant"]: r
        for r in _made_up(
            {
                "reference": [0.10, 0.12, 0.11, 0.10, 0.11],
                "+ init": [0.95, 0.11, 0.94, 0.96, 0.12],
                "+ bn": [0.95, 0.94, 0.96, 0.95, 0.93],
            }
        ).table
    }
    init = rows["+ init"]
    assert init["verdict"] == "mixed" and init["trained"] == 3
    assert init["note"] == "trained in 3 of 5 seeds"
    assert math.isnan(init["ci_low"]) and math.isnan(init["ci_high"])
    assert init["effect"] == pytest.approx(np.mean([0.85, -0.01, 0.83, 0.86, 0.01]))
    bn = rows["+ bn"]
    assert bn["verdict"] == "helps" and bn["trained"] == 5 and bn["note"] == ""
    assert rows["reference"]["trained"] == 0


def test_a_split_reference_makes_its_comparisons_mixed():
    rows = {
        r["variant"]: r
        for r in _made_up(
            {
                "reference": [0.10, 0.90, 0.11, 0.10, 0.11],
                "+ init": [0.95, 0.94, 0.94, 0.96, 0.92],
                "+ bn": [0.95, 0.94, 0.96, 0.95, 0.93],
            }
        ).table
    }
    assert rows["+ bn"]["verdict"] == "mixed"
    assert rows["+ bn"]["note"] == "reference trained in 1 of 5 seeds"


def test_demo_scenarios_are_harder_and_noisy_labels_stay_fixed(tiny_digits):
    from keras_tricks.lab.scenarios import DEMO_SCENARIOS

    assert sorted(DEMO_SCENARIOS) == sorted(SCENARIOS)
    for scenario in DEMO_SCENARIOS.values():
        assert set(scenario.tricks) <= set(SCENARIOS[scenario.name].tricks)
    split = split_dataset(tiny_digits)
    clean = train_subset(split, 100)
    noisy = train_subset(split, 100, label_noise=0.3)
    np.testing.assert_array_equal(clean[0], noisy[0])
    assert np.sum(clean[1] != noisy[1]) == 30
    np.testing.assert_array_equal(noisy[1], train_subset(split, 100, 0, 0.3)[1])
