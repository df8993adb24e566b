"""Event-time alignment of co-partitioned inputs (Kafka Streams' KIP-353, with KIP-695).

Inputs progress independently: after a pause, one topic's backlog drains faster than
another's. For partition number p, the next event released is the earliest head among the
queues of all input topics at p, once every empty queue at p is accounted for:
- caught up (nothing more to read): no wait;
- lag unknown (no high-water mark yet): wait at most `max_idle_s`;
- lag known (the broker holds records not yet received): wait for them (KIP-695), because a
  busy worker's own processing time must not count as the input being idle; at most
  `max_lag_wait_s`, a safety valve only: the caller measures lag from the consumer's position,
  which moves past offset gaps (transaction markers, compaction) by itself.
A full buffer forces release, so memory stays bounded.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

OrderKey = tuple[Any, str]  # (event time, event_id): fivea.order_key, the order replay sorts by
Entry = tuple[OrderKey, int, Any]  # (order key, offset, item)


class EventTimeAligner:
    def __init__(
        self,
        topics: Sequence[str],
        max_idle_s: float,
        max_buffered: int = 100_000,
        max_lag_wait_s: float = 120.0,
    ) -> None:
        self.topics = tuple(topics)
        self.max_idle_s = max_idle_s
        self.max_lag_wait_s = max_lag_wait_s
        self.max_buffered = max_buffered
        self._queues: dict[tuple[str, int], deque[Entry]] = {}
        self._empty_since: dict[tuple[str, int], float] = {}
        self._received: dict[tuple[str, int], int] = {}
        self._size = 0
        #: events let through before every input was known to be past them, by reason
        self.forced: Counter[str] = Counter()

    def __len__(self) -> int:
        return self._size

    def received_offset(self, topic: str, partition: int) -> int | None:
        """Offset of the last record handed to the aligner (None: nothing yet)."""
        return self._received.get((topic, partition))

    def held_from(self, topic: str, partition: int) -> int | None:
        """Offset of the oldest record still held (None: holds nothing of this partition)."""
        queue = self._queues.get((topic, partition))
        return queue[0][1] if queue else None

    def waiting_inputs(self) -> set[tuple[str, int]]:
        """Empty input partitions that events of the same partition number wait on."""
        busy = {p for (_, p), q in self._queues.items() if q}
        return {(t, p) for p in busy for t in self.topics if not self._queues.get((t, p))}

    def note_received(self, topic: str, partition: int, offset: int) -> None:
        """Record progress for records that bypass the queues (dead letters, rekeyed)."""
        tp = (topic, partition)
        if offset > self._received.get(tp, -1):
            self._received[tp] = offset

    def add(self, topic: str, partition: int, entries: Sequence[Entry], received: int | None = None) -> None:
        """Queue one fetch's valid records of one input partition, in offset order.

        `received`: offset of the fetch's last record, when records after the last entry
        bypassed the queue (dead letters).
        """
        tp = (topic, partition)
        if entries:
            queue = self._queues.get(tp)
            if queue is None:
                queue = self._queues[tp] = deque()
            queue.extend(entries)
            self._empty_since.pop(tp, None)
            self._size += len(entries)
            last = entries[-1][1]
            received = last if received is None or received < last else received
        if received is not None:
            self.note_received(topic, partition, received)

    def release(self, now: float, caught_up: Callable[[str, int], bool | None]) -> list[Any]:
        """Items that may be applied now, in the order to apply them.

        `caught_up(topic, partition)`: True (nothing left to read), False (the broker holds
        more), None (unknown).
        """
        released: list[Any] = []
        answers: dict[tuple[str, int], bool | None] = {}

        def progress(topic: str, partition: int) -> bool | None:  # asked once per input per call
            key = (topic, partition)
            if key not in answers:
                answers[key] = caught_up(topic, partition)
            return answers[key]

        partitions = {p for (_, p), q in self._queues.items() if q}
        for partition in sorted(partitions):
            self._release_partition(partition, now, progress, released)
        return released

    def _release_partition(
        self, partition: int, now: float, caught_up: Callable[[str, int], bool | None], out: list[Any]
    ) -> None:
        """Release the earliest head, again and again, in runs.

        While one queue's head stays below every other queue's head, nothing else can change
        the choice, so the whole run is taken at once; the inputs are looked at again when
        the queue runs dry. Ties go to the topic listed first.
        """
        queues = [self._queues.get((topic, partition)) for topic in self.topics]
        while True:
            best: deque | None = None
            best_key = bound = None  # bound: the lowest head among the other queues
            inclusive = False  # may the run take heads equal to bound (best's topic listed first)
            waiting = False
            expired: str | None = None
            for topic, queue in zip(self.topics, queues):
                if queue:
                    head = queue[0][0]
                    if best is None or head < best_key:
                        if best is not None:
                            bound, inclusive = best_key, False
                        best, best_key = queue, head
                    elif bound is None or head < bound:
                        bound, inclusive = head, True
                else:
                    state = caught_up(topic, partition)
                    if state is not True:
                        # Every empty input's clock starts at once, so waits do not add up.
                        since = self._empty_since.setdefault((topic, partition), now)
                        limit = self.max_idle_s if state is None else self.max_lag_wait_s
                        if now - since < limit:
                            waiting = True
                        else:
                            expired = "idle_timeout" if state is None else "lag_wait_cap"
            if best is None:
                return
            most = len(best)
            if waiting:
                if self._size < self.max_buffered:
                    return
                expired, most = "buffer_full", self._size - self.max_buffered + 1
            taken = 0
            while taken < most and best and (
                bound is None or (best[0][0] <= bound if inclusive else best[0][0] < bound)
            ):
                out.append(best.popleft()[2])
                taken += 1
            self._size -= taken
            if expired is not None:
                self.forced[expired] += taken

    def drop_partitions(self, partitions: set[int]) -> list[Any]:
        """Forget revoked partitions; their unacked records go to the next owner."""
        dropped: list[Any] = []
        for tp in [tp for tp in self._queues if tp[1] in partitions]:
            dropped.extend(item for _, _, item in self._queues.pop(tp))
        for mapping in (self._empty_since, self._received):
            for tp in [tp for tp in mapping if tp[1] in partitions]:
                del mapping[tp]
        self._size -= len(dropped)
        return dropped
