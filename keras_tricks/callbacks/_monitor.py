"""Reading the monitored value out of the logs: one number, or a clear error.

Shared by the monitoring callbacks (`_base.MonitoringCallback`):

- `scalar` turns a logged value into a float. A metric with one output
  unit and no reduction (`keras.metrics.F1Score(average=None)` on one
  sigmoid unit) logs a one-element array, which NumPy 2 refuses to convert
  with `float()`; it is squeezed, as Keras's own `EarlyStopping` and
  Lightning do. A value with several elements is an error naming the monitor.
- `missing` says what to do when the monitored key is absent: on an epoch
  without validation (`validation_freq > 1`, or no validation data) a
  `val_` monitor is skipped with Keras's warning; otherwise the name is
  wrong, and the message lists the keys that were logged.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def scalar(user: str, name: str, value: Any) -> float:
    """`value` (a number, or an array or tensor of one element) as a float.

    Raises:
        ValueError: if `value` holds more than one element.
    """
    array = np.asarray(value)
    if array.size != 1:
        raise ValueError(
            f"{user} monitors `{name}`, which was logged as {array.size} values "
            f"(shape {array.shape}): {np.array2string(array, threshold=6)}. It "
            "needs one number per epoch. Monitor a scalar quantity, e.g. a "
            "metric with an averaging such as F1Score(average='macro')."
        )
    return float(array.reshape(()))


def unavailable(user: str, name: str, logs: dict[str, Any]) -> str:
    """Keras's message for a monitored key missing from the logs."""
    return (
        f"{user} is conditioned on metric `{name}` which is not available. "
        f"Available metrics are: {','.join(logs)}"
    )


def validation_skipped(name: str, logs: dict[str, Any]) -> bool:
    """Whether `name` is a validation quantity and this epoch had no validation.

    Keras logs the `val_` quantities only on the epochs it validates
    (`validation_freq`), so their absence then says nothing about the name.
    """
    return name.startswith("val_") and not any(key.startswith("val_") for key in logs)
