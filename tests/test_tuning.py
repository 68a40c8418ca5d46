import gc
import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path

import keras
import keras_tuner
import numpy as np
import pytest

from keras_tricks.callbacks import EarlyStopping, EpochDecay
from keras_tricks.layers import GhostBatchNormalization
from keras_tricks.optimizers import GradientClipping
from keras_tricks.tuning import (
    DEFAULT_RANGES,
    TRICKS,
    TricksHyperModel,
    choose_clipping,
    choose_initializer,
    choose_optimizer,
    trials_table,
    write_csv,
)

P = "tricks/"

SCRIPT = Path(__file__).parent / "scripts" / "tuning_search.py"


def build(hp, tricks):
    model = keras.Sequential([keras.Input((64,))])
    for _ in range(2):
        model.add(
            keras.layers.Dense(
                16,
                kernel_initializer=tricks.initializer,
                kernel_regularizer=tricks.kernel_regularizer,
            )
        )
        model.add(tricks.normalization())
        model.add(keras.layers.Activation("relu"))
        model.add(tricks.dropout())
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.RMSprop(0.005),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _layers(model, cls):
    return [layer for layer in model.layers if type(layer) is cls]


def test_pinned_choices_reach_the_model():
    fixed = {
        "init": "he",
        "norm": "ghost",  # the old name of "bn" still works
        "dropout": 0.3,
        "l2": 1e-3,
        "clip": "adaptive",
        "optimizer": "sgd_momentum",
        "lr": 0.02,
    }
    hp = keras_tuner.HyperParameters()
    model = TricksHyperModel(build, fixed=fixed).build(hp)
    for key, value in fixed.items():
        assert hp.get(P + {"norm": "bn"}.get(key, key)) == value
    dense = _layers(model, keras.layers.Dense)[0]
    assert isinstance(dense.kernel_initializer, keras.initializers.HeNormal)
    assert dense.kernel_regularizer.l2 == pytest.approx(1e-3)
    assert len(_layers(model, GhostBatchNormalization)) == 2
    assert [d.rate for d in _layers(model, keras.layers.Dropout)] == [0.3, 0.3]
    optimizer = model.optimizer
    assert isinstance(optimizer, GradientClipping) and optimizer.mode == "adaptive"
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.SGD)
    assert optimizer.inner_optimizer.momentum == 0.9
    assert float(optimizer.learning_rate) == pytest.approx(0.02)
    assert model.loss == "sparse_categorical_crossentropy"


@pytest.mark.parametrize("seed", range(2))
def test_random_choices_match_hp_values(seed):
    hypermodel = TricksHyperModel(build)
    declared = keras_tuner.HyperParameters()
    hypermodel.build(declared)
    hp = declared.copy()
    for i, parameter in enumerate(hp.space):
        hp.values[parameter.name] = parameter.random_sample(seed * 100 + i)
    values = dict(hp.values)
    model = hypermodel.build(hp)
    assert hp.values == values
    norm = {
        "none": keras.layers.Identity,
        "batch": keras.layers.BatchNormalization,
        "ghost": GhostBatchNormalization,
    }[values[P + "bn"]]
    assert len(_layers(model, norm)) == 2
    dropout = 2 if values[P + "dropout"] else 0
    assert len(_layers(model, keras.layers.Dropout)) == dropout
    clipped = isinstance(model.optimizer, GradientClipping)
    assert clipped == (values[P + "clip"] != "none")
    inner = model.optimizer.inner_optimizer if clipped else model.optimizer
    expected = {"adam": keras.optimizers.Adam, "sgd_momentum": keras.optimizers.SGD}
    assert isinstance(inner, expected[values[P + "optimizer"]])
    assert float(inner.learning_rate) == pytest.approx(values[P + "lr"], rel=1e-5)


