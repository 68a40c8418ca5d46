"""The shared error format: every message quotes the value the user passed."""

import ast
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_tricks._validation import describe, invalid, invalid_together

pytestmark = pytest.mark.jax

PACKAGE = Path(__file__).parent.parent / "keras_tricks"


def _invalid_calls():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            func = getattr(node, "func", None)
            name = getattr(func, "id", getattr(func, "attr", None))
            if isinstance(node, ast.Call) and name in ("invalid", "invalid_together"):
                yield path, node, name


def test_no_description_is_passed_as_the_value():
    offenders = []
    for path, node, name in _invalid_calls():
        if name == "invalid":
            values = node.args[1:2] + [
                k.value for k in node.keywords if k.arg == "value"
            ]
        else:
            values = [
                v
                for arg in node.args[:1]
                if isinstance(arg, ast.Dict)
                for v in arg.values
            ]
        for value in values:
            if isinstance(value, (ast.Constant, ast.JoinedStr)) and not (
                isinstance(value, ast.Constant) and value.value is None
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, f"pass the user's value, not a text about it: {offenders}"


def test_the_scan_finds_the_calls():
    assert sum(1 for _ in _invalid_calls()) > 40


def test_message_format_and_fix():
    error = invalid("rate", 1.5, "a number in [0, 1)", fix="Use 0.5")
    assert str(error) == (
        "Invalid value for argument `rate`. Expected a number in [0, 1). "
        "Received: rate=1.5. Use 0.5"
    )
    error = invalid_together({"a": 1, "b": "x"}, "a < b", TypeError)
    assert isinstance(error, TypeError)
    assert str(error) == (
        "Invalid value for arguments `a`, `b`. Expected a < b. Received: a=1, b='x'"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (np.array([1.0, 2.0]), "array([1., 2.])"),
        (np.arange(100), "array([ 0, 1, ..., 98, 99], shape=(100,))"),
        (np.array([True, False]), "array([ True, False])"),
        ("x" * 10, "'xxxxxxxxxx'"),
        ([1, 2, 3, 4, 5, 6, 7, 8], "[1, 2, 3, 4, 5, 6, ...]"),
        (None, "None"),
    ],
)
def test_describe_quotes_the_value(value, text):
    assert describe(value) == text


def test_describe_gives_shape_and_dtype_of_tensors():
    tensor = keras.ops.ones((2, 3))
    assert describe(tensor).endswith("shape=(2, 3) dtype=float32>")
    assert describe(keras.Variable(np.zeros(4, "float32"))) == (
        "<Variable shape=(4,) dtype=float32>"
    )


def test_describe_cuts_long_reprs():
    assert len(describe("y" * 1000)) <= 90
