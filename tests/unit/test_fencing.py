"""Fencing tokens (streams/fencing.py): epochs, stamps and the readers' rule."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from streams.fencing import FenceTracker, describe_epoch, fence_headers, next_epoch, read_stamp, stamp


@dataclass
class Record:
    headers: list = field(default_factory=list)


def test_each_tenure_outranks_every_epoch_before_it_whatever_the_generation():
    first = next_epoch(0, generation=57)
    second = next_epoch(first, generation=1)  # the group was deleted: its generation starts again
    assert second > first
    assert describe_epoch(first) == "1.57" and describe_epoch(second) == "2.1"


def test_two_owners_claiming_the_same_tenure_are_ordered_by_generation():
    seen = next_epoch(0, 3)
    assert next_epoch(seen, generation=5) > next_epoch(seen, generation=4)


def test_stamps_round_trip():
    assert read_stamp(stamp(7)).epoch == 7 and not read_stamp(stamp(7)).fence
    fence = read_stamp(fence_headers(9, writer=3))
    assert (fence.epoch, fence.fence, fence.writer) == (9, True, 3)
    assert read_stamp(None).epoch == 0  # records written before fencing


def test_a_reader_drops_records_below_the_highest_epoch_seen_and_skips_fences():
    tracker = FenceTracker()
    assert tracker.admit("p0", Record(stamp(1))) == (True, False)
    assert tracker.admit("p0", Record(fence_headers(2))) == (False, False)  # a fence: skipped, not stale
    assert tracker.admit("p0", Record(stamp(1))) == (False, True)  # the old owner, after the fence
    assert tracker.admit("p0", Record(stamp(2))) == (True, False)
    assert tracker.admit("p1", Record(stamp(1))) == (True, False)  # partitions are independent


def test_writers_of_a_shared_partition_are_fenced_separately():
    tracker = FenceTracker()
    assert tracker.admit("h", Record(fence_headers(5, writer=0)))[1] is False
    assert tracker.admit("h", Record(stamp(1, writer=1))) == (True, False)  # another writer's epochs
    assert tracker.admit("h", Record(stamp(4, writer=0))) == (False, True)


@given(st.dictionaries(st.one_of(st.none(), st.integers(0, 1000)), st.integers(0, 2**64 - 1), max_size=8))
def test_the_epochs_travel_in_commit_metadata(highest):
    tracker = FenceTracker()
    tracker.highest = {("tp", writer): epoch for writer, epoch in highest.items()}
    restored = FenceTracker()
    assert restored.load("tp", tracker.metadata("tp"))
    assert restored.highest == tracker.highest


def test_no_metadata_means_unknown():
    tracker = FenceTracker()
    assert not tracker.load("tp", "") and not tracker.load("tp", None)
