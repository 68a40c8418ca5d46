"""`GradientClipping`: clips the gradients of any Keras optimizer.

Built like `keras.optimizers.LossScaleOptimizer`: a `keras.optimizers.Optimizer`
that owns an inner one. The clipping itself is installed where Keras clips
(the innermost optimizer's clipping step), so it sees the gradients after
loss-scale unscaling and after gradient accumulation, and before decoupled
weight decay, which is applied to the weights and never clipped.
"""

import re

import keras
from keras import ops

from keras_tricks._validation import check_choice, check_number, invalid
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
        inner_optimizer,
        *,
        mode="global_norm",
        threshold=1.0,
        skip_nonfinite=True,
        exclude=None,
        eps=1e-3,
        name=None,
        **kwargs,
    ):
        _check_keras_arguments(kwargs)
        if not isinstance(inner_optimizer, keras.optimizers.Optimizer):
            raise invalid(
                "inner_optimizer",
                inner_optimizer,
                "a keras.optimizers.Optimizer instance",
                TypeError,
            )
        innermost = _check_inner(inner_optimizer)
        self_mode = check_choice("mode", mode, MODES)
        threshold = check_number("threshold", threshold, low=0, low_open=True)
        if not isinstance(skip_nonfinite, bool):
            raise invalid("skip_nonfinite", skip_nonfinite, "a bool", TypeError)
        if exclude is not None:
            if mode != "adaptive":
                raise invalid("exclude", exclude, "None unless mode='adaptive'")
            if isinstance(exclude, str) or not all(isinstance(p, str) for p in exclude):
                raise invalid("exclude", exclude, "a list of strings", TypeError)
            exclude = list(exclude)
        eps = check_number("eps", eps, low=0)
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.mode = self_mode
        self.threshold = threshold
        self.skip_nonfinite = skip_nonfinite
        self.exclude = exclude
        self.eps = eps
        self._pattern = re.compile("|".join(exclude)) if exclude else None
        # The variables of the gradients in flight, for the clipping hook;
        # held in a plain object so that the optimizer does not track them.
        self._pending = _Pending()
        # Clip where Keras clips: after unscaling and gradient accumulation.
        innermost._clip_gradients = self._clip_hook

    def build(self, var_list):
        n = len(var_list)
        self._global_norm = self._record((), "float32", "global_norm")
        self._variable_norms = self._record((n,), "float32", "variable_norms")
        self._clipped_steps = self._record((), "int64", "clipped_steps")
        self._skipped_steps = self._record((), "int64", "skipped_steps")
        self._excluded = [
            bool(self._pattern and self._pattern.search(v.path)) for v in var_list
        ]
        if not self.inner_optimizer.built:
            self.inner_optimizer.build(var_list)
        super().build(var_list)

    def _record(self, shape, dtype, name):
        # One copy per replica, written without synchronisation: after the
        # all-reduce every replica computes the same values.
        return keras.Variable(
            ops.zeros(shape, dtype),
            dtype=dtype,
            trainable=False,
            aggregation="only_first_replica",
            synchronization="on_read",
            name=name,
        )

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    @property
    def global_norm(self):
        """Pre-clip global gradient norm of the last update step."""
        return self._global_norm

    @property
    def variable_norms(self):
        """Pre-clip gradient norm of each trainable variable, last update step."""
        return self._variable_norms

    @property
    def clipped_steps(self):
        """Number of update steps on which clipping changed the gradient."""
        return self._clipped_steps

    @property
    def skipped_steps(self):
        """Number of steps skipped for NaN or Inf gradients."""
        return self._skipped_steps

    def apply(self, grads, trainable_variables=None):
        grads = list(grads)
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "GradientClipping must be built before `apply(grads)` "
                    "without variables: call `optimizer.build(variables)`."
                )
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            with keras.name_scope(self.name):
                self.build(trainable_variables)
        grads = _distribute.all_reduce_mean(grads)
        self._pending.variables = [
            v for g, v in zip(grads, trainable_variables, strict=True) if g is not None
        ]
        if not self.skip_nonfinite or _loss_scaled(self.inner_optimizer):
            if self.skip_nonfinite:
                self._skipped_steps.assign_add(
                    ops.cast(ops.logical_not(_finite(grads)), "int64")
                )
            self.inner_optimizer.apply(grads, trainable_variables)
            return
        _distribute.apply_if(
            _finite(grads),
            self.inner_optimizer.apply,
            self._count_skipped,
            args=(grads, trainable_variables),
        )

    def _count_skipped(self):
        self._skipped_steps.assign_add(1)

    def _clip_hook(self, grads):
        variables = self._pending.variables
        if variables is None or len(variables) != len(grads):
            raise RuntimeError(
                "GradientClipping received gradients it cannot match to "
                "variables: call `apply` on the GradientClipping optimizer, "
                "not on its inner optimizer."
            )
        n = _distribute.replicas()
        if n > 1:
            grads = [g * n for g in grads]
        norms = clipping.tensor_norms(grads)
        total = clipping.combine_norms(norms)
        clipped, changed = self._clip(grads, variables, norms, total)
        index = {id(v): i for i, v in enumerate(self._trainable_variables)}
        per_variable = [ops.zeros((), "float32")] * len(self._trainable_variables)
        for v, norm in zip(variables, norms, strict=True):
            per_variable[index[id(v)]] = norm
        self._global_norm.assign(total)
        self._variable_norms.assign(ops.stack(per_variable))
        self._clipped_steps.assign_add(ops.cast(changed, "int64"))
        if n > 1:
            clipped = [g / n for g in clipped]
        return clipped

    def _clip(self, grads, variables, norms, total):
        t = self.threshold
        if self.mode == "global_norm":
            return clipping.scale_to_norm(grads, total, t), total > t
        if self.mode == "norm":
            return clipping.clip_each(grads, norms, t), ops.any(ops.stack(norms) > t)
        if self.mode == "value":
            peak = ops.max(ops.stack([ops.max(ops.abs(g)) for g in grads]))
            return clipping.clip_by_value(grads, t), ops.cast(peak, "float32") > t
        if self.mode == "normalize":
            changed = ops.logical_and(total > 0, ops.not_equal(total, t))
            return clipping.normalize(grads, t), changed
        out, flags = [], []
        for g, v in zip(grads, variables, strict=True):
            if self._excluded[self._trainable_variables_indices[self._var_key(v)]]:
                out.append(g)
                continue
            g, flag = clipping.adaptive_unit(g, v, t, self.eps)
            out.append(g)
            flags.append(flag)
        changed = ops.any(ops.stack(flags)) if flags else ops.array(False)
        return out, changed

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self):
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
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner, **config)


class _Pending:
    variables = None


def _check_keras_arguments(kwargs):
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


def _chain(optimizer):
    """`optimizer` and the optimizers it wraps, outermost first."""
    while optimizer is not None:
        yield optimizer
        optimizer = getattr(optimizer, "inner_optimizer", None)


def _check_inner(optimizer):
    """Validates the wrapped chain and returns its innermost optimizer."""
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
    return chain[-1]


def _loss_scaled(optimizer):
    return any(
        isinstance(m, keras.optimizers.LossScaleOptimizer) for m in _chain(optimizer)
    )


def _finite(grads):
    return ops.all(
        ops.stack([ops.all(ops.isfinite(g)) for g in grads if g is not None])
    )
