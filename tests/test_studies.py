"""The initialisation study: a deep net with N(0, 1) weights is broken."""

import pytest

from keras_tricks.studies import init_study


@pytest.fixture(scope="module")
def study(digits):
    train, dev = digits
    return init_study(train, dev, depth=20, epochs=10, seed=0).to_dict()


def test_standard_normal_init_is_broken(study):
    row = study["N(0,1)"]
    assert row["saturated_or_dead_last"] > 0.5
    assert row["grad_norm_first"] > 1e3
    assert row["best_dev_accuracy"] < 0.3


@pytest.mark.parametrize("init", ["glorot", "he", "lsuv"])
def test_scaled_inits_train(study, init):
    row = study[init]
    assert row["best_dev_accuracy"] >= 0.9
    assert row["dev_accuracy"] >= 0.85
    assert 0.05 < row["std_last"] < 2.0
    assert row["grad_norm_first"] < 10.0
