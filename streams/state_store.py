"""Customer states of the partitions a worker owns, backed by a compacted changelog topic.

Partition p of the changelog holds the states of the customers whose events live in partition
p of the inputs, and it is the source of truth. A worker given p brings its table for p up to
the changelog's end before it applies any event of p. The path writes a batch's states to the
table only after the changelog acknowledged them, together with the offset they end at, and
only when they landed right after what the table holds (else it reads the log in between): a
table is always exactly "the changelog up to offset N, read under the fencing rule of
streams/fencing.py", and catching up means reading from N.

Two backends behind one interface (`JOURNEY_STATE_STORE`):

- `memory`: a dict per partition. The fastest lookups and about 300 B of RAM per customer; a
  restarted worker reads its partitions' changelog from the start. A partition a worker still
  holds after a rebalance is caught up from where it left off.
- `rocksdb`: one RocksDB per partition under `<JOURNEY_STATE_DIR>/<changelog topic>/<p>`
  (`rocksdict`, the binding faust-streaming uses for its RocksDB tables). RAM stays bounded by
  one block cache whatever the population, and tables survive a restart, so a restarted worker
  reads only the changelog written since. A table whose offset lies outside the changelog
  (recreated topic, lost broker data) or that cannot be opened is rebuilt from the changelog.
  Revoked partitions are closed, not deleted: a partition that comes back resumes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import struct
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from journey.errors import JourneyError
from streams.fencing import judge, read_stamp
from streams.kafka_io import Landed, read_ranges

log = logging.getLogger("journey.state")

Changes = Iterable[tuple[bytes, bytes | None]]  # key -> encoded state (None: a tombstone)


@dataclass
class Recovery:
    partitions: int = 0
    records: int = 0
    incremental: int = 0  # partitions caught up from their table's offset instead of from scratch
    stale: int = 0  # records of a fenced-out writer, dropped (streams/fencing.py)


#: Header on every state record: the offset of partition p of the transitions topic where the
#: batch that wrote it began publishing. A recovery reads the transitions from the last such
#: offset to find rows a crashed owner published but never recorded (fivea.reconcile).
OUTPUTS_FROM_HEADER = "journey.outputs-from"
_OFFSET = struct.Struct(">q")


def outputs_from_header(offset: int) -> tuple[str, bytes]:
    return (OUTPUTS_FROM_HEADER, _OFFSET.pack(offset))


def _outputs_from(headers: Any) -> int:
    for name, value in headers or ():
        if name == OUTPUTS_FROM_HEADER and len(value) == 8:
            return _OFFSET.unpack(value)[0]
    return -1


@dataclass
class TableMark:
    """How far a table has read its changelog partition, persisted with the table."""

    next_offset: int
    highest_epoch: int = 0  # the highest writer epoch among the records read (streams/fencing.py)
    outputs_from: int = -1  # the latest OUTPUTS_FROM_HEADER among the records read (-1: none)
    #: The epoch of the writer of the record that said `outputs_from`: its fence on the transitions
    #: lies before that offset, so a transition after it stamped with a lower epoch is a stale
    #: writer's. Reading the transitions from `outputs_from` starts judging with it (0: unknown).
    outputs_epoch: int = 0


class StateStore:
    """The tables' interface and their changelog reading; a backend keeps the tables.

    A table advances only over changelog records it has read, under the fencing rule of
    streams/fencing.py: records of an epoch below the highest seen are a stale writer's and are
    dropped. `epoch[p]` is this worker's own epoch for p; `fenced` holds the partitions where a
    newer owner's fence was found; `rewrite[p]` the keys whose last record in the log is a
    stale one, which the owner writes again so log compaction keeps the right value.
    """

    counting = "exact count"  # how len() is known, for log lines

    def __init__(self, changelog_topic: str) -> None:
        self.topic = changelog_topic
        self._marks: dict[int, TableMark] = {}  # open partitions -> how far their table has read
        self.epoch: dict[int, int] = {}
        self.fenced: set[int] = set()
        self.rewrite: dict[int, set[bytes]] = defaultdict(set)

    # -- what a backend provides -----------------------------------------------------------
    def table(self, partition: int) -> Mapping[bytes, bytes]:
        """The partition's states, for reading (`get`); they change only through `commit`."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def _open(self, partition: int) -> TableMark | None:
        """Make the partition's table available; how far it had read, None if unknown."""
        raise NotImplementedError

    def _clear(self, partition: int) -> None:
        raise NotImplementedError

    def _write(self, partition: int, changes: Changes, mark: TableMark) -> None:
        """Apply the changes and record the mark they bring the table to, all or nothing."""
        raise NotImplementedError

    def _close(self, partition: int) -> None:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------
    def highest_epoch(self, partition: int) -> int:
        return self._marks[partition].highest_epoch

    def next_offset(self, partition: int) -> int:
        return self._marks[partition].next_offset

    def outputs_from(self, partition: int) -> int:
        return self._marks[partition].outputs_from

    def outputs_epoch(self, partition: int) -> int:
        return self._marks[partition].outputs_epoch

    async def commit(self, reader: AIOKafkaConsumer, states: Iterable[tuple[int, bytes, bytes | None]],
                     landed: dict[tuple[str, int], Landed], outputs_from: dict[int, int] | None = None
                     ) -> tuple[set[int], int]:
        """Store a batch's states once the changelog holds them (`landed`: the producer's acks).

        Where the batch landed right after what the table holds, its states are applied as
        they are (`outputs_from[p]`: the header they were written with). Otherwise someone else wrote in between (a stale writer, or a newer owner):
        the table reads that stretch of the log instead. Returns the partitions found fenced
        and the number of stale records read (and dropped).
        """
        changes: dict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
        for partition, key, value in states:
            changes[partition].append((key, value))
        newly_fenced: set[int] = set()
        stale = 0
        for (topic, partition), span in landed.items():
            if topic != self.topic:
                continue
            own = changes.pop(partition, [])
            mark = self._marks[partition]
            if (span.first == mark.next_offset and span.unbroken
                    and self.epoch.get(partition, 0) >= mark.highest_epoch):
                if outputs_from is not None and partition in outputs_from:
                    since, since_epoch = outputs_from[partition], self.epoch.get(partition, 0)
                else:
                    since, since_epoch = mark.outputs_from, mark.outputs_epoch
                self._write(partition, own, TableMark(span.last + 1, mark.highest_epoch, since, since_epoch))
                self.rewrite[partition].difference_update(key for key, _ in own)
                continue
            log.warning("partition %d: changelog records of another writer between offsets %d and %d: "
                        "reading them", partition, mark.next_offset, span.last)
            stale += (await self.catch_up(reader, {partition: span.last + 1})).stale
            if self.is_fenced(partition):
                newly_fenced.add(partition)
        if changes:
            raise ValueError(f"states of partitions {sorted(changes)} have no acknowledged changelog offset")
        return newly_fenced, stale

    def is_fenced(self, partition: int) -> bool:
        fenced = self._marks[partition].highest_epoch > self.epoch.get(partition, 0)
        if fenced:
            self.fenced.add(partition)
        return fenced

    def keep_only(self, partitions: Iterable[int]) -> None:
        keep = set(partitions)
        for partition in [p for p in self._marks if p not in keep]:
            self._close(partition)
            del self._marks[partition]
            self.rewrite.pop(partition, None)
        for partition in [p for p in self.epoch if p not in keep]:
            del self.epoch[partition]
        self.fenced &= keep

    def close(self) -> None:
        self.keep_only(())

    async def recover(self, reader: AIOKafkaConsumer, partitions: Iterable[int]) -> Recovery:
        """Bring each partition's table up to its changelog's current end."""
        tps = [TopicPartition(self.topic, p) for p in sorted(set(partitions))]
        result = Recovery(partitions=len(tps))
        if not tps:
            return result
        reader.assign(tps)
        ends = await reader.end_offsets(tps)
        starts = await reader.beginning_offsets(tps)
        for tp in tps:
            stored = self._open(tp.partition)
            if stored is not None and starts[tp] <= stored.next_offset <= ends[tp]:
                result.incremental += 1
            else:
                if stored is not None:
                    log.warning("partition %d: table at changelog offset %d, outside the changelog's [%d, %d]: "
                                "rebuilding it from the changelog", tp.partition, stored.next_offset, starts[tp],
                                ends[tp])
                self._clear(tp.partition)
                stored = TableMark(starts[tp])
            self._marks[tp.partition] = stored
        read = await self.catch_up(reader, {tp.partition: ends[tp] for tp in tps})
        result.records, result.stale = read.records, read.stale
        return result

    async def catch_up(self, reader: AIOKafkaConsumer, until: dict[int, int]) -> Recovery:
        """Read each partition's changelog from where its table stands up to offset `until[p]`."""
        result = Recovery(partitions=len(until))
        ranges = {TopicPartition(self.topic, p): (self._marks[p].next_offset, end) for p, end in until.items()}
        async for tp, records, position in read_ranges(reader, ranges):
            if records or position != self._marks[tp.partition].next_offset:
                result.stale += self._read(tp.partition, records, position)
            result.records += len(records)
        return result

    def _read(self, partition: int, records: list[Any], position: int) -> int:
        """Apply changelog records in offset order under the fencing rule; returns the stale ones."""
        mark = self._marks[partition]
        highest, since, since_epoch = mark.highest_epoch, mark.outputs_from, mark.outputs_epoch
        rewrite = self.rewrite[partition]
        changes: list[tuple[bytes, bytes | None]] = []
        stale = 0
        for record in records:
            seen = read_stamp(record.headers)
            highest, keep, is_stale = judge(highest, seen)
            if is_stale:
                stale += 1
                rewrite.add(record.key)  # its last record may now be this stale one
                continue
            rewrite.discard(record.key)
            if keep:
                changes.append((record.key, record.value))
                said = _outputs_from(record.headers)
                if said > since:
                    since, since_epoch = said, seen.epoch
        self._write(partition, changes, TableMark(position, highest, since, since_epoch))
        return stale


