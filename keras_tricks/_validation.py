"""Argument checks shared by every public component.

Each helper raises with the message format used across the package:
"Invalid value for argument `x`. Expected <what>. Received: x=<value>".
"""

import math
import numbers


def invalid(name, value, expected, error=ValueError, fix=""):
    """Builds the package's standard error for a bad argument."""
    message = (
        f"Invalid value for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )
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
