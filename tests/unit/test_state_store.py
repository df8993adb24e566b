"""The state store's two backends: tables that are always a prefix of the changelog.

No broker: `Changelog` answers the few consumer calls recovery makes from in-memory
partitions (offset = position in the list + the partition's beginning). Records carry the
writer's epoch header (streams/fencing.py) when a test gives one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka.structs import TopicPartition

from journey.errors import JourneyError
from streams.fencing import FENCE_KEY, fence_headers, stamp
from streams.kafka_io import Landed
from streams.state_store import META_KEY, META_V3, MemoryStateStore, RocksStateStore, StateStore, outputs_from_header

TOPIC = "g-customer-state-changelog"


@dataclass
class Record:
    offset: int
    key: bytes
    value: bytes | None
    headers: list = field(default_factory=list)


@dataclass
class Changelog:
    """Changelog partitions in memory, read the way `StateStore.recover` reads a consumer."""

    logs: dict[int, list[tuple]] = field(default_factory=dict)
    beginnings: dict[int, int] = field(default_factory=dict)
    fetch_size: int = 3
    positions: dict[TopicPartition, int] = field(default_factory=dict)

    def append(self, partition: int, *pairs: tuple[bytes, bytes | None], epoch: int | None = None,
               fence: bool = False, outputs_from: int | None = None) -> dict[tuple[str, int], Landed]:
        """Like a producer's acknowledgement: where the records landed, per partition."""
        headers = [] if epoch is None else fence_headers(epoch) if fence else stamp(epoch)
        if outputs_from is not None:
            headers = [*headers, outputs_from_header(outputs_from)]
        first = self._end(partition)
        self.logs.setdefault(partition, []).extend((key, value, headers) for key, value in pairs)
        return {(TOPIC, partition): Landed(first, self._end(partition) - 1, len(pairs))}

    def fence(self, partition: int, epoch: int) -> dict[tuple[str, int], Landed]:
        return self.append(partition, (FENCE_KEY, b""), epoch=epoch, fence=True)

    def _end(self, partition: int) -> int:
        return self.beginnings.get(partition, 0) + len(self.logs.get(partition, []))

    def assign(self, tps: list[TopicPartition]) -> None:
        self.positions = {}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._end(tp.partition) for tp in tps}

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.beginnings.get(tp.partition, 0) for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def getmany(self, *tps: TopicPartition, timeout_ms: int) -> dict[TopicPartition, list[Record]]:
        fetched = {}
        for tp in tps:
            start, base = self.positions[tp], self.beginnings.get(tp.partition, 0)
            pairs = self.logs.get(tp.partition, [])[start - base:start - base + self.fetch_size]
            if pairs:
                fetched[tp] = [Record(start + i, *triple) for i, triple in enumerate(pairs)]
                self.positions[tp] = start + len(pairs)
        return fetched

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def unsubscribe(self) -> None:
        self.positions = {}


def recover(store: StateStore, changelog: Changelog, *partitions: int):
    return asyncio.run(store.recover(changelog, partitions))  # type: ignore[arg-type]


def commit(store: StateStore, changelog: Changelog, partition: int, **states: bytes) -> set[int]:
    """What the path does per batch: the changelog first, then the table with its acknowledged offset."""
    pairs = [(key.encode(), value) for key, value in states.items()]
    acked = changelog.append(partition, *pairs, epoch=store.epoch.get(partition))
    fenced, _ = asyncio.run(store.commit(changelog, [(partition, key, value) for key, value in pairs], acked))  # type: ignore[arg-type]
    return fenced


def commit_batch(store: StateStore, changelog: Changelog, partition: int, outputs_from: int, **states: bytes) -> None:
    """A batch's states with the header saying where the batch began publishing its transitions."""
    pairs = [(key.encode(), value) for key, value in states.items()]
    acked = changelog.append(partition, *pairs, epoch=store.epoch.get(partition), outputs_from=outputs_from)
    asyncio.run(store.commit(changelog, [(partition, key, value) for key, value in pairs], acked,  # type: ignore[arg-type]
                             {partition: outputs_from}))


