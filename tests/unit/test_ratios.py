"""Kotler's ratios and path shapes (DESIGN.md §1, "Ratios for analysts")."""

from __future__ import annotations

import math

import pytest

from fivea import Stage
from fivea.ratios import PathMetrics, ratio


def counts(aware, appeal, ask, act, advocate) -> PathMetrics:
    return PathMetrics(aware=aware, appeal=appeal, ask=ask, act=act, advocate=advocate)


def test_kotlers_worked_example():
    metrics = PathMetrics.from_counts({"aware": 90, "act": 18, "advocate": 9})
    assert metrics.par == pytest.approx(0.2)
    assert metrics.bar == pytest.approx(0.1)


def test_from_counts_takes_stage_or_label_keys_and_defaults_to_zero():
    by_stage = PathMetrics.from_counts({Stage.AWARE: 10, Stage.ASK: 4})
    by_label = PathMetrics.from_counts({"aware": 10, "ask": 4})
    assert by_stage == by_label == counts(10, 0, 4, 0, 0)


def test_stage_ratios():
    assert counts(100, 50, 25, 20, 5).stage_ratios == {
        "attraction": 0.5,
        "curiosity": 0.5,
        "commitment": 0.8,
        "affinity": 0.25,
    }


@pytest.mark.parametrize(("num", "den", "expected"), [(1, 0, None), (0, 0, None), (0, 4, 0.0), (3, 4, 0.75)])
def test_ratio_is_none_for_a_zero_denominator(num, den, expected):
    assert ratio(num, den) == expected


def test_zero_denominators_give_none_everywhere():
    empty = counts(0, 0, 0, 0, 0)
    assert (empty.par, empty.bar, empty.bow_tie_distance) == (None, None, None)
    assert set(empty.stage_ratios.values()) == {None}
    only_aware = counts(10, 0, 0, 0, 0)
    assert only_aware.stage_ratios == {"attraction": 0.0, "curiosity": None, "commitment": None, "affinity": None}


SHAPES = [
    # (aware, appeal, ask, act, advocate), shape, why
    ((100, 60, 40, 20, 30), "trumpet", "advocate > act"),
    ((100, 30, 50, 20, 10), "goldfish", "ask > appeal"),
    ((100, 60, 20, 40, 10), "door knob", "act > ask"),
    ((100, 60, 40, 20, 10), "funnel", "every stage at most the one before"),
    ((100, 100, 100, 100, 100), "funnel", "equal stages are still a funnel"),
    ((0, 0, 0, 0, 0), "funnel", "nobody yet"),
    ((50, 60, 40, 20, 10), "mixed", "appeal > aware fits no archetype"),
    # Check order: the first archetype that matches wins.
    ((100, 30, 50, 20, 40), "trumpet", "trumpet before goldfish"),
    ((100, 60, 20, 40, 50), "trumpet", "trumpet before door knob"),
    ((100, 30, 50, 60, 10), "goldfish", "goldfish before door knob"),
]


@pytest.mark.parametrize(("numbers", "shape"), [s[:2] for s in SHAPES], ids=[s[2] for s in SHAPES])
def test_shape(numbers, shape):
    assert counts(*numbers).shape == shape


@pytest.mark.parametrize(
    ("numbers", "distance"),
    [
        ((100, 40, 40, 40, 100), 0.0),  # the ideal bow tie: advocate = aware, act = appeal
        ((100, 40, 40, 40, 150), 0.0),  # more advocates than aware: clamped, still ideal
        ((100, 50, 40, 0, 0), math.sqrt(2)),  # nobody acts or advocates: worst
        ((100, 50, 40, 25, 50), math.hypot(0.5, 0.5)),
        ((100, 40, 40, 40, 0), 1.0),
    ],
)
def test_bow_tie_distance(numbers, distance):
    assert counts(*numbers).bow_tie_distance == pytest.approx(distance)


def test_bow_tie_distance_grows_as_advocacy_leaks():
    distances = [counts(100, 40, 40, 40, adv).bow_tie_distance for adv in (100, 80, 50, 10)]
    assert distances == sorted(distances)
    assert distances[0] == 0
