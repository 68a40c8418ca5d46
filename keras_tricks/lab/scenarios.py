"""The lab's scenarios: each a training regime in which some tricks have a job.

A trick is judged where it has something to fix: a deep plain network for
the initialisation and normalisation tricks, few examples for the
regularisers, a diverging learning rate for clipping, a long constant-rate
run for the learning-rate schedules. Each scenario has a sound reference
network (He initialisation and the rest of a good recipe, unless the
scenario is about that trick), and for each of its tricks two variants are
trained: the reference plus the trick (add-one) and the scenario's full
recipe minus the trick (leave-one-out).

This module imports nothing heavy (the command line reads it before loading
Keras).

Example:

>>> [v.label for v in variants(SCENARIOS["high-lr"])]
['reference', '+ clip', '+ bn', 'recipe', 'recipe - clip', 'recipe - bn']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from keras_tricks import tricks as registry

MODELS = ("mlp", "cnn")
"""The network families of the lab: a ReLU MLP or a small ReLU CNN."""


@dataclass(frozen=True)
class Scenario:
    """A regime, its reference network and the tricks judged in it.

    Attributes:
        name: e.g. `"deep"`.
        regime: one line saying what makes training hard here.
        tricks: the tricks judged in this scenario.
        reference: `{trick: value}` switched on in the reference network
            (every other trick is off).
        recipe: the tricks (a subset of `tricks`) that together make the
            scenario's full recipe; each is also left out of it in turn.
        metrics: the scenario's extra columns besides dev accuracy:
            `"gap"` (train minus dev accuracy), `"diverged"` (fraction of
            runs whose loss became NaN or infinite).
        architecture: `{model: (depth, width)}`: hidden layers (or
            convolutions) and units (or first-layer channels).
        epochs: `{model: epochs}`.
        optimizer: `"sgd"` (plain), `"sgd_momentum"` (momentum 0.9) or
            `"adam"`.
        learning_rate: the optimizer's (constant) learning rate.
        batch_size: the mini-batch size.
        train_examples: rows of the training split used: `None` for all,
            an integer cap, or `"small"`: a quarter of the split, at most
            100 per class.
        label_noise: share of the training rows whose label is replaced
            by another class, drawn once per scenario (the same noisy rows
            for every variant and seed; dev and test keep their labels).
    """

    name: str
    regime: str
    tricks: tuple[str, ...]
    reference: Mapping[str, Any]
    recipe: tuple[str, ...]
    architecture: Mapping[str, tuple[int, int]]
    epochs: Mapping[str, int]
    optimizer: str
    learning_rate: float
    batch_size: int
    train_examples: int | str | None = None
    metrics: tuple[str, ...] = field(default=())
    label_noise: float = 0.0

    def settings(self, model: str) -> dict[str, Any]:
        """The scenario's settings for `model`, as plain values."""
        depth, width = self.architecture[model]
        return {
            "depth": depth,
            "width": width,
            "epochs": self.epochs[model],
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "train_examples": self.train_examples,
            "label_noise": self.label_noise,
            "tricks": list(self.tricks),
            "reference": dict(self.reference),
            "recipe": list(self.recipe),
            "metrics": list(self.metrics),
        }


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="deep",
            regime="a deep plain network (Keras's default Glorot init, no "
            "normalisation): signal propagation decides",
            tricks=("init", "lsuv", "bn"),
            reference={},
            recipe=("init", "bn"),
            architecture={"mlp": (20, 128), "cnn": (8, 8)},
            epochs={"mlp": 8, "cnn": 3},
            optimizer="sgd",
            learning_rate=0.02,
            batch_size=32,
            train_examples=12000,
        ),
        Scenario(
            name="small-data",
            regime="few training examples and a wide network that overfits",
            tricks=("dropout", "l2", "early_stopping", "swa"),
            reference={"init": "he"},
            recipe=("dropout", "l2", "early_stopping"),
            architecture={"mlp": (2, 512), "cnn": (3, 16)},
            epochs={"mlp": 20, "cnn": 20},
            optimizer="sgd_momentum",
            learning_rate=0.01,
            batch_size=32,
            train_examples="small",
            metrics=("gap",),
        ),
        Scenario(
            name="high-lr",
            regime="plain SGD at a learning rate that diverges without help",
            tricks=("clip", "bn"),
            reference={"init": "he"},
            recipe=("clip", "bn"),
            architecture={"mlp": (6, 128), "cnn": (3, 16)},
            epochs={"mlp": 8, "cnn": 3},
            optimizer="sgd",
            learning_rate=1.0,
            batch_size=64,
            train_examples=12000,
            metrics=("diverged",),
        ),
        Scenario(
            name="long",
            regime="many epochs at a constant learning rate on all the data",
            tricks=("decay", "swa", "plateau"),
            reference={"init": "he", "bn": "batch"},
            recipe=("decay", "swa"),
            architecture={"mlp": (2, 512), "cnn": (3, 16)},
            epochs={"mlp": 12, "cnn": 5},
            optimizer="sgd_momentum",
            learning_rate=0.05,
            batch_size=128,
        ),
    )
}
"""Scenario name -> `Scenario`, in the order the lab runs them."""

