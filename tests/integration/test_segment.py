"""The Segment Spec as a fourth input, for real (issue 15): Segment messages through the broker and ClickHouse.

The generator's visitors (half of them anonymous until they sign in, some on two devices) as the
Segment messages a tracker would send — track, page and identify calls with utm mediums — are
published to the Segment topic keyed by userId else anonymousId while the worker runs, with a
few bad messages mixed in. ClickHouse ends equal to `journey replay --format segment` of the
same file, the bad messages are dead letters with their reasons, and `identify` calls with one
id are counted as ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.deadletter import header_map
from tests.support.kafka_read import read_topics
from tests.support.pipeline import Pipeline, scrape

pytestmark = pytest.mark.integration

GENERATE = ("--customers", "3000", "--seed", "29", "--p-anonymous", "0.5", "--p-second-device", "0.3",
            "--p-never-sign-in", "0.2", "--format", "segment", "--quiet")
AT = "2026-01-05T10:00:00Z"
BAD = [
    b"{not json",
    json.dumps({"type": "teleport", "messageId": "b1", "anonymousId": "a", "timestamp": AT}).encode(),
    json.dumps({"type": "track", "event": "Product Viewed", "anonymousId": "a", "timestamp": AT}).encode(),
    json.dumps({"type": "track", "event": "Product Viewed", "messageId": "b3", "timestamp": AT}).encode(),
    json.dumps({"type": "page", "messageId": "b4", "userId": "u", "timestamp": "2026-01-05T10:00:00"}).encode(),
]
IGNORED = [json.dumps({"type": "identify", "messageId": "i1", "userId": "c0000001", "timestamp": AT,
                       "traits": {"plan": "pro"}}).encode()]


class SegmentReplay:
    """`journey replay --format segment` as the pipeline's reference."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def replay(self, events: Path) -> list[dict]:
        out = self.pipeline.journey("replay", "--format", "segment", str(events)).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("pipeline", ["server"], indirect=True)
def test_segment_messages_flow_like_our_events_and_end_equal_to_the_replay(pipeline: Pipeline,
                                                                          tmp_path: Path) -> None:
    events = tmp_path / "segment.jsonl"
    pipeline.journey("generate", *GENERATE, "-o", str(events))
    lines = events.read_bytes().splitlines()
    assert len(lines) >= 10_000 and sum(b'"anonymousId"' in line for line in lines) > 3_000
    extra = tmp_path / "extra.jsonl"
    extra.write_bytes(b"\n".join(BAD + IGNORED) + b"\n")

    _, port = pipeline.start_worker()
    producer = pipeline.start_generator(*GENERATE, "--rate", "4000")
    pipeline.journey("produce", "--format", "segment", str(extra))
    pipeline.finish_generator(producer)

    reference = SegmentReplay(pipeline)
    pipeline.replay = reference.replay  # the comparison reads the Segment file through the same mapping
    pipeline.assert_equals_replay(events)

    letters = read_topics(pipeline.broker.address, [pipeline.topic("deadletter")], pipeline.partitions, len(BAD))
    reasons = sorted(header_map(record.headers)["journey.dlq.reason.code"] for record in letters)
    assert reasons == sorted(["invalid_json", "unknown_type", "invalid_fields", "invalid_fields", "naive_timestamp"])
    assert all(header_map(record.headers)["journey.dlq.source.topic"] == pipeline.topic("segment") for record in letters)
    ignored = f'journey_events_consumed_total{{outcome="ignored",topic="{pipeline.topic("segment")}"}}'
    consumed = {k: v for k, v in scrape(port).items() if k.startswith("journey_events_consumed_total{")}
    assert consumed.get(ignored) == 1, consumed
