"""`journey generate --to-kafka` against the real (Tansu) broker: every line on its topic, keyed by customer."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import orjson
import pytest

from journey.cli import main
from journey.generate import generate_lines
from journey.kafka_admin import create_topics
from tests.support.kafka_read import read_topics

pytestmark = pytest.mark.integration

PARTITIONS = 4


def test_generate_publishes_each_event_to_its_topic_keyed_by_customer(broker, monkeypatch, capsys):
    run = uuid.uuid4().hex[:8]
    topics = {kind: f"gen-{run}.{kind}" for kind in ("clickstream", "purchases", "shares")}
    create_topics([broker.address], {topic: PARTITIONS for topic in topics.values()})
    monkeypatch.setenv("JOURNEY_PRODUCER_IDEMPOTENCE", "false")  # Tansu has no InitProducerId
    options = {"seed": 12, "malformed": 0.02}
    lines = list(generate_lines(120, **options))
    assert 400 <= len(lines) <= 700, len(lines)  # about 500 events

    started = time.monotonic()
    assert main(["generate", "--customers", "120", "--seed", "12", "--malformed", "0.02", "--to-kafka",
                 "--rate", "2000", "--kafka-brokers", broker.address,
                 "--topic-clickstream", topics["clickstream"], "--topic-purchases", topics["purchases"],
                 "--topic-shares", topics["shares"]]) == 0
    elapsed = time.monotonic() - started
    assert elapsed >= len(lines) / 2000 * 0.8, "--rate 2000 paces the producer"
    assert "Kafka" in capsys.readouterr().err

    records = read_topics(broker.address, list(topics.values()), PARTITIONS, len(lines))
    assert len(records) == len(lines)

    topic_of = {"clickstream": topics["clickstream"], "purchase": topics["purchases"], "share": topics["shares"]}
    expected = Counter(topics["clickstream"] if line.defect else topic_of[orjson.loads(line.raw)["type"]]
                       for line in lines)
    assert Counter(r.topic for r in records) == expected
    assert sorted(r.value + b"\n" for r in records) == sorted(line.raw for line in lines)

    bad = {line.raw.rstrip(b"\n") for line in lines if line.defect}
    assert bad and all(r.topic == topics["clickstream"] for r in records if r.value in bad)
    for record in records:
        if record.value in bad:
            continue
        assert record.key == orjson.loads(record.value)["customer_id"].encode()


@pytest.mark.parametrize("batch_bytes", ["1", "16384"])
def test_produce_keeps_each_customers_events_in_file_order(broker, monkeypatch, tmp_path, batch_bytes):
    """Many batches in flight for one partition must still land in the order they were sent."""
    topic = f"order-{uuid.uuid4().hex[:8]}.clickstream"
    create_topics([broker.address], {topic: PARTITIONS})
    monkeypatch.setenv("JOURNEY_PRODUCER_IDEMPOTENCE", "false")
    monkeypatch.setenv("JOURNEY_PRODUCER_MAX_BATCH_SIZE", batch_bytes)
    lines = [orjson.dumps({"type": "clickstream", "schema_version": 1, "event_id": f"e{i:05d}",
                           "customer_id": f"c{i % 3}", "occurred_at": "2026-01-01T00:00:00Z", "action": "page_view"})
             for i in range(3000)]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["produce", str(events), "--topic", topic, "--kafka-brokers", broker.address]) == 0

    records = read_topics(broker.address, [topic], PARTITIONS, len(lines))
    assert len(records) == len(lines)
    for customer in ("c0", "c1", "c2"):
        landed = sorted((r for r in records if r.key == customer.encode()), key=lambda r: (r.partition, r.offset))
        sent = [line for line in lines if orjson.loads(line)["customer_id"] == customer]
        assert [r.value for r in landed] == sent
