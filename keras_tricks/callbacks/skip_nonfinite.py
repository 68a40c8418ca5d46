"""`SkipNonFinite`: a batch whose loss or gradients are not finite leaves no trace."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_tricks import _keras_compat
from keras_tricks.callbacks._base import TrainingCallback
from keras_tricks.optimizers import _distribute
from keras_tricks.optimizers.gradient_clipping import GradientClipping, _chain

LossScaleOptimizer = keras.optimizers.LossScaleOptimizer

SKIPPED_KEY = "keras_tricks_skipped"
"""Logs key of a JAX step's skip flag (removed before Keras sees the logs)."""


@keras.saving.register_keras_serializable(package="keras_tricks")
class SkipNonFinite(TrainingCallback):
    """Skips every training step whose loss or gradients hold NaN or Inf.

    A skipped step leaves the run exactly as if its batch were not in the
    data: the trainable and non-trainable variables (`BatchNormalization`
    moving statistics, dropout's random state, any layer's state), the
    optimizer's variables and `iterations`, the loss and every compiled
    metric (the epoch's logs are means over the steps that happened, so
    `TerminateOnNaN` and `EarlyStopping` see finite values). The epoch's logs
    gain `skipped_steps`, the number of the epoch's steps that were skipped;
    the attribute `skipped_steps` counts them over the whole `fit`.
    It is the model-level counterpart of Keras's `TerminateOnNaN`: that one
    ends the run at the first NaN, this one carries on without the batch.

    How: for the duration of the `fit`, the model's train step runs inside a
    step of this callback's (made once with Keras's `make_train_function`).
    The step's decision is `isfinite(loss) and isfinite(gradients)`, all
    replicas agreeing. The optimizer's update runs only if the step is kept
    (a `cond` on TensorFlow; on JAX every new value is selected against the
    old one), and the model's non-trainable and metric variables written in
    the forward pass are put back when it is not. With
    `GradientClipping(skip_nonfinite=True)` as the model's optimizer, the
    wrapper's own decision is reused and only the (small) non-trainable and
    metric variables are restored. Under a `LossScaleOptimizer` (mixed
    precision) a non-finite gradient with a finite loss is an overflow of the
    loss scale, which the `LossScaleOptimizer` handles; only a non-finite
    loss skips the step.

    Raises at the start of `fit` (`ValueError`) where the guarantee cannot be
    given: with `GradientMonitor` in the same `fit` (it has its own
    `stop_on_nonfinite`), and on JAX with `steps_per_execution > 1`.

    Example:

    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = x.sum(axis=1, keepdims=True)
    >>> x[5, 0] = np.nan  # one bad row: its batch is skipped
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.1), "mse")
    >>> history = model.fit(x, y, batch_size=16, epochs=1, verbose=0,
    ...                     callbacks=[SkipNonFinite()])
    >>> history.history["skipped_steps"]
    [1]
    >>> bool(np.isfinite(history.history["loss"][0]))
    True

    Reference:
        Micikevicius et al., "Mixed Precision Training", ICLR 2018 (skipping
        the update of a step with non-finite gradients).
    """

    def __init__(self) -> None:
        super().__init__()
        self._guard: _Guard | None = None
        self._armed = False

    def reset_state(self) -> None:
        self.skipped_steps = 0
        self._skipped_device: Any = 0
        # Skips counted by guards this `fit` used before the current one.
        self._counted = 0

    def get_config(self) -> dict[str, Any]:
        return {}

    # -- set-up and tear-down ----------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        from keras_tricks.callbacks.gradient_monitor import GradientMonitor

        model = self.model
        if any(isinstance(p, GradientMonitor) for p in self._peers()):
            raise ValueError(
                "SkipNonFinite and GradientMonitor cannot share a `fit`: both "
                "run the train step inside their own. Use one of them (or "
                "GradientMonitor(stop_on_nonfinite=True))."
            )
        if keras.backend.backend() not in ("tensorflow", "jax"):
            raise ValueError(
                "SkipNonFinite supports the TensorFlow and JAX backends. "
                f"Current backend: {keras.backend.backend()}"
            )
        if keras.backend.backend() == "jax" and model.steps_per_execution > 1:
            raise ValueError(
                "SkipNonFinite on the JAX backend needs steps_per_execution=1 "
                f"(the model was compiled with {model.steps_per_execution}): "
                "it counts the skipped steps from each step's logs."
            )
        for member in _chain(model.optimizer):
            if isinstance(member, GradientClipping):
                member._layout.guarded = True
        self._restore()  # left installed by a `fit` that raised
        self._guard = None

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.model.train_function != self._dispatch:
            self._install()
        self._armed = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.last_epoch = epoch
        before = self.skipped_steps
        if self._guard is not None and self._guard.counter is not None:
            self.skipped_steps = self._counted + int(
                ops.convert_to_numpy(self._guard.counter.value)
            )
        else:
            self.skipped_steps = int(np.asarray(self._skipped_device))
        if logs is not None:
            logs["skipped_steps"] = self.skipped_steps - before

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_end(logs)
        self._restore()
        for member in _chain(getattr(self.model, "optimizer", None)):
            if isinstance(member, GradientClipping):
                member._layout.guarded = False

    def _install(self) -> None:
        """Puts the dispatcher in the model's `train_function`, with the
        model's guard for its current train function (made once, kept on the
        model like Keras keeps `train_function`)."""
        model = self.model
        other = getattr(model.train_function, "__self__", None)
        if isinstance(other, SkipNonFinite):
            other._restore()  # another one's, left by a `fit` that raised
        guard = model.__dict__.get(_GUARD)
        if guard is None or not guard.serves(model):
            guard = _Guard(model)
            model.__dict__[_GUARD] = guard
        if self._guard is not None and self._guard.counter is not None:
            # A new guard in the middle of a `fit` (the model's train
            # function was made again): keep the count so far.
            self._counted += int(ops.convert_to_numpy(self._guard.counter.value))
        if guard.counter is not None:
            guard.counter.assign(0)
        self._guard = guard
        model.train_function = self._dispatch

    def _restore(self) -> None:
        model = self.model
        if (
            model is not None
            and self._guard is not None
            and model.train_function == self._dispatch
        ):
            model.train_function = self._guard.plain

    def _dispatch(self, *args: Any) -> Any:
        """`model.train_function` during the `fit`."""
        guard = self._guard
        if not self._armed or guard is None:
            # Called by a `fit` this callback is not part of.
            self._restore()
            return self.model.train_function(*args)
        self._armed = False
        if keras.backend.backend() != "jax":
            return guard.guarded(*args)
        logs, state = guard.guarded(*args)
        logs = dict(logs)
        self._skipped_device = self._skipped_device + logs.pop(SKIPPED_KEY)
        return logs, state


