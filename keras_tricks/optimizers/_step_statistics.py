"""Gradient statistics of every optimizer step inside `fit`, kept on the device.

`StepStatistics` instruments a model's training for the duration of one
`fit` (`GradientMonitor` uses it). It replaces `model.train_function` with a
dispatcher that calls its own train functions, built by Keras's
`make_train_function` around a train step that observes the optimizer's
step; the model's own train function is called, and put back, as soon as
the dispatcher is called by a `fit` it is not armed for (a `fit` that raised
before `on_train_end` leaves nothing instrumented behind).

During the tracing of those train functions only, the model optimizer's
`apply` (TensorFlow) or `stateless_apply` (JAX, whose train step is
functional) is replaced by one that measures:

- every step: the squared gradient norm of each trainable variable
  (unscaled; with `GradientClipping` the ones it records: global batch,
  before clipping) and whether the step was finite;
- on sampled steps (one train-function call in `ratio_every`): the size of
  the update relative to the weights, which needs a copy of every weight
  before the step on TensorFlow.

The sums over the epoch live in Keras variables: on TensorFlow they are
updated inside the compiled step; on JAX each step returns its figures and
the dispatcher adds them up with one compiled call, outside the traced step.

The instrumented train functions are kept on the model between fits
(`instrument`), as Keras keeps `model.train_function`: a later `fit` with
the same settings, by the same or a new monitor, compiles nothing again.
"""

import contextlib
import functools
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_tricks import _keras_compat
from keras_tricks.optimizers import _distribute

STEP_KEY = "keras_tricks_gradient_statistics"
"""Logs key of a JAX step's own figures (removed by the dispatcher)."""

ACCUMULATORS = ("steps", "nonfinite", "norm_sum", "norm_max", "ratio_steps")
"""Scalar sums over an epoch (and the per-layer `layer_norm_sum`, `ratio_sum`)."""


_ATTRIBUTE = "_keras_tricks_step_statistics"
"""The model attribute holding its last instrumentation (a plain object:
Keras tracks neither it nor the variables inside it)."""


def instrument(
    model: keras.Model,
    groups: np.ndarray,
    clipper: Any,
    ratio_every: int,
    stop_on_nonfinite: bool,
) -> "StepStatistics":
    """Instruments `model` for one `fit`, reusing its last instrumentation.

    The last one is reused when the model's train function, optimizer and
    every setting are those it was made for (a `compile` since makes a new
    train function, hence a new instrumentation).

    Args: as `StepStatistics`.
    """
    last = model.__dict__.get(_ATTRIBUTE)
    settings = (clipper, ratio_every, stop_on_nonfinite)
    if last is not None and last.serves(model, groups, settings):
        last.attach()
        return last
    statistics = StepStatistics(model, groups, clipper, ratio_every, stop_on_nonfinite)
    model.__dict__[_ATTRIBUTE] = statistics
    return statistics


