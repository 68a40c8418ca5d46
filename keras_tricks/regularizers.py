"""Penalty regularisation J = loss + lambda * Omega, and parameter tying.

L1 and L2 penalties are Keras's own and are not rewritten here:

    keras.layers.Dense(64, kernel_regularizer=keras.regularizers.L2(1e-4))

adds `1e-4 * sum(W ** 2)` to the training loss (`L1(l)` adds
`l * sum(|W|)`, `L1L2` both); biases are left unpenalised by passing no
`bias_regularizer`. What Keras lacks is parameter tying: a penalty
`strength * ||W_A - W_B||` that keeps the parameters of two models (or of one
model and fixed reference values) close. `TiedRegularizer` and `tie_weights`
provide it; `keras_tricks.callbacks.PenaltyLogger` logs the penalty beside the
data loss so that the trade-off lambda makes can be plotted.
"""

from __future__ import annotations

import uuid
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_tricks import _keras_compat
from keras_tricks._validation import check_choice, check_number, invalid

NORMS = ("l2", "l1")
"""The penalties `TiedRegularizer` and `tie_weights` accept as `norm`: `"l2"`
(`strength * sum((w - w_ref)^2)`) and `"l1"` (`strength * sum(|w - w_ref|)`)."""


_VALUES: weakref.WeakValueDictionary[str, np.ndarray] = weakref.WeakValueDictionary()
"""Fixed reference values by key, while a regularizer holds them: a config
read in the same process (`clone_model`, `from_config`) finds them here."""