def take_over(store: StateStore, changelog: Changelog, partition: int, generation: int = 0) -> int:
    """What the path does when it is given a partition: recover, fence with a new epoch, read up to the fence."""
    from streams.fencing import next_epoch

    recover(store, changelog, partition)
    epoch = store.epoch[partition] = next_epoch(store.highest_epoch(partition), generation)
    landed = changelog.fence(partition, epoch)
    asyncio.run(store.catch_up(changelog, {partition: landed[(TOPIC, partition)].last + 1}))  # type: ignore[arg-type]
    return epoch


@pytest.fixture(params=["memory", "rocksdb"])
def new_store(request, tmp_path: Path):
    opened: list[StateStore] = []

    def make() -> StateStore:  # each store its own directory, as each worker has
        directory = tmp_path / f"state-{len(opened)}"
        store = MemoryStateStore(TOPIC) if request.param == "memory" else RocksStateStore(TOPIC, directory)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


# -- both backends ---------------------------------------------------------------------------


def test_a_fresh_store_recovers_the_whole_changelog(new_store):
    changelog = Changelog()
    changelog.append(0, (b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"c", b"1"))
    changelog.append(1, (b"z", b"9"))
    store = new_store()
    result = recover(store, changelog, 0, 1)
    assert (result.partitions, result.records, result.incremental) == (2, 5, 0)
    assert store.table(0).get(b"a") == b"2" and store.table(0).get(b"b") == b"1"
    assert store.table(0).get(b"nobody") is None
    assert store.table(1).get(b"z") == b"9"
    assert len(store) == 4  # a, b, c and z: a key written twice counts once


def test_commit_writes_states_after_the_changelog_acknowledged_them(new_store):
    changelog = Changelog()
    store = new_store()
    recover(store, changelog, 0)
    commit(store, changelog, 0, a=b"1", b=b"1")
    commit(store, changelog, 0, a=b"2")
    assert store.table(0).get(b"a") == b"2" and store.table(0).get(b"b") == b"1"
    assert len(store) == 2


def test_states_without_an_acknowledged_offset_are_refused(new_store):
    store = new_store()
    recover(store, Changelog(), 0)
    with pytest.raises(ValueError, match="no acknowledged changelog offset"):
        asyncio.run(store.commit(Changelog(), [(0, b"a", b"1")], {("another-topic", 0): Landed(4, 4, 1)}))  # type: ignore[arg-type]


def test_a_kept_partition_catches_up_from_its_offset(new_store):
    changelog = Changelog()
    changelog.append(0, (b"a", b"1"))
    store = new_store()
    recover(store, changelog, 0, 1)
    commit(store, changelog, 0, b=b"1")
    store.keep_only([0])
    changelog.append(0, (b"c", b"1"))  # written by another owner meanwhile
    result = recover(store, changelog, 0)
    assert (result.incremental, result.records) == (1, 1)
    assert [store.table(0).get(k) for k in (b"a", b"b", b"c")] == [b"1", b"1", b"1"]


def test_an_offset_outside_the_changelog_means_a_rebuild(new_store):
    changelog = Changelog()
    store = new_store()
    recover(store, changelog, 0)
    commit(store, changelog, 0, a=b"1", b=b"1")
    recreated = Changelog()  # the topic was deleted and created again: shorter than the table's offset
    recreated.append(0, (b"c", b"1"))
    result = recover(store, recreated, 0)
    assert (result.incremental, result.records) == (0, 1)
    assert store.table(0).get(b"a") is None and store.table(0).get(b"c") == b"1"
    assert len(store) == 1


# -- fencing: a stale writer's records never count (streams/fencing.py) -------------------------


def test_a_stalled_owners_late_states_are_dropped_and_written_again(new_store):
    """A owns p, stalls; B takes p over (fence); A's batch lands after the fence."""
    changelog = Changelog()
    a, b = new_store(), new_store()
    take_over(a, changelog, 0)
    commit(a, changelog, 0, x=b"a1", y=b"a1")
    take_over(b, changelog, 0)
    assert b.table(0).get(b"x") == b"a1"  # everything before the fence counts
    commit(b, changelog, 0, x=b"b2")
    # A wakes: its batch lands after B's fence and B's newer state of x.
    fenced = commit(a, changelog, 0, x=b"a-stale", z=b"a-stale")
    assert fenced == {0} and 0 in a.fenced
    assert a.table(0).get(b"x") == b"b2" and a.table(0).get(b"z") is None  # A's table follows the log
    # B's next batch lands after A's stale records: B reads them, drops them, keeps its own.
    commit(b, changelog, 0, y=b"b2")
    assert b.table(0).get(b"x") == b"b2" and b.table(0).get(b"z") is None and b.table(0).get(b"y") == b"b2"
    assert b.rewrite[0] == {b"x", b"z"}  # their last records are stale: B writes them again
    # A third owner recovering from scratch sees the same, with A's records dropped.
    c = new_store()
    result = recover(c, changelog, 0)
    assert result.stale == 2
    assert c.table(0).get(b"x") == b"b2" and c.table(0).get(b"z") is None


