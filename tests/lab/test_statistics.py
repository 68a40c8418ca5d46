"""Paired differences, the Student-t interval and the verdict rule."""

import math

import numpy as np
import pytest

from keras_tricks.lab.statistics import paired_interval, trained, verdict

pytestmark = pytest.mark.jax

T_975 = {1: 12.706204736174707, 2: 4.302652729749464, 4: 2.7764451051977934}
"""Student-t 0.975 quantiles by degrees of freedom (from tables)."""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0.9, 0.8, 0.85], [0.8, 0.75, 0.8]),
        ([0.5, 0.7], [0.6, 0.4]),
        ([0.91, 0.92, 0.95, 0.90, 0.93], [0.90, 0.90, 0.94, 0.91, 0.90]),
    ],
)
def test_interval_matches_a_hand_computation(a, b):
    d = [x - y for x, y in zip(a, b, strict=True)]
    k = len(d)
    mean = sum(d) / k
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (k - 1))
    half = T_975[k - 1] * sd / math.sqrt(k)
    effect, low, high = paired_interval(a, b)
    assert effect == pytest.approx(mean, abs=1e-12)
    assert low == pytest.approx(mean - half, abs=1e-9)
    assert high == pytest.approx(mean + half, abs=1e-9)


def test_pairing_removes_the_seed_to_seed_spread():
    a = np.array([0.70, 0.80, 0.90])
    effect, low, high = paired_interval(a + 0.01, a)
    assert effect == pytest.approx(0.01) and high - low == pytest.approx(0, abs=1e-12)
    assert verdict(low, high) == "helps"


def test_identical_differences_do_not_make_a_zero_width_interval():
    """Accuracy on 360 dev rows moves in steps of 1/360: two seeds that both
    gain one example are not a certain gain."""
    a, b = [0.9194, 0.9000], [0.9167, 0.8972]
    effect, low, high = paired_interval(a, b, resolution=1 / 360)
    assert effect == pytest.approx(0.00275, abs=1e-4)
    half = T_975[1] * (1 / 360) / math.sqrt(2)
    assert high - low == pytest.approx(2 * half, rel=1e-3)
    assert verdict(low, high) == "no clear effect"
    spread = paired_interval([0.95, 0.90, 0.85], [0.90, 0.89, 0.70], resolution=0.01)
    assert spread == pytest.approx(
        paired_interval([0.95, 0.90, 0.85], [0.90, 0.89, 0.70])
    )


def test_one_seed_has_no_interval_and_bad_input_is_refused():
    effect, low, high = paired_interval([0.9], [0.8])
    assert effect == pytest.approx(0.1) and math.isnan(low) and math.isnan(high)
    assert verdict(low, high) == "no clear effect"
    with pytest.raises(ValueError, match="same, non-zero number of seeds"):
        paired_interval([0.9, 0.8], [0.8])
    with pytest.raises(ValueError, match="same, non-zero number of seeds"):
        paired_interval([], [])


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (1e-9, 0.1, "helps"),
        (0.0, 0.1, "no clear effect"),
        (-0.1, 0.1, "no clear effect"),
        (-0.1, 0.0, "no clear effect"),
        (-0.1, -1e-9, "hurts"),
        (0.0, 0.0, "no clear effect"),
    ],
)
def test_verdict_at_the_boundaries(low, high, expected):
    assert verdict(low, high) == expected


def test_interval_never_leaves_the_possible_differences():
    """Two seeds, one trained and one not: the t interval is far wider than
    [-1, 1]; intersected with it, it keeps its coverage."""
    effect, low, high = paired_interval([0.95, 0.10], [0.10, 0.10])
    assert low < -1.0 and high > 1.0
    effect, low, high = paired_interval([0.95, 0.10], [0.10, 0.10], bounds=(-1.0, 1.0))
    assert effect == pytest.approx(0.425) and (low, high) == (-1.0, 1.0)
    inside = paired_interval([0.9, 0.8, 0.85], [0.8, 0.75, 0.8], bounds=(-1.0, 1.0))
    assert inside == pytest.approx(paired_interval([0.9, 0.8, 0.85], [0.8, 0.75, 0.8]))


@pytest.mark.parametrize(
    ("scores", "chance", "best", "expected"),
    [
        ([0.95, 0.11, 0.6], 0.1, 0.95, [True, False, True]),
        ([0.2, 0.52], 0.1, 0.9, [False, True]),  # threshold 0.5
        ([0.12, 0.13], 0.1, 0.15, [True, True]),  # nothing trained: no split
    ],
)
def test_trained_is_halfway_from_a_constant_guess_to_the_best_run(
    scores, chance, best, expected
):
    assert trained(scores, chance, best) == expected
