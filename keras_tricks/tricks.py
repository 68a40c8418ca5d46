"""The trick registry: one record per trick, read by the lab, the tuner and the studies.

Each `Trick` says what the trick is, the value the ablation lab uses
(`lab`), the range KerasTuner searches (`search`), the value that means
"not used" (`off`) and where it acts (`applies_to`: the layer stack, the
optimizer, the fit arguments or the callbacks). `Setup.from_values` turns a
`{trick: value}` dict into the Keras components those values stand for; the
lab (`keras_tricks.lab`), the tuner (`keras_tricks.tuning`) and the studies
(`keras_tricks.studies`) build their models from a `Setup` and contain no
code of their own per trick. Adding a trick means adding one record here.

This module imports nothing heavy (no Keras, no TensorFlow): the command
line reads the trick names from it before deciding to load anything.

| trick | applies to | lab value | tuner range |
|---|---|---|---|
| `init` | layers | `he` | glorot, he, lecun, lsuv |
| `lsuv` | layers | `True` | (tuned as `init="lsuv"`) |
| `bn` (alias `norm`) | layers | `batch` | none, batch, ghost |
| `dropout` | layers | `0.3` | [0, 0.5], step 0.1 |
| `l2` | layers | `1e-3` | log-uniform [1e-6, 1e-2] |
| `clip` | optimizer | `global_norm_1` | none, global_norm_1, global_norm_10, adaptive |
| `optimizer` | optimizer | (not in the lab) | sgd_momentum, adam |
| `lr` | optimizer | (not in the lab) | log-uniform [1e-4, 1e-1] |
| `decay` | callbacks | `0.85` | [0.9, 1], step 0.02 |
| `batch_size` | fit | (not in the lab) | 32, 64, 128, 256 |
| `early_stopping` | callbacks | `patience` | patience, gl, pq |
| `swa` | callbacks | `0.75` | (not tuned) |
| `plateau` | callbacks | `0.5` | (not tuned) |

Example:

>>> from keras_tricks import tricks
>>> tricks.get("norm").name
'bn'
>>> tricks.LAB_TRICKS  # doctest: +NORMALIZE_WHITESPACE
('init', 'lsuv', 'bn', 'dropout', 'l2', 'clip', 'decay', 'early_stopping',
 'swa', 'plateau')
"""

from __future__ import annotations

import numbers
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

APPLIES_TO = ("layers", "optimizer", "fit", "callbacks")
"""Where a trick acts: the layer stack, the optimizer, `fit`'s arguments, or
the callbacks list."""

KINDS = ("choice", "integer", "float", "log")
"""How a trick's values vary: named choices, positive integers, a float on a
linear scale, a float on a log scale."""

GHOST_BATCH_SIZE = 16
"""Virtual batch size of the `"ghost"` normalisation choice."""

CLIPPING: dict[str, dict[str, Any]] = {
    "global_norm_1": {"mode": "global_norm", "threshold": 1.0},
    "global_norm_10": {"mode": "global_norm", "threshold": 10.0},
    "adaptive": {"mode": "adaptive", "threshold": 0.01},
}
"""`GradientClipping` arguments of each `clip` choice other than `"none"`."""

STOPPING: dict[str, dict[str, Any]] = {
    "patience": {"patience": 5},
    "gl": {"alpha": 5.0},
    "pq": {"alpha": 0.5, "strip_length": 5},
}
"""`EarlyStopping` arguments of each `early_stopping` criterion."""

PLATEAU_PATIENCE = 2
"""Epochs without improvement before `plateau` cuts the learning rate."""


