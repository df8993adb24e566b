"""aiokafka clients for the worker, configured once from Settings, and batched sending.

The worker drives aiokafka (the Kafka driver Faust itself runs on) directly: Faust's per-event
stream machinery tops out at ~4–5k events/s on these machines (bench/README.md), far below
what one core can decode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.structs import TopicPartition
from kafka.partitioner.default import murmur2

from journey.kafka_security import kafka_client_config
from journey.settings import Settings

Headers = Sequence[tuple[str, bytes]]


def partition_of_key(key: bytes, partitions: int) -> int:
    """The Java client's default partitioner (murmur2), which Kafka producers share."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_for(customer_id: str, partitions: int) -> int:
    return partition_of_key(customer_id.encode(), partitions)


def _common(settings: Settings) -> dict[str, Any]:
    return {"bootstrap_servers": settings.broker_list, "client_id": "journey5a", **kafka_client_config(settings)}


def new_group_consumer(settings: Settings, group_id: str, *, max_poll_records: int) -> AIOKafkaConsumer:
    """A consumer in `group_id` that commits only when told to.

    The range assignor gives every member the same partition numbers of each co-partitioned
    topic, so partition p of all inputs meets the state of partition p.
    """
    session_ms = int(settings.session_timeout_s * 1000)
    return AIOKafkaConsumer(
        **_common(settings),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(100, min(3000, session_ms // 3)),
        rebalance_timeout_ms=max(session_ms, 10_000),
        partition_assignment_strategy=(RangePartitionAssignor,),
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=2 * 1024 * 1024,
    )


def new_reader(settings: Settings) -> AIOKafkaConsumer:
    """A consumer outside any group, for reading a changelog from chosen offsets."""
    return AIOKafkaConsumer(
        **_common(settings), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        max_poll_records=20_000, fetch_max_bytes=32 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024,
    )


def new_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """The worker's producer; `journey produce` overrides what differs for a bulk load."""
    options: dict[str, Any] = {
        **_common(settings),
        "acks": "all",
        "enable_idempotence": settings.producer_idempotence,
        "linger_ms": 5,
        "max_batch_size": settings.producer_max_batch_size,
        "max_request_size": settings.max_record_bytes,
        "request_timeout_ms": 60_000,
    }
    return AIOKafkaProducer(**{**options, **overrides})


async def read_ranges(reader: AIOKafkaConsumer,
                      ranges: dict[TopicPartition, tuple[int, int]]) -> AsyncIterator[tuple[TopicPartition, list, int]]:
    """Read partitions from `start` until the position reaches `end`: (tp, records, position) per fetch.

    For a consumer outside any group (`new_reader`). A fetch may run past `end`; callers that
    must stop exactly there look at each record's offset.
    """
    reader.assign(list(ranges))
    todo: dict[TopicPartition, int] = {}
    for tp, (start, end) in ranges.items():
        reader.seek(tp, start)
        if start < end:
            todo[tp] = end
    try:
        while todo:
            fetched = await reader.getmany(*todo, timeout_ms=1000)
            for tp in list(todo):
                position = await reader.position(tp)
                yield tp, fetched.get(tp, []), position
                if position >= todo[tp]:
                    del todo[tp]
    finally:
        reader.unsubscribe()


async def read_back_fences(reader: AIOKafkaConsumer, tracker: Any, where: dict[TopicPartition, int]) -> int:
    """Restore a `FenceTracker` (streams/fencing.py) for partitions whose commit carried no metadata.

    `where[tp]` is the committed offset: every record before it is read once, in offset order,
    as the reader would have admitted it — what a broker that keeps commit metadata (Apache
    Kafka) hands back in the commit itself. Returns the records read.
    """
    if not where:
        return 0
    reader.assign(list(where))
    starts = await reader.beginning_offsets(list(where))
    read = 0
    async for tp, records, _ in read_ranges(reader, {tp: (starts[tp], end) for tp, end in where.items()}):
        for record in records:
            if record.offset < where[tp]:
                tracker.admit(tp, record)
                read += 1
    return read


class Landed(NamedTuple):
    """Where one send's records of one partition landed: offsets `first`..`last`, `records` of them.

    `last - first + 1 == records` when nobody else's record landed in between.
    """

    first: int
    last: int
    records: int

    @property
    def unbroken(self) -> bool:
        return self.last - self.first + 1 == self.records


class PartitionBatches:
    """One open record batch per topic-partition, filled record by record.

    aiokafka's per-message `send` costs a future and a coroutine each; appending to a batch
    builder is several times cheaper, which matters at tens of thousands of records a second.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._open: dict[tuple[str, int], Any] = {}

    def append(self, tp: tuple[str, int], key: bytes | None, value: bytes | None,
               headers: Headers = (), timestamp_ms: int | None = None) -> Any | None:
        """Add one record; returns the batch it could not join (full, to be sent), else None."""
        full = None
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=timestamp_ms, headers=list(headers)) is None:
            full = batch
            batch = self._open[tp] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=timestamp_ms, headers=list(headers)) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes does not fit a produce batch")
        return full

    def take_open(self) -> list[tuple[tuple[str, int], Any]]:
        """The partly filled batches, handed over (the next record starts new ones)."""
        open_batches, self._open = self._open, {}
        return list(open_batches.items())


class Outbox:
    """Records for many topic-partitions, sent together, one batch per partition at a time."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._batches = PartitionBatches(producer)
        self._full: list[tuple[tuple[str, int], Any]] = []
        self.records = 0

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
            headers: Headers = (), timestamp_ms: int | None = None) -> None:
        tp = (topic, partition)
        full = self._batches.append(tp, key, value, headers, timestamp_ms)
        if full is not None:
            self._full.append((tp, full))
        self.records += 1

    async def send(self) -> dict[tuple[str, int], Landed]:
        """Send everything and wait until the broker has it; returns where it landed, per partition."""
        batches = [*self._full, *self._batches.take_open()]
        self._full, self.records = [], 0
        pending = []
        for (topic, partition), batch in batches:
            count = batch.record_count()
            batch.close()
            pending.append((topic, partition, count, await self.producer.send_batch(batch, topic, partition=partition)))
        landed: dict[tuple[str, int], Landed] = {}
        for topic, partition, count, future in pending:
            metadata = await future
            first, last = metadata.offset, metadata.offset + count - 1
            before = landed.get((topic, partition))
            if before is not None:
                first, last, count = min(first, before.first), max(last, before.last), count + before.records
            landed[(topic, partition)] = Landed(first, last, count)
        return landed
