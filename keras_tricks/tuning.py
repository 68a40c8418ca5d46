"""KerasTuner search spaces over the tricks of keras_tricks.

Tuning is the idea -> code -> experiment loop judged on the dev split (never
on test). KerasTuner runs that loop; this module makes every trick of
keras_tricks a hyper-parameter in one line, either all at once with
`TricksHyperModel` or one family at a time with the `choose_*` helpers inside
your own `build(hp)`. The tricks, their search ranges and the Keras objects
they stand for come from the trick registry, `keras_tricks.tricks`.

Default search ranges (`DEFAULT_RANGES`, overridable with `ranges=`):

| trick | hyper-parameter | default range |
|---|---|---|
| `init` | `Choice` | glorot, he, lecun, lsuv |
| `bn` (alias `norm`) | `Choice` | none, batch, ghost |
| `dropout` | `Float` | [0, 0.5], step 0.1 |
| `l2` | `Float`, log | log-uniform [1e-6, 1e-2] |
| `clip` | `Choice` | none, global_norm_1, global_norm_10, adaptive |
| `optimizer` | `Choice` | sgd_momentum, adam |
| `lr` | `Float`, log | log-uniform [1e-4, 1e-1] |
| `decay` | `Float` | [0.9, 1], step 0.02 |
| `batch_size` | `Choice` | 32, 64, 128, 256 |
| `early_stopping` | `Choice` | patience, gl, pq |

`TricksHyperModel` names its hyper-parameters with a prefix (`"tricks/"`
by default: `tricks/dropout`, `tricks/lr`, ...), so they never collide with
the hyper-parameters of your own `build_fn`.
"""

from __future__ import annotations

import hashlib
import numbers
import typing
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import keras
import numpy as np

from keras_tricks import tricks as registry
from keras_tricks._extras import require
from keras_tricks._validation import invalid
from keras_tricks.report import Report
from keras_tricks.tricks import Setup

if typing.TYPE_CHECKING:
    import keras_tuner
else:
    keras_tuner = require("keras_tuner", "tuner", "keras_tricks.tuning")

TRICKS: tuple[str, ...] = registry.TUNER_TRICKS
"""Every trick `TricksHyperModel` can sample, in sampling order."""


