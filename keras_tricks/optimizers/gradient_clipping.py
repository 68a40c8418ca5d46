"""`GradientClipping`: clips the gradients of any Keras optimizer.

Built like `keras.optimizers.LossScaleOptimizer`: a `keras.optimizers.Optimizer`
that owns an inner one. The clipping itself is installed where Keras clips
(the innermost optimizer's clipping step), so it sees the gradients after
loss-scale unscaling and after gradient accumulation, and before decoupled
weight decay, which is applied to the weights and never clipped.
"""

import functools
import re
import threading
import warnings
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import keras
from keras import ops

from keras_tricks import _keras_compat
from keras_tricks._validation import (
    check_choice,
    check_number,
    check_patterns,
    invalid,
)
from keras_tricks.optimizers import _distribute, clipping

MODES = ("global_norm", "norm", "value", "adaptive", "normalize")
KERAS_CLIP_ARGUMENTS = ("clipnorm", "clipvalue", "global_clipnorm")
_BASE_DEFAULTS = {
    "learning_rate": None,
    "weight_decay": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


@keras.saving.register_keras_serializable(package="keras_tricks")
class GradientClipping(keras.optimizers.Optimizer):
    """Clips the gradients, then lets `inner_optimizer` apply them.

    Modes (g is the list of gradients, t is `threshold`):

    - `"global_norm"`: g <- g * t / ||g|| when ||g|| > t, with ||g|| the norm
      of all gradients together (Pascanu et al. 2013); keeps the direction.
    - `"norm"`: each gradient g_i <- g_i * t / ||g_i|| when ||g_i|| > t.
    - `"value"`: every entry clipped to [-t, t].
    - `"adaptive"`: unit-wise AGC (Brock et al. 2021): each output unit's
      gradient is at most t * max(||W_unit||, eps); use t around 0.01.
      Variables whose path matches a pattern in `exclude` are not clipped.
    - `"normalize"`: g <- t * g / ||g||, direction only (normalised GD).

    Unlike Keras's `clipnorm`/`global_clipnorm`, which clip each replica's
    gradient before the all-reduce under `tf.distribute`, the clipped
    quantity here is the gradient of the global batch. Clipping acts on the
    unscaled gradients whichever way round this wraps, or is wrapped by, a
    `LossScaleOptimizer`, and on the accumulated gradient with the inner
    optimizer's `gradient_accumulation_steps`.

    With `skip_nonfinite=True`, a step whose gradients hold NaN or Inf changes
    no weight and no optimizer slot; it is counted in `skipped_steps`. (With
    an inner `LossScaleOptimizer` the step is left to it, so that it lowers
    its loss scale, and still counted.)

    Recorded each update step, as non-trainable variables a callback can
    read: `global_norm` (pre-clip global norm), `variable_norms` (pre-clip
    norm per trainable variable, in the order of `model.trainable_variables`),
    `clipped_steps` and `skipped_steps`.

    Args:
        inner_optimizer: the `keras.optimizers.Optimizer` to wrap (without
            `clipnorm`, `clipvalue` or `global_clipnorm`).
        mode: one of `"global_norm"`, `"norm"`, `"value"`, `"adaptive"`,
            `"normalize"`. Defaults to `"global_norm"`.
        threshold: the positive threshold t. Defaults to `1.0`.
        skip_nonfinite: skip steps with NaN/Inf gradients. Defaults to `True`.
        exclude: variable-path patterns (regular expressions, `re.search`)
            left unclipped in `"adaptive"` mode, e.g. `["head"]`. Defaults to
            `None`.
        eps: the floor of a unit's weight norm in `"adaptive"` mode.
            Defaults to `1e-3`.
        name: the optimizer's name. Defaults to `None`.

    Raises:
        TypeError: if `inner_optimizer` is not a Keras optimizer.
        ValueError: for an unknown `mode`, `threshold <= 0`, `exclude` with
            another mode, or Keras clipping set on the wrapper or the inner
            optimizer.

    Example:

    >>> optimizer = GradientClipping(
    ...     keras.optimizers.SGD(0.1, momentum=0.9), threshold=1.0)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer, "mse")

    References:
        Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent
        neural networks", ICML 2013.
        Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image
        Recognition Without Normalization", ICML 2021.
    """

    def __init__(
        self,
        inner_optimizer: keras.optimizers.Optimizer,
        *,
        mode: str = "global_norm",
        threshold: float = 1.0,
        skip_nonfinite: bool = True,
        exclude: Sequence[str] | None = None,
        eps: float = 1e-3,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        _check_keras_arguments(kwargs)
        if not isinstance(inner_optimizer, keras.optimizers.Optimizer):
            raise invalid(
                "inner_optimizer",
                inner_optimizer,
                "a keras.optimizers.Optimizer instance",
                TypeError,
            )
        _check_inner(inner_optimizer)
        self_mode = check_choice("mode", mode, MODES)
        threshold = check_number("threshold", threshold, low=0, low_open=True)
        if not isinstance(skip_nonfinite, bool):
            raise invalid("skip_nonfinite", skip_nonfinite, "a bool", TypeError)
        if exclude is not None:
            if mode != "adaptive":
                raise invalid("exclude", exclude, "None unless mode='adaptive'")
            if isinstance(exclude, str) or not all(isinstance(p, str) for p in exclude):
                raise invalid("exclude", exclude, "a list of strings", TypeError)
            exclude = check_patterns("exclude", exclude)
        eps = check_number("eps", eps, low=0)
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.mode = self_mode
        self.threshold = threshold
        self.skip_nonfinite = skip_nonfinite
        self.exclude = exclude
        self.eps = eps
        # Python-side facts about the built variables, in a plain object so
        # that the optimizer's tracker does not collect the variables in it.
        self._layout = _Layout()
        # The graphs traced through `apply` are freed with this optimizer.
        weakref.finalize(
            self,
            _keras_compat.forget_custom_gradients,
            self._layout.custom_gradients,
        )

    def build(self, var_list: Sequence[keras.Variable]) -> None:
        n = len(var_list)
        self._global_norm = self._record((), "float32", "global_norm")
        self._variable_norms = self._record((n,), "float32", "variable_norms")
        self._clipped_steps = self._record((), "int", "clipped_steps")
        self._skipped_steps = self._record((), "int", "skipped_steps")
        pattern = re.compile("|".join(self.exclude)) if self.exclude else None
        self._layout.variables = list(var_list)
        self._layout.index = {id(v): i for i, v in enumerate(var_list)}
        self._layout.excluded = {
            id(v) for v in var_list if pattern is not None and pattern.search(v.path)
        }
        if not self.inner_optimizer.built:
            self.inner_optimizer.build(var_list)
        super().build(var_list)

    def _record(self, shape: tuple, dtype: str, name: str) -> keras.Variable:
        # One copy per replica, written without synchronisation: after the
        # all-reduce every replica computes the same values.
        # "int" is int64 on TensorFlow and int32 on JAX (without x64).
        dtype = keras.backend.standardize_dtype(dtype)
        return keras.Variable(
            ops.zeros(shape, dtype),
            dtype=dtype,
            trainable=False,
            aggregation="only_first_replica",
            synchronization="on_read",
            name=name,
        )

    @property
    def variables(self) -> list[keras.Variable]:
        own = list(self._variables)
        # The records are tracked when set in `build`, except when Keras builds
        # this optimizer without tracking (inside a LossScaleOptimizer's build).
        records = [
            record
            for name in ("_global_norm", "_variable_norms", "_clipped_steps")
            + ("_skipped_steps",)
            if (record := getattr(self, name, None)) is not None
            and all(record is not v for v in own)
        ]
        return own + records + self.inner_optimizer.variables

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets the values of `variables`: this wrapper's and the inner optimizer's.

        Args:
            weights: one array per entry of `optimizer.variables`, in order
                (what `[v.numpy() for v in other.variables]` gives).

        Raises:
            ValueError: if the optimizer is not built, or `weights` does not
                match `variables` in length or shapes.
        """
        if not self.built:
            raise ValueError(
                "GradientClipping must be built before `set_weights`: call "
                "`optimizer.build(model.trainable_variables)` first."
            )
        variables = self.variables
        if len(weights) != len(variables):
            raise invalid(
                "weights",
                weights,
                f"one array per optimizer variable ({len(variables)}, the "
                "wrapper's own then the inner optimizer's)",
            )
        for variable, weight in zip(variables, weights, strict=True):
            if tuple(variable.shape) != tuple(ops.shape(weight)):
                raise invalid(
                    "weights",
                    weights,
                    f"an array of shape {tuple(variable.shape)} for `{variable.path}`",
                )
            variable.assign(weight)

    @property
    def global_norm(self) -> keras.Variable:
        """Pre-clip global gradient norm of the last step (NaN/Inf if skipped)."""
        return self._global_norm

    @property
    def variable_norms(self) -> keras.Variable:
        """Pre-clip gradient norm of each trainable variable, last step."""
        return self._variable_norms

    @property
    def clipped_steps(self) -> keras.Variable:
        """Number of update steps on which clipping changed the gradient."""
        return self._clipped_steps

    @property
    def skipped_steps(self) -> keras.Variable:
        """Number of steps skipped for NaN or Inf gradients."""
        return self._skipped_steps

    def scale_loss(self, loss: Any) -> Any:
        # The trainer scales the loss with the model's optimizer before it
        # applies the gradients; a loss-scaled inner chain needs to know that
        # it was this call, not another LossScaleOptimizer's, that scaled it.
        self._layout.loss_scaled_here = True
        if keras.backend.backend() == "tensorflow" and loss is not None:
            # The loss joins the skip decision of the `apply` traced next in
            # this thread (on JAX the loss is a value of the gradient
            # transform, not of the step, and the gradients decide alone).
            self._layout.losses[threading.get_ident()] = loss
        return self.inner_optimizer.scale_loss(loss)

    def apply(
        self,
        grads: Sequence[Any],
        trainable_variables: Sequence[keras.Variable] | None = None,
    ) -> None:
        grads = list(grads)
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "GradientClipping must be built before `apply(grads)` "
                    "without variables: call `optimizer.build(variables)`."
                )
            trainable_variables = self._layout.variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            with keras.name_scope(self.name):
                self.build(trainable_variables)
        # Taken in every step, so that no earlier trace's loss lingers.
        loss = self._layout.step_loss()
        loss_scaled = _loss_scaled(self.inner_optimizer)
        if loss_scaled and not self._layout.loss_scaled_here:
            raise _double_loss_scaling_error(self.inner_optimizer)
        grads = _distribute.all_reduce_mean(grads)
        # What Keras passes on to its clipping step: no `None` gradient, no
        # `overwrite_with_gradient` variable (float8 scales: new values, not
        # gradients), in order.
        clipped = [
            (g, v)
            for g, v in zip(grads, trainable_variables, strict=True)
            if g is not None and not getattr(v, "overwrite_with_gradient", False)
        ]
        squares = {}
        if self.skip_nonfinite and not loss_scaled:
            # The finiteness test: one reduction per gradient, which XLA
            # fuses into the ops that produce the gradients.
            squares = {id(g): clipping.sum_squares(g) for g, _ in clipped}
        hook = functools.partial(self._clip_hook, [v for _, v in clipped])
        inner = self.inner_optimizer
        self._layout.applies += 1
        with (
            _keras_compat.recording_custom_gradients(self._layout.custom_gradients),
            _keras_compat.clipping_replaced(_innermost(inner), hook),
        ):
            if not self.skip_nonfinite:
                inner.apply(grads, trainable_variables)
            elif loss_scaled:
                # The LossScaleOptimizer must see the step to lower its scale.
                finite = _finite(grads)
                inner.apply(grads, trainable_variables)
                self._count_skipped(finite)
            else:
                total = _sum([squares[id(g)] for g, _ in clipped])
                others = [
                    g
                    for g, v in zip(grads, trainable_variables, strict=True)
                    if g is not None and getattr(v, "overwrite_with_gradient", False)
                ]
                finite = ops.isfinite(total)
                if others:
                    finite = ops.logical_and(finite, _finite(others))
                # Every replica takes part in the vote, whatever it recorded.
                loss_finite = ops.array(True) if loss is None else ops.isfinite(loss)
                finite = ops.logical_and(
                    finite, _distribute.on_every_replica(ops.all(loss_finite))
                )
                if self._layout.guarded:
                    # For SkipNonFinite, tracing the same step in this thread.
                    self._layout.decisions[threading.get_ident()] = finite
                _distribute.apply_if(
                    finite,
                    inner.apply,
                    args=(grads, trainable_variables),
                    variables=[*trainable_variables, *self.variables],
                )
                self._record_skip(finite, clipped, squares)
        self._check_hook_called(inner, bool(clipped))

    def _check_hook_called(self, inner: Any, any_gradient: bool) -> None:
        """Raises if Keras never called the clipping step: nothing was clipped.

        Keras's optimizer calls its clipping step in every update it traces or
        runs; with gradient accumulation an eager step may only accumulate, so
        the first `gradient_accumulation_steps` calls are given time.
        """
        if self._layout.hook_calls or not any_gradient:
            return
        accumulation = max(
            getattr(m, "gradient_accumulation_steps", None) or 1 for m in _chain(inner)
        )
        if self._layout.applies < accumulation:
            return
        raise RuntimeError(
            f"GradientClipping did not clip: Keras {keras.__version__} did not "
            "call the optimizer's clipping step (`Optimizer._clip_gradients`), "
            "where GradientClipping clips. keras_tricks "
            f"was written for Keras {_keras_compat.CHECKED_WITH}; install a Keras "
            "in the range keras_tricks declares, or report the version."
        )

    def _record_skip(self, finite: Any, clipped: list, squares: dict) -> None:
        """If not `finite`: counts a skipped step and records its norms."""
        skipped = ops.logical_not(finite)
        self._skipped_steps.assign_add(ops.cast(skipped, self._skipped_steps.dtype))
        self._write_norms(
            [v for _, v in clipped], [squares[id(g)] for g, _ in clipped], skipped
        )

    def _count_skipped(self, finite: Any) -> None:
        skipped = ops.logical_not(finite)
        self._skipped_steps.assign_add(ops.cast(skipped, self._skipped_steps.dtype))
        self._global_norm.assign(
            ops.where(skipped, float("nan"), self._global_norm.value)
        )

    def _per_variable(self, variables: list, values: list) -> Any:
        """`values` of `variables` placed in the order the optimizer was built."""
        per_variable = [ops.zeros((), "float32")] * len(self._layout.variables)
        for variable, value in zip(variables, values, strict=True):
            per_variable[self._layout.index[id(variable)]] = value
        return ops.stack(per_variable)

    def _write_norms(self, variables: list, squares: list, only_if: Any = None) -> Any:
        """Records the per-variable and global norms (only where `only_if`,
        when given); returns the global one."""
        total = ops.sqrt(_sum(squares))
        norms = self._per_variable(variables, [ops.sqrt(s) for s in squares])
        for record, value in (
            (self._global_norm, total),
            (self._variable_norms, norms),
        ):
            if only_if is not None:
                value = ops.where(only_if, value, record.value)
            record.assign(value)
        return total

    def _clip_hook(self, variables: list, grads: list) -> list:
        """Keras's clipping step, replaced: clips `grads` (of `variables`)."""
        self._layout.hook_calls += 1
        if len(grads) != len(variables):
            raise RuntimeError(
                f"GradientClipping expected {len(variables)} gradients in the "
                f"inner optimizer's clipping step and received {len(grads)}: "
                f"Keras {keras.__version__} passes them differently from "
                f"{_keras_compat.CHECKED_WITH}, for which it was written."
            )
        n = _distribute.replicas()
        if n > 1:
            # Each replica holds the mean of the replicas' gradients; the
            # gradient of the global batch is their sum, n times as large.
            grads = [g * n for g in grads]
        # The norms are those of the gradients Keras clips (unscaled,
        # accumulated); where they are the tensors the finiteness test
        # reduced, XLA computes each reduction once.
        if self.mode == "adaptive":
            clipped, changed, squares = self._adaptive(grads, variables)
            total = self._write_norms(variables, squares)
        else:
            squares = [clipping.sum_squares(g) for g in grads]
            total = self._write_norms(variables, squares)
            clipped, changed = self._clip(grads, squares, total)
        # With a LossScaleOptimizer inside, or `skip_nonfinite=False`, a
        # non-finite step comes through here: it is not a clipped one.
        changed = ops.logical_and(changed, ops.isfinite(total))
        self._clipped_steps.assign_add(ops.cast(changed, self._clipped_steps.dtype))
        if n > 1:
            clipped = [g / n for g in clipped]
        return clipped

    def _clip(self, grads: list, squares: list, total: Any) -> tuple:
        t = self.threshold
        if self.mode == "global_norm":
            return clipping.scale_to_norm(grads, total, t), total > t
        if self.mode == "norm":
            norms = [ops.sqrt(s) for s in squares]
            return clipping.clip_each(grads, norms, t), ops.any(ops.stack(norms) > t)
        if self.mode == "value":
            peak = ops.max(ops.stack([ops.max(ops.abs(g)) for g in grads]))
            return clipping.clip_by_value(grads, t), ops.cast(peak, "float32") > t
        changed = ops.logical_and(total > 0, ops.not_equal(total, t))
        scale = ops.where(total > 0, t / ops.maximum(total, clipping._TINY), 1.0)
        return [g * ops.cast(scale, g.dtype) for g in grads], changed

    def _adaptive(self, grads: list, variables: list) -> tuple:
        """AGC of every gradient not excluded; squared norms from its unit norms."""
        out, flags, squares = [], [], []
        for g, v in zip(grads, variables, strict=True):
            if id(v) in self._layout.excluded:
                # A new tensor, not the captured input: inside a `cond`
                # branch, TensorFlow's all-reduce wants every gradient from
                # the branch's graph.
                out.append(ops.copy(g))
                squares.append(clipping.sum_squares(g))
                continue
            g, flag, unit_norms = clipping.adaptive_unit_with_norms(
                g, v, self.threshold, self.eps
            )
            out.append(g)
            flags.append(flag)
            squares.append(ops.sum(ops.square(unit_norms)))
        changed = ops.any(ops.stack(flags)) if flags else ops.array(False)
        return out, changed, squares

    @property
    def learning_rate(self) -> Any:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self) -> Any:
        return self.inner_optimizer.iterations

    def finalize_variable_values(self, var_list: Sequence[keras.Variable]) -> None:
        # Keras calls this at the end of every `fit`.
        self.inner_optimizer.finalize_variable_values(var_list)
        self._warn_if_unguarded_skip()

    def _warn_if_unguarded_skip(self) -> None:
        """Warns once if steps were skipped without `SkipNonFinite`."""
        layout = self._layout
        if not self.built or layout.warned or layout.guarded:
            return
        try:
            skipped = int(ops.convert_to_numpy(self._skipped_steps.value))
        except TypeError:
            # JAX calls this also for a `fit` that failed before the state
            # came back to the variables (they hold no value then).
            return
        if skipped == 0:
            return
        layout.warned = True
        warnings.warn(
            f"GradientClipping skipped {skipped} step(s) with non-finite "
            "gradients. The weights and optimizer slots are as if those "
            "batches were absent, but layer statistics (BatchNormalization's "
            "moving mean and variance), the logged loss and the metrics still "
            "include them. Add `keras_tricks.callbacks.SkipNonFinite()` to the "
            "callbacks of `fit` to skip those too.",
            stacklevel=2,
        )

    def get_config(self) -> dict[str, Any]:
        # Like LossScaleOptimizer: the base optimizer's own arguments
        # (learning rate, weight decay, ...) belong to the inner optimizer.
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(
                self.inner_optimizer
            ),
            "mode": self.mode,
            "threshold": self.threshold,
            "skip_nonfinite": self.skip_nonfinite,
            "exclude": self.exclude,
            "eps": self.eps,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None
    ) -> "GradientClipping":
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner, **config)


