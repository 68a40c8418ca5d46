import json

import numpy as np
import pytest

from keras_tricks import cli
from keras_tricks.lab import (
    FILES,
    build_variant,
    load_lab_dataset,
    make_split,
    run_ablation,
    write_outputs,
)
from keras_tricks.lab.ablation import train_variant

SMALL = {"depth": 3, "width": 16, "epochs": 3, "batch_size": 64}


@pytest.fixture(scope="module")
def tiny():
    x, y = load_lab_dataset("digits")
    return x[:600], y[:600]


@pytest.fixture(scope="module")
def result(tiny):
    x, y = tiny
    return run_ablation(
        x,
        y,
        tricks=("init", "bn", "early_stopping"),
        seeds=2,
        dataset="digits",
        **SMALL,
    )


def test_table_has_every_variant_and_marks_the_best(result):
    rows = result.table.to_dict()
    names = [row["variant"].rstrip(" *") for row in result.table]
    assert names == ["baseline", "init", "bn", "early_stopping", "all"]
    assert sum(row["variant"].endswith(" *") for row in result.table) == 1
    gains = {
        n: r["dev_gain"]
        for n, r in zip(names, rows.values(), strict=True)
        if n not in ("baseline", "all")
    }
    assert result.best == max(gains, key=gains.get)
    for name, seeds in result.runs.items():
        dev = [r["dev_accuracy"] for r in seeds]
        row = result.table[names.index(name)]
        assert row["dev_accuracy"] == f"{np.mean(dev):.4f} +- {np.std(dev):.4f}"
        assert row["epochs_run"] == np.mean([r["epochs"] for r in seeds])
        assert row["gradients"]


def test_runs_record_curves_and_best_epoch(result):
    run = result.runs["init"][0]
    assert set(run["curves"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert run["epochs"] == len(run["curves"]["loss"]) <= SMALL["epochs"]
    assert run["best_epoch"] == int(np.argmin(run["curves"]["val_loss"])) + 1


def test_variants_contain_their_tricks():
    plain = build_variant(64, 10, set(), depth=2, width=8, seed=0)
    everything = build_variant(
        64, 10, {"bn", "dropout", "l2", "init"}, depth=2, width=8, seed=0
    )
    names = [type(layer).__name__ for layer in everything.layers]
    assert names.count("BatchNormalization") == 2 and names.count("Dropout") == 2
    assert everything.layers[0].kernel_regularizer is not None
    assert "BatchNormalization" not in [type(la).__name__ for la in plain.layers]
    std = np.std(plain.layers[0].kernel.numpy())
    assert std == pytest.approx(0.05, rel=0.1)


def test_split_is_standardised_on_train_only(tiny):
    (x_train, _), (x_dev, _), (x_test, _) = make_split(*tiny)
    assert len(x_train) == 360 and len(x_dev) == len(x_test) == 120
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-5)
    assert np.abs(x_dev.mean(axis=0)).max() > 1e-3


def test_same_seeds_give_the_same_numbers(tiny):
    x, y = tiny
    a = run_ablation(x, y, tricks=("clip",), **SMALL)
    b = run_ablation(x, y, tricks=("clip",), **SMALL)
    for name in a.runs:
        assert a.runs[name][0]["curves"] == b.runs[name][0]["curves"]


def test_outputs_are_written(result, tmp_path):
    paths = write_outputs(result, tmp_path / "out")
    assert sorted(p.name for p in paths) == sorted(FILES)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "data:image/png;base64," in html and "baseline" in html
    assert (tmp_path / "out" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    csv_lines = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("variant,dev_accuracy") and len(csv_lines) == 6
    runs = json.loads((tmp_path / "out" / "runs.json").read_text())
    assert runs["config"]["seeds"] == 2
    assert list(tmp_path.iterdir()) == [tmp_path / "out"]


def test_cli_ablate_on_an_npz_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    code = cli.main(
        [
            "ablate",
            "--dataset",
            str(tmp_path / "mine.npz"),
            "--tricks",
            "bn",
            "--depth",
            "2",
            "--epochs",
            "2",
            "--seeds",
            "1",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    out = capsys.readouterr()
    assert "200 examples, 5 features, 2 classes" in out.out
    assert "2/2 runs" in out.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(FILES)


@pytest.mark.parametrize(
    "argv",
    [
        ["ablate", "--tricks", "init,warp"],
        ["ablate", "--tricks", ""],
        ["ablate", "--epochs", "0"],
        ["ablate", "--seeds", "x"],
        ["demo", "--depth", "-1"],
        ["nope"],
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "usage" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("missing.npz", "No such .npz file"),
        ("data.csv", "path ending in .npz"),
        ("bad.npz", "arrays named 'x' and 'y'"),
    ],
)
def test_bad_datasets_exit_2(dataset, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "bad.npz", a=np.zeros(3))
    assert cli.main(["ablate", "--dataset", dataset, "--out", "out"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_fashion_mnist_is_read_from_the_debian_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion"):
        load_lab_dataset("fashion-mnist", fashion_mnist_dir=tmp_path)


def test_a_diverging_run_is_reported_not_raised(tiny):
    split = make_split(*tiny)
    run = train_variant(
        split,
        {"init"},
        depth=3,
        width=16,
        epochs=2,
        batch_size=64,
        learning_rate=1e4,
        seed=0,
    )
    assert not np.isfinite(run["curves"]["val_loss"]).any()
    assert run["best_epoch"] == 0
    assert run["gradients"] == "exploding"
