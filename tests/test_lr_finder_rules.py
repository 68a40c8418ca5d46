"""`LRFinderResult.suggest`: the three rules, non-finite losses, `stop_factor=None`.

Expected values come from each peer's definition, computed here another way:
fastai's `valley` by enumerating every subsequence of a short curve, fastai's
`minimum` as the rate at the lowest loss over 10, PyTorch Lightning's handling
of non-finite losses (dropped before the rule runs).
"""

import itertools
import math

import keras
import numpy as np
import pytest

from keras_tricks.lr_finder import LRFinderResult, find_learning_rate, steepest_descent
from tests.callbacks.helpers import linear_data, linear_model

# Descends with a bump (2.9 -> 3.1), bottoms out at index 8, diverges.
CURVE = [3.0, 2.9, 3.1, 2.5, 2.0, 1.6, 1.2, 1.0, 0.9, 1.4, 3.0, 9.0]
LRS = np.logspace(-5, 0, len(CURVE))


def valley_by_enumeration(lrs, losses):
    """fastai's valley from its definition, by brute force over subsequences.

    The valley is the longest strictly decreasing subsequence (the first one
    to end, among the longest); with `L` points ending at `e`, fastai takes
    index `e - L + int(L / 3) + int(L / 3 / 2)`.
    """
    best_length, best_end = 0, None
    for end in range(len(losses)):
        for size in range(len(losses), 0, -1):
            found = any(
                all(losses[a] > losses[b] for a, b in itertools.pairwise(chosen))
                for chosen in itertools.combinations(range(end + 1), size)
                if chosen[-1] == end
            )
            if found:
                break
        if size > best_length:
            best_length, best_end = size, end
    sections = best_length / 3
    return lrs[best_end - best_length + int(sections) + int(sections / 2)]


def test_valley_equals_fastais_definition():
    result = LRFinderResult(LRS, CURVE, CURVE)
    # The valley is 3.0, 2.9, 2.5, 2.0, 1.6, 1.2, 1.0, 0.9: L = 8, e = 8,
    # index 8 - 8 + 2 + 1 = 3.
    assert result.suggest("valley") == LRS[3]
    assert result.suggest("valley") == valley_by_enumeration(LRS, CURVE)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_valley_on_noisy_curves(seed):
    rng = np.random.default_rng(seed)
    losses = 2.0 - np.linspace(0, 1.5, 11) ** 2 + rng.normal(0, 0.15, 11)
    lrs = np.logspace(-4, 0, 11)
    assert LRFinderResult(lrs, losses, losses).suggest("valley") == (
        valley_by_enumeration(lrs, losses)
    )


def test_minimum_over_ten_and_steepest():
    result = LRFinderResult(LRS, CURVE, CURVE)
    assert result.suggest("minimum/10") == pytest.approx(LRS[8] / 10)
    assert result.suggest("steepest") == result.suggestion
    assert result.suggestion == steepest_descent(LRS, np.array(CURVE))


def test_skip_begin_and_end_drop_points_before_the_rule():
    result = LRFinderResult(LRS, CURVE, CURVE)
    # Without the last 4 points the lowest loss is index 7.
    assert result.suggest("minimum/10", skip_end=4) == pytest.approx(LRS[7] / 10)
    # Without the first 4, the valley is 2.0 .. 0.9 (L = 5 ending at index 4
    # of the rest): index 4 - 5 + 1 + 0 = 0, i.e. LRS[4].
    assert result.suggest("valley", skip_begin=4) == LRS[4]
    assert result.suggest("steepest", skip_begin=10) is None  # 2 points left


def test_a_curve_that_never_decreases_has_no_valley():
    losses = [1.0, 1.0, 1.1, 1.2, 1.5]
    result = LRFinderResult(np.logspace(-3, 0, 5), losses, losses)
    assert result.suggest("valley") is None  # fastai: the last rate
    assert result.suggest("minimum/10") == pytest.approx(1e-3 / 10)


NONFINITE = [math.nan, math.nan, 0, math.inf, 1, 2, 3, math.inf, 2, math.nan, 1]