class StepStatistics:
    """Instruments `model`'s training steps, for one `fit` at a time.

    Args:
        model: the model being fitted (its train function is already made).
        groups: `(layers, variables)` 0/1 matrix assigning each trainable
            variable to a layer.
        clipper: the `GradientClipping` in the optimizer chain, or `None`.
        ratio_every: the update ratio is measured on one call in this many.
        stop_on_nonfinite: freeze the updates after a non-finite step.
    """

    def __init__(
        self,
        model: keras.Model,
        groups: np.ndarray,
        clipper: Any,
        ratio_every: int,
        stop_on_nonfinite: bool,
    ) -> None:
        self.model = model
        self.optimizer = model.optimizer
        self.groups = groups
        self.clipper = clipper
        self.ratio_every = ratio_every
        self.stop = stop_on_nonfinite
        self.jax = keras.backend.backend() == "jax"
        # Under an outer LossScaleOptimizer the clipper may not see a step.
        self.own_check = clipper is None or clipper is not self.optimizer
        self.plain = model.train_function
        self.armed = False
        self.last = False
        self.epoch_logs: Callable[[], dict[str, float]] | None = None
        self.calls = 0
        self.frozen = False
        self._variants: dict[tuple[bool, bool], Callable] = {}
        self._custom_gradients: list[str] = []
        self._originals = {
            "apply": self.optimizer.apply,
            "stateless_apply": self.optimizer.stateless_apply,
            "train_step": model.train_step,
        }
        strategy = getattr(model, "distribute_strategy", None)
        scope = strategy.scope() if strategy else contextlib.nullcontext()
        n_layers = groups.shape[0]
        with scope:
            self.accumulators = {
                name: _accumulator(name, shape)
                for name, shape in [(a, ()) for a in ACCUMULATORS]
                + [("layer_norm_sum", (n_layers,)), ("ratio_sum", (n_layers,))]
                + [("stopped", ())]
            }
        if self.jax:
            import jax

            self._accumulate_jit = jax.jit(accumulate)
        # Every variant is made now, before the first step: under a JAX
        # distribution `make_train_function` reads the variables' shardings,
        # and `fit` empties the variables once its steps start.
        for sampled in (False, True):
            for frozen in (False, True) if self.stop and self.jax else (False,):
                self._variant(sampled, frozen)
        # Their graphs go with this object (the registry alone would keep them).
        weakref.finalize(
            self, _keras_compat.forget_custom_gradients, self._custom_gradients
        )
        model.train_function = self.dispatch

    def serves(self, model: keras.Model, groups: np.ndarray, settings: tuple) -> bool:
        """Whether this instrumentation serves a `fit` of `model` with `groups`
        and `settings` (`(clipper, ratio_every, stop_on_nonfinite)`)."""
        return (
            model.train_function is self.plain
            and model.optimizer is self.optimizer
            and settings == (self.clipper, self.ratio_every, self.stop)
            and np.array_equal(groups, self.groups)
        )

    def attach(self) -> None:
        """Instruments the model again for a new `fit` (stop flag cleared)."""
        self.armed = self.last = self.frozen = False
        self.epoch_logs = None
        self.reset()
        self.accumulators["stopped"].assign(ops.zeros((), "float32"))
        self.model.train_function = self.dispatch

    # -- the dispatcher, model.train_function during the fit ---------------

    def dispatch(self, *args: Any) -> Any:
        if not self.armed:
            # Called by a `fit` this instrumentation is not part of.
            self.restore()
            return self.model.train_function(*args)
        self.armed = False
        sampled = self.calls % self.ratio_every == 0 or (self.stop and not self.jax)
        self.calls += 1
        variant = self._variant(sampled, self.frozen)
        if not self.jax:
            return self._with_epoch_logs(variant(*args))
        logs, state = variant(*args)
        logs = dict(logs)
        step = logs.pop(STEP_KEY)
        values = {k: v.value for k, v in self.accumulators.items()}
        for name, value in self._accumulate_jit(values, step).items():
            self.accumulators[name].assign(value)
        if self.stop and not self.frozen:
            self.frozen = bool(np.asarray(self.accumulators["stopped"].value) > 0)
        return self._with_epoch_logs(logs), state

    def _with_epoch_logs(self, logs: Any) -> Any:
        # On the epoch's last call, the epoch's figures join the logs Keras
        # hands to every callback's `on_epoch_end` (its step logs then no
        # longer match the model's metrics, and Keras uses them as they are).
        if not self.last or self.epoch_logs is None:
            return logs
        return {**logs, **self.epoch_logs()}

    def reset(self) -> None:
        """Zeroes the epoch's sums (not the stop flag)."""
        self.calls = 0
        for name, variable in self.accumulators.items():
            if name != "stopped":
                variable.assign(ops.zeros(variable.shape, "float32"))

    def values(self) -> dict[str, np.ndarray]:
        """The epoch's sums, as NumPy arrays."""
        return {
            name: np.asarray(keras.ops.convert_to_numpy(variable.value))
            for name, variable in self.accumulators.items()
        }

    def restore(self) -> None:
        """Puts the model's own train function back (a later `fit` may
        `attach` this instrumentation again)."""
        if self.model.train_function == self.dispatch:
            self.model.train_function = self.plain

    # -- the instrumented train functions ----------------------------------

    def _variant(self, sampled: bool, frozen: bool) -> Callable:
        key = (sampled, frozen)
        if key not in self._variants:
            model = self.model
            step = functools.partial(self._train_step, sampled, frozen)
            try:
                with _keras_compat.patched(model, "train_step", step):
                    model.make_train_function(force=True)
                self._variants[key] = model.train_function
            finally:
                model.train_function = self.dispatch
        return self._variants[key]

    def _train_step(self, sampled: bool, frozen: bool, *args: Any) -> Any:
        """The model's train step, with the optimizer's step observed."""
        original = self._originals["train_step"]
        if not self.jax:
            apply = functools.partial(self._tf_apply, sampled)
            with (
                _keras_compat.recording_custom_gradients(self._custom_gradients),
                _keras_compat.patched(self.optimizer, "apply", apply),
            ):
                return original(*args)
        captured: list = []
        stateless_apply = functools.partial(self._jax_apply, sampled, frozen, captured)
        with _keras_compat.patched(self.optimizer, "stateless_apply", stateless_apply):
            logs, state = original(*args)
        return {**logs, STEP_KEY: captured[0]}, state

    def _tf_apply(
        self,
        sampled: bool,
        grads: Sequence[Any],
        trainable_variables: Sequence[keras.Variable] | None = None,
    ) -> None:
        variables = list(
            self.model.trainable_variables
            if trainable_variables is None
            else trainable_variables
        )
        grads = list(grads)
        optimizer = self.optimizer
        if not optimizer.built:
            # As the optimizer's own `apply` would, first: a LossScaleOptimizer
            # has no scale to read before it is built.
            with keras.name_scope(optimizer.name, caller=optimizer):
                optimizer.build(variables)
        before = [ops.copy(v) for v in variables] if sampled else None
        squares, finite = self._own_squares(grads, _loss_scale(optimizer))
        original = self._originals["apply"]
        stopped = self.accumulators["stopped"]
        if self.stop:
            proceed = ops.logical_and(finite, stopped.value == 0)
            _distribute.apply_if(proceed, original, (grads, variables), variables)
            stopped.assign(ops.where(proceed, stopped.value, 1.0))
        else:
            original(_anchored(grads, squares, self.model.jit_compile), variables)
        if self.clipper is not None:
            squares, finite = self._clipper_squares(
                self.clipper.variable_norms.value,
                self.clipper.global_norm.value,
                finite,
            )
        after = [ops.copy(v) for v in variables] if sampled else None
        if self.stop and before is not None and after is not None:  # sampled
            weights_ok = _all_finite(after)
            finite = ops.logical_and(finite, weights_ok)

            def undo() -> None:
                for variable, value in zip(variables, before, strict=True):
                    variable.assign(value)
                stopped.assign(1.0)

            ops.cond(weights_ok, lambda: None, undo)
        step = figures(self.groups, squares, finite, before, after)
        step["stopped"] = stopped.value
        for name, value in accumulate(
            {k: v.value for k, v in self.accumulators.items()}, step
        ).items():
            self.accumulators[name].assign(value)

    def _jax_apply(
        self,
        sampled: bool,
        frozen: bool,
        captured: list,
        optimizer_variables: Sequence[Any],
        grads: Sequence[Any],
        trainable_variables: Sequence[Any],
    ) -> tuple[list, list]:
        grads = list(grads)
        old_tv, old_ov = list(trainable_variables), list(optimizer_variables)
        scale = _loss_scale(self.optimizer)
        if scale is not None:  # its value is in `optimizer_variables`
            scale = old_ov[_index(self.optimizer.variables, scale)]
        squares, finite = self._own_squares(grads, scale)
        if frozen:
            new_tv, new_ov = old_tv, old_ov
        else:
            new_tv, new_ov = self._originals["stateless_apply"](old_ov, grads, old_tv)
            new_tv, new_ov = list(new_tv), list(new_ov)
        if self.clipper is not None:
            variables = self.optimizer.variables
            norms = new_ov[_index(variables, self.clipper.variable_norms)]
            total = new_ov[_index(variables, self.clipper.global_norm)]
            squares, finite = self._clipper_squares(norms, total, finite)
        stopped = ops.zeros((), "float32")
        if self.stop and not frozen:
            finite = ops.logical_and(finite, _all_finite(new_tv))
            new_tv = [
                ops.where(finite, n, o) for n, o in zip(new_tv, old_tv, strict=True)
            ]
            new_ov = [
                ops.where(finite, n, o) for n, o in zip(new_ov, old_ov, strict=True)
            ]
            stopped = ops.cast(ops.logical_not(finite), "float32")
        before, after = (old_tv, new_tv) if sampled else (None, None)
        step = figures(self.groups, squares, finite, before, after)
        step["stopped"] = stopped
        captured.append(step)
        return new_tv, new_ov

    def _own_squares(self, grads: list, scale: Any) -> tuple[Any, Any]:
        """Squared norms of the gradients the optimizer receives, unscaled."""
        if not self.own_check and not self.stop:
            return None, ops.array(True)
        squares = ops.stack(
            [ops.zeros((), "float32") if g is None else _sum_sq(g) for g in grads]
        )
        if scale is not None:
            squares = squares / ops.square(ops.cast(scale, "float32"))
        return squares, ops.isfinite(ops.sum(squares))

    def _clipper_squares(self, norms: Any, total: Any, finite: Any) -> tuple:
        """The clipper's records: global-batch, unscaled, before clipping."""
        finite = ops.logical_and(finite, ops.isfinite(total))
        return ops.square(norms), finite


