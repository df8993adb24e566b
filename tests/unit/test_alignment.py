"""EventTimeAligner: KIP-353-style event-time synchronisation of co-partitioned inputs.

Time is passed in as `now` (seconds); nothing sleeps. `caught_up(topic, partition)` is the
consumer's "nothing more to read right now" answer, modelled here as a set of (topic, partition).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.alignment import EventTimeAligner

TOPICS = ("clicks", "purchases", "shares")
IDLE = 0.5


LAG_WAIT = 30.0


class Feed:
    """An aligner plus a readable way to add events: feed.add("clicks", 0, t=5) -> item 'clicks@5'."""

    def __init__(self, max_idle_s: float = IDLE, max_buffered: int = 100_000, topics=TOPICS) -> None:
        self.aligner = EventTimeAligner(
            topics, max_idle_s=max_idle_s, max_buffered=max_buffered, max_lag_wait_s=LAG_WAIT
        )
        self.offsets: dict[tuple[str, int], int] = {}
        self.caught_up: set[tuple[str, int]] = set()  # nothing left to read
        self.lagging: set[tuple[str, int]] = set()  # the broker holds more; others: unknown

    def add(self, topic: str, partition: int, t: int, event_id: str = "") -> str:
        offset = self.offsets[(topic, partition)] = self.offsets.get((topic, partition), -1) + 1
        item = f"{topic}@{t}{event_id}" + (f"/p{partition}" if partition else "")
        self.aligner.add(topic, partition, [((t, event_id), offset, item)])
        return item

    def release(self, now: float = 0.0) -> list[str]:
        def progress(topic: str, partition: int) -> bool | None:
            if (topic, partition) in self.caught_up:
                return True
            return False if (topic, partition) in self.lagging else None

        return self.aligner.release(now, progress)

    def all_caught_up(self, *partitions: int) -> None:
        self.caught_up |= {(topic, p) for topic in self.aligner.topics for p in partitions}


def test_releases_the_earliest_head_across_topics():
    feed = Feed()
    feed.all_caught_up(0)
    feed.add("clicks", 0, t=3)
    feed.add("clicks", 0, t=8)
    feed.add("purchases", 0, t=1)
    feed.add("shares", 0, t=5)
    feed.add("purchases", 0, t=9)
    assert feed.release() == ["purchases@1", "clicks@3", "shares@5", "clicks@8", "purchases@9"]
    assert len(feed.aligner) == 0


def test_equal_times_are_ordered_by_event_id():
    feed = Feed()
    feed.all_caught_up(0)
    feed.add("shares", 0, t=5, event_id="a")
    feed.add("clicks", 0, t=5, event_id="b")
    assert feed.release() == ["shares@5a", "clicks@5b"]


def test_waits_while_another_topic_is_empty_and_not_caught_up():
    feed = Feed()
    feed.caught_up = {("shares", 0)}
    feed.add("clicks", 0, t=5)
    assert feed.release(now=0.0) == []
    assert feed.release(now=0.3) == []
    assert len(feed.aligner) == 1
    # The lagging topic delivers an earlier event: it goes first, as event time says.
    feed.add("purchases", 0, t=2)
    feed.caught_up.add(("purchases", 0))
    assert feed.release(now=0.35) == ["purchases@2", "clicks@5"]


def test_releases_once_the_empty_topics_are_caught_up():
    feed = Feed()
    feed.add("clicks", 0, t=5)
    assert feed.release(now=0.0) == []
    feed.all_caught_up(0)
    assert feed.release(now=0.01) == ["clicks@5"]


def test_releases_after_max_idle_without_the_lagging_topic():
    feed = Feed()
    feed.caught_up = {("shares", 0)}
    feed.add("clicks", 0, t=5)
    assert feed.release(now=10.0) == []
    assert feed.release(now=10.0 + IDLE / 2) == []
    assert feed.release(now=10.0 + IDLE) == ["clicks@5"]


def test_stops_again_when_a_released_topic_runs_dry():
    feed = Feed()
    feed.caught_up = {("shares", 0)}  # purchases is not caught up
    feed.add("clicks", 0, t=1)
    feed.add("clicks", 0, t=5)
    feed.add("purchases", 0, t=3)
    # purchases@3 empties its queue; the next purchase might be earlier than clicks@5.
    assert feed.release(now=0.0) == ["clicks@1", "purchases@3"]
    assert feed.release(now=0.1) == []
    assert feed.release(now=IDLE) == ["clicks@5"]


def test_the_idle_clock_restarts_when_data_arrives():
    feed = Feed()
    feed.caught_up = {("shares", 0)}
    feed.add("clicks", 0, t=9)
    assert feed.release(now=0.0) == []  # purchases empty since 0.0
    feed.add("purchases", 0, t=1)
    assert feed.release(now=0.3) == ["purchases@1"]  # empty again from 0.3
    assert feed.release(now=0.6) == []  # only 0.3 s idle
    assert feed.release(now=0.3 + IDLE) == ["clicks@9"]


def test_zero_idle_never_waits():
    feed = Feed(max_idle_s=0.0)
    feed.add("clicks", 0, t=5)
    assert feed.release(now=0.0) == ["clicks@5"]


def test_partitions_are_independent():
    feed = Feed()
    feed.all_caught_up(1)  # partition 1 is complete; at partition 0 purchases lags
    feed.caught_up.add(("shares", 0))
    feed.add("clicks", 0, t=1)
    feed.add("clicks", 1, t=7)
    feed.add("purchases", 1, t=2)
    assert feed.release(now=0.0) == ["purchases@2/p1", "clicks@7/p1"]
    assert len(feed.aligner) == 1
    assert feed.release(now=IDLE) == ["clicks@1"]


def test_a_topic_at_another_partition_does_not_hold_back():
    feed = Feed()
    feed.all_caught_up(0)
    feed.add("clicks", 0, t=10)
    feed.add("purchases", 1, t=1)  # earlier, but on partition 1: irrelevant to partition 0
    assert "clicks@10" in feed.release(now=0.0)


def test_max_buffered_forces_release():
    feed = Feed(max_buffered=3)
    for t in (4, 2, 6):
        feed.add("clicks", 0, t=t)  # queue order is arrival order within one partition
    assert feed.release(now=0.0) == ["clicks@4"]
    assert len(feed.aligner) == 2
    assert feed.release(now=0.0) == []  # under the limit again: waits


def test_drop_partitions_returns_held_items_and_forgets_progress():
    feed = Feed()
    held = [feed.add("clicks", 0, t=1), feed.add("purchases", 0, t=2), feed.add("shares", 1, t=3)]
    feed.add("clicks", 2, t=4)
    assert sorted(feed.aligner.drop_partitions({0, 1})) == sorted(held)
    assert len(feed.aligner) == 1
    assert feed.aligner.received_offset("clicks", 0) is None
    assert feed.aligner.received_offset("clicks", 2) == 0
    assert feed.aligner.drop_partitions({0}) == []


def test_received_offset_only_moves_forward():
    aligner = EventTimeAligner(TOPICS, max_idle_s=IDLE)
    assert aligner.received_offset("clicks", 0) is None
    aligner.add("clicks", 0, [((1, "a"), 7, "x")])
    aligner.note_received("clicks", 0, 9)  # a dead letter that bypassed the queue
    aligner.note_received("clicks", 0, 3)
    assert aligner.received_offset("clicks", 0) == 9


def test_nothing_held_releases_nothing():
    assert Feed().release(now=0.0) == []


def test_two_lagging_topics_wait_at_most_max_idle():
    feed = Feed()  # neither purchases nor shares is caught up; both empty since 0.0
    feed.add("clicks", 0, t=5)
    assert feed.release(now=0.0) == []
    assert feed.release(now=IDLE) == ["clicks@5"]


def test_known_lag_is_waited_for_beyond_max_idle():
    """KIP-695: records the broker already holds are not idle input, however busy we are."""
    feed = Feed()
    feed.caught_up = {("shares", 0)}
    feed.lagging = {("purchases", 0)}
    feed.add("clicks", 0, t=5)
    assert feed.release(now=0.0) == []
    assert feed.release(now=IDLE * 10) == []  # still waiting: purchases has data coming
    late_purchase = feed.add("purchases", 0, t=3)
    assert feed.release(now=IDLE * 10) == [late_purchase]  # arrived: applied first, in time order


def test_known_lag_wait_is_bounded():
    feed = Feed()
    feed.caught_up = {("shares", 0)}
    feed.lagging = {("purchases", 0)}
    click = feed.add("clicks", 0, t=5)
    assert feed.release(now=0.0) == []
    assert feed.release(now=LAG_WAIT) == [click]


# --- runs: the batch release equals the one-at-a-time rule ---------------------------------------


def _one_at_a_time(queues: dict[str, list[tuple[int, str]]], topics=TOPICS) -> list[str]:
    """The rule spelled out: always the earliest head, ties to the topic listed first."""
    queues = {topic: list(items) for topic, items in queues.items()}
    out = []
    while any(queues.values()):
        topic = min((t for t in topics if queues.get(t)), key=lambda t: (queues[t][0], topics.index(t)))
        out.append(f"{topic}:{queues[topic].pop(0)}")
    return out


@given(st.dictionaries(
    st.sampled_from(TOPICS),
    st.lists(st.tuples(st.integers(0, 6), st.sampled_from("ab")), max_size=12),
))
def test_release_in_runs_equals_the_earliest_head_rule(queues):
    aligner = EventTimeAligner(TOPICS, max_idle_s=IDLE)
    for topic, items in queues.items():
        aligner.add(topic, 0, [(key, offset, f"{topic}:{key}") for offset, key in enumerate(items)])
    assert aligner.release(0.0, lambda topic, partition: True) == _one_at_a_time(queues)
    assert len(aligner) == 0


def test_a_run_stops_where_a_queue_that_is_not_caught_up_runs_dry():
    feed = Feed()
    feed.caught_up = {("shares", 0)}
    clicks = [feed.add("clicks", 0, t=t) for t in (1, 2, 3)]
    purchase = feed.add("purchases", 0, t=2)
    # purchases@2 goes after clicks@2 (clicks listed first); then purchases is empty and not
    # caught up: clicks@3 waits for it.
    assert feed.release(now=0.0) == [clicks[0], clicks[1], purchase]
    assert len(feed.aligner) == 1


def test_a_full_buffer_forces_release_across_queues():
    feed = Feed(max_buffered=4)
    clicks = [feed.add("clicks", 0, t=t) for t in (1, 3)]
    purchases = [feed.add("purchases", 0, t=t) for t in (2, 4, 5, 6)]
    # 6 held, limit 4: three go (6 - 4 + 1), earliest heads first, across both queues.
    assert feed.release(now=0.0) == [clicks[0], purchases[0], clicks[1]]
    assert feed.aligner.forced["buffer_full"] == 3


def test_a_full_buffer_drains_a_partition_that_holds_less_than_the_excess():
    feed = Feed(max_buffered=3)
    held = [feed.add("clicks", 1, t=t) for t in (1, 2, 3, 4)]  # partition 1 waits on the others
    few = [feed.add("clicks", 0, t=t) for t in (5, 6)]
    # 6 held, limit 3: four forced (6 - 3 + 1); partition 0 gives its only 2, partition 1 the rest.
    assert feed.release(now=0.0) == few + held[:2]