class MemoryStateStore(StateStore):
    def __init__(self, changelog_topic: str) -> None:
        super().__init__(changelog_topic)
        self.tables: dict[int, dict[bytes, bytes]] = {}

    def table(self, partition: int) -> dict[bytes, bytes]:
        return self.tables[partition]

    def __len__(self) -> int:
        return sum(len(table) for table in self.tables.values())

    def _open(self, partition: int) -> TableMark | None:
        return self._marks.get(partition) if partition in self.tables else None

    def _clear(self, partition: int) -> None:
        self.tables[partition] = {}

    def _write(self, partition: int, changes: Changes, mark: TableMark) -> None:
        table = self.tables[partition]
        for key, value in changes:
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        self._marks[partition] = mark

    def _close(self, partition: int) -> None:
        del self.tables[partition]


# A table's own record: which changelog offset it is current to, how many customers it holds
# (RocksDB has no cheap exact count), the highest writer epoch it has read and the latest
# outputs-from offset with its writer's epoch. State keys never start with NUL (state_codec).
# Format 1 (before fencing) had no epoch: read as epoch 0; formats 1 and 2 (before corrections)
# no outputs-from: -1; format 3 no outputs-from epoch: 0 (the transitions are then judged from
# the records read, as before).
META_KEY = b"\x00journey.table"
# format u8 (=4) | next changelog offset i64 | customers u64 | highest epoch u64 | outputs from i64
# | outputs-from epoch u64
META = struct.Struct("<BqQQqQ")
META_FORMAT = 4
META_V3 = struct.Struct("<BqQQq")
META_V2 = struct.Struct("<BqQQ")
META_V1 = struct.Struct("<BqQ")

