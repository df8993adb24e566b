"""`journey produce`: JSON Lines of events -> their topics, keyed by customer_id (else anonymous_id).

Built on aiokafka's batch API (its C record builder): one process sends well over 50k events
a second, so load generation is never what a benchmark measures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import sys
import time
from collections import deque
from collections.abc import Iterable
from typing import IO, Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import BrokerResponseError, KafkaError

from journey.errors import JourneyError, kafka_unreachable
from journey.kafka_security import kafka_client_config
from journey.settings import Settings
from streams.kafka_io import PartitionBatches, new_producer, partition_of_key

BATCH_BYTES = 256 * 1024
LINGER_S = 0.02
MAX_IN_FLIGHT = 64  # batches handed to the producer and not yet acknowledged


def route(line: bytes, settings: Settings, topic: str | None, segment: bool = False
          ) -> tuple[str, bytes | None] | str:
    """(topic, key) for a line, or the reason it cannot be routed.

    `segment`: the line is a Segment Spec message, for the Segment topic (DESIGN.md §2b), keyed
    by `userId`, else `anonymousId`, as those tools' Kafka destinations do.
    """
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        return (topic or (settings.topic_segment if segment else None), None) if topic or segment \
            else "not a JSON object"
    if segment:
        user, anonymous = doc.get("userId"), doc.get("anonymousId")
        routing = user if isinstance(user, str) else anonymous if isinstance(anonymous, str) else None
        return topic or settings.topic_segment, routing.encode() if routing is not None else None
    # Keyed by the customer, else the anonymous id (DESIGN.md §1c).
    customer, anonymous = doc.get("customer_id"), doc.get("anonymous_id")
    routing = customer if isinstance(customer, str) else anonymous if isinstance(anonymous, str) else None
    key = routing.encode() if routing is not None else None
    if topic:
        return topic, key
    event_type = doc.get("type")
    target = settings.topic_for(event_type) if isinstance(event_type, str) else None
    if target is None:
        return f"unknown type {event_type!r}"
    return target, key


class EventSender:
    """One producer for a run of events: routes each, batches it per partition, and turns
    failures into one clear error when the run ends (`with EventSender(settings) as sender: ...`).

    Synchronous for its callers; the producer's event loop runs in a background thread, so
    batches go out while the caller is busy or sleeping. Partitions follow the Java client's
    default (murmur2 of the key), like every Kafka producer.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="journey-produce", daemon=True)
        self._thread.start()
        try:
            self.producer: AIOKafkaProducer = self._call(self._start())
        except BaseException:
            self._close_loop()
            raise
        self._batches = PartitionBatches(self.producer)
        self._in_flight: deque[concurrent.futures.Future] = deque()
        self._ordered: dict[tuple[str, int], asyncio.Lock] = {}  # used on the loop thread only
        self._partitions: dict[str, int] = {}
        self._round_robin = itertools.count()
        self._last_flush = time.monotonic()
        self.failures: list[BaseException] = []

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def _start(self) -> AIOKafkaProducer:
        producer = new_producer(
            self.settings,
            client_id="journey-produce",
            linger_ms=0,  # batches are filled here (PartitionBatches) and sent when full or lingered
            max_batch_size=min(BATCH_BYTES, self.settings.producer_max_batch_size),
            request_timeout_ms=30_000,
        )
        try:
            await asyncio.wait_for(producer.start(), timeout=15)
        except BrokerResponseError as exc:
            await producer.stop()
            if self.settings.producer_idempotence:
                # The broker answered: the start-up request that can fail this way is InitProducerId.
                raise JourneyError(
                    f"Kafka at {self.settings.kafka_brokers} refused an idempotent producer (InitProducerId: "
                    f"{exc.__class__.__name__}): this broker does not support idempotent producers (the Tansu "
                    "test broker does not) — set JOURNEY_PRODUCER_IDEMPOTENCE=false") from None
            raise JourneyError(f"Kafka at {self.settings.kafka_brokers} refused the producer: {exc}") from None
        except (KafkaError, OSError, asyncio.TimeoutError):
            await producer.stop()
            raise kafka_unreachable(self.settings.kafka_brokers, kafka_client_config(self.settings)) from None
        return producer

    def _partition(self, topic: str, key: bytes | None) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = len(self._call(self.producer.partitions_for(topic)))
        if key is None:
            return next(self._round_robin) % count
        return partition_of_key(key, count)

    def send(self, line: bytes, topic: str | None = None, segment: bool = False) -> str | None:
        """Send one event; returns why it could not be routed (None when sent)."""
        routed = route(line, self.settings, topic, segment)
        if isinstance(routed, str):
            return routed
        target, key = routed
        tp = (target, self._partition(target, key))
        try:
            full = self._batches.append(tp, key, line)
        except ValueError:
            raise JourneyError(f"an event of {len(line)} bytes is larger than a produce request allows") from None
        if full is not None:
            self._submit(tp, full)
        if time.monotonic() - self._last_flush >= LINGER_S:
            self.flush_open()
        return None

    def flush_open(self) -> None:
        """Hand every partly filled batch to the producer (paced runs must not sit on events)."""
        for tp, batch in self._batches.take_open():
            self._submit(tp, batch)
        self._last_flush = time.monotonic()

    async def _send_batch(self, batch: Any, topic: str, partition: int) -> None:
        # aiokafka queues one batch per partition; batches racing for the slot could enter out of
        # order. A fair lock per partition hands them over in the order they were submitted, so a
        # customer's events keep their file order.
        lock = self._ordered.setdefault((topic, partition), asyncio.Lock())
        async with lock:
            delivered = await self.producer.send_batch(batch, topic, partition=partition)
        await delivered

    def _submit(self, tp: tuple[str, int], batch: Any) -> None:
        batch.close()
        future = asyncio.run_coroutine_threadsafe(self._send_batch(batch, *tp), self.loop)
        future.add_done_callback(self._note_failure)
        self._in_flight.append(future)
        while len(self._in_flight) > MAX_IN_FLIGHT:
            concurrent.futures.wait([self._in_flight.popleft()])
        while self._in_flight and self._in_flight[0].done():
            self._in_flight.popleft()

    def _note_failure(self, future: concurrent.futures.Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.failures.append(future.exception())

    def _close_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def __enter__(self) -> "EventSender":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.flush_open()
                concurrent.futures.wait(list(self._in_flight))
        finally:
            self._call(self.producer.stop())
            self._close_loop()
        if exc_type is None and self.failures:
            raise JourneyError(f"{len(self.failures)} batches of events were not accepted by Kafka: {self.failures[0]}")


def produce(
    lines: Iterable[bytes],
    settings: Settings,
    *,
    topic: str | None = None,
    progress: IO[str] | None = sys.stderr,
    segment: bool = False,
) -> tuple[int, int]:
    """Send every routable line; returns (sent, skipped). Blank lines are ignored."""
    sent = skipped = 0
    started = last_report = time.monotonic()
    with EventSender(settings) as sender:
        for number, line in enumerate(lines, 1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            problem = sender.send(line, topic, segment)
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