_GUARD = "_keras_tricks_skip_guard"
"""The model attribute holding its guard (a plain object, untracked by Keras)."""


class _Guard:
    """The guarded train function of one model's current train function.

    Made with Keras's `make_train_function` while the model's `train_step` is
    this object's step (an attribute of the user's model for that one call).
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.plain = model.train_function
        self.optimizer = model.optimizer
        self.reuse = _reusable_clipper(model.optimizer)
        self.original_step = model.train_step
        self.counter: keras.Variable | None = None
        jax = keras.backend.backend() == "jax"
        if not jax:
            strategy = getattr(model, "distribute_strategy", None)
            with strategy.scope() if strategy else contextlib.nullcontext():
                self.counter = keras.Variable(
                    0,
                    dtype="int64",
                    trainable=False,
                    aggregation="only_first_replica",
                    synchronization="on_read",
                    name="skip_nonfinite_skipped",
                )
        step = self._jax_step if jax else self._tf_step
        try:
            with _keras_compat.patched(model, "train_step", step):
                model.make_train_function(force=True)
            self.guarded = model.train_function
        finally:
            model.train_function = self.plain

    def serves(self, model: keras.Model) -> bool:
        """Whether this guard wraps `model`'s current train function."""
        return model.train_function is self.plain and model.optimizer is self.optimizer

    def _tf_step(self, data: Any) -> Any:
        model = self.model
        optimizer = model.optimizer
        restored = [*model.non_trainable_variables, *model.metrics_variables]
        old = [ops.copy(v.value) for v in restored]
        if self.reuse is not None:
            if not self.reuse.built:  # as its `apply` would, first
                with keras.name_scope(self.reuse.name):
                    self.reuse.build(model.trainable_variables)
            decisions = self.reuse._layout.decisions
            decisions.pop(threading.get_ident(), None)
            logs = self.original_step(data)
            # The wrapper's own decision, traced in this step and thread
            # (none without an update step: the loss alone decides).
            keep = decisions.pop(threading.get_ident(), None)
            if keep is None:
                keep = _distribute.on_every_replica(_loss_finite(logs))
        else:
            decision: dict[str, Any] = {}
            with (
                _keras_compat.patched(
                    optimizer, "scale_loss", _recording(optimizer, decision)
                ),
                _keras_compat.patched(
                    optimizer, "apply", _guarded_apply(optimizer, decision)
                ),
            ):
                logs = self.original_step(data)
            keep = decision.get("keep")
            if keep is None:  # no update step: the loss alone decides
                keep = _distribute.on_every_replica(_loss_finite(logs))
        for variable, value in zip(restored, old, strict=True):
            variable.assign(ops.where(keep, variable.value, value))
        if self.counter is not None:
            self.counter.assign_add(ops.cast(ops.logical_not(keep), "int64"))
        return {**logs, **model.get_metrics_result()}

    def _jax_step(self, state: Sequence[Any], data: Any) -> Any:
        model = self.model
        optimizer = model.optimizer
        decision: dict[str, Any] = {}
        original = optimizer.stateless_apply
        check_grads = not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

        def observed(optimizer_variables: Any, grads: Any, variables: Any) -> Any:
            if check_grads:
                decision["grads"] = _all_finite(grads)
            return original(optimizer_variables, grads, variables)

        with _keras_compat.patched(optimizer, "stateless_apply", observed):
            logs, new_state = self.original_step(state, data)
        keep = _loss_finite(logs)
        if "grads" in decision:
            keep = ops.logical_and(keep, decision["grads"])
        records = {id(v) for v in _records(optimizer)}
        trainable, non_trainable, optimizer_values, metrics = keras.tree.map_structure(
            lambda new, old: ops.where(keep, new, old), new_state, tuple(state)
        )
        optimizer_values = [
            new if id(v) in records else value
            for v, new, value in zip(
                optimizer.variables, new_state[2], optimizer_values, strict=True
            )
        ]
        new_state = (trainable, non_trainable, optimizer_values, metrics)
        mapping = list(zip(model.metrics_variables, new_state[3], strict=True))
        with keras.StatelessScope(state_mapping=mapping):
            results = model.get_metrics_result()
        skipped = ops.cast(ops.logical_not(keep), "int32")
        return {**logs, **results, SKIPPED_KEY: skipped}, new_state