@dataclass
class Setup:
    """The Keras components that one set of trick values stands for.

    Build it with `Setup.from_values`; then take the components from it:
    `initializer()` and `kernel_regularizer` for every kernel,
    `normalization()` after every hidden layer (before its activation),
    `dropout()` after every activation, `optimizer(base)` for `compile`,
    `prepare(model, x)` before `compile` (the data-driven initialisation),
    `callbacks` and `fit_kwargs` for `fit`.

    Args:
        seed: seed of the initializers and dropout masks (`None`: Keras's
            global seed). Defaults to `None`.
        epochs: the epochs `fit` will run (SWA starts at a fraction of
            them). Defaults to `1`.
        monitor: the quantity early stopping and plateau watch. Defaults to
            `"val_loss"`.
        data: training inputs for the data-driven tricks (LSUV calibrates on
            its first 512 rows, SWA re-estimates batch-norm statistics on
            it). Defaults to `None`.

    Example:

    >>> setup = Setup.from_values({"init": "he", "dropout": 0.2, "decay": 0.9})
    >>> type(setup.initializer()).__name__, type(setup.dropout()).__name__
    ('HeNormal', 'Dropout')
    >>> [type(c).__name__ for c in setup.callbacks]
    ['EpochDecay']
    """

    seed: int | None = None
    epochs: int = 1
    monitor: str = "val_loss"
    data: Any = None
    init: Any = None
    lsuv: bool = False
    kernel_regularizer: Any = None
    normalization_kind: str = "none"
    dropout_rate: float = 0.0
    optimizer_kind: str | None = None
    learning_rate: float | None = None
    clipping: dict[str, Any] | None = None
    callbacks: list[Any] = field(default_factory=list)
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    _seeds: Any = field(default=None, repr=False)

    @classmethod
    def from_values(cls, values: Mapping[str, Any], **context: Any) -> Setup:
        """The components of `values` (`{trick name or alias: value}`).

        Tricks are applied in registry order; a trick missing from `values`
        is off. `context` sets the `seed`, `epochs`, `monitor` and `data`
        fields.

        Raises:
            ValueError: for an unknown trick name or a value the trick does
                not accept.
        """
        setup = cls(**context)
        resolved = {get(name).name: value for name, value in values.items()}
        for name, trick in REGISTRY.items():
            if name in resolved:
                trick.check(resolved[name])
                trick.apply(setup, resolved[name])
        return setup

    def initializer(self) -> Any:
        """A new kernel initializer with its own integer seed.

        Successive calls give different seeds (so layers of equal shape get
        different weights), drawn from `seed`, or from Python's `random`
        (which `keras.utils.set_random_seed` seeds) when `seed` is `None`.
        Keras's default (`"glorot_uniform"`) when `init` is off.
        """
        if self.init is None:
            return "glorot_uniform"
        import keras

        from keras_tricks import initializers

        if isinstance(self.init, keras.initializers.Initializer):
            return self.init
        if self._seeds is None:
            self._seeds = random.Random(self.seed) if self.seed is not None else random
        return initializers.get(self.init, seed=self._seeds.randrange(2**31))

    def normalization(self) -> Any:
        """A new normalisation layer, or `None` when `bn` is off."""
        import keras

        from keras_tricks.layers import GhostBatchNormalization

        if self.normalization_kind == "batch":
            return keras.layers.BatchNormalization()
        if self.normalization_kind == "ghost":
            return GhostBatchNormalization(GHOST_BATCH_SIZE)
        return None

    def dropout(self) -> Any:
        """A new dropout layer, or `None` when the rate is 0."""
        import keras

        if not self.dropout_rate:
            return None
        return keras.layers.Dropout(self.dropout_rate)

    def optimizer(self, base: Any) -> Any:
        """`base` (a Keras optimizer) as the tricks change it.

        `optimizer` replaces it by `SGD(momentum=0.9)` or `Adam`, `lr` sets
        its learning rate, `clip` wraps it in `GradientClipping`. A new
        optimizer is returned whenever anything changes; `base` itself is
        returned untouched when nothing does.
        """
        import keras

        from keras_tricks.optimizers import GradientClipping

        optimizer = base
        if self.optimizer_kind is not None:
            kwargs = {}
            if self.learning_rate is not None:
                kwargs["learning_rate"] = self.learning_rate
            optimizer = (
                keras.optimizers.SGD(momentum=0.9, **kwargs)
                if self.optimizer_kind == "sgd_momentum"
                else keras.optimizers.Adam(**kwargs)
            )
        elif self.learning_rate is not None or self.clipping:
            optimizer = base.__class__.from_config(base.get_config())
            if self.learning_rate is not None:
                optimizer.learning_rate = self.learning_rate
        if self.clipping:
            optimizer = GradientClipping(optimizer, **self.clipping)
        return optimizer

    def prepare(self, model: Any, x: Any) -> None:
        """Runs the data-driven initialisation (LSUV) on `model`, if chosen.

        Calibrates on the first 512 rows of `x`; does nothing when `lsuv`
        (or `init="lsuv"`) is off.
        """
        if self.lsuv:
            from keras_tricks.initializers import lsuv_initialize

            lsuv_initialize(model, x[:512], seed=self.seed)


