"""KerasTuner search spaces over the tricks of keras_tricks.

The material tunes hyper-parameters (learning rate, iterations, layers, units,
activation, batch size, regularisation) in an idea -> code -> experiment loop
judged on the dev set. KerasTuner runs that loop; this module makes every trick
of keras_tricks a hyper-parameter in one line, either all at once with
`TricksHyperModel` or one family at a time with the `choose_*` helpers inside
your own `build(hp)`.

Default search ranges (`DEFAULT_RANGES`, overridable with `ranges=`):

| trick | hyper-parameter | default range |
|---|---|---|
| `init` | `Choice` | glorot, he, lecun, lsuv |
| `norm` | `Choice` | none, batch, ghost |
| `dropout` | `Float` | [0, 0.5], step 0.1 |
| `l2` | `Float`, log | [1e-6, 1e-2] |
| `clip` | `Choice` | none, global_norm_1, global_norm_10, adaptive |
| `optimizer` | `Choice` | sgd_momentum, adam |
| `lr` | `Float`, log | [1e-4, 1e-1] |
| `decay` | `Float` | [0.9, 1.0], step 0.02 |
| `batch_size` | `Choice` | 32, 64, 128, 256 |
| `early_stopping` | `Choice` | patience, gl, pq |
"""

import numbers

import keras

try:
    import keras_tuner
except ImportError as error:
    raise ImportError(
        "keras_tricks.tuning needs KerasTuner: pip install 'keras_tricks[tuner]'"
    ) from error

from keras_tricks import initializers
from keras_tricks._validation import invalid
from keras_tricks.callbacks import EarlyStopping, EpochDecay
from keras_tricks.layers import GhostBatchNormalization
from keras_tricks.optimizers import GradientClipping
from keras_tricks.report import Report

TRICKS = (
    "init",
    "norm",
    "dropout",
    "l2",
    "clip",
    "optimizer",
    "lr",
    "decay",
    "batch_size",
    "early_stopping",
)
"""Every trick `TricksHyperModel` can sample, in sampling order."""

DEFAULT_RANGES = {
    "init": ("glorot", "he", "lecun", "lsuv"),
    "norm": ("none", "batch", "ghost"),
    "dropout": (0.0, 0.5, 0.1),
    "l2": (1e-6, 1e-2),
    "clip": ("none", "global_norm_1", "global_norm_10", "adaptive"),
    "optimizer": ("sgd_momentum", "adam"),
    "lr": (1e-4, 1e-1),
    "decay": (0.9, 1.0, 0.02),
    "batch_size": (32, 64, 128, 256),
    "early_stopping": ("patience", "gl", "pq"),
}
"""Search range of each trick: choices, `(min, max)` or `(min, max, step)`."""

_CHOICES = {
    trick: DEFAULT_RANGES[trick]
    for trick in ("init", "norm", "clip", "optimizer", "early_stopping")
}
_BOUNDS = {
    "dropout": (0.0, 0.95),
    "l2": (0.0, 1.0),
    "lr": (0.0, 10.0),
    "decay": (0.0, 1.0),
}
_CLIPPING = {
    "global_norm_1": {"mode": "global_norm", "threshold": 1.0},
    "global_norm_10": {"mode": "global_norm", "threshold": 10.0},
    "adaptive": {"mode": "adaptive", "threshold": 0.01},
}
_STOPPING = {
    "patience": {"patience": 3},
    "gl": {"alpha": 5.0},
    "pq": {"alpha": 0.5, "strip_length": 5},
}
GHOST_BATCH_SIZE = 16
"""Virtual batch size of the `"ghost"` normalisation choice."""


def _check_range(trick, value):
    """Validates one entry of `ranges`; returns it as a tuple."""
    if trick in _CHOICES or trick == "batch_size":
        values = tuple(value) if isinstance(value, list | tuple) else (value,)
        allowed = _CHOICES.get(trick)
        for v in values:
            ok = (
                (v in allowed)
                if allowed
                else (
                    isinstance(v, numbers.Integral)
                    and not isinstance(v, bool)
                    and v >= 1
                )
            )
            if not ok:
                expected = (
                    f"choices among {allowed}" if allowed else "positive integers"
                )
                raise invalid(f"ranges['{trick}']", value, expected)
        return values
    low, high = _BOUNDS[trick]
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
    return tuple(value)


def _in_range(trick, value, rng):
    if trick in _CHOICES or trick == "batch_size":
        return value in rng
    return isinstance(value, numbers.Real) and rng[0] <= value <= rng[1]


