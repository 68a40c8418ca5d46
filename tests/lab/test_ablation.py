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