@dataclass(frozen=True)
class Trick:
    """One trick: what it is, its lab value, its search range, how it applies.

    Attributes:
        name: the trick's name, e.g. `"dropout"`.
        description: one line saying what the lab's value does.
        applies_to: one of `APPLIES_TO`.
        kind: one of `KINDS`.
        off: the value that means "not used".
        lab: the value the ablation lab uses, `None` if the lab does not
            vary it.
        search: the tuner's default range (choices, `(min, max)` or `(min,
            max, step)`), `None` if the tuner does not search it.
        choices: the values accepted for a `"choice"` trick.
        bounds: `(low, high)` accepted for a `"float"` or `"log"` trick.
        apply: `apply(setup, value)` writes the trick into a `Setup`.
        aliases: older names that still select the trick.
        docs: the page of `docs/` that explains it.
    """

    name: str
    description: str
    applies_to: str
    kind: str
    off: Any
    lab: Any
    search: tuple[Any, ...] | None
    apply: Callable[[Setup, Any], None]
    choices: tuple[Any, ...] = ()
    bounds: tuple[float, float] = (0.0, 0.0)
    aliases: tuple[str, ...] = ()
    docs: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether `value` is a valid value of this trick.

        Example:

        >>> get("dropout").accepts(0.3), get("dropout").accepts(1.5)
        (True, False)
        """
        if value == self.off:
            return True
        if self.kind == "choice":
            return _hashable(value) and value in self.choices
        if self.kind == "integer":
            return (
                isinstance(value, numbers.Integral)
                and not isinstance(value, bool)
                and int(value) >= 1
            )
        return (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and self.bounds[0] <= float(value) <= self.bounds[1]
        )

    def check(self, value: Any) -> Any:
        """Returns `value`, or raises a `ValueError` if the trick rejects it."""
        if not self.accepts(value):
            from keras_tricks._validation import invalid

            raise invalid(self.name, value, self.expected())
        return value

    def expected(self) -> str:
        """What the trick accepts, in words (for error messages)."""
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "integer":
            return "a positive integer"
        return f"a number in [{self.bounds[0]}, {self.bounds[1]}]"


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _init(setup: Setup, value: Any) -> None:
    if value == "lsuv":
        setup.lsuv = True
        value = "orthogonal"
    setup.init = value


def _lsuv(setup: Setup, value: Any) -> None:
    if value:
        _init(setup, "lsuv")


def _bn(setup: Setup, value: Any) -> None:
    setup.normalization_kind = value


def _dropout(setup: Setup, value: Any) -> None:
    setup.dropout_rate = float(value)


def _l2(setup: Setup, value: Any) -> None:
    if value:
        import keras

        setup.kernel_regularizer = keras.regularizers.L2(value)


def _clip(setup: Setup, value: Any) -> None:
    setup.clipping = CLIPPING.get(value)


def _optimizer(setup: Setup, value: Any) -> None:
    setup.optimizer_kind = value


def _lr(setup: Setup, value: Any) -> None:
    setup.learning_rate = None if value is None else float(value)


def _decay(setup: Setup, value: Any) -> None:
    if value is not None and value < 1.0:
        from keras_tricks.callbacks import EpochDecay

        setup.callbacks.append(EpochDecay(value))


def _batch_size(setup: Setup, value: Any) -> None:
    if value is not None:
        setup.fit_kwargs["batch_size"] = int(value)


def _early_stopping(setup: Setup, value: Any) -> None:
    if value in STOPPING:
        from keras_tricks.callbacks import EarlyStopping

        setup.callbacks.append(
            EarlyStopping(setup.monitor, criterion=value, **STOPPING[value])
        )


def _swa(setup: Setup, value: Any) -> None:
    if value is not None:
        from keras_tricks.callbacks import WeightAveraging

        start = min(int(value * setup.epochs), max(setup.epochs - 1, 0))
        setup.callbacks.append(WeightAveraging(start, recalibrate_data=setup.data))


def _plateau(setup: Setup, value: Any) -> None:
    if value is not None:
        from keras_tricks.callbacks import ReduceLROnPlateau

        setup.callbacks.append(
            ReduceLROnPlateau(setup.monitor, value, PLATEAU_PATIENCE)
        )


_RECORDS = (
    Trick(
        name="init",
        description="He initialisation instead of Keras's default Glorot",
        applies_to="layers",
        kind="choice",
        off=None,
        lab="he",
        search=("glorot", "he", "lecun", "lsuv"),
        choices=(
            "uniform",
            "gaussian",
            "lecun",
            "glorot",
            "xavier",
            "he",
            "orthogonal",
            "lsuv",
        ),
        apply=_init,
        docs="initializers.md",
    ),
    Trick(
        name="lsuv",
        description="orthogonal start, each layer rescaled to unit variance on "
        "512 training rows (LSUV)",
        applies_to="layers",
        kind="choice",
        off=False,
        lab=True,
        search=None,
        choices=(True,),
        apply=_lsuv,
        docs="initializers.md#lsuv",
    ),
    Trick(
        name="bn",
        description="`BatchNormalization` before each activation",
        applies_to="layers",
        kind="choice",
        off="none",
        lab="batch",
        search=("none", "batch", "ghost"),
        choices=("batch", "ghost"),
        apply=_bn,
        aliases=("norm",),
        docs="normalization.md",
    ),
    Trick(
        name="dropout",
        description="`Dropout(0.3)` after each hidden activation",
        applies_to="layers",
        kind="float",
        off=0.0,
        lab=0.3,
        search=(0.0, 0.5, 0.1),
        bounds=(0.0, 0.95),
        apply=_dropout,
        docs="dropout.md",
    ),
    Trick(
        name="l2",
        description="L2 penalty 1e-3 on every kernel",
        applies_to="layers",
        kind="log",
        off=0.0,
        lab=1e-3,
        search=(1e-6, 1e-2),
        bounds=(0.0, 1.0),
        apply=_l2,
        docs="regularizers.md",
    ),
    Trick(
        name="clip",
        description='`GradientClipping(mode="global_norm", threshold=1)`',
        applies_to="optimizer",
        kind="choice",
        off="none",
        lab="global_norm_1",
        search=("none", "global_norm_1", "global_norm_10", "adaptive"),
        choices=tuple(CLIPPING),
        apply=_clip,
        docs="optimizers.md",
    ),
    Trick(
        name="optimizer",
        description="SGD with momentum 0.9 or Adam",
        applies_to="optimizer",
        kind="choice",
        off=None,
        lab=None,
        search=("sgd_momentum", "adam"),
        choices=("sgd_momentum", "adam"),
        apply=_optimizer,
    ),
    Trick(
        name="lr",
        description="the optimizer's learning rate",
        applies_to="optimizer",
        kind="log",
        off=None,
        lab=None,
        search=(1e-4, 1e-1),
        bounds=(0.0, 10.0),
        apply=_lr,
    ),
    Trick(
        name="decay",
        description="`EpochDecay(0.85)`: learning rate x 0.85 after each epoch",
        applies_to="callbacks",
        kind="float",
        off=1.0,
        lab=0.85,
        search=(0.9, 1.0, 0.02),
        bounds=(0.0, 1.0),
        apply=_decay,
        docs="callbacks.md#learning-rate-decay",
    ),
    Trick(
        name="batch_size",
        description="the mini-batch size",
        applies_to="fit",
        kind="integer",
        off=None,
        lab=None,
        search=(32, 64, 128, 256),
        apply=_batch_size,
    ),
    Trick(
        name="early_stopping",
        description=f"`EarlyStopping(patience={STOPPING['patience']['patience']})` "
        "on the dev loss, best weights restored",
        applies_to="callbacks",
        kind="choice",
        off="none",
        lab="patience",
        search=("patience", "gl", "pq"),
        choices=tuple(STOPPING),
        apply=_early_stopping,
        docs="callbacks.md#early-stopping-prechelts-criteria",
    ),
    Trick(
        name="swa",
        description="`WeightAveraging` (SWA) over the last quarter of the epochs, "
        "batch-norm statistics re-estimated",
        applies_to="callbacks",
        kind="float",
        off=None,
        lab=0.75,
        search=None,
        bounds=(0.0, 1.0),
        apply=_swa,
        docs="callbacks.md",
    ),
    Trick(
        name="plateau",
        description="`ReduceLROnPlateau(factor=0.5, "
        f"patience={PLATEAU_PATIENCE})` on the dev loss",
        applies_to="callbacks",
        kind="float",
        off=None,
        lab=0.5,
        search=None,
        bounds=(0.0, 1.0),
        apply=_plateau,
        docs="callbacks.md",
    ),
)

REGISTRY: dict[str, Trick] = {trick.name: trick for trick in _RECORDS}
"""Trick name -> `Trick`, in the order tricks are applied."""

ALIASES: dict[str, str] = {
    alias: trick.name for trick in _RECORDS for alias in trick.aliases
}
"""Older name -> trick name (e.g. `"norm"` -> `"bn"`)."""

LAB_TRICKS: tuple[str, ...] = tuple(t.name for t in _RECORDS if t.lab is not None)
"""The tricks the ablation lab varies."""

TUNER_TRICKS: tuple[str, ...] = tuple(t.name for t in _RECORDS if t.search is not None)
"""The tricks `keras_tricks.tuning.TricksHyperModel` can search."""


def canonical(name: str) -> str:
    """The trick name that `name` (a name or an alias) stands for.

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.

    Example:

    >>> canonical("norm"), canonical("dropout")
    ('bn', 'dropout')
    """
    if isinstance(name, str) and name in REGISTRY:
        return name
    if isinstance(name, str) and name in ALIASES:
        return ALIASES[name]
    from keras_tricks._validation import invalid

    raise invalid("trick", name, "one of " + ", ".join(REGISTRY))


def get(name: str) -> Trick:
    """The `Trick` record of `name` (a trick name or an alias).

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.

    Example:

    >>> get("clip").applies_to, get("clip").lab
    ('optimizer', 'global_norm_1')
    """
    return REGISTRY[canonical(name)]


def _number(value: float, log: bool = False) -> str:
    """`1e-3` for log-scale values, `0.5` otherwise."""
    if log and value:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:g}"


def value_text(name: str, value: Any) -> str:
    """A trick's value as the tables show it (`he`, `0.3`, `1e-3`)."""
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, bool) or value is None:
        return f"`{value}`"
    return f"`{_number(value, get(name).kind == 'log')}`"