def _reusable_clipper(optimizer: Any) -> GradientClipping | None:
    """The model's optimizer if it is a `GradientClipping` whose skip decision
    covers the whole update (outermost, `skip_nonfinite=True`, no
    `LossScaleOptimizer` inside), else `None` (TensorFlow; on JAX the state is
    selected as a whole anyway)."""
    if (
        keras.backend.backend() == "tensorflow"
        and isinstance(optimizer, GradientClipping)
        and optimizer.skip_nonfinite
        and not any(
            isinstance(m, keras.optimizers.LossScaleOptimizer)
            for m in _chain(optimizer)
        )
    ):
        return optimizer
    return None


def _records(optimizer: Any) -> list[keras.Variable]:
    """The recording variables of the `GradientClipping`s in the chain.

    They describe the steps tried (`skipped_steps` counts the skipped ones),
    so a skipped step keeps what it wrote there.
    """
    return [
        variable
        for member in _chain(optimizer)
        if isinstance(member, GradientClipping) and member.built
        for variable in (
            member.global_norm,
            member.variable_norms,
            member.clipped_steps,
            member.skipped_steps,
        )
    ]


def _recording(optimizer: Any, decision: dict[str, Any]) -> Callable:
    """`optimizer.scale_loss`, noting the loss for the step's decision."""
    original = optimizer.scale_loss

    def scale_loss(loss: Any) -> Any:
        if loss is not None:
            decision["loss"] = ops.isfinite(loss)
        return original(loss)

    return scale_loss


def _guarded_apply(optimizer: Any, decision: dict[str, Any]) -> Callable:
    """`optimizer.apply`, run only if the loss and the gradients are finite.

    Under a `LossScaleOptimizer` the gradients are scaled, and a non-finite
    one is the loss scale's overflow, for it to handle: the loss decides.
    """
    original = optimizer.apply
    check_grads = not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def apply(grads: Sequence[Any], trainable_variables: Any = None) -> Any:
        grads = list(grads)
        keep = decision.get("loss", ops.array(True))
        if check_grads:
            keep = ops.logical_and(keep, _all_finite(grads))
        keep = _distribute.on_every_replica(keep)
        decision["keep"] = keep
        variables = list(trainable_variables or [])
        _distribute.apply_if(
            keep,
            original,
            (grads, trainable_variables),
            [*variables, *optimizer.variables],
        )

    return apply


def _loss_finite(logs: Any) -> Any:
    """Whether the step's logged loss is finite (`True` if none is logged).

    The logged loss is the mean over the epoch's kept steps and this one;
    the kept steps are finite, so it is finite exactly when this step's is.
    """
    if isinstance(logs, dict) and "loss" in logs:
        return ops.all(ops.isfinite(logs["loss"]))
    return ops.array(True)


def _all_finite(tensors: Sequence[Any]) -> Any:
    # A sparse gradient (TensorFlow's IndexedSlices) is checked by its values.
    present = [getattr(t, "values", t) for t in tensors if t is not None]
    if not present:
        return ops.array(True)
    return ops.all(ops.stack([ops.all(ops.isfinite(t)) for t in present]))