@keras.saving.register_keras_serializable(package="keras_tricks")
class TiedRegularizer(keras.regularizers.Regularizer, _keras_compat.SAVEABLE_BASE):
    """Penalty pulling a weight toward a reference: `strength * ||W - R||`.

    With `norm="l2"` the penalty is `strength * sum((W - R) ** 2)` (squared
    Euclidean norm, gradient `2 * strength * (W - R)`); with `norm="l1"` it is
    `strength * sum(|W - R|)`.

    The reference `R` is either fixed values (an array, e.g. pretrained
    weights: the "L2-SP" regulariser of Li et al. 2018) or a live weight of
    another layer (`reference_layer` and `reference_weight`, as set up by
    `tie_weights`): then the penalty reads its current value at every step,
    and gradients flow into it when it is trainable in the model being fit.

    Fixed values are saved as a weight of the layer they regularise
    (`model.save`, `save_weights`), not in its config: the config holds their
    shape and a key, which `clone_model` and `from_config` resolve in the
    same process; in a new process `load_model` / `load_weights` restore the
    values. Files saved before (values as config text) still load.

    Args:
        reference: fixed reference values (array-like of the weight's shape),
            or `None` with `reference_layer`.
        strength: the penalty factor lambda >= 0.
        norm: `"l2"` (squared) or `"l1"`. Defaults to `"l2"`.
        reference_layer: a `keras.layers.Layer` whose weight is the live
            reference. Defaults to `None`.
        reference_weight: name of that layer's weight (an attribute such as
            `"kernel"`). Defaults to `"kernel"`.

    Raises:
        ValueError: for `strength < 0`, an unknown `norm`, both or neither of
            `reference` and `reference_layer`, or a reference with NaN or Inf;
            at the first penalty (after the layer's `build`), for a reference
            whose shape differs from the regularised weight's.
        TypeError: for a `reference_layer` that is not a layer, or a
            `reference` that is not numeric.

    Example:

    >>> pretrained = np.ones((4, 3), "float32")
    >>> layer = keras.layers.Dense(
    ...     3, kernel_regularizer=TiedRegularizer(pretrained, strength=0.1),
    ...     kernel_initializer="zeros")
    >>> layer.build((None, 4))
    >>> float(layer.losses[0])  # 0.1 * sum((0 - 1) ** 2) over 12 weights
    1.2000000476837158

    Reference:
        Li, Grandvalet & Davoine, "Explicit Inductive Bias for Transfer
        Learning with Convolutional Networks", ICML 2018.
    """

    # Copies and pickles are plain objects (KerasSaveable would save a model).
    __reduce__ = object.__reduce__

    def __init__(
        self,
        reference: Any = None,
        *,
        strength: float,
        norm: str = "l2",
        reference_layer: keras.layers.Layer | None = None,
        reference_weight: str = "kernel",
    ) -> None:
        self.strength = check_number("strength", strength, low=0)
        self.norm = check_choice("norm", norm, NORMS)
        if (reference is None) == (reference_layer is None):
            raise invalid(
                "reference",
                reference,
                "exactly one of `reference` (fixed values) and "
                "`reference_layer` (a live layer)",
            )
        if reference_layer is not None and not isinstance(
            reference_layer, keras.layers.Layer
        ):
            raise invalid(
                "reference_layer", reference_layer, "a keras.layers.Layer", TypeError
            )
        self.reference: np.ndarray | None = None
        self._key: str | None = None
        if reference is not None:
            self._set_values(reference, uuid.uuid4().hex)
        self.reference_layer = reference_layer
        self.reference_weight = reference_weight

    def _set_values(self, reference: Any, key: str) -> None:
        shared = isinstance(reference, np.ndarray) and not reference.flags.writeable
        if shared and reference.dtype == "float32":
            values = reference  # read-only values of another regularizer
        else:
            try:
                values = np.array(reference, dtype="float32")
            except (TypeError, ValueError):
                raise invalid(
                    "reference",
                    reference,
                    "numbers: an array of the regularised weight's shape",
                    TypeError,
                ) from None
        if not np.all(np.isfinite(values)):
            raise invalid("reference", reference, "finite values (no NaN or Inf)")
        values.flags.writeable = False
        self.reference, self._key = values, key
        _VALUES[key] = values

    def _reference(self) -> Any:
        if self.reference is not None:
            if self._key is None:
                raise ValueError(
                    "This TiedRegularizer was created from a config without "
                    "its reference values, which are stored with the model's "
                    "weights: load them with `keras.models.load_model` or "
                    "`model.load_weights`, or pass the values again with "
                    "TiedRegularizer(reference=array)."
                )
            return self.reference
        variable = getattr(self.reference_layer, self.reference_weight, None)
        if variable is None:
            name = getattr(self.reference_layer, "name", None)
            raise ValueError(
                f"The tied reference layer '{name}' has no "
                f"weight `{self.reference_weight}` (it is not built, or it was "
                "not restored with the model). Tie layers of the same model, "
                "or pass fixed values with TiedRegularizer(reference=array)."
            )
        return variable

    def __call__(self, x: Any) -> Any:
        reference = self._reference()
        self._check_shape(reference, x)
        diff = x - keras.ops.cast(reference, x.dtype)
        if self.norm == "l2":
            return self.strength * keras.ops.sum(keras.ops.square(diff))
        return self.strength * keras.ops.sum(keras.ops.abs(diff))

    def _check_shape(self, reference: Any, x: Any) -> None:
        """Raises when the reference and the weight have different shapes.

        Checked on static shapes at the first penalty, which Keras computes
        when the layer's losses are first read (right after `build`).
        """
        wanted = tuple(x.shape)
        got = tuple(reference.shape)
        if None in wanted or got == wanted:
            return
        if self.reference is not None:
            raise invalid(
                "reference",
                self.reference,
                f"values of the regularised weight's shape {wanted} "
                f"(they have shape {got})",
            )
        name = getattr(self.reference_layer, "name", None)
        raise invalid(
            "reference_layer",
            self.reference_layer,
            f"a layer whose `{self.reference_weight}` has the regularised "
            f"weight's shape {wanted} (layer '{name}' has shape {got})",
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "strength": self.strength,
            "norm": self.norm,
            "reference_weight": self.reference_weight,
        }
        if self.reference is not None:
            if self._key is not None:
                _VALUES[self._key] = self.reference
            config["reference"] = {
                "shape": list(self.reference.shape),
                "key": self._key,
            }
        else:
            config["reference_layer"] = _shared_layer_config(self.reference_layer)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TiedRegularizer:
        config = dict(config)
        if config.get("reference_layer") is not None:
            config["reference_layer"] = keras.saving.deserialize_keras_object(
                config["reference_layer"]
            )
        stored = config.get("reference")
        if not isinstance(stored, dict):  # None, or values (older files)
            return cls(**config)
        values = _VALUES.get(stored["key"])
        config["reference"] = np.zeros(stored["shape"], "float32")
        regularizer = cls(**config)
        if values is None:  # until load_own_variables brings them
            regularizer._key = None
        else:
            regularizer._set_values(values, stored["key"])
        return regularizer

    def save_own_variables(self, store: Any) -> None:
        """Saves the fixed reference values with the model's weights."""
        if self.reference is not None and self._key is not None:
            store["reference"] = self.reference

    def load_own_variables(self, store: Any) -> None:
        """Restores the fixed reference values saved by `save_own_variables`."""
        if self.reference is not None and "reference" in store:
            self._set_values(store["reference"], self._key or uuid.uuid4().hex)

    def _obj_type(self) -> str:
        # The kind of object for Keras's saving; "Loss" names a callable with
        # a config and no layers, the nearest of Keras's kinds.
        return "Loss"

    def __dir__(self) -> list[str]:
        # Keras's saving walks what `dir` lists: the tied layer belongs to its
        # own model and is saved there, not under this regularizer.
        return [name for name in super().__dir__() if name != "reference_layer"]