def test_left_out_tricks_take_no_effect():
    hp = keras_tuner.HyperParameters()
    model = TricksHyperModel(build, tricks=("lr",)).build(hp)
    assert set(hp.values) == {P + "lr"}
    assert not _layers(model, keras.layers.Dropout)
    assert len(_layers(model, keras.layers.Identity)) == 4
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert float(model.optimizer.learning_rate) == pytest.approx(hp.get(P + "lr"))
    untouched = TricksHyperModel(build, tricks=("dropout",)).build(
        keras_tuner.HyperParameters()
    )
    assert float(untouched.optimizer.learning_rate) == pytest.approx(0.005)


def test_fit_uses_the_sampled_batch_size_and_callbacks(digits):
    (x, y), (x_dev, y_dev) = digits
    hp = keras_tuner.HyperParameters()
    hypermodel = TricksHyperModel(
        build,
        tricks=("batch_size", "decay", "early_stopping", "init"),
        fixed={"batch_size": 256, "decay": 0.9, "early_stopping": "gl", "init": "lsuv"},
    )
    model = hypermodel.build(hp)
    history = hypermodel.fit(
        hp, model, x, y, validation_data=(x_dev, y_dev), epochs=2, verbose=0
    )
    assert history.params["steps"] == int(np.ceil(len(x) / 256))
    assert float(model.optimizer.learning_rate) == pytest.approx(
        float(keras.optimizers.RMSprop(0.005).learning_rate) * 0.9**2, rel=1e-5
    )
    assert "learning_rate" in history.history
    with pytest.raises(ValueError, match="batch_size"):
        hypermodel.fit(hp, model, x, y, batch_size=8)


