"""The ablation lab: each trick judged in its own scenario, over several seeds.

For every scenario (`keras_tricks.lab.scenarios`), each distinct network
(reference, add-one, recipe, leave-one-out) trains once per seed on the
training split and is judged on the dev split; the test split is evaluated
once per run, for the record, and never used to choose anything. The effect
of a trick is a paired difference over seeds with a Student-t interval
(`keras_tricks.lab.statistics`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from keras_tricks import tricks as registry
from keras_tricks._extras import require
from keras_tricks.data import train_dev_test_split
from keras_tricks.datasets import LabDataset, check_data, standardize
from keras_tricks.lab.models import build_model, mlp
from keras_tricks.lab.scenarios import SCENARIOS, Scenario, Variant, variants
from keras_tricks.lab.statistics import paired_interval, trained, verdict
from keras_tricks.report import Report
from keras_tricks.tricks import Setup

TRICKS = {name: registry.REGISTRY[name].description for name in registry.LAB_TRICKS}
"""Trick name -> what the lab's value of it does (from `keras_tricks.tricks`)."""

DEFAULT_TRICKS = registry.LAB_TRICKS
"""Every trick the lab judges."""

DEV_EXAMPLES = 5000
"""At most this many dev rows are scored each epoch (Fashion-MNIST's dev split
has 12,000)."""

TRAIN_SCORE_EXAMPLES = 5000
"""The train accuracy (for the train-dev gap) is measured on this many rows."""


@dataclass
class Split:
    """Standardised train/dev/test arrays, and the input shape the model sees."""

    train: tuple[np.ndarray, np.ndarray]
    dev: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    classes: int


