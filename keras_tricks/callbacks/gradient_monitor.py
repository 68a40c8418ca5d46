"""Per-epoch gradient statistics, and warnings for vanishing or exploding ones."""

import contextlib
import warnings

import keras
import numpy as np
from keras import ops

from keras_tricks._validation import check_number, invalid
from keras_tricks.optimizers.gradient_clipping import GradientClipping, _chain


@keras.saving.register_keras_serializable(package="keras_tricks")
class GradientMonitor(keras.callbacks.Callback):
    """Logs gradient norms and update sizes per epoch; flags bad gradients.

    At the end of each epoch it adds to the logs (and so to History,
    CSVLogger and TensorBoard):

    - `grad_norm_mean`, `grad_norm_max`: mean and max over the epoch's steps
      of the global gradient norm ||g|| = sqrt(sum_i ||g_i||^2);
    - `grad_norm/<layer>`: mean over the steps of the layer's gradient norm
      (all its trainable weights together);
    - `update_ratio/<layer>`: mean over the steps of ||w_new - w|| / ||w||,
      the size of the update relative to the weights (about 1e-3 is the
      usual healthy order);
    - `grad_nonfinite_steps`: steps whose gradient held NaN or Inf.

    The statistics are accumulated on the device inside the train step and
    read once per epoch: there is no host synchronisation per batch.

    A layer is flagged, with a warning naming it and the epoch, as vanishing
    when its norm is below `vanishing_threshold` times the largest layer
    norm, and as exploding when its norm is above `exploding_threshold` or
    a gradient was non-finite. The flags are also kept in `vanishing` and
    `exploding` (`{epoch: [layer names]}`).

    What it needs: during `fit` it wraps the model optimizer's `apply`
    method and rebuilds the train function at train begin and end. With a
    `keras_tricks.optimizers.GradientClipping` optimizer it reports the norms
    that wrapper records: those of the global-batch gradient, before
    clipping, unscaled. With any other optimizer it measures the gradients
    the optimizer receives (unscaled by a `LossScaleOptimizer`), which under
    `tf.distribute` are each replica's own; wrap the optimizer in
    `GradientClipping` to monitor the global-batch gradient there.

    Args:
        vanishing_threshold: relative norm below which a layer is flagged
            as vanishing, in (0, 1). Defaults to `1e-3`.
        exploding_threshold: absolute norm above which a layer is flagged
            as exploding, positive. Defaults to `1e3`.
        stop_on_nonfinite: on a NaN/Inf gradient (or weights made non-finite
            by a step), undo and freeze the updates for the rest of the epoch
            and stop training at its end, keeping the last finite weights.
            Defaults to `False`.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0,
    ...                     callbacks=[GradientMonitor()])
    >>> sorted(history.history)[:3]
    ['grad_nonfinite_steps', 'grad_norm/dense', 'grad_norm_max']
    """

    def __init__(
        self,
        *,
        vanishing_threshold=1e-3,
        exploding_threshold=1e3,
        stop_on_nonfinite=False,
    ):
        super().__init__()
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
        if not isinstance(stop_on_nonfinite, bool):
            raise invalid("stop_on_nonfinite", stop_on_nonfinite, "a bool", TypeError)
        self.stop_on_nonfinite = stop_on_nonfinite
        self.vanishing = {}
        self.exploding = {}
        self._target = None

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        variables = list(self.model.trainable_variables)
        names = [v.path.rsplit("/", 1)[0] for v in variables]
        self._layers = list(dict.fromkeys(names))
        groups = np.zeros((len(self._layers), len(variables)), "float32")
        for j, name in enumerate(names):
            groups[self._layers.index(name), j] = 1.0
        self._groups = groups
        self._clipper = next(
            (m for m in _chain(optimizer) if isinstance(m, GradientClipping)), None
        )
        strategy = getattr(self.model, "distribute_strategy", None)
        replicas = getattr(strategy, "num_replicas_in_sync", 1)
        if self.stop_on_nonfinite and replicas > 1:
            raise ValueError(
                "GradientMonitor(stop_on_nonfinite=True) supports a single "
                "replica. Under tf.distribute, use GradientClipping("
                "optimizer, skip_nonfinite=True), which skips such steps."
            )
        scope = strategy.scope() if strategy else contextlib.nullcontext()
        with scope:
            self._state = {
                name: keras.Variable(
                    np.zeros(shape, "float32"),
                    trainable=False,
                    aggregation="only_first_replica",
                    synchronization="on_read",
                    name=f"gradient_monitor_{name}",
                )
                for name, shape in (
                    ("steps", ()),
                    ("norm_sum", ()),
                    ("norm_max", ()),
                    ("nonfinite", ()),
                    ("stopped", ()),
                    ("layer_norm_sum", (len(self._layers),)),
                    ("ratio_sum", (len(self._layers),)),
                )
            }
        self._target = self._clipper or optimizer
        original = self._target.apply

        def apply(grads, trainable_variables=None):
            self._apply(original, list(grads), trainable_variables)

        self._target.apply = apply
        self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        if self._target is not None:
            del self._target.apply
            self._target = None
            self.model.make_train_function(force=True)

    def on_epoch_begin(self, epoch, logs=None):
        for name, variable in self._state.items():
            if name != "stopped":
                variable.assign(ops.zeros(variable.shape, "float32"))

    def _apply(self, original, grads, trainable_variables):
        if trainable_variables is None:
            trainable_variables = self.model.trainable_variables
        variables = list(trainable_variables)
        before = [ops.copy(v) for v in variables]
        if self._clipper is None:
            norms = _unscaled_norms(self.model.optimizer, grads)
        state = self._state
        if self.stop_on_nonfinite:
            proceed = ops.logical_and(_finite(grads), state["stopped"] == 0)
            ops.cond(proceed, lambda: _call(original, grads, variables), self._stop)
        else:
            original(grads, variables)
        after = [ops.copy(v) for v in variables]
        if self.stop_on_nonfinite:
            ops.cond(
                _finite(after),
                lambda: None,
                lambda: self._restore(variables, before),
            )
        if self._clipper is not None:
            squares = ops.square(self._clipper.variable_norms)
        else:
            squares = ops.square(ops.stack(norms))
        groups = ops.convert_to_tensor(self._groups)
        layer_norms = ops.sqrt(ops.matmul(groups, squares))
        total = ops.sqrt(ops.sum(squares))
        finite = ops.isfinite(total)
        delta = ops.stack([_sum_sq(a - b) for a, b in zip(after, before, strict=True)])
        weight = ops.stack([_sum_sq(b) for b in before])
        ratios = ops.sqrt(ops.matmul(groups, delta)) / ops.maximum(
            ops.sqrt(ops.matmul(groups, weight)), 1e-12
        )
        count = ops.cast(finite, "float32")
        state["steps"].assign_add(count)
        state["nonfinite"].assign_add(1.0 - count)
        state["norm_sum"].assign_add(ops.where(finite, total, 0.0))
        state["norm_max"].assign(
            ops.maximum(state["norm_max"], ops.where(finite, total, 0.0))
        )
        state["layer_norm_sum"].assign_add(ops.where(finite, layer_norms, 0.0))
        state["ratio_sum"].assign_add(ops.where(finite, ratios, 0.0))

    def _stop(self):
        self._state["stopped"].assign(1.0)

    def _restore(self, variables, before):
        for variable, value in zip(variables, before, strict=True):
            variable.assign(value)
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        values = {k: np.asarray(v.numpy()) for k, v in self._state.items()}
        steps = max(float(values["steps"]), 1.0)
        layer_norms = values["layer_norm_sum"] / steps
        ratios = values["ratio_sum"] / steps
        nonfinite = int(values["nonfinite"])
        if logs is not None:
            logs["grad_norm_mean"] = float(values["norm_sum"]) / steps
            logs["grad_norm_max"] = float(values["norm_max"])
            logs["grad_nonfinite_steps"] = nonfinite
            for layer, norm, ratio in zip(
                self._layers, layer_norms, ratios, strict=True
            ):
                logs[f"grad_norm/{layer}"] = float(norm)
                logs[f"update_ratio/{layer}"] = float(ratio)
        self._flag(epoch, layer_norms, nonfinite)
        if values["stopped"] > 0:
            warnings.warn(
                f"GradientMonitor: epoch {epoch + 1}: non-finite gradients or "
                "weights; training stops with the last finite weights.",
                stacklevel=2,
            )
            self.model.stop_training = True

    def _flag(self, epoch, layer_norms, nonfinite):
        largest = float(np.max(layer_norms)) if len(layer_norms) else 0.0
        vanishing = [
            layer
            for layer, norm in zip(self._layers, layer_norms, strict=True)
            if largest > 0 and norm < self.vanishing_threshold * largest
        ]
        exploding = [
            layer
            for layer, norm in zip(self._layers, layer_norms, strict=True)
            if norm > self.exploding_threshold
        ]
        if nonfinite:
            exploding = list(self._layers)
        if vanishing:
            self.vanishing[epoch] = vanishing
            warnings.warn(
                f"GradientMonitor: epoch {epoch + 1}: vanishing gradients in "
                f"layer(s) {vanishing}: norm below {self.vanishing_threshold:g} "
                f"x the largest layer norm ({largest:.3g}).",
                stacklevel=2,
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
                stacklevel=2,
            )

    def get_config(self):
        return {
            "vanishing_threshold": self.vanishing_threshold,
            "exploding_threshold": self.exploding_threshold,
            "stop_on_nonfinite": self.stop_on_nonfinite,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _call(fn, *args):
    fn(*args)


def _sum_sq(x):
    return ops.sum(ops.square(ops.cast(x, "float32")))


def _finite(tensors):
    return ops.all(
        ops.stack([ops.all(ops.isfinite(t)) for t in tensors if t is not None])
    )


def _unscaled_norms(optimizer, grads):
    """Norm of each gradient, divided by a `LossScaleOptimizer`'s scale."""
    scale = 1.0
    for member in _chain(optimizer):
        if isinstance(member, keras.optimizers.LossScaleOptimizer):
            scale = member.dynamic_scale
    return [
        ops.zeros((), "float32")
        if g is None
        else ops.sqrt(_sum_sq(g)) / ops.cast(scale, "float32")
        for g in grads
    ]
