"""Transitions topic -> ClickHouse in batches, offsets committed only after an insert succeeded.

It reads the identity topic too: each merge record (a link the path applied, streams/identity_log.py)
is a row of `customer_identities`.

While ClickHouse is down the batch in hand is retried with backoff and nothing more is
fetched, so memory stays bounded and the topic itself is the buffer.

Fences and stale records (streams/fencing.py) are skipped: a transition written by a path
worker after it lost its partition never reaches ClickHouse. The epochs seen travel with each
offset commit (its metadata), so a sink that resumes a partition resumes with them; on a broker
that keeps no commit metadata it reads them back from the partition's records before the
committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from pydantic import ValidationError

from fivea.ordering import time_of_us
from journey.metrics import JourneyMetrics, observe_many
from journey.settings import Settings
from schemas import Transition
from schemas.rejections import Rejection
from sinks.contract import IdentityRow, Sink, SinkUnavailable
from streams.deadletter import quarantine
from streams.fencing import FenceTracker
from streams.group_service import Fetched, GroupService
from streams.identity_log import kind_of, read_link
from streams.kafka_io import Outbox, new_group_consumer, new_producer, new_reader, read_back_fences

log = logging.getLogger("journey.sink")

MAX_BACKOFF_S = 30.0
validate_transition = Transition.__pydantic_validator__.validate_json  # model_validate_json minus its wrapper


def identity_row(record: Any) -> IdentityRow:
    """A merge record of the identity topic as its `customer_identities` row."""
    link = read_link(orjson.loads(record.value))
    learned = datetime.fromtimestamp(record.timestamp / 1000, tz=timezone.utc)
    return IdentityRow(link.brand, link.anonymous_id, link.customer_id, time_of_us(link.at_us), link.event_id, learned)


def sink_group(settings: Settings) -> str:
    return f"{settings.group_id}-sink"


class SinkService(GroupService):
    def __init__(self, settings: Settings, metrics: JourneyMetrics, sink: Sink, **kwargs: Any) -> None:
        super().__init__(settings, metrics, **kwargs)
        self.sink = sink
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journey-sink")
        self._buffer: list[Any] = []
        self._stale: set[tuple[str, int, int]] = set()  # (topic, partition, offset) of buffered records to skip
        self._first_at = 0.0
        self.fences = FenceTracker()
        self._to_restore: set[TopicPartition] = set()

    @property
    def ready(self) -> bool:
        """Joined its group (until then nothing reaches ClickHouse)."""
        return self._joined

    async def on_start(self) -> None:
        self.producer = new_producer(self.settings)  # dead letters: records that are no transition
        await self.producer.start()
        self.join(new_group_consumer(self.settings, sink_group(self.settings),
                                     max_poll_records=self.settings.sink_batch_rows),
                  [self.settings.topic_transitions, self.settings.topic_identity])

    async def on_stop(self) -> None:
        if not self.clients_started:
            return
        async with self._lock:
            await self.consumer.stop()
        if hasattr(self, "reader"):
            await self.reader.stop()
        await self.producer.stop()
        self.executor.shutdown(wait=True)
        self.sink.close()

    def poll_limits(self) -> tuple[int, int]:
        room = self.settings.sink_batch_rows - len(self._buffer)
        return min(100, int(self.settings.sink_batch_seconds * 1000)), room

    async def handle(self, fetched: Fetched) -> None:
        if self._to_restore:
            await self._restore_fences()
        for tp, records in fetched.items():
            if records and not self._buffer:
                self._first_at = time.monotonic()
            for record in records:
                keep, stale = self.fences.admit(tp, record)
                if not keep:
                    self._stale.add((record.topic, record.partition, record.offset))
                if stale:
                    log_name = "identity" if tp.topic == self.settings.topic_identity else "transitions"
                    self.metrics.fenced_records.labels(log_name).inc()
            self._buffer.extend(records)
        if self._buffer and (len(self._buffer) >= self.settings.sink_batch_rows
                             or time.monotonic() - self._first_at >= self.settings.sink_batch_seconds):
            await self._flush()

    async def _flush(self) -> None:
        records, self._buffer = self._buffer, []
        skip, self._stale = self._stale, set()
        kept = [r for r in records if (r.topic, r.partition, r.offset) not in skip] if skip else records
        batch, identities = await self._decode(kept)
        if (batch or identities) and not await self._write(batch, identities):
            return  # stopping during an outage: uncommitted, so read again after a restart
        last: dict[tuple[str, int], int] = {}
        for record in records:  # in offset order within each partition
            last[(record.topic, record.partition)] = record.offset
        offsets = {}
        for (topic, partition), offset in last.items():
            tp = TopicPartition(topic, partition)
            offsets[tp] = OffsetAndMetadata(offset + 1, self.fences.metadata(tp))
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:
            log.info("commit skipped (%s): the next owner re-inserts these rows, which replace themselves", exc)
        now_ms = time.time() * 1000
        observe_many(self.metrics.pipeline_latency, [max(0.0, (now_ms - r.timestamp) / 1000) for r in records])

    async def _decode(self, records: list[Any]) -> tuple[list[Transition], list[IdentityRow]]:
        batch: list[Transition] = []
        identities: list[IdentityRow] = []
        letters = Outbox(self.producer)
        identity_topic = self.settings.topic_identity
        for record in records:
            if record.topic == identity_topic:
                if kind_of(record.headers)[0] == "merge":  # links and forwarded events are the path's business
                    try:
                        identities.append(identity_row(record))
                    except (ValueError, KeyError, TypeError) as exc:
                        quarantine(letters, self.settings.topic_deadletter, self.metrics, record,
                                   Rejection("invalid_fields", f"not an identity merge record: {exc}"))
                continue
            try:
                batch.append(validate_transition(record.value))
            except ValidationError as exc:
                rejection = Rejection("invalid_fields", f"not a transition record: {exc.errors()[0]['msg']}")
                quarantine(letters, self.settings.topic_deadletter, self.metrics, record, rejection)
        if letters.records:
            await letters.send()
        return batch, identities

    async def _write(self, batch: list[Transition], identities: list[IdentityRow]) -> bool:
        loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
            if self.should_stop:
                return False
            started = time.perf_counter()
            try:
                await loop.run_in_executor(self.executor, self.sink.write, batch, identities)
                break
            except SinkUnavailable as exc:
                self.metrics.sink_failures.inc()
                self.metrics.sink_up.set(0)
                log.warning("sink: %s — retrying %d rows in %.1fs", exc, len(batch), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
        self.metrics.sink_insert_seconds.observe(time.perf_counter() - started)
        self.metrics.sink_up.set(1)
        self.metrics.sink_batch_rows.observe(len(batch))
        self.metrics.sink_rows.inc(len(batch))
        now = time.time()
        observe_many(self.metrics.event_lag, [max(0.0, now - t.occurred_at.timestamp()) for t in batch])
        return True

    async def _restore_fences(self) -> None:
        """The epochs seen before each newly assigned partition's committed offset."""
        tps, self._to_restore = sorted(self._to_restore), set()
        try:
            committed = await self.consumer._coordinator.fetch_committed_offsets(tps)  # noqa: SLF001 - metadata
        except KafkaError as exc:
            log.warning("sink: cannot read committed offsets (%s): re-reading fences from the partitions", exc)
            committed = {}
        rescan: dict[TopicPartition, int] = {}
        for tp in tps:
            found = committed.get(tp)
            if not self.fences.load(tp, found.metadata if found is not None else None):
                if found is not None and found.offset > 0:
                    rescan[tp] = found.offset
        if rescan:
            await self._rescan(rescan)

    async def _rescan(self, until: dict[TopicPartition, int]) -> None:
        """Read the fences back from the records before the committed offsets (no commit metadata)."""
        if not hasattr(self, "reader"):
            self.reader = new_reader(self.settings)
            await self.reader.start()
        read = await read_back_fences(self.reader, self.fences, until)
        log.info("sink: fences of %d partitions read back from %d records (the broker kept no commit metadata)",
                 len(until), read)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._to_restore = set(assigned)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        # Under the lock: an insert in progress has finished and committed.
        self._buffer = []  # uncommitted: the next owner reads them again
        self._stale = set()
        for tp in revoked:
            self.fences.forget(tp)