class _Ranges(dict):
    """A dict of search ranges that also answers to a trick's old name."""

    def __missing__(self, key: str) -> Any:
        if key in registry.ALIASES:
            return self[registry.ALIASES[key]]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            key = registry.ALIASES.get(key, key)
        return super().__contains__(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default


DEFAULT_RANGES: dict[str, tuple[Any, ...]] = _Ranges(
    {name: registry.REGISTRY[name].search for name in TRICKS}
)
"""Search range of each trick: choices, `(min, max)` or `(min, max, step)`."""

GHOST_BATCH_SIZE = registry.GHOST_BATCH_SIZE
"""Virtual batch size of the `"ghost"` normalisation choice."""

DEFAULT_PREFIX = "tricks/"
"""What `TricksHyperModel` puts before its hyper-parameter names."""


def _check_range(trick: str, value: Any) -> tuple[Any, ...]:
    """Validates one entry of `ranges`; returns it as a tuple."""
    record = registry.get(trick)
    if record.kind in ("choice", "integer"):
        values = tuple(value) if isinstance(value, list | tuple) else (value,)
        if not values or not all(record.accepts(v) for v in values):
            expected = (
                "positive integers"
                if record.kind == "integer"
                else f"choices among {(record.off, *record.choices)}"
            )
            raise invalid(f"ranges['{trick}']", value, expected)
        return values
    low, high = record.bounds
    if (
        not isinstance(value, list | tuple)
        or len(value) not in (2, 3)
        or not all(isinstance(v, numbers.Real) for v in value)
        or not low <= value[0] <= value[1] <= high
    ):
        raise invalid(
            f"ranges['{trick}']",
            value,
            f"(min, max) or (min, max, step) within [{low}, {high}]",
        )
    if record.kind == "log" and value[0] <= 0:
        raise invalid(
            f"ranges['{trick}']",
            value,
            "(min, max) with min > 0: the values are sampled on a log scale",
            fix="Start the range above 0"
            + (f", e.g. ({value[1] / 1000:g}, {value[1]:g})" if value[1] > 0 else ""),
        )
    return tuple(value)


def _in_range(trick: str, value: Any, bounds: tuple[Any, ...]) -> bool:
    record = registry.get(trick)
    if record.kind in ("choice", "integer"):
        return value in bounds
    return isinstance(value, numbers.Real) and bounds[0] <= value <= bounds[1]


def _declare(hp: Any, name: str, trick: str, bounds: tuple[Any, ...]) -> Any:
    """Registers the hyper-parameter of `trick` in `hp`; returns its value."""
    kind = registry.get(trick).kind
    if kind in ("choice", "integer"):
        return hp.Choice(name, list(bounds))
    low, high, *step = bounds
    if kind == "log":
        return hp.Float(name, low, high, sampling="log")
    return hp.Float(name, low, high, step=step[0] if step else None)


def choose_initializer(
    hp: Any, name: str = "init", choices: Iterable[str] = DEFAULT_RANGES["init"]
) -> Any:
    """Samples an initialisation scheme; returns the Keras initializer.

    `"lsuv"` returns the orthonormal start of LSUV: call
    `keras_tricks.initializers.lsuv_initialize(model, x)` on the built model
    before fitting (`TricksHyperModel.fit` does).
    """
    scheme = _declare(hp, name, "init", tuple(choices))
    return Setup.from_values({"init": scheme}).initializer()


def _layer_factory(make: Callable[[], Any]) -> Callable[[], Any]:
    def factory() -> Any:
        layer = make()
        return keras.layers.Identity() if layer is None else layer

    return factory


def choose_normalization(
    hp: Any, name: str = "norm", choices: Iterable[str] = DEFAULT_RANGES["bn"]
) -> Callable[[], Any]:
    """Samples a normalisation; returns a factory making a fresh layer per call.

    `"none"` gives `keras.layers.Identity`, `"batch"`
    `keras.layers.BatchNormalization`, `"ghost"`
    `keras_tricks.layers.GhostBatchNormalization(GHOST_BATCH_SIZE)`.
    """
    kind = _declare(hp, name, "bn", tuple(choices))
    return _layer_factory(Setup.from_values({"bn": kind}).normalization)


def choose_dropout(
    hp: Any,
    name: str = "dropout",
    bounds: tuple[float, ...] = DEFAULT_RANGES["dropout"],
) -> Callable[[], Any]:
    """Samples a dropout rate; returns a factory making a fresh layer per call.

    A rate of 0 gives `keras.layers.Identity`.
    """
    rate = _declare(hp, name, "dropout", tuple(bounds))
    return _layer_factory(Setup.from_values({"dropout": rate}).dropout)


def choose_regularizer(
    hp: Any, name: str = "l2", bounds: tuple[float, ...] = DEFAULT_RANGES["l2"]
) -> Any:
    """Samples an L2 strength (log-uniform); returns `keras.regularizers.L2`."""
    return keras.regularizers.L2(_declare(hp, name, "l2", tuple(bounds)))


def choose_learning_rate(
    hp: Any, name: str = "lr", bounds: tuple[float, ...] = DEFAULT_RANGES["lr"]
) -> float:
    """Samples a learning rate (log-uniform); returns it as a float."""
    return float(_declare(hp, name, "lr", tuple(bounds)))


def choose_optimizer(
    hp: Any,
    name: str = "optimizer",
    choices: Iterable[str] = DEFAULT_RANGES["optimizer"],
    *,
    learning_rate: float | None = None,
) -> keras.optimizers.Optimizer:
    """Samples an optimizer; returns `SGD(momentum=0.9)` or `Adam`.

    Args:
        hp: the `keras_tuner.HyperParameters`.
        name: hyper-parameter name. Defaults to `"optimizer"`.
        choices: among `"sgd_momentum"`, `"adam"`.
        learning_rate: learning rate; `None` keeps the optimizer's default.
    """
    kind = _declare(hp, name, "optimizer", tuple(choices))
    setup = Setup.from_values({"optimizer": kind, "lr": learning_rate})
    return setup.optimizer(None)


def choose_clipping(
    hp: Any,
    optimizer: keras.optimizers.Optimizer,
    name: str = "clip",
    choices: Iterable[str] = DEFAULT_RANGES["clip"],
) -> keras.optimizers.Optimizer:
    """Samples a clipping mode; returns `optimizer` wrapped in `GradientClipping`.

    `"none"` returns `optimizer` unwrapped; `"global_norm_1"` and
    `"global_norm_10"` clip the global norm to 1 or 10; `"adaptive"` is
    unit-wise adaptive clipping with ratio 0.01.
    """
    from keras_tricks.optimizers import GradientClipping

    kind = _declare(hp, name, "clip", tuple(choices))
    if kind not in registry.CLIPPING:
        return optimizer
    return GradientClipping(optimizer, **registry.CLIPPING[kind])


def choose_decay(
    hp: Any, name: str = "decay", bounds: tuple[float, ...] = DEFAULT_RANGES["decay"]
) -> Any:
    """Samples a per-epoch decay factor; returns `EpochDecay(factor)`."""
    from keras_tricks.callbacks import EpochDecay

    return EpochDecay(_declare(hp, name, "decay", tuple(bounds)))


def choose_batch_size(
    hp: Any,
    name: str = "batch_size",
    choices: Iterable[int] = DEFAULT_RANGES["batch_size"],
) -> int:
    """Samples a batch size; returns it as an int."""
    return int(_declare(hp, name, "batch_size", tuple(choices)))


def choose_early_stopping(
    hp: Any,
    name: str = "early_stopping",
    choices: Iterable[str] = DEFAULT_RANGES["early_stopping"],
    *,
    monitor: str = "val_loss",
) -> Any:
    """Samples a stopping criterion; returns `keras_tricks.callbacks.EarlyStopping`.

    `"patience"` stops after 5 epochs without improvement, `"gl"` when the
    generalisation loss exceeds 5%, `"pq"` when GL / P_5 exceeds 0.5
    (Prechelt 1998). Best weights are restored.
    """
    criterion = _declare(hp, name, "early_stopping", tuple(choices))
    setup = Setup.from_values({"early_stopping": criterion}, monitor=monitor)
    return setup.callbacks[0]


class Tricks:
    """The sampled tricks of one trial, handed to the user's `build_fn`.

    Attributes:
        values: dict of the sampled values, by trick name (no prefix).
        initializer: a Keras initializer for `kernel_initializer=` (Keras's
            default `"glorot_uniform"` when `init` is not tuned); each read
            gives a new one, so that layers of equal shape get different
            weights.
        kernel_regularizer: a `keras.regularizers.L2`, or `None`.
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = dict(values)
        self._setup = Setup.from_values(self.values)
        self.kernel_regularizer = self._setup.kernel_regularizer

    @property
    def initializer(self) -> Any:
        return self._setup.initializer()

    def normalization(self) -> Any:
        """A new normalisation layer (`Identity` when `bn` is not tuned)."""
        return _layer_factory(self._setup.normalization)()

    def dropout(self) -> Any:
        """A new dropout layer (`Identity` for rate 0 or when not tuned)."""
        return _layer_factory(self._setup.dropout)()

    def __repr__(self) -> str:
        return f"Tricks({self.values!r})"


def _fingerprint(model: keras.Model) -> str:
    """A digest of every weight of `model` (to see whether they changed)."""
    digest = hashlib.blake2b(digest_size=16)
    for weight in model.weights:
        digest.update(
            np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes()
        )
    return digest.hexdigest()


class TricksHyperModel(keras_tuner.HyperModel):
    """A `keras_tuner.HyperModel` whose hyper-parameters are the tricks.

    `build(hp)` samples every trick named in `tricks` (ranges in
    `DEFAULT_RANGES`) as the hyper-parameter `prefix + name`, so
    `tuner.search_space_summary()` lists the whole space before the first
    trial; it calls `build_fn(hp, tricks)` with a `Tricks` object to take
    components from (`tricks.initializer`, `tricks.normalization()`,
    `tricks.dropout()`, `tricks.kernel_regularizer`), and recompiles the
    model it returns with the sampled optimizer, learning rate and clipping
    (the loss and metrics are the ones `build_fn` compiled with). `fit(hp,
    model, ...)` runs LSUV when it was sampled and the model is the fresh one
    `build` made (not one whose weights a tuner such as Hyperband loaded from
    an earlier round), passes the sampled `batch_size`, and adds the sampled
    callbacks (`EpochDecay`, `EarlyStopping`).

    A trick left out of `tricks` is not sampled and takes no effect: the
    model keeps what `build_fn` gave it (its compiled optimizer, Keras's
    default initializer, no normalisation or dropout, no decay or early
    stopping, the `batch_size` passed to `search`).

    Args:
        build_fn: `build_fn(hp, tricks) -> keras.Model`, compiled with the
            loss and metrics to use (its optimizer is replaced when any of
            `optimizer`, `lr`, `clip` is tuned).
        tricks: names of the tricks to tune, a subset of `TRICKS` (older
            names such as `"norm"` for `"bn"` work too). Defaults to all.
        fixed: dict pinning tricks to one value, e.g. `{"batch_size": 64}`;
            each value must lie in the trick's range. Keys may be trick
            names, old names or prefixed names. Defaults to `None`.
        ranges: dict overriding `DEFAULT_RANGES` entries. Defaults to `None`.
        prefix: put before every hyper-parameter name. Defaults to
            `"tricks/"`.
        name: name of the hypermodel. Defaults to `None`.
        tunable: whether KerasTuner may tune its hyper-parameters. Defaults
            to `True`.

    Raises:
        ValueError: for an unknown trick name (the message lists the valid
            ones), a `fixed` value outside its range, or a bad range.
        TypeError: if `build_fn` is not callable, or returns no `keras.Model`.

    Example:

    >>> import keras_tuner
    >>> def build(hp, tricks):
    ...     model = keras.Sequential([keras.Input((8,))])
    ...     model.add(keras.layers.Dense(16, kernel_initializer=tricks.initializer))
    ...     model.add(tricks.normalization())
    ...     model.add(keras.layers.Dense(2, activation="softmax"))
    ...     model.compile(loss="sparse_categorical_crossentropy")
    ...     return model
    >>> hp = keras_tuner.HyperParameters()
    >>> model = TricksHyperModel(build, tricks=("init", "bn", "lr")).build(hp)
    >>> sorted(hp.values)
    ['tricks/bn', 'tricks/init', 'tricks/lr']
    """

    def __init__(
        self,
        build_fn: Callable[..., keras.Model],
        *,
        tricks: Iterable[str] = TRICKS,
        fixed: Mapping[str, Any] | None = None,
        ranges: Mapping[str, Any] | None = None,
        prefix: str = DEFAULT_PREFIX,
        name: str | None = None,
        tunable: bool = True,
    ) -> None:
        super().__init__(name=name, tunable=tunable)
        if not callable(build_fn):
            raise invalid(
                "build_fn", build_fn, "a callable build_fn(hp, tricks)", TypeError
            )
        if not isinstance(prefix, str):
            raise invalid("prefix", prefix, "a string", TypeError)
        if isinstance(tricks, str):
            tricks = (tricks,)
        tricks = tuple(tricks)
        valid = "names among " + ", ".join(repr(t) for t in TRICKS)
        for trick in tricks:
            if registry.ALIASES.get(trick, trick) not in TRICKS:
                raise invalid("tricks", trick, valid)
        chosen = {registry.canonical(t) for t in tricks}
        self.build_fn = build_fn
        self.prefix = prefix
        self.tricks = tuple(t for t in TRICKS if t in chosen)
        self.ranges = _Ranges(DEFAULT_RANGES)
        for trick, value in (ranges or {}).items():
            if registry.ALIASES.get(trick, trick) not in TRICKS:
                raise invalid(
                    "ranges", trick, "keys among " + ", ".join(repr(t) for t in TRICKS)
                )
            self.ranges[registry.canonical(trick)] = _check_range(trick, value)
        self.fixed = {}
        for key, value in dict(fixed or {}).items():
            trick = key[len(prefix) :] if prefix and key.startswith(prefix) else key
            trick = registry.ALIASES.get(trick, trick)
            if trick not in self.tricks:
                raise invalid(
                    "fixed", key, "keys among the tuned tricks " + repr(self.tricks)
                )
            if not _in_range(trick, value, self.ranges[trick]):
                raise invalid(
                    f"fixed['{key}']",
                    value,
                    f"a value in the range {self.ranges[trick]!r}",
                )
            self.fixed[trick] = value
        self._fresh: weakref.WeakKeyDictionary[keras.Model, str] = (
            weakref.WeakKeyDictionary()
        )

    def hyperparameter_name(self, trick: str) -> str:
        """The hyper-parameter name of `trick`, e.g. `"tricks/dropout"`."""
        return self.prefix + registry.canonical(trick)

    def sample(self, hp: Any) -> Tricks:
        """Samples every tuned trick into `hp`; returns the trial's `Tricks`."""
        values = {}
        for trick in self.tricks:
            name = self.hyperparameter_name(trick)
            if trick in self.fixed:
                values[trick] = hp.Fixed(name, self.fixed[trick])
            else:
                values[trick] = _declare(hp, name, trick, self.ranges[trick])
        return Tricks(values)

    def _values(self, hp: Any) -> dict[str, Any]:
        return {
            trick: hp.get(self.hyperparameter_name(trick))
            for trick in self.tricks
            if self.hyperparameter_name(trick) in hp.values
        }

    def build(self, hp: Any) -> keras.Model:
        tricks = self.sample(hp)
        model = self.build_fn(hp, tricks)
        if not isinstance(model, keras.Model):
            raise invalid(
                "build_fn",
                self.build_fn,
                f"a function returning a keras.Model (it returned {model!r})",
                TypeError,
            )
        config = model.get_compile_config()
        if not config:
            raise ValueError(
                "`build_fn` must return a compiled model (compile it with the "
                "loss and metrics to use; the optimizer may be replaced)."
            )
        config = keras.saving.deserialize_keras_object(config)
        config["optimizer"] = Setup.from_values(tricks.values).optimizer(
            model.optimizer
        )
        model.compile(**config)
        if model.weights:
            self._fresh[model] = _fingerprint(model)
        return model

    def _is_fresh(self, model: keras.Model) -> bool:
        """Whether `model` still has the weights `build` gave it (then forgets it)."""
        built = self._fresh.pop(model, None)
        return built is None or built == _fingerprint(model)

    def fit(self, hp: Any, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        values = self._values(hp)
        if "batch_size" in self.tricks and "batch_size" in kwargs:
            raise invalid(
                "batch_size",
                kwargs["batch_size"],
                "None: TricksHyperModel tunes it",
                fix="Pin it with fixed={'batch_size': n} or leave "
                "'batch_size' out of `tricks`",
            )
        has_validation = kwargs.get("validation_data") is not None or kwargs.get(
            "validation_split"
        )
        x = args[0] if args else kwargs.get("x")
        setup = Setup.from_values(
            values,
            monitor="val_loss" if has_validation else "loss",
            epochs=int(kwargs.get("epochs", 1)),
        )
        if setup.lsuv and self._is_fresh(model):
            setup.prepare(model, _first_rows(x))
        kwargs.update(setup.fit_kwargs)
        callbacks = [*list(kwargs.pop("callbacks", None) or []), *setup.callbacks]
        return model.fit(*args, callbacks=callbacks, **kwargs)


def _first_rows(x: Any, rows: int = 512) -> Any:
    """A calibration batch from `fit`'s `x` (array, dict or tf.data.Dataset)."""
    if isinstance(x, dict):
        return {k: v[:rows] for k, v in x.items()}
    if hasattr(x, "shape"):
        return x[:rows]
    batch = next(iter(x))
    return batch[0] if isinstance(batch, tuple) else batch


def trials_table(tuner: Any) -> Report:
    """All trials of a tuner as a `Report`, best first.

    Columns: `trial_id`, `status`, `score`, then one per hyper-parameter.
    `report.to_records()` gives a list of dicts, `report.to_csv(path)` a CSV
    file for plotting.
    """
    trials = tuner.oracle.trials.values()
    names = sorted({name for t in trials for name in t.hyperparameters.values})
    rows = [
        {
            "trial_id": t.trial_id,
            "status": t.status,
            "score": t.score,
            **{name: t.hyperparameters.values.get(name) for name in names},
        }
        for t in trials
    ]
    direction = tuner.oracle.objective.direction
    rows.sort(
        key=lambda r: (
            r["score"] is None,
            -(r["score"] or 0) if direction == "max" else (r["score"] or 0),
        )
    )
    return Report(rows, title=f"Trials ({tuner.oracle.objective.name})")


def write_csv(report: Report, path: str) -> None:
    """Writes a `Report` to a CSV file. Deprecated: use `report.to_csv(path)`."""
    warnings.warn(
        "keras_tricks.tuning.write_csv is deprecated; use report.to_csv(path).",
        DeprecationWarning,
        stacklevel=2,
    )
    report.to_csv(path)
