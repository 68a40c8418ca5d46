"""Argument checks shared by every public component.

Every bad argument is reported by `invalid`, in one format:
"Invalid value for argument `x`. Expected <what>. Received: x=<value>",
where <value> is what the user passed (`describe` keeps arrays and tensors
short: a clipped repr, or the shape and dtype).
"""

import math
import numbers
import reprlib

import keras
import numpy as np

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def describe(value):
    """A short, faithful text for `value` in an error message.

    NumPy arrays print their (clipped) values and dtype, tensors and Keras
    variables their type, shape and dtype, anything else its `repr` cut to
    about 80 characters.
    """
    if isinstance(value, np.ndarray):
        with np.printoptions(threshold=8, edgeitems=2, linewidth=10_000):
            return " ".join(repr(value).split())
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None and not np.isscalar(value):
        dims = tuple(None if d is None else int(d) for d in shape)
        try:
            dtype = keras.backend.standardize_dtype(dtype)
        except ValueError:
            pass
        return f"<{type(value).__name__} shape={dims} dtype={dtype}>"
    text = _REPR.repr(value)
    return " ".join(text.split()) if "\n" in text else text


def invalid(name, value, expected, error=ValueError, fix=""):
    """Builds the package's standard error for a bad argument.

    Args:
        name: the argument's name, as the user wrote it.
        value: the value the user passed (never a description of it).
        expected: what is allowed, e.g. "a number in (0, 1)".
        error: the exception class. Defaults to `ValueError`.
        fix: an optional sentence saying how to fix it.
    """
    return invalid_together({name: value}, expected, error, fix)


def invalid_together(values, expected, error=ValueError, fix=""):
    """Like `invalid`, for arguments that are only wrong in combination.

    Args:
        values: `{name: value}` of the arguments involved, in order.
        expected: what is allowed of them together.
        error: the exception class. Defaults to `ValueError`.
        fix: an optional sentence saying how to fix it.
    """
    names = ", ".join(f"`{name}`" for name in values)
    noun = "argument" if len(values) == 1 else "arguments"
    received = ", ".join(f"{name}={describe(v)}" for name, v in values.items())
    message = f"Invalid value for {noun} {names}. Expected {expected}. "
    message += f"Received: {received}"
    if fix:
        message += f". {fix}"
    return error(message)


def check_number(
    name, value, *, low=None, high=None, low_open=False, high_open=False, integer=False
):
    """Checks that `value` is a real number (or integer) inside a range.

    Returns the value as `float` (or `int` with `integer=True`).
    """
    kind = "an integer" if integer else "a number"
    wanted = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, wanted):
        raise invalid(name, value, kind, TypeError)
    if not integer and not math.isfinite(value):
        raise invalid(name, value, f"a finite {kind[2:]}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise invalid(name, value, f"{kind} in {left}{lo}, {hi}{right}")
    return int(value) if integer else float(value)


def check_choice(name, value, choices):
    """Checks that `value` is one of `choices` and returns it."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise invalid(name, value, f"one of {allowed}")
    return value


def check_bool(name, value):
    """Checks that `value` is a bool and returns it."""
    if not isinstance(value, bool):
        raise invalid(name, value, "a bool", TypeError)
    return value


def check_rank(layer, input_shape, minimum, what="(batch, ..., features)"):
    """Checks that a layer's input has rank >= `minimum` (in `build`)."""
    if len(input_shape) < minimum:
        raise invalid(
            "inputs",
            tuple(input_shape),
            f"rank >= {minimum} {what} for layer '{layer.name}'",
        )


def check_patterns(name, patterns):
    """Checks that every string in `patterns` is a regular expression.

    Returns them as a list; raises naming the first one that does not
    compile, with the reason from `re`.
    """
    import re

    patterns = list(patterns)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise invalid(
                name,
                patterns,
                f"regular expressions (`re` syntax); {pattern!r} is not one: {error}",
            ) from None
    return patterns


def check_same_length(x, y):
    """Checks that `x` and `y` (arrays, or dicts/lists of arrays) have as many
    rows; skipped when either is None or not an in-memory array.

    For functions that take a dataset as `x` with `y=None`, or arrays as
    `x` and `y` (as `keras.Model.fit` does).
    """
    if x is None or y is None:
        return
    x_rows, y_rows = _rows(x), _rows(y)
    if x_rows is not None and y_rows is not None and x_rows != y_rows:
        raise invalid_together(
            {"x": x, "y": y},
            f"as many targets as inputs ({x_rows} rows in `x`, {y_rows} in `y`)",
        )


def _rows(data):
    """Number of rows of an array, or of the first array in a dict/list."""
    if isinstance(data, dict):
        data = next(iter(data.values()), None)
    elif isinstance(data, list | tuple):
        if not data or not hasattr(data[0], "shape"):
            return len(data)  # a plain list of targets (or of rows)
        data = data[0]  # a list of input arrays
    shape = getattr(data, "shape", None)
    if shape is None or len(shape) == 0 or shape[0] is None:
        return None
    return int(shape[0])


def check_schedule(schedule: object) -> keras.optimizers.schedules.LearningRateSchedule:
    """`schedule`, a `LearningRateSchedule` or its config, as a schedule.

    Raises:
        TypeError: for anything else, naming the argument `schedule`.
    """
    if isinstance(schedule, dict):
        schedule = keras.optimizers.schedules.deserialize(schedule)
    if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        raise invalid("schedule", schedule, "a LearningRateSchedule", TypeError)
    return schedule