def make_split(x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> tuple:
    """60/20/20 stratified split, features z-scored on the training split.

    Args:
        x: features, one row per example.
        y: integer labels.
        seed: seed of the split. Defaults to `0`.

    Returns:
        `(x_train, y_train), (x_dev, y_dev), (x_test, y_test)`.
    """
    x_train, x_dev, x_test, y_train, y_dev, y_test = train_dev_test_split(
        x, y, dev_size=0.2, test_size=0.2, stratify=y, random_state=seed
    )
    x_train, x_dev, x_test = standardize(x_train, x_dev, x_test)
    return (x_train, y_train), (x_dev, y_dev), (x_test, y_test)


def split_dataset(data: LabDataset, model: str = "mlp", *, seed: int = 0) -> Split:
    """The lab's split of `data`, shaped for `model`.

    A dataset with its own test split (Fashion-MNIST) keeps it and gives 20%
    of its training rows, stratified, to dev; any other is split 60/20/20.
    Features are z-scored with the training split's statistics. For
    `model="cnn"` the rows keep (or get) their image shape.

    Raises:
        ValueError: for `model="cnn"` on data that is not images.
    """
    if data.test is None:
        train, dev, test = make_split(data.x, data.y, seed=seed)
    else:
        x_train, x_dev, y_train, y_dev = _sklearn_split(data.x, data.y, 0.2, seed)
        x_train, x_dev, x_test = standardize(x_train, x_dev, data.test[0])
        train, dev, test = (x_train, y_train), (x_dev, y_dev), (x_test, data.test[1])
    if model == "cnn":
        if data.image_shape is None:
            raise ValueError(
                f"--model cnn needs image data, but {data.name} has flat "
                f"features of shape {data.x.shape[1:]}: store `x` as (n, "
                "height, width) or (n, height, width, channels), or use --model mlp."
            )
        shape: tuple[int, ...] = data.image_shape
    else:
        shape = (int(np.prod(data.x.shape[1:])),)
    train, dev, test = ((x.reshape((len(x), *shape)), y) for x, y in (train, dev, test))
    return Split(train, dev, test, data.classes)


def train_subset(
    split: Split,
    examples: int | str | None,
    seed: int = 0,
    label_noise: float = 0.0,
) -> tuple:
    """The training rows a scenario uses (`None`: all; see `Scenario`).

    With `label_noise`, that share of the rows (drawn with `seed`) gets
    another class's label, drawn uniformly among the other classes.
    """
    x, y = split.train
    rows = len(x) if examples is None else examples
    if rows == "small":
        rows = min(len(x) // 4, 100 * split.classes)
    if int(rows) < len(x):
        keep, _, _, _ = _sklearn_split(np.arange(len(x)), y, len(x) - int(rows), seed)
        keep = np.sort(keep)
        x, y = x[keep], y[keep]
    if label_noise:
        rng = np.random.default_rng(seed)
        flipped = rng.choice(len(y), round(label_noise * len(y)), replace=False)
        y = y.copy()
        shift = rng.integers(1, split.classes, len(flipped))
        y[flipped] = (y[flipped] + shift) % split.classes
    return x, y


def _sklearn_split(x: np.ndarray, y: np.ndarray, held_out: float, seed: int) -> list:
    """scikit-learn's stratified two-way split (`held_out`: fraction or count)."""
    selection = require("sklearn.model_selection", "lab", "the ablation lab")
    return selection.train_test_split(
        x, y, test_size=held_out, stratify=y, random_state=seed
    )


class _EpochEnd(keras.callbacks.Callback):
    """Stops a run whose epoch loss is NaN or infinite (it diverged), and
    reports each epoch to `hook`. Checking once per epoch, not per batch as
    `keras.callbacks.TerminateOnNaN` does, keeps `fit` free of a per-step sync."""

    def __init__(self, hook: Callable[[int, dict[str, Any]], None] | None) -> None:
        super().__init__()
        self.hook = hook

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        if not math.isfinite(float(logs.get("loss", 0.0))):
            self.model.stop_training = True
        if self.hook is not None:
            self.hook(epoch + 1, logs)


def keep_compiled_programs() -> None:
    """On JAX, keeps compiled programs for the rest of the process.

    The seeds of one network compile to the same XLA program, so with JAX's
    persistent compilation cache every seed after the first skips the
    compilation: a lab run on digits takes about a third of the time (0.5 s
    instead of 1.6 s for a small MLP). The cache lives in a temporary
    directory removed at exit. Does nothing on other backends, or when a
    cache directory is set already (the user's own is left alone); it sets
    process-wide JAX options, so the command line and the benchmarks call
    it, not `run_ablation`.
    """
    if keras.backend.backend() != "jax":
        return
    import atexit
    import shutil
    import tempfile

    import jax

    if getattr(jax.config, "jax_compilation_cache_dir", None):
        return
    directory = tempfile.mkdtemp(prefix="keras-tricks-jax-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _base_optimizer(kind: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """`"sgd"` (plain), `"sgd_momentum"` (momentum 0.9) or `"adam"`."""
    if kind == "adam":
        return keras.optimizers.Adam(learning_rate)
    momentum = 0.9 if kind == "sgd_momentum" else 0.0
    return keras.optimizers.SGD(learning_rate, momentum=momentum)


def train_run(
    split: Split,
    train: tuple[np.ndarray, np.ndarray],
    values: dict[str, Any],
    settings: dict[str, Any],
    *,
    model: str = "mlp",
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Trains one network once; returns its curves and scores.

    Args:
        split: the dataset's `Split` (dev and test are used from it).
        train: the `(x, y)` training rows of the scenario.
        values: `{trick: value}` switched on.
        settings: a scenario's `settings(model)` (possibly overridden).
        model: `"mlp"` or `"cnn"`. Defaults to `"mlp"`.
        seed: seeds weights, dropout masks and shuffling. Defaults to `0`.
        on_epoch: optional `on_epoch(epoch, logs)` after every epoch.

    Returns:
        A dict: `curves` (per-epoch `loss`, `accuracy`, `val_loss`,
        `val_accuracy`), `dev_accuracy`, `train_accuracy`,
        `test_accuracy` (final weights), `diverged` (the loss became NaN or
        infinite; training stops there), `epochs` run and `seconds`.
    """
    (x_train, y_train), (x_dev, y_dev) = train, split.dev
    x_dev, y_dev = x_dev[:DEV_EXAMPLES], y_dev[:DEV_EXAMPLES]
    # Whole batches only: a smaller last batch would trace the train step twice.
    whole = max(len(x_train) // settings["batch_size"], 1) * settings["batch_size"]
    x_train, y_train = x_train[:whole], y_train[:whole]
    epochs = settings["epochs"]
    keras.utils.set_random_seed(seed)
    setup = Setup.from_values(
        values, seed=seed, epochs=epochs, monitor="val_loss", data=x_train[:2048]
    )
    network = build_model(
        model,
        x_train.shape[1:],
        split.classes,
        depth=settings["depth"],
        width=settings["width"],
        setup=setup,
    )
    start = time.perf_counter()
    setup.prepare(network, x_train)
    optimizer = setup.optimizer(
        _base_optimizer(settings["optimizer"], settings["learning_rate"])
    )
    network.compile(
        optimizer,
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # TensorFlow's XLA compiles each run anew, slower for small runs; JAX
        # without jit would run eagerly.
        jit_compile=keras.backend.backend() == "jax",
    )
    callbacks = [*setup.callbacks, _EpochEnd(on_epoch)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = network.fit(
            x_train,
            y_train,
            validation_data=(x_dev, y_dev),
            epochs=epochs,
            batch_size=settings["batch_size"],
            validation_batch_size=len(x_dev),
            verbose=0,
            callbacks=callbacks,
        )
    curves = {
        key: [float(v) for v in history.history.get(key, [])]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy")
    }
    diverged = not all(math.isfinite(v) for v in curves["loss"])
    scores = _accuracies(
        network,
        {
            "dev_accuracy": (x_dev, y_dev),
            "train_accuracy": (
                x_train[:TRAIN_SCORE_EXAMPLES],
                y_train[:TRAIN_SCORE_EXAMPLES],
            ),
            "test_accuracy": split.test,
        },
        diverged,
    )
    return {
        "curves": curves,
        **scores,
        "diverged": diverged,
        "epochs": len(curves["loss"]),
        "seconds": time.perf_counter() - start,
    }


def _accuracies(
    model: keras.Model, parts: dict[str, tuple[np.ndarray, np.ndarray]], diverged: bool
) -> dict[str, float]:
    """Accuracy of `model` on each `(x, y)` of `parts` (one `predict` call).

    A diverged model (non-finite outputs) scores the share of the most
    frequent class, what a constant guess gets.
    """
    x = np.concatenate([x for x, _ in parts.values()])
    predicted = model.predict(x, batch_size=len(x), verbose=0)
    scores, start = {}, 0
    for name, (part, y) in parts.items():
        chunk = predicted[start : start + len(part)]
        start += len(part)
        if diverged or not np.isfinite(chunk).all():
            scores[name] = float(np.bincount(y).max() / len(y))
        else:
            scores[name] = float(np.mean(np.argmax(chunk, axis=-1) == y))
    return scores


def build_variant(
    input_dim: int,
    classes: int,
    tricks: Iterable[str],
    *,
    depth: int,
    width: int,
    seed: int | None = None,
) -> keras.Sequential:
    """The lab's MLP with `tricks` (lab names) switched on at their lab values.

    Args:
        input_dim: features per example.
        classes: output classes.
        tricks: trick names (from `TRICKS`) to switch on.
        depth: hidden layers.
        width: units per hidden layer.
        seed: seed of the initializer. Defaults to `None`.

    Returns:
        An uncompiled `keras.Sequential` (LSUV, optimizer and callback tricks
        act later, in `train_run`).

    Example:

    >>> model = build_variant(64, 10, {"bn", "dropout"}, depth=2, width=8, seed=0)
    >>> sorted({type(layer).__name__ for layer in model.layers})
    ['Activation', 'BatchNormalization', 'Dense', 'Dropout']
    """
    values = {name: registry.get(name).lab for name in tricks}
    setup = Setup.from_values(values, seed=seed)
    return mlp(input_dim, classes, depth=depth, width=width, setup=setup)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return float(np.mean(values)), std


class AblationResult:
    """What `run_ablation` measured.

    Attributes:
        runs: one dict per (scenario, variant, seed): `scenario`, `kind`,
            `trick`, `variant` (label), `seed` and `train_run`'s `curves`,
            `dev_accuracy`, `train_accuracy`, `test_accuracy`, `diverged`,
            `epochs`, `seconds`.
        variants: the `Variant`s, in table order.
        complete: whether every planned run finished (`False` for the
            result of an interrupted study: its table covers the seeds
            that finished).
        config: the settings (dataset, model, seeds, each scenario's);
            `config["dev_rows"]` sets the resolution of the intervals (one
            dev example, see `keras_tricks.lab.statistics`).
        table: `keras_tricks.report.Report`, one row per (scenario, variant):
            `scenario`, `variant`, `kind`, `trick`, `mean` and `std` of the
            dev accuracy, `effect` with `ci_low`/`ci_high` (95% paired
            Student-t, within [-1, 1]) and `verdict`, `trained` (seeds whose
            run trained, see `keras_tricks.lab.statistics.trained`), `note`
            (e.g. "trained in 3 of 5 seeds" for a `mixed` verdict, which
            has no interval), `gap` (train - dev accuracy),
            `diverged` (fraction of runs), `test_accuracy`, `seeds`,
            `epochs_run`, `wall_time_s`.
        best: the add-one trick with the largest effect whose verdict is
            `helps`, or `None`.
    """

    def __init__(
        self,
        runs: list[dict[str, Any]],
        config: dict[str, Any],
        variant_list: list[Variant] | None = None,
        complete: bool = True,
    ) -> None:
        self.runs = runs
        self.config = config
        self.complete = complete
        self.variants = [v for v in variant_list or [] if self.scores(v)]
        self.table = Report(
            [self._row(v) for v in self.variants],
            title=(
                f"Ablation on {config['dataset']} ({config['model']}), "
                f"{config['seeds']} seed(s); effect = paired difference in dev "
                "accuracy with its 95% interval"
            ),
        )
        helping = [
            r for r in self.table if r["kind"] == "add-one" and r["verdict"] == "helps"
        ]
        self.best = (
            max(helping, key=lambda r: r["effect"])["trick"] if helping else None
        )

    def scores(
        self,
        variant: Variant,
        key: str = "dev_accuracy",
        seeds: Iterable[int] | None = None,
    ) -> list[float]:
        """`key` of each seed's run of `variant` (only `seeds`, if given), in
        seed order."""
        wanted = None if seeds is None else set(seeds)
        runs = [
            r
            for r in self.runs
            if r["scenario"] == variant.scenario
            and r["key"] == _key_text(variant)
            and (wanted is None or r["seed"] in wanted)
        ]
        return [r[key] for r in sorted(runs, key=lambda r: r["seed"])]

    def _seeds(self, variant: Variant) -> list[int]:
        return [int(seed) for seed in self.scores(variant, "seed")]

    def _trained(self, variant: Variant, seeds: Iterable[int]) -> list[bool]:
        """Which of `variant`'s runs (in `seeds`) trained."""
        best = max(
            r["dev_accuracy"] for r in self.runs if r["scenario"] == variant.scenario
        )
        chance = self.config.get("chance", 0.0)
        return trained(self.scores(variant, seeds=seeds), chance, best)

    def _compared_with(self, variant: Variant) -> tuple[Variant, Variant] | None:
        """(better-with-trick, without-trick) pair whose difference is the effect."""
        same = [v for v in self.variants if v.scenario == variant.scenario]
        find = {v.kind: v for v in same if v.kind in ("reference", "recipe")}
        if variant.kind in ("add-one", "recipe") and "reference" in find:
            return variant, find["reference"]
        if variant.kind == "leave-one-out" and "recipe" in find:
            return find["recipe"], variant
        return None

    def _row(self, variant: Variant) -> dict[str, Any]:
        dev = self.scores(variant)
        mean, std = _mean_std(dev)
        effect = low = high = math.nan
        decision = note = ""
        own = self._trained(variant, self._seeds(variant))
        pair = self._compared_with(variant)
        if pair is not None:
            common = sorted(set(self._seeds(pair[0])) & set(self._seeds(pair[1])))
            a = self.scores(pair[0], seeds=common)
            b = self.scores(pair[1], seeds=common)
            effect, low, high = (
                paired_interval(
                    a,
                    b,
                    resolution=1.0 / self.config.get("dev_rows", math.inf),
                    bounds=(-1.0, 1.0),
                )
                if common
                else (math.nan,) * 3
            )
            decision = verdict(low, high)
            for side in pair:
                split = self._trained(side, common)
                if 0 < sum(split) < len(split):
                    name = "" if side is variant else f"{side.label} "
                    note = f"{name}trained in {sum(split)} of {len(split)} seeds"
                    decision, low, high = "mixed", math.nan, math.nan
                    break
        gaps = np.subtract(self.scores(variant, "train_accuracy"), dev)
        return {
            "scenario": variant.scenario,
            "variant": variant.label,
            "kind": variant.kind,
            "trick": variant.trick,
            "mean": mean,
            "std": std,
            "effect": effect,
            "ci_low": low,
            "ci_high": high,
            "verdict": decision,
            "trained": sum(own),
            "note": note,
            "gap": float(np.mean(gaps)),
            "diverged": float(np.mean(self.scores(variant, "diverged"))),
            "test_accuracy": float(np.mean(self.scores(variant, "test_accuracy"))),
            "seeds": len(dev),
            "epochs_run": float(np.mean(self.scores(variant, "epochs"))),
            "wall_time_s": float(np.mean(self.scores(variant, "seconds"))),
        }


def _key_text(variant: Variant) -> str:
    """A stable text form of a variant's tricks, e.g. `"bn=batch init=he"`."""
    return " ".join(f"{k}={v}" for k, v in sorted(variant.values.items())) or "-"


def run_ablation(
    x: np.ndarray | LabDataset,
    y: np.ndarray | None = None,
    *,
    scenarios: Iterable[str | Scenario] | None = None,
    model: str = "mlp",
    tricks: Iterable[str] | None = None,
    seeds: int = 3,
    seed_offset: int = 0,
    epochs: int | None = None,
    depth: int | None = None,
    dataset: str = "data",
    progress: Callable[[int, int, str, int], None] | None = None,
    reporter: Any = None,
    done: Sequence[dict[str, Any]] = (),
    on_run: Callable[[AblationResult], None] | None = None,
) -> AblationResult:
    """Runs the scenarios: every variant of each, `seeds` times.

    Args:
        x: a `keras_tricks.datasets.LabDataset`, or the features (one row per
            example) with `y`.
        y: integer labels when `x` is an array. Defaults to `None`.
        scenarios: names from `SCENARIOS`, or `Scenario` objects (e.g. from
            `DEMO_SCENARIOS`). Defaults to `None` (those judging any of
            `tricks`; all when `tricks` is `None`).
        model: `"mlp"` or `"cnn"` (image data). Defaults to `"mlp"`.
        tricks: judge only these tricks. Defaults to `None` (all).
        seeds: runs per variant. Defaults to `3`.
        seed_offset: the seeds are `seed_offset, seed_offset + 1, ...`.
            Defaults to `0`.
        epochs: epochs of every run, instead of each scenario's own.
            Defaults to `None`.
        depth: hidden layers of every network, instead of each scenario's
            own. Defaults to `None`.
        dataset: name shown in the tables when `x` is an array. Defaults to
            `"data"`.
        progress: optional `progress(done, total, variant, seed)` called
            after each run.
        reporter: optional object with `start(total_epochs)`,
            `epoch(description)` and `run_done(description)` methods (the
            command line's progress display).
        done: runs of an earlier, interrupted call with the same settings
            (`AblationResult.runs`): those are kept, not trained again.
            Defaults to `()`.
        on_run: optional `on_run(partial_result)` after every finished run,
            with an `AblationResult` of the runs so far (`complete` is
            `False` until the last one), e.g. to save them.

    Returns:
        An `AblationResult`.

    Raises:
        ValueError: for an unknown scenario or trick (the message lists the
            valid ones), or data the lab cannot use.
    """
    data = (
        x
        if isinstance(x, LabDataset)
        else LabDataset(dataset, np.asarray(x), np.asarray(y))
    )
    check_data(data.x, data.y)
    tricks = None if tricks is None else [registry.canonical(t) for t in tricks]
    chosen = _check_scenarios(scenarios, tricks)
    split = split_dataset(data, model)
    seed_list = list(range(seed_offset, seed_offset + seeds))
    plan = []
    configs = {}
    for scenario in chosen:
        settings = scenario.settings(model)
        settings.update(
            {
                k: v
                for k, v in {"epochs": epochs, "depth": depth}.items()
                if v is not None
            }
        )
        found = variants(scenario, tricks)
        train = train_subset(
            split, settings["train_examples"], label_noise=scenario.label_noise
        )
        settings["train_rows"] = len(train[0])
        settings["regime"] = scenario.regime
        configs[scenario.name] = settings
        distinct = {_key_text(v): v for v in found}
        plan.append((scenario, settings, train, found, distinct))
    all_variants = [v for p in plan for v in p[3]]
    config = {
        "dataset": data.name,
        "model": model,
        "seeds": seeds,
        "seed_list": seed_list,
        "scenarios": configs,
        "train_rows": len(split.train[0]),
        "dev_rows": min(len(split.dev[0]), DEV_EXAMPLES),
        "test_rows": len(split.test[0]),
        "chance": float(np.bincount(split.dev[1][:DEV_EXAMPLES]).max())
        / min(len(split.dev[0]), DEV_EXAMPLES),
        "backend": keras.backend.backend(),
        "tricks": {
            n: registry.REGISTRY[n].description for n in (tricks or DEFAULT_TRICKS)
        },
    }
    total_runs = sum(len(p[4]) for p in plan) * seeds
    config["planned_runs"] = total_runs
    finished = {(r["scenario"], r["key"], r["seed"]): r for r in done}
    if reporter is not None:
        reporter.start(sum(len(p[4]) * p[1]["epochs"] for p in plan) * seeds)
    runs: list[dict[str, Any]] = []
    for scenario, settings, train, found, distinct in plan:
        for key, variant in distinct.items():
            label = _run_label(found, key)
            for seed in seed_list:
                description = f"{scenario.name}: {label}, seed {seed}"
                if (scenario.name, key, seed) in finished:
                    runs.append(finished[scenario.name, key, seed])
                    if reporter is not None:
                        reporter.run_done(f"{description}: kept from before", 0)
                    continue
                on_epoch = None
                if reporter is not None:

                    def on_epoch(
                        epoch, logs, description=description, total=settings["epochs"]
                    ):
                        reporter.epoch(f"{description}, epoch {epoch}/{total}")

                run = train_run(
                    split,
                    train,
                    dict(variant.values),
                    settings,
                    model=model,
                    seed=seed,
                    on_epoch=on_epoch,
                )
                runs.append(
                    {
                        "scenario": scenario.name,
                        "key": key,
                        "variant": label,
                        "seed": seed,
                        **run,
                    }
                )
                if reporter is not None:
                    reporter.run_done(
                        f"{description}: dev accuracy {run['dev_accuracy']:.3f}",
                        settings["epochs"] - run["epochs"],
                    )
                if progress is not None:
                    progress(len(runs), total_runs, f"{scenario.name}: {label}", seed)
                if on_run is not None:
                    on_run(
                        AblationResult(
                            list(runs), config, all_variants, len(runs) == total_runs
                        )
                    )
    return AblationResult(runs, config, all_variants)


def _run_label(found: list[Variant], key: str) -> str:
    """The labels of the variants sharing a network (`+ bn = recipe - init`)."""
    return " = ".join(v.label for v in found if _key_text(v) == key)


def _check_scenarios(
    scenarios: Iterable[str | Scenario] | None, tricks: list[str] | None
) -> list[Scenario]:
    from keras_tricks.lab.scenarios import scenarios_for

    if scenarios is None:
        names = list(SCENARIOS) if tricks is None else scenarios_for(tricks)
        return [SCENARIOS[n] for n in names]
    chosen = []
    for item in scenarios:
        if isinstance(item, Scenario):
            chosen.append(item)
        elif item in SCENARIOS:
            chosen.append(SCENARIOS[item])
        else:
            from keras_tricks._validation import invalid

            raise invalid("scenario", item, "one of " + ", ".join(SCENARIOS))
    order = list(SCENARIOS)
    return sorted(
        chosen, key=lambda s: order.index(s.name) if s.name in order else len(order)
    )
