"""The trick registry: one record per trick, built through the lab and the tuner."""

from pathlib import Path

import keras
import numpy as np
import pytest

from keras_tricks import tricks as registry
from keras_tricks.tricks import Setup


def _layers(model):
    return [type(layer).__name__ for layer in model.layers]


def _lab_network(values, epochs=4):
    """What the lab builds for `values`: the model, its optimizer, callbacks."""
    from keras_tricks.lab.ablation import _base_optimizer
    from keras_tricks.lab.models import mlp

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    setup = Setup.from_values(values, seed=0, epochs=epochs, data=x)
    model = mlp(6, 3, depth=2, width=8, setup=setup)
    setup.prepare(model, x)
    optimizer = setup.optimizer(_base_optimizer("sgd", 0.1))
    return model, optimizer, setup


def _signature(model, optimizer, setup):
    """Everything a trick can change, per place it applies to."""
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    return {
        "layers": (
            _layers(model),
            [type(d.kernel_initializer).__name__ for d in dense],
            [d.kernel_regularizer is not None for d in dense],
            [float(np.std(d.kernel.numpy())) for d in dense],
        ),
        "optimizer": (
            type(optimizer).__name__,
            {k: v for k, v in optimizer.get_config().items() if k != "name"},
        ),
        "callbacks": [type(c).__name__ for c in setup.callbacks],
        "fit": setup.fit_kwargs,
    }


def test_records_are_complete_and_consistent():
    assert list(registry.REGISTRY) == [t.name for t in registry._RECORDS]
    for trick in registry.REGISTRY.values():
        assert trick.description and trick.applies_to in registry.APPLIES_TO
        assert trick.kind in registry.KINDS
        assert trick.lab is not None or trick.search is not None
        assert trick.accepts(trick.off)
        if trick.lab is not None:
            assert trick.accepts(trick.lab) and trick.lab != trick.off
        if trick.search is not None and trick.kind in ("choice", "integer"):
            assert all(trick.accepts(v) for v in trick.search)
    assert registry.LAB_TRICKS == tuple(
        t for t in registry.REGISTRY if registry.REGISTRY[t].lab is not None
    )


def test_aliases_and_unknown_names():
    assert registry.get("norm") is registry.get("bn")
    assert registry.canonical("norm") == "bn"
    with pytest.raises(
        ValueError, match="one of init, lsuv, bn.*Received: trick='warp'"
    ):
        registry.get("warp")
    with pytest.raises(ValueError, match="`dropout`.*Received: dropout=1.5"):
        Setup.from_values({"dropout": 1.5})


@pytest.mark.parametrize("name", registry.LAB_TRICKS)
def test_every_lab_trick_changes_what_it_applies_to(name):
    trick = registry.get(name)
    off = _signature(*_lab_network({}))
    on = _signature(*_lab_network({name: trick.lab}))
    changed = {part for part in off if off[part] != on[part]}
    assert changed == {trick.applies_to}


@pytest.mark.parametrize("name", registry.TUNER_TRICKS)
def test_every_tuner_trick_is_sampled_and_built(name):
    import keras_tuner

    from keras_tricks.tuning import TricksHyperModel

    def build(hp, tricks):
        model = keras.Sequential([keras.Input((6,))])
        for _ in range(2):
            model.add(
                keras.layers.Dense(
                    8,
                    kernel_initializer=tricks.initializer,
                    kernel_regularizer=tricks.kernel_regularizer,
                )
            )
            model.add(tricks.normalization())
            model.add(keras.layers.Activation("relu"))
            model.add(tricks.dropout())
        model.add(keras.layers.Dense(3, activation="softmax"))
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        return model

    trick = registry.get(name)
    value = next(v for v in trick.search if v != trick.off and v != 0.0)
    hp = keras_tuner.HyperParameters()
    hypermodel = TricksHyperModel(build, tricks=(name,), fixed={name: value})
    keras.utils.set_random_seed(0)
    model = hypermodel.build(hp)
    assert hp.values == {f"tricks/{name}": value}
    keras.utils.set_random_seed(0)
    none = TricksHyperModel(build, tricks=())
    plain_hp = keras_tuner.HyperParameters()
    plain_model = none.build(plain_hp)
    built = _tuner_signature(hypermodel, hp, model)
    plain = _tuner_signature(none, plain_hp, plain_model)
    changed = {part for part in built if built[part] != plain[part]}
    assert changed == {trick.applies_to}


def _tuner_signature(hypermodel, hp, model):
    """What `TricksHyperModel` gives `model.fit`, without training."""
    model.fit = lambda *args, **kwargs: kwargs
    x = np.zeros((8, 6), "float32")
    passed = hypermodel.fit(hp, model, x, np.zeros(8), epochs=1)
    setup = Setup()
    setup.callbacks = passed.pop("callbacks")
    setup.fit_kwargs = {k: v for k, v in passed.items() if k != "epochs"}
    return _signature(model, model.optimizer, setup)


def test_setup_components():
    setup = Setup.from_values(
        {"init": "lsuv", "bn": "ghost", "dropout": 0.2, "l2": 1e-3, "clip": "adaptive"}
    )
    assert setup.lsuv and type(setup.initializer()).__name__ == "Orthogonal"
    first, second = setup.initializer(), setup.initializer()
    assert first.seed != second.seed
    assert type(setup.normalization()).__name__ == "GhostBatchNormalization"
    assert setup.dropout().rate == 0.2
    assert float(setup.kernel_regularizer.l2) == pytest.approx(1e-3)
    base = keras.optimizers.SGD(0.1)
    wrapped = setup.optimizer(base)
    assert wrapped.mode == "adaptive" and wrapped.inner_optimizer is not base
    assert Setup().optimizer(base) is base
    assert Setup().normalization() is None and Setup().dropout() is None
    assert Setup().initializer() == "glorot_uniform"


def _table_at(text, header):
    """The Markdown table of `text` that starts with the line `header`."""
    lines = text[text.index(header) :].splitlines()
    table = []
    for line in lines:
        if not line.strip().startswith("|"):
            break
        table.append(line.strip())
    return "\n".join(table)


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("where", "header", "generated"),
    [
        ("registry.py docstring", "| trick | applies to |", registry.registry_table),
        ("tuning.py docstring", "| trick | hyper-parameter |", registry.tuner_table),
        ("docs/lab.md", "| trick | what the lab adds |", registry.lab_table),
    ],
)
def test_every_copy_of_the_trick_table_is_the_registry(where, header, generated):
    """One source of truth: each table is the registry's, generated. To update
    a copy, paste `keras_registry.registry.<name>_table()` into it."""
    if where == "registry.py docstring":
        text = registry.__doc__
    elif where == "tuning.py docstring":
        from keras_tricks import tuning

        text = tuning.__doc__
    else:
        text = (REPO / where).read_text()
    assert _table_at(text, header) == generated(), f"{where} disagrees"


def test_docs_tuning_ranges_and_early_stopping_patience_agree_with_registry():
    from keras_tricks import tuning

    table = _table_at((REPO / "docs/tuning.md").read_text(), "| trick | default range")
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    found = {name.split("`")[1]: cell.strip() for name, cell in rows}
    assert found == {name: registry.range_text(name) for name in registry.TUNER_TRICKS}
    patience = registry.STOPPING["patience"]["patience"]
    assert f"stops after {patience} epochs" in tuning.choose_early_stopping.__doc__
    assert f"patience={patience}" in registry.get("early_stopping").description