def test_helpers_return_keras_objects():
    hp = keras_tuner.HyperParameters()
    assert isinstance(
        choose_initializer(hp, choices=("he",)), keras.initializers.HeNormal
    )
    optimizer = choose_optimizer(hp, choices=("adam",), learning_rate=0.01)
    assert isinstance(optimizer, keras.optimizers.Adam)
    wrapped = choose_clipping(hp, optimizer, choices=("global_norm_10",))
    assert wrapped.threshold == 10.0
    assert isinstance(EpochDecay(0.9), keras.callbacks.Callback)
    assert isinstance(
        EarlyStopping(criterion="gl", alpha=5.0), keras.callbacks.Callback
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"tricks": ("init", "warp")}, ValueError, "`tricks`.*'init'.*'warp'"),
        ({"fixed": {"batch_size": 48}}, ValueError, r"fixed\['batch_size'\]"),
        ({"fixed": {"lr": 1.0}}, ValueError, r"fixed\['lr'\]"),
        ({"fixed": {"init": "zeros"}}, ValueError, r"fixed\['init'\]"),
        ({"tricks": ("lr",), "fixed": {"init": "he"}}, ValueError, "`fixed`"),
        ({"ranges": {"lr": (0.1, 0.01)}}, ValueError, r"ranges\['lr'\]"),
        ({"ranges": {"norm": ("batch", "weird")}}, ValueError, r"ranges\['norm'\]"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        TricksHyperModel(build, **kwargs)


def test_build_fn_must_return_a_compiled_model():
    with pytest.raises(TypeError, match="`build_fn`"):
        TricksHyperModel("not callable")
    with pytest.raises(TypeError, match="keras.Model"):
        TricksHyperModel(lambda hp, tricks: "model").build(
            keras_tuner.HyperParameters()
        )
    uncompiled = TricksHyperModel(
        lambda hp, tricks: keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    )
    with pytest.raises(ValueError, match="compiled"):
        uncompiled.build(keras_tuner.HyperParameters())


def test_ranges_are_overridable():
    hp = keras_tuner.HyperParameters()
    TricksHyperModel(build, ranges={"norm": ("batch",), "lr": (1e-3, 2e-3)}).build(hp)
    assert hp.get(P + "bn") == "batch"
    assert 1e-3 <= hp.get(P + "lr") <= 2e-3
    assert set(DEFAULT_RANGES) == set(TRICKS)
    assert DEFAULT_RANGES["norm"] == DEFAULT_RANGES["bn"] and "norm" in DEFAULT_RANGES


@pytest.mark.parametrize(
    "tuner_class", ["RandomSearch", "BayesianOptimization", "Hyperband"]
)
def test_tuners(tuner_class, digits, tmp_path):
    (x, y), (x_dev, y_dev) = digits
    kwargs = (
        {"max_epochs": 2, "factor": 2, "hyperband_iterations": 1}
        if tuner_class == "Hyperband"
        else {"max_trials": 2}
    )
    tuner = getattr(keras_tuner, tuner_class)(
        TricksHyperModel(
            build,
            tricks=("init", "norm", "lr", "early_stopping"),
            fixed={"norm": "none"},
        ),
        objective="val_accuracy",
        directory=tmp_path,
        project_name="t",
        seed=0,
        **kwargs,
    )
    search = {} if tuner_class == "Hyperband" else {"epochs": 2}
    tuner.search(
        x[:400],
        y[:400],
        validation_data=(x_dev, y_dev),
        verbose=0,
        batch_size=64,
        **search,
    )
    table = trials_table(tuner)
    assert table[0]["status"] == "COMPLETED"
    assert all(
        row["score"] is not None for row in table if row["status"] == "COMPLETED"
    )
    scores = [row["score"] for row in table if row["score"] is not None]
    assert scores == sorted(scores, reverse=True)
    with pytest.warns(DeprecationWarning, match="report.to_csv"):
        write_csv(table, tmp_path / "trials.csv")
    assert (tmp_path / "trials.csv").read_text().startswith("trial_id,status,score")
    assert tuner.get_best_models(1)[0].predict(x_dev[:2], verbose=0).shape == (2, 10)


def _run(directory, trials, env=None, hang_after=0):
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(directory), str(trials), str(hang_after)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


def _stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def test_killed_search_resumes_without_rerunning_trials(tmp_path):
    process = _run(tmp_path, 4, hang_after=2)
    try:
        deadline = time.monotonic() + 120
        while len(_lines(tmp_path / "done.txt")) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        _stop(process)
    done_before = _lines(tmp_path / "done.txt")
    assert len(done_before) == 2
    built_before = len(_lines(tmp_path / "built.txt"))
    process = _run(tmp_path, 4)
    try:
        assert process.wait(timeout=180) == 0, process.stderr.read().decode()[-2000:]
    finally:
        _stop(process)
    done = [line.split()[1] for line in _lines(tmp_path / "done.txt")]
    assert len(done) == len(set(done)) == 4
    assert set(d.split()[1] for d in done_before) < set(done)
    # Each trial after the restart is built once (2 new trials + at most the one
    # that was interrupted while it was starting).
    assert len(_lines(tmp_path / "built.txt")) - built_before == 2


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_search_chief_and_two_workers(tmp_path):
    base = {
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(_free_port()),
    }
    chief = _run(tmp_path, 4, {**base, "KERASTUNER_TUNER_ID": "chief"})
    time.sleep(2)
    workers = [
        _run(tmp_path, 4, {**base, "KERASTUNER_TUNER_ID": f"tuner{i}"})
        for i in range(2)
    ]
    try:
        for worker in workers:
            assert worker.wait(timeout=240) == 0, worker.stderr.read().decode()[-2000:]
        assert chief.wait(timeout=60) == 0, chief.stderr.read().decode()[-2000:]
    finally:
        for process in [chief, *workers]:
            _stop(process)
    done = [line.split() for line in _lines(tmp_path / "done.txt")]
    trial_ids = [trial for _, trial in done]
    assert len(trial_ids) == len(set(trial_ids)) == 4
    assert {worker for worker, _ in done} <= {"tuner0", "tuner1"}
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective="val_accuracy", max_trials=4
    )
    oracle._set_project_dir(str(tmp_path), "search")
    oracle.reload()
    assert sum(t.status == "COMPLETED" for t in oracle.trials.values()) == 4