def test_records_before_the_fence_count_even_from_the_old_owner(new_store):
    changelog = Changelog()
    a, b = new_store(), new_store()
    take_over(a, changelog, 0)
    changelog.append(0, (b"late", b"a1"), epoch=a.epoch[0])  # landed before B's fence: it counts
    epoch_b = take_over(b, changelog, 0)
    assert epoch_b > a.epoch[0]
    assert b.table(0).get(b"late") == b"a1" and not b.fenced


def test_unstamped_records_of_the_previous_format_count_until_a_fence(new_store):
    changelog = Changelog()
    changelog.append(0, (b"old", b"1"))  # written before fencing existed: epoch 0
    store = new_store()
    take_over(store, changelog, 0)
    assert store.table(0).get(b"old") == b"1"
    changelog.append(0, (b"zombie", b"1"))  # an upgraded cluster's old worker, after a fence
    commit(store, changelog, 0, new=b"1")
    assert store.table(0).get(b"zombie") is None and store.table(0).get(b"new") == b"1"


def test_a_stale_fence_is_ignored_and_our_fence_written_again(new_store):
    changelog = Changelog()
    a, b = new_store(), new_store()
    take_over(a, changelog, 0)
    stale_epoch = a.epoch[0]
    take_over(b, changelog, 0)
    changelog.fence(0, stale_epoch)  # a zombie's fence from a takeover it never finished
    assert commit(b, changelog, 0, x=b"1") == set()
    assert FENCE_KEY in b.rewrite[0]  # compaction would keep the stale fence: B writes its own again


def test_where_the_last_batch_began_publishing_is_kept_with_its_writers_epoch(new_store):
    """A new owner reads the transitions from there, judging them from that epoch (path_service._reconcile)."""
    changelog = Changelog()
    a, b = new_store(), new_store()
    epoch_a = take_over(a, changelog, 0)
    commit_batch(a, changelog, 0, outputs_from=7, x=b"a1")
    assert (a.outputs_from(0), a.outputs_epoch(0)) == (7, epoch_a)
    epoch_b = take_over(b, changelog, 0)
    assert (b.outputs_from(0), b.outputs_epoch(0)) == (7, epoch_a)  # read back from the record
    # A wakes: a batch of its own, stale, says where it began; it must not count.
    changelog.append(0, (b"x", b"a-stale"), epoch=epoch_a, outputs_from=9)
    commit_batch(b, changelog, 0, outputs_from=8, y=b"b1")  # lands after it: B reads the stretch
    assert (b.outputs_from(0), b.outputs_epoch(0)) == (8, epoch_b)
    c = new_store()
    recover(c, changelog, 0)
    assert (c.outputs_from(0), c.outputs_epoch(0)) == (8, epoch_b)


# -- rocksdb: tables outlive the process -------------------------------------------------------


def test_a_restarted_store_resumes_from_the_stored_offset(tmp_path: Path):
    changelog = Changelog()
    changelog.append(0, *[(f"k{i}".encode(), b"1") for i in range(10)])
    store = RocksStateStore(TOPIC, tmp_path)
    recover(store, changelog, 0)
    commit(store, changelog, 0, k1=b"2", new=b"1")
    store.close()

    changelog.append(0, (b"k2", b"3"), (b"after", b"1"))  # the next owner's writes
    store = RocksStateStore(TOPIC, tmp_path)
    try:
        result = recover(store, changelog, 0)
        assert (result.incremental, result.records) == (1, 2)
        table = store.table(0)
        assert [table.get(k) for k in (b"k0", b"k1", b"k2", b"new", b"after")] == [b"1", b"2", b"3", b"1", b"1"]
        assert len(store) == 12
    finally:
        store.close()