class _Layout:
    """What `build` learnt about the variables (not tracked by Keras)."""

    def __init__(self) -> None:
        self.variables: list = []
        self.index: dict[int, int] = {}
        self.excluded: set[int] = set()
        self.loss_scaled_here = False
        self.custom_gradients: list[str] = []
        self.hook_calls = 0
        self.applies = 0
        self.warned = False
        # Whether a `SkipNonFinite` callback guards the current `fit`.
        self.guarded = False
        # The loss `scale_loss` saw last, and the last step's skip decision,
        # per thread (TensorFlow).
        self.losses: dict[int, Any] = {}
        self.decisions: dict[int, Any] = {}

    def step_loss(self) -> Any:
        """The loss of the step being traced in this thread, or `None`.

        A loss recorded in another graph (an earlier trace) is not this
        step's: it is dropped.
        """
        loss = self.losses.pop(threading.get_ident(), None)
        if loss is None or keras.backend.backend() != "tensorflow":
            return None
        import tensorflow as tf

        graph = getattr(loss, "graph", None)
        if graph is not None and graph is not tf.compat.v1.get_default_graph():
            return None
        return loss


def _check_keras_arguments(kwargs: dict[str, Any]) -> None:
    for argument in KERAS_CLIP_ARGUMENTS:
        if kwargs.get(argument) is not None:
            raise invalid(
                argument,
                kwargs[argument],
                "None on GradientClipping",
                fix="Choose the clipping with `mode` and `threshold` instead",
            )
        kwargs.pop(argument, None)
    for argument, default in _BASE_DEFAULTS.items():
        if argument in kwargs and kwargs.pop(argument) != default:
            raise ValueError(
                f"GradientClipping does not take `{argument}`: set it on the "
                "inner optimizer."
            )
    if kwargs:
        raise ValueError(
            f"GradientClipping does not take argument(s) {sorted(kwargs)}."
        )


