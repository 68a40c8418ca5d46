"""The `keras-tricks` command: manners (help, version, errors) and one real run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_tricks import __version__, cli

HEAVY = ("tensorflow", "matplotlib", "sklearn", "keras_tuner", "rich")
HEAVY_OURS = (
    "keras_tricks.lab.ablation",
    "keras_tricks.tuning",
    "keras_tricks.studies",
)

_PROBE = """
import contextlib, io, json, sys
import keras_tricks
before = set(sys.modules)
out = io.StringIO()
for argv in (["--version"], ["--help"], ["demo", "--help"], ["ablate", "--help"],
             ["init-study", "--help"]):
    with contextlib.redirect_stdout(out):
        try:
            from keras_tricks import cli
            cli.main(argv)
        except SystemExit as exit:
            assert exit.code == 0, argv
print(json.dumps({"added": sorted(set(sys.modules) - before),
                  "package_imports_tensorflow": "tensorflow" in before,
                  "all": sorted(sys.modules), "out": out.getvalue()}))
"""


def _probe(**env):
    """--version and every --help, run in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probe():
    return _probe()


def test_help_and_version_load_nothing_heavy(probe):
    added = {name.split(".")[0] for name in probe["added"]}
    assert not added & set(HEAVY)
    assert not set(probe["added"]) & set(HEAVY_OURS)
    out = probe["out"]
    assert f"keras-tricks {__version__}" in out
    for text in ("--scenario", "--model", "--data-dir", "deep, small-data", "lsuv"):
        assert text in out


