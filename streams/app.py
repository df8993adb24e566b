"""The Faust application: thin agents around the 5A core and the sink.

Shape of the stream:

    clickstream ┐                                   ┌─> transitions (keyed by customer) ─> sink agent ─> ClickHouse
    purchases   ├─> path agent: decode ─> align ─> core ─┤
    shares      │     │ (bad)      │ (misplaced)         └─> state changelog (one record per customer per batch)
    rekeyed   <─┘     v            └─> rekeyed topic, partition = murmur2(customer_id)
                  dead letters

All inputs are co-partitioned (same partition count, keyed by customer_id) with the state
table's changelog, so partition p of every input meets the state of partition p.
Offsets are acknowledged only after an event is applied (events held by the aligner stay
unacknowledged), and Faust flushes the producer (transitions, changelog) before it commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from faust.types import TP
from kafka.partitioner.default import murmur2
from pydantic import ValidationError

from fivea import Rules, event_time_us
from journey.kafka_security import faust_credentials
from journey.metrics import JourneyMetrics
from journey.settings import Settings
from schemas import Transition
from sinks.contract import Sink, SinkUnavailable
from streams.alignment import EventTimeAligner
from streams.deadletter import dead_letter
from streams.path_processor import PathProcessor
from schemas.rejections import Rejection, decode
from streams.state_codec import state_key

log = logging.getLogger("journey.stream")

STATE_TABLE = "customer-state"
PATH_BATCH = 1000
PRODUCER_BUFFER_MESSAGES = 4 * PATH_BATCH
RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def partition_for(customer_id: str, partitions: int) -> int:
    """The partition producers' default (murmur2) partitioner gives a customer_id key."""
    return (murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions


def send_dead_letter(topic: faust.TopicT, metrics: JourneyMetrics, message: Any, rejection: Rejection) -> None:
    """Quarantine one record with its reason; never raises for the record's content."""
    letter = dead_letter(
        key=message.key,
        value=message.value,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        code=rejection.code,
        reason=rejection.reason,
    )
    topic.send_soon(
        key=letter.key, value=letter.value, headers=letter.headers, key_serializer="raw", value_serializer="raw"
    )
    metrics.deadletters.labels(rejection.code).inc()
    log.warning(
        "dead letter %s[%d]@%d: %s (%s)",
        message.topic, message.partition, message.offset, rejection.reason, rejection.code,
    )


class PathRuntime:
    """Receive -> align -> apply -> publish -> acknowledge, for the path agent."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        metrics: JourneyMetrics,
        rules: Rules,
        table: Any,
        transitions: faust.TopicT,
        deadletters: faust.TopicT,
        rekeyed: faust.TopicT,
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.processor = PathProcessor(rules)
        self.table = table
        self.transitions = transitions
        self.deadletters = deadletters
        self.rekeyed = rekeyed
        topics = [*settings.input_topics.values(), settings.topic_rekeyed]
        self.aligner = EventTimeAligner(topics, settings.align_max_idle_ms / 1000)
        self.stream: Any = None
        self._lock = asyncio.Lock()

    # -- receive ---------------------------------------------------------------------------
    def receive(self, events: list[Any]) -> list[Any]:
        """Route each record; returns the records finished here (to acknowledge)."""
        done = []
        for record in events:
            message = record.message
            topic, partition, offset = message.topic, message.partition, message.offset
            result = decode(message.value, self.settings.max_event_bytes)
            if isinstance(result, Rejection):
                send_dead_letter(self.deadletters, self.metrics, message, result)
                self.metrics.events.labels(topic, "deadlettered").inc()
                self.aligner.note_received(topic, partition, offset)
                done.append(record)
            else:
                order = (event_time_us(result.occurred_at), result.event_id)
                self.aligner.add(topic, partition, offset, order, (record, result))
        return done

    def _rekey(self, record: Any, event: Any, home: int) -> None:
        """Move an event to its customer's partition, where that customer's state lives.

        Done after alignment, so a producer that partitions differently (no key, another
        partitioner) still hands each customer's events over in event-time order.
        """
        message = record.message
        self.rekeyed.send_soon(
            key=event.customer_id.encode(),
            value=message.value,
            partition=home,
            headers=[("journey.source.topic", message.topic.encode())],
            key_serializer="raw",
            value_serializer="raw",
        )
        self.metrics.events.labels(message.topic, "rekeyed").inc()

    # -- apply -----------------------------------------------------------------------------
    def _caught_up(self, topic: str, partition: int) -> bool | None:
        """False: the broker holds more; None: unknown (never True, see below)."""
        tp = TP(topic, partition)
        highwater = self.app.consumer.highwater(tp)
        if highwater is None:
            return None
        received = self.aligner.received_offset(topic, partition)
        if received is None:
            # Nothing received since assignment: this generation starts at the committed
            # offset (Faust keeps it after seeking there; no public accessor exists).
            committed = self.app.consumer._committed_offset.get(tp)
            received = -1 if committed is None else committed - 1
        if received + 1 < highwater:
            return False
        # Looks caught up, but the mark is from this partition's last fetch and may be older than
        # records already on the broker: treat it as unknown, i.e. wait up to the idle time
        # (Kafka Streams' max.task.idle.ms) before letting another input's event go first.
        return None

    async def drain(self, finished: list[Any] = ()) -> None:
        """Apply what the aligner releases, publish, then acknowledge."""
        async with self._lock:
            released = self.aligner.release(time.monotonic(), self._caught_up)
            self.metrics.aligner_buffered.set(len(self.aligner))
            if released:
                await self._apply(released)
            if self.stream is not None:
                for record in (*finished, *(record for record, _ in released)):
                    await self.stream.ack(record)

    async def _apply(self, released: list[tuple[Any, Any]]) -> None:
        local: list[tuple[Any, Any]] = []
        for record, event in released:
            home = partition_for(event.customer_id, self.settings.partitions)
            if record.message.partition != home and record.message.topic != self.settings.topic_rekeyed:
                self._rekey(record, event, home)
            else:
                local.append((record, event))
        if not local:
            return
        outcome = self.processor.apply([event for _, event in local], self.table.data)
        # Transitions first, and durable before the state that says they happened: a crash in
        # between replays the events and re-emits the same (brand, customer_id, seq) rows,
        # which the table absorbs. The other order would lose them.
        sent = [
            self.transitions.send_soon(
                key=transition.customer_id.encode(),
                value=transition.model_dump_json().encode(),
                key_serializer="raw",
                value_serializer="raw",
            )
            for transition in outcome.transitions
        ]
        if sent:
            await asyncio.gather(*sent)
        partitions = {state_key(e.brand, e.customer_id): r.message.partition for r, e in local}
        for key, value in outcome.changed.items():
            self.table.data[key] = value
            self.table.send_changelog(partitions[key], key, value, key_serializer="raw", value_serializer="raw")
        for transition in outcome.transitions:
            self.metrics.transitions.labels(transition.from_stage, transition.to_stage).inc()
        for topic, count in Counter(record.message.topic for record, _ in local).items():
            self.metrics.events.labels(topic, "accepted").inc(count)
        self.metrics.duplicates.inc(outcome.duplicates)
        self.metrics.late.inc(outcome.late)

    def on_revoked(self, revoked: set[TP]) -> None:
        inputs = set(self.aligner.topics)
        dropped = self.aligner.drop_partitions({tp.partition for tp in revoked if tp.topic in inputs})
        if dropped:
            log.info("rebalance: %d held events go back to their new owner", len(dropped))


class SinkRuntime:
    """Batches from the transitions topic into the sink, retrying until it succeeds."""

    def __init__(self, sink: Sink, metrics: JourneyMetrics, deadletters: faust.TopicT) -> None:
        self.sink = sink
        self.metrics = metrics
        self.deadletters = deadletters
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journey-sink")

    def _decode(self, records: list[Any]) -> list[Transition]:
        batch = []
        for record in records:
            try:
                batch.append(Transition.model_validate_json(record.message.value))
            except ValidationError as exc:
                reason = f"not a transition record: {exc.errors()[0]['msg']}"
                send_dead_letter(self.deadletters, self.metrics, record.message, Rejection("invalid_fields", reason))
        return batch

    async def write(self, records: list[Any]) -> None:
        batch = self._decode(records)
        if not batch:
            return
        loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
            started = time.perf_counter()
            try:
                await loop.run_in_executor(self.executor, self.sink.write, batch)
                break
            except SinkUnavailable as exc:
                self.metrics.sink_failures.inc()
                self.metrics.sink_up.set(0)
                log.warning("sink: %s — retrying %d rows in %.1fs", exc, len(batch), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.metrics.sink_insert_seconds.observe(time.perf_counter() - started)
        self.metrics.sink_up.set(1)
        self.metrics.sink_batch_rows.observe(len(batch))
        self.metrics.sink_rows.inc(len(batch))
        now = time.time()
        for transition in batch:
            self.metrics.event_lag.observe(max(0.0, now - transition.occurred_at.timestamp()))


def faust_settings(settings: Settings) -> dict[str, Any]:
    """Everything Faust is told, explicitly: `env={}` stops its own variables (BROKER_URL...)."""
    return {
        "env": {},
        "broker": [f"kafka://{b}" for b in settings.broker_list],
        "broker_credentials": faust_credentials(settings),
        "datadir": str(settings.data_dir),
        "store": "memory://",
        "web_enabled": False,
        "autodiscover": False,
        "topic_partitions": settings.partitions,
        "topic_disable_leader": True,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.session_timeout_s / 3),
        "broker_rebalance_timeout": settings.session_timeout_s,
        "broker_commit_interval": settings.commit_interval_s,
        "producer_max_batch_size": settings.producer_max_batch_size,
        "consumer_auto_offset_reset": "earliest",
        "processing_guarantee": "at_least_once",
        "table_standby_replicas": 0 if settings.role != "all" else 1,
    }


def build_app(settings: Settings, metrics: JourneyMetrics, rules: Rules, sink: Sink | None) -> faust.App:
    app = faust.App(settings.group_id, **faust_settings(settings))
    # Faust pauses streams (and logs a warning) once 100 sends are buffered; a batch of 1,000
    # events legitimately produces a few thousand (transitions + changelog).
    app.producer.buffer.max_messages = PRODUCER_BUFFER_MESSAGES
    partitions = settings.partitions

    transitions = app.topic(settings.topic_transitions, partitions=partitions, **RAW)
    deadletters = app.topic(settings.topic_deadletter, partitions=partitions, **RAW)
    rekeyed = app.topic(settings.topic_rekeyed, partitions=partitions, **RAW)

    if settings.role in ("all", "stream"):
        inputs = app.topic(*settings.input_topics.values(), settings.topic_rekeyed, partitions=partitions, **RAW)
        # bytes in, bytes out: the changelog is written and recovered as raw bytes.
        table = app.Table(STATE_TABLE, partitions=partitions, key_type=bytes, value_type=bytes)
        runtime = PathRuntime(app, settings, metrics, rules, table, transitions, deadletters, rekeyed)
        app.journey_path = runtime  # for tests and the health endpoint

        @app.agent(inputs, name="journey-path")
        async def path_agent(stream: faust.StreamT) -> None:
            runtime.stream = stream
            async for records in stream.noack_take(PATH_BATCH, within=0.05):
                finished = runtime.receive(records)
                await runtime.drain(finished)

        @app.timer(interval=max(0.02, min(0.1, settings.align_max_idle_ms / 2000)))
        async def release_idle() -> None:
            await runtime.drain()

        def count_assigned() -> None:
            owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topic_clickstream}
            metrics.assigned_partitions.set(len(owned))

        @app.on_partitions_revoked.connect
        async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
            runtime.on_revoked(revoked)

        @app.on_partitions_assigned.connect
        async def on_assigned(sender: Any, assigned: set[TP], **_: Any) -> None:
            count_assigned()

    if settings.role in ("all", "sink") and sink is not None:
        sink_runtime = SinkRuntime(sink, metrics, deadletters)

        # Concurrency 1 and writing inside the batch body: offsets advance only after
        # ClickHouse accepted the rows (faust-streaming/faust#606).
        @app.agent(transitions, name="journey-sink", concurrency=1)
        async def sink_agent(stream: faust.StreamT) -> None:
            # noack_take, not take_events: take_events acknowledges in a `finally`, so a worker
            # stopped during a failing insert would commit rows it never wrote.
            async for records in stream.noack_take(settings.sink_batch_rows, within=settings.sink_batch_seconds):
                await sink_runtime.write(list(records))
                for record in records:
                    await stream.ack(record)

    return app