def _chain(optimizer: Any) -> Iterator[Any]:
    """`optimizer` and the optimizers it wraps, outermost first."""
    while optimizer is not None:
        yield optimizer
        optimizer = getattr(optimizer, "inner_optimizer", None)


def _check_inner(optimizer: keras.optimizers.Optimizer) -> None:
    """Validates the wrapped chain."""
    chain = list(_chain(optimizer))
    for member in chain:
        if isinstance(member, GradientClipping):
            raise invalid(
                "inner_optimizer",
                optimizer,
                "an optimizer that is not already a GradientClipping",
            )
        for argument in KERAS_CLIP_ARGUMENTS:
            value = getattr(member, argument, None)
            if value is not None:
                raise invalid(
                    "inner_optimizer",
                    optimizer,
                    "an optimizer without clipnorm, clipvalue or global_clipnorm "
                    f"({type(member).__name__} has {argument}={value})",
                    fix="It would clip twice, and per replica under "
                    "tf.distribute; remove it and set `mode`/`threshold`",
                )


def _innermost(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer at the end of the `inner_optimizer` chain: it clips."""
    return list(_chain(optimizer))[-1]


def _loss_scaled(optimizer: keras.optimizers.Optimizer) -> bool:
    return any(
        isinstance(m, keras.optimizers.LossScaleOptimizer) for m in _chain(optimizer)
    )


def _finite(grads: Sequence[Any]) -> Any:
    return ops.all(
        ops.stack([ops.all(ops.isfinite(g)) for g in grads if g is not None])
    )


def _sum(values: Sequence[Any]) -> Any:
    if not values:
        return ops.zeros((), "float32")
    return ops.sum(ops.stack(values))


def _double_loss_scaling_error(inner: keras.optimizers.Optimizer) -> ValueError:
    return ValueError(
        f"GradientClipping wraps a LossScaleOptimizer (inner optimizer: "
        f"{type(inner).__name__}) but its `scale_loss` was not called before "
        "`apply`: another "
        "optimizer scaled the loss, and the gradients would be unscaled twice. "
        "Under the 'mixed_float16' dtype policy, `model.compile` wraps the "
        "optimizer in a LossScaleOptimizer of its own: pass "
        "`GradientClipping(<optimizer>)` without the LossScaleOptimizer and "
        "let `compile` add it (GradientClipping then clips the unscaled "
        "gradients), or compile with `auto_scale_loss=False`. In a custom "
        "training loop, scale the loss with this optimizer's `scale_loss`."
    )
