"""`OneCycle` against PyTorch's `OneCycleLR` formula, written out here in numpy.

The reference follows torch's `OneCycleLR.get_lr` (two phases,
`three_phase=False`): phase ends at `float(pct_start * total_steps) - 1` and
`total_steps - 1`, phase 2 starting where phase 1 ends, `pct` the fraction of
the phase done, and `cos` / `linear` annealing.
"""

import math

import keras
import numpy as np
import pytest

from keras_tricks.schedules import OneCycle

pytestmark = pytest.mark.jax


def torch_one_cycle(step, max_lr, total_steps, pct_start=0.3, anneal="cos",
                    div_factor=25.0, final_div_factor=1e4, base_momentum=0.85,
                    max_momentum=0.95):  # fmt: skip
    """`(lr, momentum)` of torch's OneCycleLR at `step` (float64, scalar)."""
    initial = max_lr / div_factor
    minimum = initial / final_div_factor
    phases = [
        (float(pct_start * total_steps) - 1, initial, max_lr, max_momentum,
         base_momentum),
        (float(total_steps) - 1, max_lr, minimum, base_momentum, max_momentum),
    ]  # fmt: skip

    def cos(start, end, pct):
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def linear(start, end, pct):
        return (end - start) * pct + start

    anneal_func = cos if anneal == "cos" else linear
    start_step = 0
    for i, (end_step, lr_0, lr_1, m_0, m_1) in enumerate(phases):
        if step <= end_step or i == len(phases) - 1:
            pct = (step - start_step) / (end_step - start_step)
            return anneal_func(lr_0, lr_1, pct), anneal_func(m_0, m_1, pct)
        start_step = end_step
    raise AssertionError("unreachable")


SETTINGS = [
    {"max_learning_rate": 0.1, "total_steps": 100},
    {"max_learning_rate": 1.0, "total_steps": 37, "pct_start": 0.25},
    {"max_learning_rate": 3e-3, "total_steps": 50, "anneal_strategy": "linear"},
    {
        "max_learning_rate": 0.5,
        "total_steps": 23,
        "pct_start": 0.4,
        "div_factor": 10.0,
        "final_div_factor": 100.0,
        "base_momentum": 0.8,
        "max_momentum": 0.9,
        "anneal_strategy": "linear",
    },
]


def _torch_arguments(setting):
    names = {"max_learning_rate": "max_lr", "anneal_strategy": "anneal"}
    return {names.get(key, key): value for key, value in setting.items()}


@pytest.mark.parametrize("setting", SETTINGS)
def test_equals_torchs_formula_at_every_step(setting):
    schedule = OneCycle(**setting)
    steps = np.arange(setting["total_steps"])
    expected = np.array(
        [torch_one_cycle(int(s), **_torch_arguments(setting)) for s in steps]
    )
    lrs = keras.ops.convert_to_numpy(schedule(steps))
    momenta = keras.ops.convert_to_numpy(schedule.momentum(steps))
    np.testing.assert_allclose(lrs, expected[:, 0], rtol=2e-5, atol=1e-9)
    np.testing.assert_allclose(momenta, expected[:, 1], rtol=1e-5)


def test_endpoints_and_past_the_end():
    schedule = OneCycle(0.1, 100)
    assert float(schedule(0)) == pytest.approx(0.1 / 25)
    assert float(schedule(29)) == pytest.approx(0.1)  # float(0.3 * 100) - 1
    assert float(schedule(99)) == pytest.approx(0.1 / 25 / 1e4)
    assert float(schedule(500)) == pytest.approx(0.1 / 25 / 1e4)  # torch raises


def test_matches_torch_with_torch_if_installed():
    torch = pytest.importorskip("torch")
    setting = SETTINGS[1]
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1.0, total_steps=37, pct_start=0.25
    )
    expected = []
    for _ in range(37):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    schedule = OneCycle(**setting)
    actual = keras.ops.convert_to_numpy(schedule(np.arange(37)))
    np.testing.assert_allclose(actual, expected, rtol=2e-5)


@pytest.mark.compat
@pytest.mark.xla
def test_trains_inside_a_jit_compiled_fit_and_round_trips(tmp_path, rng):
    schedule = OneCycle(0.05, total_steps=20, pct_start=0.3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(schedule, momentum=0.9), "mse",
                  jit_compile=True)  # fmt: skip
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert int(model.optimizer.iterations) == 8
    expected = torch_one_cycle(8, 0.05, 20)[0]
    current = model.optimizer.learning_rate  # the schedule at `iterations`
    assert float(keras.ops.convert_to_numpy(current)) == pytest.approx(
        expected, rel=1e-5
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    saved = loaded.optimizer.get_config()["learning_rate"]
    assert saved["registered_name"] == "keras_tricks>OneCycle"
    assert saved["config"] == schedule.get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0))  # fmt: skip
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)  # fmt: skip


def test_config_round_trip():
    schedule = OneCycle(**SETTINGS[3])
    again = OneCycle.from_config(schedule.get_config())
    assert again.get_config() == schedule.get_config()
    serialized = keras.optimizers.schedules.serialize(schedule)
    restored = keras.optimizers.schedules.deserialize(serialized)
    assert isinstance(restored, OneCycle)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(np.arange(23))),
        keras.ops.convert_to_numpy(schedule(np.arange(23))),
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_learning_rate": 0.0}, ValueError, "Received: max_learning_rate=0.0"),
        ({"total_steps": 1}, ValueError, "Received: total_steps=1"),
        ({"total_steps": 10.0}, TypeError, "Received: total_steps=10.0"),
        ({"pct_start": 1.0}, ValueError, "Received: pct_start=1.0"),
        ({"pct_start": 0.01}, ValueError, "pct_start=0.01, total_steps=100"),
        ({"anneal_strategy": "cosine"}, ValueError, "'cos', 'linear'"),
        ({"div_factor": -1.0}, ValueError, "Received: div_factor=-1.0"),
        ({"final_div_factor": 0}, ValueError, "Received: final_div_factor=0"),
        ({"max_momentum": 1.5}, ValueError, "Received: max_momentum=1.5"),
        ({"base_momentum": 0.99}, ValueError, "Received: base_momentum=0.99"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"max_learning_rate": 0.1, "total_steps": 100, **kwargs}
    with pytest.raises(error, match=match):
        OneCycle(**arguments)