def figures(
    groups: np.ndarray,
    squares: Any,
    finite: Any,
    before: Sequence[Any] | None,
    after: Sequence[Any] | None,
) -> dict[str, Any]:
    """One step's contribution to the sums (zero where not finite).

    Args:
        groups: `(layers, variables)` 0/1 matrix.
        squares: `(variables,)` squared gradient norms.
        finite: whether the step counts.
        before: the weights before the step, on sampled steps, else `None`.
        after: the weights after the step, on sampled steps, else `None`.
    """
    groups = ops.convert_to_tensor(groups)
    count = ops.cast(finite, "float32")
    squares = ops.where(finite, squares, 0.0)
    step = {
        "count": count,
        "norm": ops.sqrt(ops.sum(squares)),
        "layer_norms": ops.sqrt(ops.matmul(groups, squares)),
        "ratios": ops.zeros((groups.shape[0],), "float32"),
        "sampled": ops.zeros((), "float32"),
    }
    if before is not None and after is not None:
        delta = ops.stack([_sum_sq(a - b) for a, b in zip(after, before, strict=True)])
        weight = ops.stack([_sum_sq(b) for b in before])
        ratios = ops.sqrt(ops.matmul(groups, delta)) / ops.maximum(
            ops.sqrt(ops.matmul(groups, weight)), 1e-12
        )
        step["ratios"] = ops.where(finite, ratios, 0.0)
        step["sampled"] = count
    return step


