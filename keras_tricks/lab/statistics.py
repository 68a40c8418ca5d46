"""Paired differences over seeds, their Student-t interval, and the verdict.

Two variants trained with the same seeds give paired scores `a_i`, `b_i`.
The effect is the mean difference `d = mean(a_i - b_i)`; with `K` seeds and
`s` the sample standard deviation of the differences, the 95% confidence
interval is

    d -+ t_{0.975, K-1} * s / sqrt(K)

(Student 1908). A trick `helps` when the whole interval is above 0, `hurts`
when it is below 0; otherwise the data show `no clear effect`. With one
seed there is no interval and no verdict.

Accuracy on `n` dev examples moves in steps of `1 / n`, so a few seeds can
give the same difference every time (sample standard deviation 0) and a
zero-width interval that claims certainty the data do not have: `s` is
never taken below the metric's `resolution` (one dev example).

A difference of two accuracies lies in [-1, 1] whatever the data; the
interval is intersected with those `bounds`. That keeps its coverage (the
true difference is always inside them) and never reports an impossible
value; with enough seeds the t interval lies inside anyway.

A run that does not train (it diverged, or stays near a constant guess)
makes the scores of its variant bimodal, and a mean with a t interval
describes that badly. `trained` says which runs trained: those at least
halfway from what a constant guess scores to the best run of the scenario.
A comparison in which some seeds trained and others did not is reported as
`mixed` ("trained in 3 of 5 seeds"), without an interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

VERDICTS = ("helps", "hurts", "no clear effect", "mixed")
"""The verdicts of the lab: `verdict`'s three, and `mixed` for a comparison
whose seeds split between trained and not trained."""

TRAINED_SHARE = 0.5
"""A run trained when it covers at least this share of the way from a
constant guess to the best run of its scenario (see `trained`)."""


def trained(scores: Sequence[float], chance: float, best: float) -> list[bool]:
    """Whether each run trained: `score >= chance + TRAINED_SHARE * (best - chance)`.

    Args:
        scores: dev accuracies of the runs.
        chance: what a constant guess of the most frequent class scores.
        best: the best dev accuracy of any run in the same scenario.

    Returns:
        One bool per score; all `True` when `best` is barely above chance
        (nothing trained well enough to tell).

    Example:

    >>> trained([0.95, 0.11, 0.6], chance=0.1, best=0.95)
    [True, False, True]
    """
    if best - chance < 0.1:
        return [True] * len(scores)
    threshold = chance + TRAINED_SHARE * (best - chance)
    return [float(s) >= threshold for s in scores]


def paired_interval(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = 0.95,
    *,
    resolution: float = 0.0,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> tuple[float, float, float]:
    """Mean paired difference `a - b` and its Student-t confidence interval.

    Args:
        a: scores of the variant, one per seed.
        b: scores of what it is compared with, same seeds in the same order.
        confidence: coverage of the interval. Defaults to `0.95`.
        resolution: smallest step of the metric (`1 / n` for an accuracy
            on `n` examples); the standard deviation of the differences is
            taken as at least this. Defaults to `0.0`.
        bounds: the values the difference can take (`(-1, 1)` for
            accuracies); the interval is intersected with them. Defaults
            to no bounds.

    Returns:
        `(effect, low, high)`; `low` and `high` are NaN with fewer than two
        seeds.

    Raises:
        ValueError: if `a` and `b` differ in length or are empty.

    Example:

    >>> effect, low, high = paired_interval([0.9, 0.8, 0.85], [0.8, 0.75, 0.8])
    >>> round(effect, 4), round(low, 4), round(high, 4)
    (0.0667, -0.005, 0.1384)
    >>> [round(v, 4) for v in paired_interval([0.52, 0.51], [0.5, 0.49])]
    [0.02, 0.02, 0.02]
    >>> [round(v, 4) for v in paired_interval([0.52, 0.51], [0.5, 0.49],
    ...                                       resolution=0.01)]
    [0.02, -0.0698, 0.1098]
    >>> [round(v, 4) for v in paired_interval([0.9, 0.1], [0.1, 0.1],
    ...                                       bounds=(-1.0, 1.0))]
    [0.4, -1.0, 1.0]
    """
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(
            "Paired scores need the same, non-zero number of seeds on both "
            f"sides. Received {len(a)} and {len(b)}"
        )
    differences = np.asarray(a, dtype="float64") - np.asarray(b, dtype="float64")
    effect = float(differences.mean())
    if len(differences) < 2:
        return effect, math.nan, math.nan
    from scipy import stats

    spread = max(float(differences.std(ddof=1)), resolution)
    spread /= math.sqrt(len(differences))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(differences) - 1)) * spread
    low, high = max(effect - half, bounds[0]), min(effect + half, bounds[1])
    return effect, low, high


def verdict(low: float, high: float) -> str:
    """`"helps"` if the interval is above 0, `"hurts"` if below, else no clear effect.

    An interval touching 0, or a missing one (NaN), is `"no clear effect"`.

    Example:

    >>> verdict(0.01, 0.05), verdict(-0.05, -0.01), verdict(0.0, 0.05)
    ('helps', 'hurts', 'no clear effect')
    """
    if low > 0:
        return "helps"
    if high < 0:
        return "hurts"
    return "no clear effect"