def choose_initializer(hp, name="init", choices=DEFAULT_RANGES["init"]):
    """Samples an initialisation scheme; returns the Keras initializer.

    `"lsuv"` returns the orthonormal start of LSUV: call
    `keras_tricks.initializers.lsuv_initialize(model, x)` on the built model
    before fitting (`TricksHyperModel.fit` does).
    """
    scheme = hp.Choice(name, list(choices))
    return initializers.get("orthogonal" if scheme == "lsuv" else scheme)


def choose_normalization(hp, name="norm", choices=DEFAULT_RANGES["norm"]):
    """Samples a normalisation; returns a factory making a fresh layer per call.

    `"none"` gives `keras.layers.Identity`, `"batch"`
    `keras.layers.BatchNormalization`, `"ghost"`
    `keras_tricks.layers.GhostBatchNormalization(GHOST_BATCH_SIZE)`.
    """
    kind = hp.Choice(name, list(choices))
    factories = {
        "none": keras.layers.Identity,
        "batch": keras.layers.BatchNormalization,
        "ghost": lambda: GhostBatchNormalization(GHOST_BATCH_SIZE),
    }
    return factories[kind]


def choose_dropout(hp, name="dropout", bounds=DEFAULT_RANGES["dropout"]):
    """Samples a dropout rate; returns a factory making a fresh layer per call.

    A rate of 0 gives `keras.layers.Identity`.
    """
    low, high, *step = bounds
    rate = hp.Float(name, low, high, step=step[0] if step else None)
    if rate == 0:
        return keras.layers.Identity
    return lambda: keras.layers.Dropout(rate)


def choose_regularizer(hp, name="l2", bounds=DEFAULT_RANGES["l2"]):
    """Samples an L2 strength (log-uniform); returns `keras.regularizers.L2`."""
    return keras.regularizers.L2(hp.Float(name, bounds[0], bounds[1], sampling="log"))


def choose_learning_rate(hp, name="lr", bounds=DEFAULT_RANGES["lr"]):
    """Samples a learning rate (log-uniform); returns it as a float."""
    return hp.Float(name, bounds[0], bounds[1], sampling="log")


def choose_optimizer(
    hp, name="optimizer", choices=DEFAULT_RANGES["optimizer"], *, learning_rate=None
):
    """Samples an optimizer; returns `SGD(momentum=0.9)` or `Adam`.

    Args:
        hp: the `keras_tuner.HyperParameters`.
        name: hyper-parameter name. Defaults to `"optimizer"`.
        choices: among `"sgd_momentum"`, `"adam"`.
        learning_rate: learning rate; `None` keeps the optimizer's default.
    """
    kind = hp.Choice(name, list(choices))
    kwargs = {} if learning_rate is None else {"learning_rate": learning_rate}
    if kind == "sgd_momentum":
        return keras.optimizers.SGD(momentum=0.9, **kwargs)
    return keras.optimizers.Adam(**kwargs)


def choose_clipping(hp, optimizer, name="clip", choices=DEFAULT_RANGES["clip"]):
    """Samples a clipping mode; returns `optimizer` wrapped in `GradientClipping`.

    `"none"` returns `optimizer` unwrapped; `"global_norm_1"` and
    `"global_norm_10"` clip the global norm to 1 or 10; `"adaptive"` is
    unit-wise adaptive clipping with ratio 0.01.
    """
    kind = hp.Choice(name, list(choices))
    if kind == "none":
        return optimizer
    return GradientClipping(optimizer, **_CLIPPING[kind])


def choose_decay(hp, name="decay", bounds=DEFAULT_RANGES["decay"]):
    """Samples a per-epoch decay factor; returns `EpochDecay(factor)`."""
    low, high, *step = bounds
    return EpochDecay(hp.Float(name, low, high, step=step[0] if step else None))


def choose_batch_size(hp, name="batch_size", choices=DEFAULT_RANGES["batch_size"]):
    """Samples a batch size; returns it as an int."""
    return hp.Choice(name, list(choices))


def choose_early_stopping(
    hp,
    name="early_stopping",
    choices=DEFAULT_RANGES["early_stopping"],
    *,
    monitor="val_loss",
):
    """Samples a stopping criterion; returns `keras_tricks.callbacks.EarlyStopping`.

    `"patience"` stops after 3 epochs without improvement, `"gl"` when the
    generalisation loss exceeds 5%, `"pq"` when GL / P_5 exceeds 0.5
    (Prechelt 1998). Best weights are restored.
    """
    criterion = hp.Choice(name, list(choices))
    return EarlyStopping(monitor, criterion=criterion, **_STOPPING[criterion])