def accumulate(values: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    """The epoch's sums after one more step (a pure function of both)."""
    return {
        "steps": values["steps"] + step["count"],
        "nonfinite": values["nonfinite"] + 1.0 - step["count"],
        "norm_sum": values["norm_sum"] + step["norm"],
        "norm_max": ops.maximum(values["norm_max"], step["norm"]),
        "layer_norm_sum": values["layer_norm_sum"] + step["layer_norms"],
        "ratio_sum": values["ratio_sum"] + step["ratios"],
        "ratio_steps": values["ratio_steps"] + step["sampled"],
        "stopped": ops.maximum(values["stopped"], step["stopped"]),
    }


def _accumulator(name: str, shape: tuple) -> keras.Variable:
    return keras.Variable(
        np.zeros(shape, "float32"),
        trainable=False,
        aggregation="only_first_replica",
        synchronization="on_read",
        name=f"gradient_monitor_{name}",
    )


def _anchored(grads: list, squares: Any, xla: bool) -> list:
    """`grads`, each times a factor that is exactly 1 but depends on `squares`.

    The update then waits for the norms: XLA computes each gradient's norm
    while the gradient is fresh instead of after the whole update, which
    re-reads every gradient (4x256 MLP: step 1.08-1.16x a plain one without
    this, 1.02x with). The factor is 1 for NaN and Inf norms too, so the
    update is bit for bit the one without the monitor. Without XLA, where
    it would be one more kernel per gradient, and for a sparse gradient
    (`IndexedSlices`), the gradients are passed as they are.
    """
    if squares is None or not xla:
        return grads
    import tensorflow as tf

    one = ops.where(ops.sum(squares) < 0, 0.0, 1.0)
    return [
        g
        if g is None or isinstance(g, tf.IndexedSlices)
        else g * ops.cast(one, g.dtype)
        for g in grads
    ]


def _sum_sq(x: Any) -> Any:
    return ops.sum(ops.square(ops.cast(x, "float32")))


def _all_finite(tensors: Sequence[Any]) -> Any:
    return ops.all(ops.stack([ops.all(ops.isfinite(t)) for t in tensors]))


def _index(variables: Sequence[keras.Variable], variable: keras.Variable) -> int:
    return next(i for i, v in enumerate(variables) if v is variable)


def _loss_scale(optimizer: Any) -> Any:
    """The scale of a `LossScaleOptimizer` in the chain, or `None`."""
    while optimizer is not None:
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return optimizer.dynamic_scale
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return None