def test_no_model_outlives_its_trial(digits, tmp_path):
    """Every trick sampled, 2 trials: each trial's model, optimizer and
    callbacks are garbage once the next trial starts (keras-tuner#395, #873)."""
    (x, y), (x_dev, y_dev) = digits
    models = []

    def tracked(hp, tricks):
        model = build(hp, tricks)
        models.append(weakref.ref(model))
        return model

    alive = []

    class Tuner(keras_tuner.RandomSearch):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            gc.collect()
            alive.append(sum(ref() is not None for ref in models))

    tuner = Tuner(
        TricksHyperModel(tracked, fixed={"batch_size": 128}),
        objective="val_accuracy",
        max_trials=2,
        seed=0,
        directory=tmp_path,
        project_name="memory",
    )
    tuner.search(x[:256], y[:256], validation_data=(x_dev, y_dev), epochs=1, verbose=0)
    assert len(alive) == 2 and len(models) >= 2
    assert alive == [0, 0]


def test_prefix_keeps_the_users_own_hyperparameters_apart():
    """The user's hp.Choice("dropout") and the trick's rate are two values."""

    def build_with_own_dropout(hp, tricks):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
        model.add(keras.layers.Dropout(hp.Choice("dropout", [0.1])))
        model.add(tricks.dropout())
        model.add(keras.layers.Dense(2, activation="softmax"))
        model.compile(loss="sparse_categorical_crossentropy")
        return model

    hp = keras_tuner.HyperParameters()
    model = TricksHyperModel(
        build_with_own_dropout, tricks=("dropout",), fixed={"dropout": 0.4}
    ).build(hp)
    assert hp.values == {"dropout": 0.1, "tricks/dropout": 0.4}
    assert [d.rate for d in _layers(model, keras.layers.Dropout)] == [0.1, 0.4]
    hp = keras_tuner.HyperParameters()
    TricksHyperModel(
        build_with_own_dropout, tricks=("dropout",), prefix="", fixed={"dropout": 0.4}
    ).build(hp)
    assert hp.values == {"dropout": 0.4}  # without a prefix the names collide
    hp = keras_tuner.HyperParameters()
    TricksHyperModel(build, tricks=("lr",), fixed={"tricks/lr": 0.01}).build(hp)
    assert hp.values == {"tricks/lr": 0.01}


def test_search_space_summary_lists_every_trick_before_the_first_trial(
    tmp_path, capsys
):
    tuner = keras_tuner.RandomSearch(
        TricksHyperModel(build),
        objective="val_accuracy",
        max_trials=1,
        directory=tmp_path,
        project_name="space",
    )
    tuner.search_space_summary()
    listed = {
        line.split()[0]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("tricks/")
    }
    assert listed == {f"tricks/{t}" for t in TRICKS}
    assert {"batch_size", "decay", "early_stopping"} <= set(TRICKS)


def _first_kernel_on_fit(hypermodel, hp, model, x, y):
    seen = []
    probe = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append(model.layers[0].kernel.numpy())
    )
    hypermodel.fit(hp, model, x, y, epochs=1, verbose=0, callbacks=[probe])
    return seen[0]


def test_lsuv_runs_only_on_the_fresh_model_build_made(digits, tmp_path):
    """Hyperband loads the previous round's weights after `build`: LSUV must
    not overwrite them (issue 12, item 8)."""
    (x, y), _ = digits
    x, y = x[:256], y[:256]
    hypermodel = TricksHyperModel(build, tricks=("init",), fixed={"init": "lsuv"})
    hp = keras_tuner.HyperParameters()
    fresh = hypermodel.build(hp)
    orthogonal = fresh.layers[0].kernel.numpy()
    calibrated = _first_kernel_on_fit(hypermodel, hp, fresh, x, y)
    assert not np.allclose(calibrated, orthogonal)  # LSUV rescaled it
    # std of the first pre-activation is ~1 after LSUV
    assert np.std(x[:512] @ calibrated) == pytest.approx(1.0, abs=0.1)

    trained = fresh.get_weights()
    fresh.save_weights(tmp_path / "round1.weights.h5")
    resumed = hypermodel.build(hp)
    resumed.load_weights(tmp_path / "round1.weights.h5")  # what Hyperband does
    start = _first_kernel_on_fit(hypermodel, hp, resumed, x, y)
    np.testing.assert_array_equal(start, trained[0])
