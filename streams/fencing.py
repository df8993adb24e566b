"""Fencing tokens in the log: a worker that lost a partition can write, but its writes never count.

Why: without Kafka transactions nothing on Apache Kafka stops the producer of a worker whose
consumer left the group (a GC pause, a frozen VM or container, CPU throttling longer than the
session timeout). When it wakes, the batch it had in hand still reaches the broker, after the
new owner's newer records. Checking "am I still a member?" before a send cannot close that gap
(the stall can fall between the check and the bytes leaving), so the log itself decides.

The protocol, per partition p of the path (the state changelog's partition p, the transitions'
partition p, and the rekeyed events written *from* p):

1. **Epoch.** A worker that takes p over first recovers p's table from the changelog, which
   tells it the highest epoch ever written to p. Its own epoch is one more tenure on top
   (`next_epoch`): `tenure << 32 | group generation`. The tenure makes epochs grow even where
   the group's generation starts again from 0 (a deleted group, a test broker that reports 0);
   the generation orders two owners that claimed the same tenure concurrently.
2. **Fence.** Before its first output for p it writes a fence record carrying that epoch to
   changelog p and, once that one is acknowledged, to transitions p and every rekeyed and
   identity partition; then it reads the changelog up to its fence. Everything before the fence
   counts; it is what the new owner starts from. The order matters: an old owner sends a
   batch's rows before the states that record them, so a state that got in before the
   changelog fence has its rows before the other fences too.
3. **Stamps.** Every record it writes carries its epoch in the `journey.epoch` header (and,
   on the rekeyed topic, the partition it was written for in `journey.partition`).
4. **Readers drop stale records.** Whoever reads a partition (changelog recovery, the sink,
   the path reading the rekeyed topic) keeps the highest epoch seen so far, from fences and
   records alike (`FenceTracker`), and drops any record whose epoch is lower: the write of a
   worker that had already lost the partition when it landed.
5. **Tables follow the log.** A worker's local table only ever advances over changelog records
   it has read. If its own batch did not land right after what its table holds, someone else
   wrote in between: it reads that stretch with the same rule. A zombie finds the new owner's
   fence there and stops working on p (`fenced`); an owner that finds a zombie's stale state
   writes its own state of that customer again, so log compaction (which keeps the *last*
   record of a key) keeps the right one.

Records written before this protocol carry no header: epoch 0, which every fence outranks.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

EPOCH_HEADER = "journey.epoch"
FENCE_HEADER = "journey.fence"  # a control record: empty value, skipped by every reader
WRITER_HEADER = "journey.partition"  # rekeyed records: the path partition that wrote them
FENCE_KEY = b"\x00journey.fence"  # the fence's key in the changelog (state keys never start with NUL)

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
GENERATION_BITS = 32


def next_epoch(highest_seen: int, generation: int) -> int:
    """The epoch of a new tenure over a partition whose log holds epochs up to `highest_seen`."""
    tenure = (highest_seen >> GENERATION_BITS) + 1
    return tenure << GENERATION_BITS | (max(generation, 0) & 0xFFFF_FFFF)


def describe_epoch(epoch: int) -> str:
    return f"{epoch >> GENERATION_BITS}.{epoch & 0xFFFF_FFFF}"


def stamp(epoch: int, writer: int | None = None) -> list[tuple[str, bytes]]:
    """Headers for one record written under `epoch` (the same list may serve many records)."""
    headers = [(EPOCH_HEADER, _U64.pack(epoch))]
    if writer is not None:
        headers.append((WRITER_HEADER, _U32.pack(writer)))
    return headers


def fence_headers(epoch: int, writer: int | None = None) -> list[tuple[str, bytes]]:
    return [*stamp(epoch, writer), (FENCE_HEADER, b"1")]


class Stamp:
    """What a record's headers say about who wrote it."""

    __slots__ = ("epoch", "fence", "writer")

    def __init__(self, epoch: int, fence: bool, writer: int | None) -> None:
        self.epoch, self.fence, self.writer = epoch, fence, writer


UNSTAMPED = Stamp(0, False, None)


def read_stamp(headers: Iterable[tuple[str, bytes]] | None) -> Stamp:
    if not headers:
        return UNSTAMPED
    epoch, fence, writer = 0, False, None
    for name, value in headers:
        if name == EPOCH_HEADER and len(value) == 8:
            epoch = _U64.unpack(value)[0]
        elif name == FENCE_HEADER:
            fence = True
        elif name == WRITER_HEADER and len(value) == 4:
            writer = _U32.unpack(value)[0]
    return Stamp(epoch, fence, writer)


def judge(highest: int, seen: Stamp) -> tuple[int, bool, bool]:
    """The readers' rule for one record, in offset order: (highest epoch now, keep it, stale).

    A record below the highest epoch seen is a stale writer's; a fence raises the epoch and is
    not data. Every reader applies it: `FenceTracker` and the state store's changelog reading.
    """
    if seen.epoch < highest:
        return highest, False, True
    return max(highest, seen.epoch), not seen.fence, False


class FenceTracker:
    """The highest epoch seen per (partition read, writer): the reader's side of the protocol.

    `admit` is called for every record in offset order; it returns False for a record to drop
    (a fence, or a stale write). The state can travel in a commit's metadata, so a reader that
    resumes from a committed offset resumes with the epochs seen before it.
    """

    def __init__(self) -> None:
        self.highest: dict[tuple[Any, int | None], int] = {}

    def admit(self, where: Any, record: Any) -> tuple[bool, bool]:
        """(keep, stale) for one record of `where` (a topic-partition)."""
        seen = read_stamp(record.headers)
        key = (where, seen.writer)
        highest, keep, stale = judge(self.highest.get(key, 0), seen)
        if highest:
            self.highest[key] = highest
        return keep, stale

    def forget(self, where: Any) -> None:
        for key in [key for key in self.highest if key[0] == where]:
            del self.highest[key]

    def metadata(self, where: Any) -> str:
        """`fences=<writer>:<epoch>,...` (writer `-` for single-writer partitions)."""
        items = sorted((("-" if w is None else str(w)), e) for (p, w), e in self.highest.items() if p == where)
        return "fences=" + ",".join(f"{w}:{e}" for w, e in items)

    def load(self, where: Any, metadata: str | None) -> bool:
        """Restore from `metadata`; False when it holds none (never written, or dropped by the broker)."""
        self.forget(where)
        if not metadata or not metadata.startswith("fences="):
            return False
        for item in filter(None, metadata[len("fences="):].split(",")):
            writer, _, epoch = item.partition(":")
            self.highest[(where, None if writer == "-" else int(writer))] = int(epoch)
        return True
