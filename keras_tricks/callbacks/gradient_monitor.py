"""Per-epoch gradient statistics, and warnings for vanishing or exploding ones."""

import re
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_tricks._validation import check_bool, check_number, invalid
from keras_tricks.callbacks._base import TrainingCallback
from keras_tricks.optimizers._step_statistics import StepStatistics, instrument
from keras_tricks.optimizers.gradient_clipping import GradientClipping, _chain

RATIO_EVERY = 16
"""Default `ratio_every`: the update ratio's weight copy on one step in 16
keeps the monitor within 5% of an unmonitored step (benchmarks/)."""

BACKENDS = ("tensorflow", "jax")


@keras.saving.register_keras_serializable(package="keras_tricks")
class GradientMonitor(TrainingCallback):
    """Logs gradient norms and update sizes per epoch; flags bad gradients.

    At the end of each epoch the logs (and so History, CSVLogger and
    TensorBoard, wherever they stand in the callbacks list) hold:

    - `grad_norm_mean`, `grad_norm_max`: mean and max over the epoch's steps
      of the global gradient norm ||g|| = sqrt(sum_i ||g_i||^2);
    - `grad_nonfinite_steps`: steps whose gradient held NaN or Inf (with
      `stop_on_nonfinite=True`, also steps that made a weight non-finite);
    - with `per_layer=True`, for each layer (named as in `model.layers`,
      without the model's name, so that the keys are the same from one run
      to the next): `grad_norm/<layer>`, the mean over the steps of the
      layer's gradient norm (all its trainable weights together), and
      `update_ratio/<layer>`, the mean of ||w_new - w|| / ||w|| (about 1e-3
      is the usual healthy order). `layers` restricts them to some layers.

    What is sampled: the gradient norms are measured on every step (they
    cost one pass over the gradients); the update ratio needs a copy of
    every weight before the step, so it is measured on one train-function
    call in `ratio_every` (the first of each epoch, then every
    `ratio_every`-th: with `steps_per_execution=1`, one step in
    `ratio_every`) and averaged over those steps. Steps with non-finite
    gradients are left out of the means.

    A layer is flagged, with a warning naming it and the epoch, as vanishing
    when its norm is below `vanishing_threshold` times the largest layer
    norm, and as exploding when its norm is above `exploding_threshold` or
    a gradient was non-finite. The flags are also kept in `vanishing` and
    `exploding` (`{epoch: [layer names]}`).

    Where the figures come from: with a
    `keras_tricks.optimizers.GradientClipping` optimizer, the norms that
    wrapper records (global-batch gradient, before clipping, unscaled), and
    the steps it skipped count as non-finite. With any other optimizer, the
    gradients the optimizer receives, unscaled by a `LossScaleOptimizer`;
    under `tf.distribute` these are each replica's own (wrap the optimizer
    in `GradientClipping` to monitor the global-batch gradient there).

    How: during `fit` the monitor sets `model.train_function` to its own
    train functions, made by Keras's `make_train_function` around a train
    step that observes the optimizer's step (the optimizer's `apply` is
    replaced only while that step is traced). They are traced in the first
    `fit`, once for the plain steps and once for the sampled ones, and kept
    with the model, as Keras keeps its own: a later `fit` with the same
    settings (by this monitor or a new one) reuses them until the model is
    compiled again. The model's own train
    function is back after `fit`, also after a `fit` that raised: the next
    `fit` without this monitor restores it on its first step. The figures
    are summed on the device, with no host synchronisation per step (except
    with `stop_on_nonfinite=True` on JAX: one scalar per step).

    Args:
        vanishing_threshold: relative norm below which a layer is flagged
            as vanishing, in (0, 1). Defaults to `1e-3`.
        exploding_threshold: absolute norm above which a layer is flagged
            as exploding, positive. Defaults to `1e3`.
        stop_on_nonfinite: on a NaN/Inf gradient (or weights made non-finite
            by a step), undo and freeze the updates for the rest of the epoch
            and stop training at its end, keeping the last finite weights.
            On TensorFlow this copies every weight on every step (so the
            update ratio is then measured on every step). Defaults to `False`.
        per_layer: log the per-layer figures; `False` logs only the three
            global ones. Defaults to `True`.
        layers: names or regular expressions (`re.search`) of the layers
            whose per-layer figures are logged, e.g. `["dense", "head"]`;
            `None` logs every layer. The flags cover every layer. Defaults
            to `None`.
        ratio_every: measure the update ratio on one train-function call in
            this many, a positive integer (`1`: every step). Defaults to
            `16`.

    Raises:
        ValueError: for a threshold out of range, a `layers` pattern that
            matches no layer (at the start of `fit`), or a backend other
            than TensorFlow and JAX.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(1, name="out")])
    >>> model.compile(keras.optimizers.SGD(0.1), "mse")
    >>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0,
    ...                     callbacks=[GradientMonitor()])
    >>> sorted(key for key in history.history if key != "loss")
    ['grad_nonfinite_steps', 'grad_norm/out', 'grad_norm_max', \
'grad_norm_mean', 'update_ratio/out']
    """

    def __init__(
        self,
        *,
        vanishing_threshold: float = 1e-3,
        exploding_threshold: float = 1e3,
        stop_on_nonfinite: bool = False,
        per_layer: bool = True,
        layers: Sequence[str] | None = None,
        ratio_every: int = RATIO_EVERY,
    ) -> None:
        super().__init__()
        if keras.backend.backend() not in BACKENDS:
            raise ValueError(
                f"GradientMonitor supports the TensorFlow and JAX backends, not "
                f"{keras.backend.backend()!r}: set KERAS_BACKEND to one of them."
            )
        self.vanishing_threshold = check_number(
            "vanishing_threshold",
            vanishing_threshold,
            low=0,
            high=1,
            low_open=True,
            high_open=True,
        )
        self.exploding_threshold = check_number(
            "exploding_threshold", exploding_threshold, low=0, low_open=True
        )
        self.stop_on_nonfinite = check_bool("stop_on_nonfinite", stop_on_nonfinite)
        self.per_layer = check_bool("per_layer", per_layer)
        if layers is not None:
            if isinstance(layers, str) or not all(isinstance(p, str) for p in layers):
                raise invalid("layers", layers, "a list of strings", TypeError)
            layers = list(layers)
        self.layers = layers
        self.ratio_every = check_number("ratio_every", ratio_every, low=1, integer=True)
        self._statistics: StepStatistics | None = None

    def reset_state(self) -> None:
        self.vanishing: dict[int, list[str]] = {}
        self.exploding: dict[int, list[str]] = {}

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        self._end()  # a previous `fit` that raised
        model = self.model
        optimizer = model.optimizer
        variables = list(model.trainable_variables)
        names = [_layer_name(model, v) for v in variables]
        self._layer_names = list(dict.fromkeys(names))
        groups = np.zeros((len(self._layer_names), len(variables)), "float32")
        for j, name in enumerate(names):
            groups[self._layer_names.index(name), j] = 1.0
        self._logged = self._logged_layers()
        clipper = next(
            (m for m in _chain(optimizer) if isinstance(m, GradientClipping)), None
        )
        strategy = getattr(model, "distribute_strategy", None)
        replicas = getattr(strategy, "num_replicas_in_sync", 1)
        if self.stop_on_nonfinite and replicas > 1:
            raise ValueError(
                "GradientMonitor(stop_on_nonfinite=True) supports a single "
                "replica. Under tf.distribute, use GradientClipping("
                "optimizer, skip_nonfinite=True), which skips such steps."
            )
        if keras.backend.backend() == "jax" and model.steps_per_execution > 1:
            raise ValueError(
                "GradientMonitor on the JAX backend needs steps_per_execution=1 "
                f"(the model was compiled with {model.steps_per_execution}): "
                "each step hands its figures to the monitor."
            )
        self._statistics = instrument(
            model, groups, clipper, self.ratio_every, self.stop_on_nonfinite
        )
        self._statistics.epoch_logs = self._epoch_logs

    def _logged_layers(self) -> list[str]:
        if not self.per_layer:
            return []
        if self.layers is None:
            return list(self._layer_names)
        logged = []
        for pattern in self.layers:
            matched = [n for n in self._layer_names if re.search(pattern, n)]
            if not matched:
                raise invalid(
                    "layers",
                    self.layers,
                    f"patterns that each match a layer ({pattern!r} matches "
                    f"none of {self._layer_names})",
                )
            logged += matched
        return [n for n in self._layer_names if n in logged]

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        statistics = self._statistics
        if statistics is None:
            return
        statistics.armed = True
        steps = self.params.get("steps") if self.params else None
        per_call = getattr(self.model, "steps_per_execution", 1)
        statistics.last = steps is not None and batch + per_call >= steps

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_begin(epoch, logs)
        if self._statistics is not None:
            self._statistics.reset()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._statistics is None:
            return
        self.last_epoch = epoch
        values = self._statistics.values()
        if logs is not None:
            for key, value in self._epoch_logs(values).items():
                logs.setdefault(key, value)
        steps = max(float(values["steps"]), 1.0)
        self._flag(epoch, values["layer_norm_sum"] / steps, int(values["nonfinite"]))
        if values["stopped"] > 0:
            warnings.warn(
                f"GradientMonitor: epoch {epoch + 1}: non-finite gradients or "
                "weights; training stops with the last finite weights.",
                stacklevel=2,
            )
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        super().on_train_end(logs)
        self._end()

    def _end(self) -> None:
        if self._statistics is not None:
            self._statistics.restore()
            self._statistics = None

    def _epoch_logs(self, values: dict[str, np.ndarray] | None = None) -> dict:
        """The epoch's figures, as the logs carry them."""
        if values is None and self._statistics is not None:
            values = self._statistics.values()
        if values is None:
            return {}
        steps = max(float(values["steps"]), 1.0)
        sampled = max(float(values["ratio_steps"]), 1.0)
        logs: dict[str, Any] = {
            "grad_norm_mean": float(values["norm_sum"]) / steps,
            "grad_norm_max": float(values["norm_max"]),
            "grad_nonfinite_steps": int(values["nonfinite"]),
        }
        for i, layer in enumerate(self._layer_names):
            if layer in self._logged:
                logs[f"grad_norm/{layer}"] = float(values["layer_norm_sum"][i]) / steps
                logs[f"update_ratio/{layer}"] = float(values["ratio_sum"][i]) / sampled
        return logs

    def _flag(self, epoch: int, layer_norms: np.ndarray, nonfinite: int) -> None:
        largest = float(np.max(layer_norms)) if len(layer_norms) else 0.0
        vanishing = [
            layer
            for layer, norm in zip(self._layer_names, layer_norms, strict=True)
            if largest > 0 and norm < self.vanishing_threshold * largest
        ]
        exploding = [
            layer
            for layer, norm in zip(self._layer_names, layer_norms, strict=True)
            if norm > self.exploding_threshold
        ]
        if nonfinite:
            exploding = list(self._layer_names)
        if vanishing:
            self.vanishing[epoch] = vanishing
            warnings.warn(
                f"GradientMonitor: epoch {epoch + 1}: vanishing gradients in "
                f"layer(s) {vanishing}: norm below {self.vanishing_threshold:g} "
                f"x the largest layer norm ({largest:.3g}).",
                stacklevel=3,
            )
        if exploding:
            self.exploding[epoch] = exploding
            cause = (
                f"{nonfinite} step(s) with NaN/Inf gradients"
                if nonfinite
                else f"norm above {self.exploding_threshold:g}"
            )
            warnings.warn(
                f"GradientMonitor: epoch {epoch + 1}: exploding gradients in "
                f"layer(s) {exploding}: {cause}.",
                stacklevel=3,
            )

    def get_config(self) -> dict[str, Any]:
        return {
            "vanishing_threshold": self.vanishing_threshold,
            "exploding_threshold": self.exploding_threshold,
            "stop_on_nonfinite": self.stop_on_nonfinite,
            "per_layer": self.per_layer,
            "layers": self.layers,
            "ratio_every": self.ratio_every,
        }


def _layer_name(model: keras.Model, variable: keras.Variable) -> str:
    """The variable's layer path, without the model's (auto-generated) name."""
    parts = variable.path.split("/")[:-1]
    if len(parts) > 1 and parts[0] == model.name:
        parts = parts[1:]
    return "/".join(parts)