def test_a_restarted_store_keeps_where_the_last_batch_began_and_reads_the_previous_format(tmp_path: Path):
    changelog = Changelog()
    store = RocksStateStore(TOPIC, tmp_path)
    epoch = take_over(store, changelog, 0)
    commit_batch(store, changelog, 0, outputs_from=5, a=b"1")
    store.close()
    store = RocksStateStore(TOPIC, tmp_path)
    try:
        assert recover(store, changelog, 0).incremental == 1
        assert (store.outputs_from(0), store.outputs_epoch(0)) == (5, epoch)
        # A table written by the previous release (format 3): no epoch for that offset, judged from 0.
        store.table(0)[META_KEY] = META_V3.pack(3, store.next_offset(0), 1, store.highest_epoch(0), 5)
    finally:
        store.close()
    store = RocksStateStore(TOPIC, tmp_path)
    try:
        assert recover(store, changelog, 0).incremental == 1
        assert (store.outputs_from(0), store.outputs_epoch(0)) == (5, 0)
        assert store.table(0).get(b"a") == b"1"
    finally:
        store.close()


def test_the_stored_offset_and_states_are_one_write(tmp_path: Path):
    """Reopened after each commit, the table holds exactly the changelog up to its offset."""
    changelog = Changelog()
    for batch in range(3):
        store = RocksStateStore(TOPIC, tmp_path)
        try:
            result = recover(store, changelog, 0)
            assert result.records == 0  # nothing beyond the stored offset
            assert [store.table(0).get(f"b{i}".encode()) for i in range(batch)] == [b"x"] * batch
            commit(store, changelog, 0, **{f"b{batch}": b"x"})
        finally:
            store.close()


def test_a_changelog_truncated_past_the_stored_offset_means_a_rebuild(tmp_path: Path):
    changelog = Changelog()
    store = RocksStateStore(TOPIC, tmp_path)
    recover(store, changelog, 0)
    commit(store, changelog, 0, a=b"1")
    store.close()
    changelog.logs[0] = [(b"b", b"1")]  # retention removed everything before offset 5
    changelog.beginnings[0] = 5
    store = RocksStateStore(TOPIC, tmp_path)
    try:
        result = recover(store, changelog, 0)
        assert (result.incremental, result.records) == (0, 1)
        assert store.table(0).get(b"a") is None and store.table(0).get(b"b") == b"1"
    finally:
        store.close()


def test_an_unreadable_table_is_rebuilt(tmp_path: Path):
    changelog = Changelog()
    store = RocksStateStore(TOPIC, tmp_path)
    recover(store, changelog, 0)
    commit(store, changelog, 0, a=b"1")
    store.close()
    (tmp_path / TOPIC / "0" / "CURRENT").write_text("garbage\n")
    store = RocksStateStore(TOPIC, tmp_path)
    try:
        result = recover(store, changelog, 0)
        assert (result.incremental, result.records) == (0, 1)
        assert store.table(0).get(b"a") == b"1"
    finally:
        store.close()


def test_revoked_partitions_are_closed_and_kept_on_disk(tmp_path: Path):
    changelog = Changelog()
    store = RocksStateStore(TOPIC, tmp_path)
    try:
        recover(store, changelog, 0, 1)
        commit(store, changelog, 1, a=b"1")
        store.keep_only([0])
        assert 1 not in store.dbs and len(store) == 0
        assert (tmp_path / TOPIC / "1" / "CURRENT").exists()
        result = recover(store, changelog, 0, 1)  # partition 1 comes back
        assert (result.incremental, result.records) == (2, 0)
        assert store.table(1).get(b"a") == b"1" and len(store) == 1
    finally:
        store.close()


def test_one_worker_per_state_directory(tmp_path: Path):
    store = RocksStateStore(TOPIC, tmp_path)
    try:
        with pytest.raises(JourneyError, match="in use by another worker"):
            RocksStateStore(TOPIC, tmp_path)
    finally:
        store.close()
    RocksStateStore(TOPIC, tmp_path).close()  # free again once the first one closed
