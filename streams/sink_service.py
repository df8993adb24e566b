"""Transitions topic -> ClickHouse in batches, offsets committed only after an insert succeeded.

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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from pydantic import ValidationError

from journey.metrics import JourneyMetrics, observe_many
from journey.settings import Settings
from schemas import Transition
from schemas.rejections import Rejection
from sinks.contract import Sink, SinkUnavailable
from streams.deadletter import quarantine
from streams.fencing import FenceTracker
from streams.group_service import Fetched, GroupService
from streams.kafka_io import Outbox, new_group_consumer, new_producer, new_reader, read_ranges

log = logging.getLogger("journey.sink")

MAX_BACKOFF_S = 30.0
validate_transition = Transition.__pydantic_validator__.validate_json  # model_validate_json minus its wrapper


def sink_group(settings: Settings) -> str:
    return f"{settings.group_id}-sink"


class SinkService(GroupService):
    def __init__(self, settings: Settings, metrics: JourneyMetrics, sink: Sink, **kwargs: Any) -> None:
        super().__init__(settings, metrics, **kwargs)
        self.sink = sink
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journey-sink")
        self._buffer: list[Any] = []
        self._stale: set[tuple[int, int]] = set()  # (partition, offset) of buffered records to skip
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
                  [self.settings.topic_transitions])

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
                    self._stale.add((record.partition, record.offset))
                if stale:
                    self.metrics.fenced_records.labels("transitions").inc()
            self._buffer.extend(records)
        if self._buffer and (len(self._buffer) >= self.settings.sink_batch_rows
                             or time.monotonic() - self._first_at >= self.settings.sink_batch_seconds):
            await self._flush()

    async def _flush(self) -> None:
        records, self._buffer = self._buffer, []
        skip, self._stale = self._stale, set()
        batch = await self._decode([r for r in records if (r.partition, r.offset) not in skip] if skip else records)
        if batch and not await self._write(batch):
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

    async def _decode(self, records: list[Any]) -> list[Transition]:
        batch: list[Transition] = []
        letters = Outbox(self.producer)
        for record in records:
            try:
                batch.append(validate_transition(record.value))
            except ValidationError as exc:
                rejection = Rejection("invalid_fields", f"not a transition record: {exc.errors()[0]['msg']}")
                quarantine(letters, self.settings.topic_deadletter, self.metrics, record, rejection)
        if letters.records:
            await letters.send()
        return batch

    async def _write(self, batch: list[Transition]) -> bool:
        loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
            if self.should_stop:
                return False
            started = time.perf_counter()
            try:
                await loop.run_in_executor(self.executor, self.sink.write, batch)
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
        self.reader.assign(list(until))
        starts = await self.reader.beginning_offsets(list(until))
        read = 0
        async for tp, records, _ in read_ranges(self.reader, {tp: (starts[tp], end) for tp, end in until.items()}):
            for record in records:
                if record.offset < until[tp]:
                    self.fences.admit(tp, record)
                    read += 1
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
