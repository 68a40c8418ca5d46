"""Every script in examples/ runs to the end (with training cut to 1 epoch)."""

import functools
import runpy
import sys
from pathlib import Path

import keras
import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))
ARGUMENTS = {"tune_digits": ["--trials", "2"]}


@pytest.fixture
def short_fit(monkeypatch):
    """Cuts `Model.fit` to 1 epoch so the smoke run stays fast."""
    fit = keras.Model.fit

    @functools.wraps(fit)
    def capped(self, *args, **kwargs):
        kwargs["epochs"] = 1
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", capped)


def test_there_is_an_example_per_family():
    names = {path.stem for path in EXAMPLES}
    assert names >= {
        "initialization",
        "normalization",
        "dropout",
        "regularization",
        "clipping",
        "learning_rate",
        "early_stopping",
        "splitting",
        "tune_digits",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs(path, short_fit, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(path), *ARGUMENTS.get(path.stem, [])])
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip()