def test_help_and_version_never_import_tensorflow():
    """On the JAX backend nothing imports TensorFlow. (On the TensorFlow
    backend `import keras` itself does, and `import keras_tricks` imports
    Keras so that `keras.models.load_model` finds every registered component.)"""
    probe = _probe(KERAS_BACKEND="jax")
    assert not probe["package_imports_tensorflow"]
    assert "tensorflow" not in probe["all"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["ablate", "--tricks", "init,warp"],
            "unknown trick(s) warp; choose among init",
        ),
        (["ablate", "--tricks", ""], "unknown trick(s)"),
        (["ablate", "--scenario", "deep,wide"], "choose among deep, small-data"),
        (["ablate", "--epochs", "0"], "expected an integer >= 1"),
        (["ablate", "--seeds", "x"], "expected an integer >= 1"),
        (["ablate", "--model", "rnn"], "invalid choice: 'rnn'"),
        (["demo", "--depth", "-1"], "expected an integer >= 1"),
        (["init-study", "--depth", "0"], "expected an integer >= 1"),
        (["nope"], "invalid choice"),
        ([], "required: command"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(argv, message, tmp_path, capsys):
    if argv[:1] in (["ablate"], ["demo"]):
        argv = [*argv, "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage" in err and message in err
    assert not (tmp_path / "out").exists()


def _npz(path, x, y):
    np.savez(path, x=x, y=y)
    return str(path)


def _blobs(rows=60, features=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


@pytest.fixture
def bad_data(tmp_path):
    x, y = _blobs()
    nan = x.copy()
    nan[17, 2] = np.nan
    inf = x.copy()
    inf[4, 0] = np.inf
    few = y.copy()
    few[:2] = 7
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    return {
        "nan": (_npz(tmp_path / "nan.npz", nan, y), "row 17, column 2"),
        "inf": (_npz(tmp_path / "inf.npz", inf, y), "row 4, column 0"),
        "class": (_npz(tmp_path / "few.npz", x, few), "class 7 has 2"),
        "zero-width": (
            _npz(tmp_path / "zero.npz", np.zeros((60, 0), "float32"), y),
            "no features",
        ),
        "corrupt": (str(tmp_path / "corrupt.npz"), "Cannot read the .npz file"),
        "good": (_npz(tmp_path / "good.npz", x, y), None),
        "missing": (str(tmp_path / "missing.npz"), "No such .npz file"),
        "suffix": (str(tmp_path / "data.csv"), "path ending in .npz"),
    }


@pytest.mark.parametrize(
    "case", ["nan", "inf", "class", "zero-width", "corrupt", "missing", "suffix"]
)
def test_bad_data_is_one_line_and_exit_2(case, bad_data, tmp_path, capsys):
    path, message = bad_data[case]
    code = cli.main(["ablate", "--dataset", path, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("keras-tricks: error: ")
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_too_few_examples_and_fashion_mnist_elsewhere(bad_data, tmp_path, capsys):
    path, _ = bad_data["good"]
    argv = ["ablate", "--dataset", path, "--max-examples", "5"]
    assert cli.main([*argv, "--out", str(tmp_path / "a")]) == 2
    assert "examples (one per train/dev/test split)" in capsys.readouterr().err
    argv = ["ablate", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path)]
    assert cli.main([*argv, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert f"Fashion-MNIST is not in {tmp_path}" in err and err.count("\n") == 1


def test_unwritable_out_is_found_before_any_work(tmp_path, capsys, monkeypatch):
    import keras_tricks.datasets

    def no_work(*args, **kwargs):
        raise AssertionError("loaded data before checking --out")

    monkeypatch.setattr(keras_tricks.datasets, "load_dataset", no_work)
    (tmp_path / "file").write_text("")
    code = cli.main(["ablate", "--out", str(tmp_path / "file" / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "Cannot write the output directory" in err


def test_unexpected_errors_are_one_line_unless_debug(tmp_path, capsys, monkeypatch):
    import keras_tricks.lab.ablation

    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(keras_tricks.lab.ablation, "run_ablation", broken)
    argv = ["ablate", "--out", str(tmp_path / "out")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err == (
        "keras-tricks: internal error (RuntimeError): boom second line "
        "(run again with --debug for the traceback)\n"
    )
    with pytest.raises(RuntimeError, match="boom"):
        cli.main([*argv, "--debug"])
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["--debug", *argv])


def test_ablate_end_to_end_with_a_dollar_in_the_path(tmp_path, capsys):
    x, y = _blobs(rows=90)
    data = _npz(tmp_path / "$HOME_$1$.npz", x, y)
    argv = ["ablate", "--dataset", data, "--scenario", "high-lr", "--tricks", "clip"]
    argv += ["--epochs", "1", "--depth", "1", "--seeds", "2"]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert "90 examples, 3 features, 2 classes" in out
    assert "+ clip" in out and "95% interval" in out
    assert err.count("ETA") == 4 and "elapsed" in err and "\r" not in err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(
        [
            "effects.png",
            "curves.png",
            "results.csv",
            "results.md",
            "runs.json",
            "report.html",
        ]
    )
    assert "--scenario high-lr" in (tmp_path / "out" / "report.html").read_text()


def test_init_study_prints_its_table_its_conclusion_and_progress(capsys):
    assert cli.main(["init-study", "--depth", "2", "--epochs", "1"]) == 0
    out, err = capsys.readouterr()
    assert "Initialisation study" in out and "\nBest: " in out
    for init in ("N(0,1)", "glorot", "he", "lsuv"):
        assert init in out
    assert err.count("ETA") == 4 and "\r" not in err


def _tiny_study(tmp_path, seeds):
    x, y = _blobs(rows=90)
    data = _npz(tmp_path / "blobs.npz", x, y)
    return [
        "ablate",
        "--dataset",
        data,
        "--scenario",
        "high-lr",
        "--tricks",
        "clip",
        "--epochs",
        "1",
        "--depth",
        "1",
        "--seeds",
        str(seeds),
        "--out",
        str(tmp_path / "out"),
    ]


def test_ctrl_c_exits_130_and_keeps_the_finished_runs_marked_incomplete(tmp_path):
    """SIGINT to a running study: exit status 130; runs.json holds the runs
    that finished; report.html says INCOMPLETE; no file looks complete."""
    import signal
    import time

    out = tmp_path / "out"
    argv = _tiny_study(tmp_path, seeds=200)
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_tricks.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if (out / "runs.json").exists():
                runs = json.loads((out / "runs.json").read_text())["runs"]
                if len(runs) >= 2:
                    break
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Interrupted after" in err and "--resume" in err
    saved = json.loads((out / "runs.json").read_text())
    assert saved["complete"] is False and len(saved["runs"]) >= 2
    assert saved["config"]["planned_runs"] == 400
    assert (out / "INCOMPLETE").exists()
    assert "INCOMPLETE" in (out / "report.html").read_text()
    for name in ("results.csv", "results.md", "effects.png", "curves.png"):
        assert not (out / name).exists()


def test_ctrl_c_lost_in_a_finalizer_still_stops_after_the_run(tmp_path, monkeypatch):
    """A SIGINT whose KeyboardInterrupt Python drops (raised inside a
    finalizer, as TensorFlow's objects are freed) stops the study after the
    run it arrived in, instead of letting it run to the end."""
    import signal

    import keras_tricks.lab.ablation as ablation

    real, calls = ablation.train_run, []

    def interrupted_in_a_finalizer(*args, **kwargs):
        calls.append(kwargs["seed"])
        if len(calls) == 1:
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                pass  # what Python does with it inside `__del__`
        return real(*args, **kwargs)

    monkeypatch.setattr(ablation, "train_run", interrupted_in_a_finalizer)
    previous = signal.getsignal(signal.SIGINT)
    out = tmp_path / "out"
    assert cli.main(_tiny_study(tmp_path, seeds=2)) == 130
    assert calls == [0]
    saved = json.loads((out / "runs.json").read_text())
    assert saved["complete"] is False and len(saved["runs"]) == 1
    assert "INCOMPLETE" in (out / "report.html").read_text()
    assert signal.getsignal(signal.SIGINT) is previous


def test_resume_continues_without_redoing_finished_runs(tmp_path, monkeypatch, capsys):
    import keras_tricks.lab.ablation as ablation

    real, calls = ablation.train_run, []

    def interrupted_at_the_third_run(*args, **kwargs):
        calls.append(kwargs["seed"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ablation, "train_run", interrupted_at_the_third_run)
    out = tmp_path / "out"
    assert cli.main([*_tiny_study(tmp_path, seeds=2), "--seed-offset", "5"]) == 130
    first = json.loads((out / "runs.json").read_text())
    assert [r["seed"] for r in first["runs"]] == [5, 6]
    assert "INCOMPLETE" in (out / "report.html").read_text()
    calls.clear()
    monkeypatch.setattr(
        ablation, "train_run", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    assert cli.main(["ablate", "--resume", str(out)]) == 0
    assert len(calls) == 2  # 4 runs planned (reference, + clip; 2 seeds), 2 kept
    assert "2 finished runs kept" in capsys.readouterr().out
    final = json.loads((out / "runs.json").read_text())
    assert final["complete"] is True and final["runs"][:2] == first["runs"]
    assert not (out / "INCOMPLETE").exists() and (out / "results.csv").exists()
    page = (out / "report.html").read_text()
    assert "INCOMPLETE" not in page and "seeds 5-6" in page


def test_resume_of_a_directory_without_runs_is_one_line(tmp_path, capsys):
    assert cli.main(["ablate", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no runs.json" in err
