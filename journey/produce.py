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


class EventSender:
    """One producer for a run of events: routes each, sends it, and turns failures into one
    clear error when the run ends (`with EventSender(settings) as sender: ...`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = open_producer(settings)
        self.failures: list[BaseException] = []

    def send(self, line: bytes, topic: str | None = None) -> str | None:
        """Send one event; returns why it could not be routed (None when sent)."""
        routed = route(line, self.settings, topic)
        if isinstance(routed, str):
            return routed
        target, key = routed
        self.producer.send(target, key=key, value=line).add_errback(self.failures.append)
        return None

    def __enter__(self) -> "EventSender":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.producer.flush()
        except KafkaError as error:
            raise JourneyError(f"producing to {self.settings.kafka_brokers} failed: {error}") from None
        finally:
            self.producer.close()
        if exc_type is None and self.failures:
            raise JourneyError(f"{len(self.failures)} events were not accepted by Kafka: {self.failures[0]}")


def produce(
    lines: Iterable[bytes],
    settings: Settings,
    *,
    topic: str | None = None,
    progress: IO[str] | None = sys.stderr,
) -> tuple[int, int]:
    """Send every routable line; returns (sent, skipped). Blank lines are ignored."""
    sent = skipped = 0
    started = last_report = time.monotonic()
    with EventSender(settings) as sender:
        for number, line in enumerate(lines, 1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            problem = sender.send(line, topic)
            if problem:
                skipped += 1
                print(f"line {number}: skipped: {problem} (use --topic to send it as is)", file=sys.stderr)
                continue
            sent += 1
            now = time.monotonic()
            if progress and now - last_report >= 1.0:
                last_report = now
                print(f"\rproduced {sent:,} events ({sent / (now - started):,.0f}/s)", end="", file=progress)
    if progress:
        elapsed = max(time.monotonic() - started, 1e-9)
        print(f"\rproduced {sent:,} events in {elapsed:.1f}s ({sent / elapsed:,.0f}/s)", file=progress)
    return sent, skipped