class Tricks:
    """The sampled tricks of one trial, handed to the user's `build_fn`.

    Attributes:
        values: dict of the sampled choices, by trick name.
        initializer: the Keras initializer for `kernel_initializer=`
            (Keras's default `"glorot_uniform"` when `init` is not tuned).
        kernel_regularizer: a `keras.regularizers.L2`, or `None`.
    """

    def __init__(self, hp, tricks, ranges):
        self._hp = hp
        enabled = set(tricks)
        self.initializer = (
            choose_initializer(hp, choices=ranges["init"])
            if "init" in enabled
            else "glorot_uniform"
        )
        self._normalization = (
            choose_normalization(hp, choices=ranges["norm"])
            if "norm" in enabled
            else keras.layers.Identity
        )
        self._dropout = (
            choose_dropout(hp, bounds=ranges["dropout"])
            if "dropout" in enabled
            else keras.layers.Identity
        )
        self.kernel_regularizer = (
            choose_regularizer(hp, bounds=ranges["l2"]) if "l2" in enabled else None
        )
        self.values = {t: hp.get(t) for t in TRICKS if t in enabled and t in hp.values}

    def normalization(self):
        """A new normalisation layer (`Identity` when `norm` is not tuned)."""
        return self._normalization()

    def dropout(self):
        """A new dropout layer (`Identity` for rate 0 or when not tuned)."""
        return self._dropout()

    def __repr__(self):
        return f"Tricks({self.values!r})"