@pytest.mark.parametrize("rule", ["steepest", "valley", "minimum/10"])
def test_non_finite_losses_are_dropped_before_the_rule(rule):
    lrs = np.logspace(-4, 0, len(NONFINITE))
    result = LRFinderResult(lrs, NONFINITE, NONFINITE)
    finite = np.isfinite(NONFINITE)
    only_finite = LRFinderResult(lrs[finite], np.array(NONFINITE)[finite], [0] * 6)
    suggested = result.suggest(rule)
    assert suggested == only_finite.suggest(rule)
    if rule != "minimum/10":
        assert np.isfinite(result.losses[lrs == suggested]).all()


def test_the_defect_a_nan_suggests_a_rate_whose_loss_is_nan():
    lrs = np.logspace(-4, 0, len(NONFINITE))
    result = LRFinderResult(lrs, NONFINITE, NONFINITE)
    (index,) = np.flatnonzero(lrs == result.suggestion)
    assert math.isfinite(NONFINITE[index])


def test_a_nan_last_loss_of_a_real_sweep_does_not_move_the_suggestion(rng):
    model = linear_model(keras.optimizers.SGD())
    x, y = linear_data(rng, n=256)
    sweep = find_learning_rate(model, x, y, min_lr=1e-3, max_lr=10.0, steps=40)
    assert sweep.losses[-1] > 4 * sweep.losses.min()  # it diverged and stopped
    assert sweep.suggestion is not None
    losses = np.append(sweep.losses, math.nan)
    lrs = np.append(sweep.lrs, 2 * sweep.lrs[-1])
    with_nan = LRFinderResult(lrs, losses, losses)
    assert with_nan.suggestion == sweep.suggestion
    for rule in ("steepest", "valley", "minimum/10"):
        assert with_nan.suggest(rule) == sweep.suggest(rule)


def test_too_few_finite_points_give_no_suggestion():
    losses = [math.nan, 1.0, math.inf, 0.5, math.nan]
    result = LRFinderResult(np.logspace(-3, 0, 5), losses, losses)
    for rule in ("steepest", "valley", "minimum/10"):
        assert result.suggest(rule) is None
    with pytest.raises(ValueError, match="2 with a finite loss"):
        result.apply(linear_model(keras.optimizers.SGD()))


def test_apply_uses_the_rule():
    model = linear_model(keras.optimizers.SGD(0.5))
    result = LRFinderResult(LRS, CURVE, CURVE)
    assert result.apply(model, rule="valley") == LRS[3]
    assert float(model.optimizer.learning_rate) == pytest.approx(LRS[3])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rule": "fastest"}, ValueError, "Received: rule='fastest'"),
        ({"skip_begin": -1}, ValueError, "Received: skip_begin=-1"),
        ({"skip_end": 1.5}, TypeError, "Received: skip_end=1.5"),
    ],
)
def test_bad_suggest_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LRFinderResult(LRS, CURVE, CURVE).suggest(**kwargs)


def test_stop_factor_none_runs_every_step(rng):
    x, y = linear_data(rng, n=64)
    kwargs = {"min_lr": 1e-2, "max_lr": 1e2, "steps": 20, "batch_size": 8}
    stopped = find_learning_rate(linear_model(keras.optimizers.SGD()), x, y, **kwargs)
    assert len(stopped.lrs) < 20  # the default stop_factor=4 ends it early
    full = find_learning_rate(
        linear_model(keras.optimizers.SGD()), x, y, stop_factor=None, **kwargs
    )
    finite = np.isfinite(full.losses).all()
    assert len(full.lrs) == 20 or not finite
    assert len(full.lrs) > len(stopped.lrs)


def test_linear_mode_spaces_the_rates_evenly(rng):
    x, y = linear_data(rng, n=64)
    result = find_learning_rate(
        linear_model(keras.optimizers.SGD()),
        x,
        y,
        min_lr=1e-3,
        max_lr=1e-1,
        steps=5,
        batch_size=8,
        mode="linear",
        stop_factor=None,
    )
    np.testing.assert_allclose(result.lrs, np.linspace(1e-3, 1e-1, 5))
    with pytest.raises(ValueError, match="Received: mode='cyclic'"):
        find_learning_rate(linear_model("sgd"), x, y, mode="cyclic")