def range_text(name: str) -> str:
    """The tuner's default range of a trick in words, e.g. `[0, 0.5], step 0.1`.

    Example:

    >>> range_text("dropout"), range_text("l2"), range_text("bn")
    ('[0, 0.5], step 0.1', 'log-uniform [1e-6, 1e-2]', 'none, batch, ghost')
    """
    trick = get(name)
    if trick.search is None:
        return "(not tuned)"
    if trick.kind in ("choice", "integer"):
        return ", ".join(str(v) for v in trick.search)
    log = trick.kind == "log"
    text = f"[{_number(trick.search[0], log)}, {_number(trick.search[1], log)}]"
    if len(trick.search) > 2:
        text += f", step {_number(trick.search[2])}"
    return f"log-uniform {text}" if log else text


def _name_cell(trick: Trick) -> str:
    aliases = ", ".join(f"`{a}`" for a in trick.aliases)
    return f"`{trick.name}`" + (f" (alias {aliases})" if aliases else "")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def registry_table() -> str:
    """The registry as a Markdown table: where each trick acts, its lab value
    and its tuner range (this module's docstring shows it)."""
    rows = []
    for trick in _RECORDS:
        lab = (
            "(not in the lab)"
            if trick.lab is None
            else value_text(trick.name, trick.lab)
        )
        search = range_text(trick.name)
        if trick.name == "lsuv":
            search = '(tuned as `init="lsuv"`)'
        rows.append((_name_cell(trick), trick.applies_to, lab, search))
    return _table(("trick", "applies to", "lab value", "tuner range"), rows)


def lab_table() -> str:
    """What the ablation lab adds for each trick, as a Markdown table
    (`docs/lab.md` shows it)."""
    rows = [
        (
            f"`{name}`",
            REGISTRY[name].description,
            f"[{REGISTRY[name].docs}]({REGISTRY[name].docs})",
        )
        for name in LAB_TRICKS
    ]
    return _table(("trick", "what the lab adds", "docs"), rows)


_HYPER_PARAMETERS = {
    "choice": "`Choice`",
    "integer": "`Choice`",
    "float": "`Float`",
    "log": "`Float`, log",
}


def tuner_table() -> str:
    """The tuner's default search ranges as a Markdown table
    (`keras_tricks.tuning`'s docstring shows it)."""
    rows = [
        (
            _name_cell(REGISTRY[name]),
            _HYPER_PARAMETERS[REGISTRY[name].kind],
            range_text(name),
        )
        for name in TUNER_TRICKS
    ]
    return _table(("trick", "hyper-parameter", "default range"), rows)
