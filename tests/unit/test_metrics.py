"""observe_many must leave a histogram exactly as one `observe` per amount would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest

from journey.metrics import FRESHNESS_BUCKETS, observe_many


def _exposition(observe) -> bytes:
    registry = CollectorRegistry()
    histogram = Histogram("journey_test_seconds", "test", buckets=FRESHNESS_BUCKETS, registry=registry)
    observe(histogram)
    return b"\n".join(line for line in generate_latest(registry).splitlines() if b"_created" not in line)


@given(st.lists(st.one_of(st.sampled_from(FRESHNESS_BUCKETS), st.floats(0, 1000, allow_nan=False))))
def test_observe_many_equals_observe_per_amount(amounts):
    def one_by_one(histogram):
        for amount in amounts:
            histogram.observe(amount)

    assert _exposition(lambda h: observe_many(h, amounts)) == _exposition(one_by_one)
