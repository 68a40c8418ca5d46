"""Assertions shared by the test modules."""

import csv
from pathlib import Path

import keras
import numpy as np

DOCS = Path(__file__).resolve().parents[1] / "docs"


def assert_roundtrip(model, x, tmp_path, *, atol=0.0):
    """Saves `model` to `.keras`, reloads it, and compares predictions on `x`.

    Returns the reloaded model.
    """
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    actual = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)
    return loaded


def docs_section(page, heading):
    """The text of `docs/<page>` from `heading` to the next `## ` heading."""
    text = (DOCS / page).read_text()
    start = text.index(heading)
    return text[start : text.index("\n## ", start + 1)]


def result_rows(path):
    """A lab `results.csv` as `{(scenario, variant): row}` (values as text)."""
    with open(path, newline="") as f:
        return {(r["scenario"], r["variant"]): r for r in csv.DictReader(f)}
