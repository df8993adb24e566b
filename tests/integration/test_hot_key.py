"""A customer who never stops sending (issue 12): bounded state, stream == replay, no oversized record."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from journey.generate import generate, to_jsonl
from journey.settings import Settings
from streams.path_service import changelog_topic
from tests.support.kafka_read import largest_record
from tests.support.pipeline import Pipeline

pytestmark = pytest.mark.integration

HOT_EVENTS = 200_000
ACTIONS = ("page_view", "product_view", "page_view", "search", "page_view", "page_view", "like", "page_view")


def hot_customer_lines(customer: str, count: int) -> list[bytes]:
    """A crawler-like id: one event a second for two days and a half, with a purchase and a share late on."""
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    lines = []
    for i in range(count):
        at = (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        event = {"type": "clickstream", "schema_version": 1, "event_id": f"hot-{i:07d}", "customer_id": customer,
                 "occurred_at": at, "action": ACTIONS[i % len(ACTIONS)], "channel": "organic"}
        if i == count - 1000:
            event = {"type": "purchase", "schema_version": 1, "event_id": f"hot-{i:07d}", "customer_id": customer,
                     "occurred_at": at, "order_id": "o-hot", "amount": 12.5, "currency": "EUR", "status": "completed"}
        elif i == count - 10:
            event = {"type": "share", "schema_version": 1, "event_id": f"hot-{i:07d}", "customer_id": customer,
                     "occurred_at": at, "kind": "recommend"}
        lines.append(json.dumps(event).encode() + b"\n")
    return lines


def test_a_customer_with_200k_events_among_ordinary_traffic_ends_equal_to_replay(broker, clickhouse,
                                                                                  tmp_path: Path) -> None:
    pipeline = Pipeline(broker, clickhouse, tmp_path)
    pipeline.setup()
    ordinary = [to_jsonl(e) for e in generate(400, seed=121)]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(ordinary + hot_customer_lines("crawler-1", HOT_EVENTS)))
    pipeline.journey("produce", str(events))
    pipeline.start_worker()
    try:
        pipeline.assert_equals_replay(events)
    finally:
        pipeline.stop_workers()

    limit = 1_000_000  # JOURNEY_MAX_RECORD_BYTES' default
    changelog = changelog_topic(Settings(group_id=f"{pipeline.name}-group"))
    size, topic = largest_record(broker.address, [changelog, pipeline.topic("transitions"), pipeline.topic("rekeyed")],
                                 pipeline.partitions)
    print(f"largest record the worker wrote: {size} bytes ({topic})")
    assert 0 < size <= 1024 < limit  # the state of a 200k-event customer is as small as anyone's
