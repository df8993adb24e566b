"""`journey produce`: JSON Lines of events -> their topics, keyed by customer_id (kafka-python)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import IO

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from journey.errors import JourneyError, kafka_unreachable
from journey.kafka_security import kafka_python_config
from journey.settings import Settings


def open_producer(settings: Settings) -> KafkaProducer:
    try:
        return KafkaProducer(
            **kafka_python_config(settings),
            bootstrap_servers=settings.broker_list,
            client_id="journey-produce",
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
            max_request_size=4 * 1024 * 1024,
            retries=5,
            enable_idempotence=settings.producer_idempotence,
            bootstrap_timeout_ms=10_000,
        )
    except (KafkaError, OSError):
        raise kafka_unreachable(settings.kafka_brokers) from None


def route(line: bytes, settings: Settings, topic: str | None) -> tuple[str, bytes | None] | str:
    """(topic, key) for a line, or the reason it cannot be routed."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        return (topic, None) if topic else "not a JSON object"
    customer = doc.get("customer_id")
    key = customer.encode() if isinstance(customer, str) else None
    if topic:
        return topic, key
    event_type = doc.get("type")
    if event_type not in settings.input_topics:
        return f"unknown type {event_type!r}"
    return settings.input_topics[event_type], key


def produce(
    lines: Iterable[bytes],
    settings: Settings,
    *,
    topic: str | None = None,
    progress: IO[str] | None = sys.stderr,
) -> tuple[int, int]:
    """Send every routable line; returns (sent, skipped). Blank lines are ignored."""
    producer = open_producer(settings)
    sent = skipped = 0
    started = last_report = time.monotonic()
    failures: list[BaseException] = []
    try:
        for number, line in enumerate(lines, 1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            routed = route(line, settings, topic)
            if isinstance(routed, str):
                skipped += 1
                print(f"line {number}: skipped: {routed} (use --topic to send it as is)", file=sys.stderr)
                continue
            target, key = routed
            producer.send(target, key=key, value=line).add_errback(failures.append)
            sent += 1
            now = time.monotonic()
            if progress and now - last_report >= 1.0:
                last_report = now
                print(f"\rproduced {sent:,} events ({sent / (now - started):,.0f}/s)", end="", file=progress)
        producer.flush()
    except KafkaError as exc:
        raise JourneyError(f"producing to {settings.kafka_brokers} failed: {exc}") from None
    finally:
        producer.close()
    if failures:
        raise JourneyError(f"{len(failures)} events were not accepted by Kafka: {failures[0]}")
    if progress:
        elapsed = max(time.monotonic() - started, 1e-9)
        print(f"\rproduced {sent:,} events in {elapsed:.1f}s ({sent / elapsed:,.0f}/s)", file=progress)
    return sent, skipped