# One budget for the whole worker, however many partitions it owns: data blocks, index and
# bloom filters, and the memtables (charged to the same cache). Bounded RAM is the point.
BLOCK_CACHE_BYTES = 128 << 20
MEMTABLE_BYTES = 64 << 20
MEMTABLE_BYTES_PER_PARTITION = 16 << 20


def rocksdb_options() -> Any:
    """Tuned for what the path does: a point lookup per customer per batch, a write batch per batch.

    Full bloom filters (10 bits per key) let a lookup of a new customer skip the disk; hashed
    data-block indexes make lookups that hit cheaper; LZ4 because states are small and CPU is
    the scarce resource; the WAL stays on (unsynced) so a killed worker loses nothing.
    """
    from rocksdict import (BlockBasedOptions, Cache, DataBlockIndexType, DBCompressionType, Options,
                           WriteBufferManager)

    cache = Cache(BLOCK_CACHE_BYTES)
    blocks = BlockBasedOptions()
    blocks.set_block_cache(cache)
    blocks.set_bloom_filter(10, False)
    blocks.set_cache_index_and_filter_blocks(True)
    blocks.set_pin_l0_filter_and_index_blocks_in_cache(True)
    blocks.set_data_block_index_type(DataBlockIndexType.binary_and_hash())
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_block_based_table_factory(blocks)
    memtables = WriteBufferManager.new_write_buffer_manager_with_cache(MEMTABLE_BYTES, False, cache)
    options.set_write_buffer_manager(memtables)
    options.set_write_buffer_size(MEMTABLE_BYTES_PER_PARTITION)
    options.set_compression_type(DBCompressionType.lz4())
    options.set_max_background_jobs(2)
    options.set_keep_log_file_num(2)  # RocksDB's own info logs
    options.set_max_log_file_size(1 << 20)
    return options