def _shared_layer_config(layer: keras.layers.Layer) -> dict[str, Any]:
    """Serialises `layer` so that loading binds to the model's own instance.

    Inside `model.save`, Keras gives every object serialised twice a
    `shared_object_id`, and `load_model` then creates it once. The id is set
    here explicitly because Keras copies nested configs after marking them.
    The build config is dropped: a reference layer that is not part of the
    saved model comes back unbuilt, and the penalty raises a clear error
    instead of silently pulling toward freshly initialised weights.
    """
    config = dict(keras.saving.serialize_keras_object(layer))
    config.pop("build_config", None)
    config[_keras_compat.SHARED_OBJECT_ID] = id(layer)
    return config


def tie_weights(
    layer_a: keras.layers.Layer,
    layer_b: keras.layers.Layer,
    *,
    strength: float,
    norm: str = "l2",
    weights: str | Sequence[str] = ("kernel",),
) -> list[TiedRegularizer]:
    """Ties the weights of two layers with a penalty on their difference.

    Adds `strength * ||W_A - W_B||_2^2` (`norm="l2"`) or
    `strength * sum(|W_A - W_B|)` (`norm="l1"`) to the training loss of any
    model containing `layer_a`, for each weight named in `weights`. This is
    soft parameter sharing (e.g. two task towers kept close): when both layers
    are trainable in the model being fit, gradients flow into both
    (`2 * strength * (W_A - W_B)` into A, the opposite into B). When `layer_b`
    is frozen, or belongs to another model, it is a fixed reference.

    The penalty is set as the regularizer of `layer_a`'s weights (and of its
    `<weight>_regularizer` attribute, so it is saved with the model): a model
    saved to `.keras` and reloaded keeps the tie, provided `layer_b` is part of
    the saved model. To pull toward weights outside the model, pass their
    values to `TiedRegularizer(reference=...)` instead.

    Args:
        layer_a: built `keras.layers.Layer` that carries the penalty.
        layer_b: built `keras.layers.Layer` with weights of the same shapes.
        strength: the penalty factor lambda >= 0.
        norm: `"l2"` (squared Euclidean) or `"l1"`. Defaults to `"l2"`.
        weights: names of the weights to tie. Defaults to `("kernel",)`.

    Returns:
        The list of `TiedRegularizer` objects created, one per weight.

    Raises:
        ValueError: for `strength < 0`, an unknown `norm`, unbuilt layers, a
            weight name a layer lacks, shapes that differ, or a weight that
            already has a regularizer (it would be replaced).

    Example:

    >>> inputs = keras.Input((8,))
    >>> tower_a, tower_b = keras.layers.Dense(4), keras.layers.Dense(4)
    >>> model = keras.Model(inputs, [tower_a(inputs), tower_b(inputs)])
    >>> ties = tie_weights(tower_a, tower_b, strength=1e-3)
    >>> gap = ops.sum(ops.square(tower_a.kernel - tower_b.kernel))
    >>> bool(np.isclose(float(model.losses[0]), 1e-3 * float(gap)))
    True
    """
    strength = check_number("strength", strength, low=0)
    norm = check_choice("norm", norm, NORMS)
    if isinstance(weights, str):
        weights = (weights,)
    for argument, layer in (("layer_a", layer_a), ("layer_b", layer_b)):
        if not isinstance(layer, keras.layers.Layer):
            raise invalid(argument, layer, "a keras.layers.Layer", TypeError)
        if not layer.built:
            raise invalid(
                argument,
                layer,
                "a built layer",
                fix="Build the model (call it on data) first",
            )
    if layer_a is layer_b:
        raise invalid("layer_b", layer_b, "a layer other than `layer_a`")
    ties = []
    for name in weights:
        variables = []
        for argument, layer in (("layer_a", layer_a), ("layer_b", layer_b)):
            variable = getattr(layer, name, None)
            if not isinstance(variable, keras.Variable):
                raise invalid(
                    "weights",
                    name,
                    f"weight names that `{argument}` ('{layer.name}') has",
                )
            variables.append(variable)
        weight_a, weight_b = variables
        if tuple(weight_a.shape) != tuple(weight_b.shape):
            raise ValueError(
                f"Cannot tie `{name}` of layer '{layer_a.name}' (shape "
                f"{tuple(weight_a.shape)}) to `{name}` of layer "
                f"'{layer_b.name}' (shape {tuple(weight_b.shape)}): the "
                "shapes must match."
            )
        if weight_a.regularizer is not None:
            raise ValueError(
                f"`{name}` of layer '{layer_a.name}' already has a regularizer "
                f"({weight_a.regularizer!r}); tie_weights would replace it. "
                "Remove it, or tie the other way round."
            )
        tie = TiedRegularizer(
            strength=strength, norm=norm, reference_layer=layer_b, reference_weight=name
        )
        weight_a.regularizer = tie
        attribute = f"{name}_regularizer"
        if hasattr(layer_a, attribute):
            setattr(layer_a, attribute, tie)
        else:
            warnings.warn(
                f"Layer '{layer_a.name}' has no `{attribute}` argument: the tie "
                "works in training but is not saved with the model.",
                stacklevel=2,
            )
        ties.append(tie)
    return ties