class TricksHyperModel(keras_tuner.HyperModel):
    """A `keras_tuner.HyperModel` whose hyper-parameters are the tricks.

    `build(hp)` samples every trick named in `tricks` (ranges in
    `DEFAULT_RANGES`), calls `build_fn(hp, tricks)` with a `Tricks` object to
    take components from (`tricks.initializer`, `tricks.normalization()`,
    `tricks.dropout()`, `tricks.kernel_regularizer`), and recompiles the model
    it returns with the sampled optimizer, learning rate and clipping (the
    loss and metrics are the ones `build_fn` compiled with). `fit(hp, model,
    ...)` runs LSUV when it was sampled, passes the sampled `batch_size`, and
    adds the sampled callbacks (`EpochDecay`, `EarlyStopping`).

    A trick left out of `tricks` is not sampled and takes no effect: the
    model keeps what `build_fn` gave it (its compiled optimizer, Keras's
    default initializer, no normalisation or dropout, no decay or early
    stopping, the `batch_size` passed to `search`).

    Args:
        build_fn: `build_fn(hp, tricks) -> keras.Model`, compiled with the
            loss and metrics to use (its optimizer is replaced when any of
            `optimizer`, `lr`, `clip` is tuned).
        tricks: names of the tricks to tune, a subset of `TRICKS`.
            Defaults to all of them.
        fixed: dict pinning tricks to one value, e.g. `{"batch_size": 64}`;
            each value must lie in the trick's range. Defaults to `None`.
        ranges: dict overriding `DEFAULT_RANGES` entries. Defaults to `None`.
        name: name of the hypermodel. Defaults to `None`.
        tunable: whether KerasTuner may tune its hyper-parameters. Defaults
            to `True`.

    Raises:
        ValueError: for an unknown trick name (the message lists the valid
            ones), a `fixed` value outside its range, or a bad range.
        TypeError: if `build_fn` is not callable, or returns no `keras.Model`.

    Example:

    ```python
    def build(hp, tricks):
        model = keras.Sequential([keras.Input((64,))])
        for _ in range(hp.Int("layers", 1, 3)):
            model.add(keras.layers.Dense(64, kernel_initializer=tricks.initializer,
                                         kernel_regularizer=tricks.kernel_regularizer))
            model.add(tricks.normalization())
            model.add(keras.layers.Activation("relu"))
            model.add(tricks.dropout())
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner = keras_tuner.RandomSearch(TricksHyperModel(build),
                                     objective="val_accuracy", max_trials=6)
    tuner.search(x_train, y_train, validation_data=(x_dev, y_dev), epochs=5)
    ```
    """

    def __init__(
        self,
        build_fn,
        *,
        tricks=TRICKS,
        fixed=None,
        ranges=None,
        name=None,
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        if not callable(build_fn):
            raise invalid(
                "build_fn", build_fn, "a callable build_fn(hp, tricks)", TypeError
            )
        if isinstance(tricks, str):
            tricks = (tricks,)
        for trick in tricks:
            if trick not in TRICKS:
                raise invalid(
                    "tricks", trick, "names among " + ", ".join(repr(t) for t in TRICKS)
                )
        self.build_fn = build_fn
        self.tricks = tuple(t for t in TRICKS if t in tricks)
        self.ranges = dict(DEFAULT_RANGES)
        for trick, value in (ranges or {}).items():
            if trick not in TRICKS:
                raise invalid(
                    "ranges", trick, "keys among " + ", ".join(repr(t) for t in TRICKS)
                )
            self.ranges[trick] = _check_range(trick, value)
        self.fixed = dict(fixed or {})
        for trick, value in self.fixed.items():
            if trick not in self.tricks:
                raise invalid(
                    "fixed", trick, "keys among the tuned tricks " + repr(self.tricks)
                )
            if not _in_range(trick, value, self.ranges[trick]):
                raise invalid(
                    f"fixed['{trick}']",
                    value,
                    f"a value in the range {self.ranges[trick]!r}",
                )

    def sample(self, hp):
        """Samples the tricks into `hp` and returns the `Tricks` of this trial."""
        for trick, value in self.fixed.items():
            hp.Fixed(trick, value)
        return Tricks(hp, self.tricks, self.ranges)

    def _optimizer(self, hp, model):
        tuned = {"optimizer", "lr", "clip"} & set(self.tricks)
        if not tuned:
            return model.optimizer
        learning_rate = (
            choose_learning_rate(hp, bounds=self.ranges["lr"])
            if "lr" in tuned
            else None
        )
        if "optimizer" in tuned:
            optimizer = choose_optimizer(
                hp, choices=self.ranges["optimizer"], learning_rate=learning_rate
            )
        else:
            optimizer = model.optimizer.__class__.from_config(
                model.optimizer.get_config()
            )
            if learning_rate is not None:
                optimizer.learning_rate = learning_rate
        if "clip" in tuned:
            optimizer = choose_clipping(hp, optimizer, choices=self.ranges["clip"])
        return optimizer

    def build(self, hp):
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
        config["optimizer"] = self._optimizer(hp, model)
        model.compile(**config)
        return model

    def fit(self, hp, model, *args, **kwargs):
        tricks = set(self.tricks)
        if "batch_size" in tricks:
            if "batch_size" in kwargs:
                raise invalid(
                    "batch_size",
                    kwargs["batch_size"],
                    "None: TricksHyperModel tunes it",
                    fix="Pin it with fixed={'batch_size': n} or leave "
                    "'batch_size' out of `tricks`",
                )
            kwargs["batch_size"] = choose_batch_size(
                hp, choices=self.ranges["batch_size"]
            )
        if "init" in tricks and hp.get("init") == "lsuv":
            x = args[0] if args else kwargs.get("x")
            initializers.lsuv_initialize(model, _first_rows(x))
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if "decay" in tricks:
            callbacks.append(choose_decay(hp, bounds=self.ranges["decay"]))
        if "early_stopping" in tricks:
            has_validation = kwargs.get("validation_data") is not None or kwargs.get(
                "validation_split"
            )
            callbacks.append(
                choose_early_stopping(
                    hp,
                    choices=self.ranges["early_stopping"],
                    monitor="val_loss" if has_validation else "loss",
                )
            )
        return model.fit(*args, callbacks=callbacks, **kwargs)


def _first_rows(x, rows=512):
    """A calibration batch from `fit`'s `x` (array, dict or tf.data.Dataset)."""
    if isinstance(x, dict):
        return {k: v[:rows] for k, v in x.items()}
    if hasattr(x, "shape"):
        return x[:rows]
    batch = next(iter(x))
    return batch[0] if isinstance(batch, tuple) else batch


def trials_table(tuner):
    """All trials of a tuner as a `Report`, best first.

    Columns: `trial_id`, `status`, `score`, then one per hyper-parameter.
    `report.to_records()` gives a list of dicts, `write_csv(report, path)`
    a CSV file for plotting.
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


def write_csv(report, path):
    """Writes a `Report` (e.g. from `trials_table`) to a CSV file."""
    report.to_csv(path)
