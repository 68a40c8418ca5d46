"""The initialisation study and the conclusion it draws from its own table."""

import pytest

from keras_tricks.studies import deep_mlp, init_conclusion, init_study


def _row(init, best, saturated=0.0, grad=1.0):
    return {
        "init": init,
        "saturated_or_dead_last": saturated,
        "grad_norm_first": grad,
        "best_dev_accuracy": best,
    }


def test_conclusion_when_he_wins():
    table = [
        _row("N(0,1)", 0.11, saturated=0.97, grad=3e3),
        _row("glorot", 0.93),
        _row("he", 0.95),
        _row("lsuv", 0.94),
    ]
    lines = init_conclusion(table).splitlines()
    assert lines[0] == "Best: he, 0.950 best dev accuracy."
    assert lines[1].startswith("Trained (best dev accuracy >= 0.2): glorot (0.930)")
    assert lines[2].startswith("Did not train: N(0,1) (0.110; 97% of the last")
    assert lines[3] == "He beats Glorot by 0.020."


def test_conclusion_when_he_does_not_win_and_everything_trains():
    table = [
        _row("N(0,1)", 0.45, saturated=0.9, grad=50.0),
        _row("glorot", 0.96),
        _row("he", 0.90),
    ]
    text = init_conclusion(table, classes=10)
    assert text.splitlines()[0] == "Best: glorot, 0.960 best dev accuracy."
    assert "Did not train" not in text and "N(0,1) (0.450)" in text
    assert text.splitlines()[-1] == "He does not beat Glorot here (0.060 behind)."
    assert init_conclusion([_row("he", 0.4)], classes=2).splitlines()[1:] == [
        "Did not train: he (0.400; 0% of the last layer's units saturated or "
        "dead, first-layer gradient norm 1)."
    ]
    assert init_conclusion([]) == "No variant was trained."


@pytest.fixture(scope="module")
def study(digits):
    train, dev = digits
    return init_study(train, dev, depth=10, epochs=2, seed=0).to_dict()


def test_standard_normal_weights_saturate_a_deep_tanh_net(study):
    row = study["N(0,1)"]
    assert row["saturated_or_dead_last"] > 0.5
    assert row["grad_norm_first"] > 100 * study["glorot"]["grad_norm_first"]
    assert row["best_dev_accuracy"] < 0.5


@pytest.mark.parametrize("init", ["glorot", "he", "lsuv"])
def test_scaled_inits_keep_the_signal_and_train(study, init):
    row = study[init]
    assert 0.05 < row["std_last"] < 2.0
    assert row["best_dev_accuracy"] > study["N(0,1)"]["best_dev_accuracy"] + 0.3


def test_deep_mlp_is_the_lab_mlp():
    model = deep_mlp(8, 3, depth=3, width=4, activation="tanh", initializer="zeros")
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    assert len(dense) == 4 and dense[0].activation.__name__ == "linear"
    assert all(not d.kernel.numpy().any() for d in dense[:3])