DEMO_SCENARIOS: dict[str, Scenario] = {
    "deep": replace(
        SCENARIOS["deep"],
        tricks=("init", "bn"),
        recipe=(),
        epochs={"mlp": 15, "cnn": 4},
    ),
    "high-lr": replace(
        SCENARIOS["high-lr"],
        epochs={"mlp": 8, "cnn": 4},
        regime="plain SGD at learning rate 2: without help the network dies "
        "(a constant guess) in every seed",
        recipe=(),
        learning_rate=2.0,
    ),
    "small-data": replace(
        SCENARIOS["small-data"],
        regime="few training examples, 30% of them mislabelled, and a wide "
        "network that learns the wrong labels",
        tricks=("early_stopping", "swa"),
        recipe=("early_stopping", "swa"),
        epochs={"mlp": 40, "cnn": 40},
        label_noise=0.3,
    ),
    "long": replace(
        SCENARIOS["long"],
        regime="500 training examples, 20% of them mislabelled, at a constant "
        "learning rate",
        tricks=("decay", "plateau"),
        recipe=(),
        architecture={"mlp": (2, 256), "cnn": (3, 16)},
        epochs={"mlp": 30, "cnn": 30},
        batch_size=32,
        train_examples=500,
        label_noise=0.2,
    ),
}
"""The scenarios of `keras-tricks demo`: made for the small digits data.

On digits the full scenarios leave no room (the `long` reference reaches
0.98 dev accuracy, `small-data` 0.92), so the demo's regimes are harder
(mislabelled rows, fewer examples, a learning rate at which the plain
network dies in every seed), and it judges only the tricks whose effect, or
its absence, 6 seeds resolve there: `lsuv` (slow), `dropout` (-0.016 on the
noisy small data, undecided at 5 seeds), `l2` (a few thousandths: decided in
one 6-seed run, not in another) and `swa` in `long` (+0.011, undecided) are
left to `keras-tricks ablate`. Every scenario's reference stays below 0.95
dev accuracy on digits.
"""


@dataclass(frozen=True)
class Variant:
    """One network of a scenario: its tricks and what it is compared with.

    Attributes:
        scenario: the scenario's name.
        kind: `"reference"`, `"add-one"` (reference + `trick`),
            `"recipe"` (reference + every recipe trick) or
            `"leave-one-out"` (recipe - `trick`).
        trick: the trick added or left out; `""` for the reference and the
            recipe.
        values: `{trick: value}` of every trick on in this network.
    """

    scenario: str
    kind: str
    trick: str
    values: Mapping[str, Any]

    @property
    def key(self) -> frozenset[tuple[str, Any]]:
        """Identifies the network: variants with equal keys share runs."""
        return frozenset(self.values.items())

    @property
    def label(self) -> str:
        """A short name: `reference`, `+ bn`, `recipe`, `recipe - bn`."""
        return {
            "reference": "reference",
            "recipe": "recipe",
            "add-one": f"+ {self.trick}",
            "leave-one-out": f"recipe - {self.trick}",
        }[self.kind]


def variants(scenario: Scenario, tricks: Iterable[str] | None = None) -> list[Variant]:
    """The reference, add-one, recipe and leave-one-out variants of a scenario.

    Args:
        scenario: a `Scenario`.
        tricks: keep only these of the scenario's tricks (`None`: all).

    Returns:
        A list of `Variant`, the reference first. The recipe and its
        leave-one-out variants appear when at least two recipe tricks are
        kept.
    """
    wanted = None if tricks is None else {registry.canonical(t) for t in tricks}
    judged = [t for t in scenario.tricks if wanted is None or t in wanted]
    reference = dict(scenario.reference)
    found = [Variant(scenario.name, "reference", "", reference)]
    for trick in judged:
        values = {**reference, trick: registry.get(trick).lab}
        found.append(Variant(scenario.name, "add-one", trick, values))
    recipe = [t for t in scenario.recipe if t in judged]
    if len(recipe) >= 2:
        full = {**reference, **{t: registry.get(t).lab for t in recipe}}
        found.append(Variant(scenario.name, "recipe", "", full))
        for trick in recipe:
            without = {k: v for k, v in full.items() if k != trick}
            found.append(Variant(scenario.name, "leave-one-out", trick, without))
    return found


def scenarios_for(tricks: Iterable[str]) -> list[str]:
    """The scenarios that judge at least one of `tricks`, in run order.

    Example:

    >>> scenarios_for(["swa"])
    ['small-data', 'long']
    """
    wanted = {registry.canonical(t) for t in tricks}
    return [name for name, s in SCENARIOS.items() if wanted & set(s.tricks)]