class RocksStateStore(StateStore):
    """One RocksDB per owned partition under `<state_dir>/<changelog topic>/<partition>`."""

    counting = "exact count kept with each table"

    def __init__(self, changelog_topic: str, state_dir: Path) -> None:
        super().__init__(changelog_topic)
        self.root = Path(state_dir) / changelog_topic
        self._lock = _lock_directory(self.root)
        self._options = rocksdb_options()
        self.dbs: dict[int, Any] = {}
        self._counts: dict[int, int] = {}

    def table(self, partition: int) -> Any:
        return self.dbs[partition]

    def __len__(self) -> int:
        return sum(self._counts.values())

    def _path(self, partition: int) -> str:
        return str(self.root / str(partition))

    def _open(self, partition: int) -> TableMark | None:
        if partition in self.dbs:
            return self._marks.get(partition)
        from rocksdict import Rdict

        try:
            db = Rdict(self._path(partition), self._options)
        except Exception as exc:  # rocksdict raises plain Exception (e.g. "Corruption: ...")
            log.warning("partition %d: cannot open %s (%s): rebuilding it from the changelog",
                        partition, self._path(partition), exc)
            shutil.rmtree(self._path(partition), ignore_errors=True)
            db = Rdict(self._path(partition), self._options)
        self.dbs[partition] = db
        self._counts[partition] = 0
        meta = db.get(META_KEY)
        outputs_from, outputs_epoch = -1, 0
        if meta is not None and len(meta) == META.size and meta[0] == META_FORMAT:
            _, next_offset, count, highest_epoch, outputs_from, outputs_epoch = META.unpack(meta)
        elif meta is not None and len(meta) == META_V3.size and meta[0] == 3:
            _, next_offset, count, highest_epoch, outputs_from = META_V3.unpack(meta)
        elif meta is not None and len(meta) == META_V2.size and meta[0] == 2:
            _, next_offset, count, highest_epoch = META_V2.unpack(meta)
        elif meta is not None and len(meta) == META_V1.size and meta[0] == 1:
            (_, next_offset, count), highest_epoch = META_V1.unpack(meta), 0
        else:
            if meta is not None:
                log.warning("partition %d: unknown table format in %s", partition, self._path(partition))
            return None
        self._counts[partition] = count
        return TableMark(next_offset, highest_epoch, outputs_from, outputs_epoch)

    def _clear(self, partition: int) -> None:
        from rocksdict import Rdict

        self._close(partition)
        Rdict.destroy(self._path(partition), self._options)
        self.dbs[partition] = Rdict(self._path(partition), self._options)
        self._counts[partition] = 0

    def _write(self, partition: int, changes: Changes, mark: TableMark) -> None:
        from rocksdict import WriteBatch

        db = self.dbs[partition]
        latest = dict(changes)  # a recovery chunk can hold a key more than once
        keys = list(latest)
        count = self._counts[partition]
        batch = WriteBatch(raw_mode=True)
        for key, before in zip(keys, db.get(keys) if keys else ()):
            value = latest[key]
            if value is None:
                batch.delete(key)
                if before is not None:
                    count -= 1
            else:
                batch.put(key, value)
                if before is None:
                    count += 1
        batch.put(META_KEY, META.pack(META_FORMAT, mark.next_offset, count, mark.highest_epoch, mark.outputs_from,
                                      mark.outputs_epoch))
        db.write(batch)
        self._counts[partition] = count
        self._marks[partition] = mark

    def _close(self, partition: int) -> None:
        db = self.dbs.pop(partition, None)
        if db is not None:
            db.close()
        self._counts.pop(partition, None)

    def close(self) -> None:
        super().close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _lock_directory(root: Path) -> int:
    """One worker per state directory: two would trade tables under each other."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "worker.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JourneyError(f"state directory {root} is in use by another worker — give each worker its own "
                           f"JOURNEY_STATE_DIR") from None
    return fd


def new_state_store(kind: Literal["memory", "rocksdb"], changelog_topic: str, state_dir: Path) -> StateStore:
    if kind == "rocksdb":
        return RocksStateStore(changelog_topic, state_dir)
    return MemoryStateStore(changelog_topic)
