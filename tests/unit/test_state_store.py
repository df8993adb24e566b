"""The state store's two backends: tables that are always a prefix of the changelog.

No broker: `Changelog` answers the few consumer calls recovery makes from in-memory
partitions (offset = position in the list + the partition's beginning).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka.structs import TopicPartition

from journey.errors import JourneyError
from streams.state_store import MemoryStateStore, RocksStateStore, StateStore

TOPIC = "g-customer-state-changelog"


@dataclass
class Record:
    offset: int
    key: bytes
    value: bytes | None


@dataclass
class Changelog:
    """Changelog partitions in memory, read the way `StateStore.recover` reads a consumer."""

    logs: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    beginnings: dict[int, int] = field(default_factory=dict)
    fetch_size: int = 3
    positions: dict[TopicPartition, int] = field(default_factory=dict)

    def append(self, partition: int, *pairs: tuple[bytes, bytes]) -> dict[tuple[str, int], int]:
        """Like a producer's acknowledgement: the last offset written per partition."""
        self.logs.setdefault(partition, []).extend(pairs)
        return {(TOPIC, partition): self._end(partition) - 1}

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
                fetched[tp] = [Record(start + i, key, value) for i, (key, value) in enumerate(pairs)]
                self.positions[tp] = start + len(pairs)
        return fetched

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def unsubscribe(self) -> None:
        self.positions = {}


def recover(store: StateStore, changelog: Changelog, *partitions: int):
    return asyncio.run(store.recover(changelog, partitions))  # type: ignore[arg-type]


def commit(store: StateStore, changelog: Changelog, partition: int, **states: bytes) -> None:
    """What the path does per batch: the changelog first, then the table with its acknowledged offset."""
    pairs = [(key.encode(), value) for key, value in states.items()]
    acked = changelog.append(partition, *pairs)
    store.commit_states([(partition, key, value) for key, value in pairs], acked)


@pytest.fixture(params=["memory", "rocksdb"])
def new_store(request, tmp_path: Path):
    opened: list[StateStore] = []

    def make() -> StateStore:
        store = MemoryStateStore(TOPIC) if request.param == "memory" else RocksStateStore(TOPIC, tmp_path / "state")
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
        store.commit_states([(0, b"a", b"1")], {("another-topic", 0): 4})


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
