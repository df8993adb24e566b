"""The local services the other integration tests and the demo stand on: if these fail, nothing
downstream can be trusted, so each service is proven with a real client round trip."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from journey.errors import JourneyError
from journey.kafka_admin import create_topics
from journey.local import (
    LocalService,
    ServiceError,
    free_port,
    start_broker,
    start_clickhouse,
    start_prometheus,
    wait_for_port,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalService]:
    svc = start_broker(tmp_path / "tansu")
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def clickhouse(tmp_path: Path) -> Iterator[LocalService]:
    svc = start_clickhouse(tmp_path / "clickhouse")
    try:
        yield svc
    finally:
        svc.stop()


def _consume_all(bootstrap: str, topic: str, expected: int, deadline_s: float = 30) -> list[bytes]:
    """Consume until every record arrived: Tansu's end offsets can lag, so a fixed sleep or
    `consumer_timeout_ms` alone would flake."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    values: list[bytes] = []
    deadline = time.monotonic() + deadline_s
    try:
        while len(values) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records)
    finally:
        consumer.close()
    return values


def test_broker_round_trip_over_8_partitions(broker: LocalService) -> None:
    from kafka import KafkaProducer

    topic = "journey-events-test"
    create_topics([broker.address], {topic: 8})
    create_topics([broker.address], {topic: 8})  # idempotent: startup scripts run it every time

    producer = KafkaProducer(bootstrap_servers=broker.address)
    try:
        futures = [producer.send(topic, key=str(i % 17).encode(), value=json.dumps({"n": i}).encode())
                   for i in range(100)]
        producer.flush(timeout=30)
        partitions = {f.get(timeout=10).partition for f in futures}
    finally:
        producer.close()
    assert len(partitions) > 1, "keys should spread over the 8 partitions"

    values = _consume_all(broker.address, topic, 100)
    assert sorted(json.loads(v)["n"] for v in values) == list(range(100))


def test_create_topics_refuses_a_different_partition_count(broker: LocalService) -> None:
    create_topics([broker.address], {"t": 8})
    with pytest.raises(JourneyError, match="t has 8"):
        create_topics([broker.address], {"t": 3}, timeout_s=5)


def test_pause_freezes_the_broker_and_resume_brings_it_back(broker: LocalService) -> None:
    from journey.local import _kafka_answers

    broker.pause()
    try:
        # The socket still accepts (the kernel queues connects) but nothing answers.
        with pytest.raises(Exception):
            _kafka_answers(broker.address, timeout=1)
    finally:
        broker.resume()
    _kafka_answers(broker.address)
    assert broker.alive


def test_stop_works_on_a_paused_service(tmp_path: Path) -> None:
    svc = start_broker(tmp_path / "tansu")
    try:
        svc.pause()
    finally:
        svc.stop(timeout=5)
    assert not svc.alive


def test_clickhouse_native_round_trip(clickhouse: LocalService) -> None:
    from clickhouse_driver import Client

    assert clickhouse.url == f"clickhouse://default@127.0.0.1:{clickhouse.ports['tcp']}/"
    client = Client.from_url(f"{clickhouse.url}?send_receive_timeout=10")  # the URL other code is given
    assert client.execute("SELECT 1") == [(1,)]
    client.execute(
        "CREATE TABLE t (customer_id String, stage LowCardinality(String), seq UInt64) "
        "ENGINE = MergeTree ORDER BY (customer_id, seq)"
    )
    rows = [("c1", "aware", 1), ("c1", "appeal", 2), ("c2", "ask", 1)]
    # Rows as the driver's argument: 18.16 hangs on values inlined into the SQL text.
    client.execute("INSERT INTO t (customer_id, stage, seq) VALUES", rows)
    assert client.execute("SELECT customer_id, stage, seq FROM t ORDER BY customer_id, seq") == rows
    http = f"http://127.0.0.1:{clickhouse.ports['http']}/?query=SELECT%201"
    with urllib.request.urlopen(http, timeout=5) as r:
        assert r.read().strip() == b"1"


def test_prometheus_ready_and_scraping(tmp_path: Path) -> None:
    port = free_port()
    svc = start_prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"], port=port)  # scrape itself
    try:
        with urllib.request.urlopen(f"{svc.url}/-/ready", timeout=5) as r:
            assert r.status == 200
        # The first scrape is queryable only after ~5 s: poll with a bound instead of sleeping.
        query = urllib.parse.urlencode({"query": 'up{job="journey"}'})
        deadline = time.monotonic() + 30
        result: list = []
        while not result and time.monotonic() < deadline:
            with urllib.request.urlopen(f"{svc.url}/api/v1/query?{query}", timeout=5) as r:
                result = json.load(r)["data"]["result"]
            time.sleep(0.5)
        assert result and result[0]["value"][1] == "1"
    finally:
        svc.stop()
    assert not svc.alive


def test_wait_for_port_names_the_address_on_timeout() -> None:
    port = free_port()
    with pytest.raises(ServiceError, match=f"127.0.0.1:{port}"):
        wait_for_port("127.0.0.1", port, timeout=0.3, name="nothing")


def test_unreachable_broker_names_the_fix() -> None:
    with socket.socket() as s:  # bound but not listening: connections are refused
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(JourneyError, match="JOURNEY_KAFKA_BROKERS"):
            create_topics([address], {"t": 1}, timeout_s=2)
