"""The spine for real: Kafka (Tansu) -> journey worker -> ClickHouse server, checked against replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from journey.generate import generate, to_jsonl
from streams.deadletter import header_map
from tests.support.kafka_read import read_topics
from tests.support.pipeline import Pipeline, scrape, wait_until

pytestmark = pytest.mark.integration


def test_stream_equals_replay_row_for_row(pipeline: Pipeline, dataset: Path) -> None:
    lines = dataset.read_bytes().splitlines()
    customers = {json.loads(line)["customer_id"] for line in lines}
    assert len(lines) >= 10_000 and len(customers) >= 1_000

    pipeline.journey("produce", str(dataset))
    _, port = pipeline.start_worker()
    expected = pipeline.assert_equals_replay(dataset)

    metrics = scrape(port)
    emitted = sum(v for k, v in metrics.items() if k.startswith("journey_transitions_total{"))
    assert emitted == len(expected)
    accepted = sum(v for k, v in metrics.items() if k.startswith("journey_events_consumed_total{") and 'outcome="accepted"' in k)
    assert accepted == len(lines)
    assert metrics["journey_sink_rows_total"] >= len(expected)
    assert metrics["journey_sink_clickhouse_up"] == 1


BAD_LINES = {
    "invalid_json": b'{"type": "clickstream", "event_id": ',
    "missing_type": b'{"schema_version": 1, "event_id": "x1", "customer_id": "c1"}',
    "unknown_type": b'{"type": "telepathy", "schema_version": 1, "event_id": "x2", "customer_id": "c1"}',
    "naive_timestamp": (
        b'{"type": "clickstream", "schema_version": 1, "event_id": "x3", "customer_id": "c1",'
        b' "occurred_at": "2026-01-02T10:00:00", "action": "page_view"}'
    ),
    "invalid_fields": (
        b'{"type": "purchase", "schema_version": 1, "event_id": "x4", "customer_id": "c1",'
        b' "occurred_at": "2026-01-02T10:00:00Z", "order_id": "o", "amount": "lots", "currency": "EUR",'
        b' "status": "completed"}'
    ),
    "too_large": b'{"type": "clickstream", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}',
}


def test_bad_input_goes_to_dead_letters_and_good_input_flows_around_it(pipeline: Pipeline, tmp_path: Path) -> None:
    good = [to_jsonl(e) for e in generate(150, seed=11)]
    good_file = tmp_path / "good.jsonl"
    good_file.write_bytes(b"".join(good))
    # Interleave: good, bad, good, ... all through the clickstream topic as raw lines.
    mixed = tmp_path / "mixed.jsonl"
    bad = list(BAD_LINES.values())
    chunk = len(good) // (len(bad) + 1)
    with mixed.open("wb") as out:
        for i, line in enumerate(bad):
            out.write(b"".join(good[i * chunk:(i + 1) * chunk]))
            out.write(line + b"\n")
        out.write(b"".join(good[len(bad) * chunk:]))

    pipeline.journey("produce", str(mixed), "--topic", pipeline.topic("clickstream"))
    _, port = pipeline.start_worker()
    pipeline.assert_equals_replay(good_file)

    letters = read_topics(pipeline.broker.address, [pipeline.topic("deadletter")], pipeline.partitions, len(BAD_LINES))
    by_code = {header_map(r.headers)["journey.dlq.reason.code"]: r for r in letters}
    assert set(by_code) == set(BAD_LINES)
    for code, record in by_code.items():
        headers = header_map(record.headers)
        assert headers["journey.dlq.source.topic"] == pipeline.topic("clickstream")
        assert int(headers["journey.dlq.source.offset"]) >= 0
        assert headers["journey.dlq.reason"], code
        if code == "too_large":
            assert headers["journey.dlq.truncated"] == "true"
            assert int(headers["journey.dlq.original.size"]) == len(BAD_LINES[code])
            assert BAD_LINES[code].startswith(record.value)
        else:
            assert record.value == BAD_LINES[code]  # the original bytes, untouched

    def counted() -> dict[str, float]:
        metrics = scrape(port)
        return {code: metrics.get(f'journey_deadletters_total{{reason="{code}"}}', 0) for code in BAD_LINES}

    wait_until(lambda: all(v == 1 for v in counted().values()), 30, "dead-letter metrics")


def test_events_from_librdkafka_are_accepted(pipeline: Pipeline, tmp_path: Path) -> None:
    """confluent-kafka's default partitioner (CRC32) differs from murmur2: events land on the
    'wrong' partition for their customer, and the worker must rekey them, not mis-track them."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    events = [to_jsonl(e) for e in generate(40, seed=21)]
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"".join(events))

    producer = confluent_kafka.Producer({"bootstrap.servers": pipeline.broker.address,
                                         "enable.idempotence": False, "linger.ms": 5})
    topics = {"clickstream": "clickstream", "purchase": "purchases", "share": "shares"}
    for line in events:
        doc = json.loads(line)
        producer.produce(pipeline.topic(topics[doc["type"]]), key=doc["customer_id"].encode(), value=line.rstrip())
    assert producer.flush(30) == 0

    _, port = pipeline.start_worker()
    pipeline.assert_equals_replay(events_file)
    rekeyed = sum(v for k, v in scrape(port).items() if 'outcome="rekeyed"' in k)
    assert rekeyed > 0  # CRC32 placed some customers away from their murmur2 partition


def test_a_refused_idempotent_producer_is_named_with_its_setting(broker, clickhouse, tmp_path: Path) -> None:
    """Tansu has no InitProducerId: the error says so, not "cannot reach" (the broker is up)."""
    pipeline = Pipeline(broker, clickhouse, tmp_path)
    pipeline.journey("topics")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(to_jsonl(e) for e in generate(3, seed=1)))
    result = pipeline.journey("produce", str(events), check=False, JOURNEY_PRODUCER_IDEMPOTENCE="true")
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in stderr
    line = stderr.strip().splitlines()
    assert len(line) == 1 and "does not support idempotent producers" in line[0]
    assert "JOURNEY_PRODUCER_IDEMPOTENCE=false" in line[0] and "cannot reach" not in line[0]
