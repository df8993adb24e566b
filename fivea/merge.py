"""The merge of two journeys (DESIGN.md §1b): what a late event, or a link between two ids, does.

A journey is kept as its live transitions — at most five entries, one per stage entered, in
chain order — not as its events. That is enough to merge: the transitions of the union of two
event sets are exactly the two sets' journeys' entries, taken together in event-time order (ties
by `event_id`, then by stage), that raise the running maximum stage. An event that raises the
union's maximum raises it within its own set, so no event history is needed.

`from_stage`, `kind` and `dwell_ms` are not stored: they follow the chain (`chain_rows`). A late
event is merged as the one-event journey it is (`event_links`), which may add an entry and
supersede later ones; `correct` then says which published rows the merge withdraws and which it
adds. Merging is commutative, associative and idempotent (tests/unit/test_merge.py, hypothesis,
against the replay of the union).

Pure: the stream and the replay both call it; nothing here knows Kafka or ClickHouse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from fivea.ordering import event_time_us, order_key
from fivea.rules import Rules
from fivea.stages import LABELS, Stage
from schemas import AnyEvent, ClickstreamEvent


class Link(NamedTuple):
    """A stage entered at `at_us` by event `event_id`: what the merge orders by.

    The field order is the merge order: event time, then event id, then stage (an event's own
    `aware` link comes before its signal's).
    """

    at_us: int
    event_id: str
    stage: Stage


class Trigger(NamedTuple):
    """What a transition carries of the event that triggered it (besides its id and time)."""

    event_type: str
    channel: str | None
    influence: str
    referrer_id: str | None
    campaign: str | None


class Entry(NamedTuple):
    """A live transition: a `Link`, the `seq` it was published under, and its trigger.

    `trigger` is None only for an entry carried over from a state written before the journey was
    kept (state format < 3): it stands for the last published row, whose trigger is unknown.
    """

    at_us: int
    event_id: str
    stage: Stage
    seq: int
    trigger: Trigger | None


Journey = tuple[Any, ...]  # Links or Entries: anything whose first three fields are a Link's
_link_order = itemgetter(0, 1, 2)


def merge(*journeys: Iterable[Any]) -> Journey:
    """The journey of the union of the journeys' event sets (on equal links, the first given wins)."""
    running = Stage.NONE
    kept: list[Any] = []
    for link in sorted((link for journey in journeys for link in journey), key=_link_order):
        if link[2] > running:
            kept.append(link)
            running = link[2]
    return tuple(kept)


def trigger_of(event: AnyEvent, rules: Rules) -> Trigger:
    click = type(event) is ClickstreamEvent
    return Trigger(event.type, event.channel, rules.influence(event),
                   event.referrer_id if click else None, event.campaign if click else None)


def event_links(event: AnyEvent, rules: Rules) -> Journey:
    """The journey of one event alone: `none -> aware`, then its signal if that is higher."""
    at_us = event_time_us(event.occurred_at)
    aware = Link(at_us, event.event_id, Stage.AWARE)
    signal = rules.signal(event)
    return (aware, Link(at_us, event.event_id, signal)) if signal > Stage.AWARE else (aware,)


def event_entries(event: AnyEvent, rules: Rules) -> tuple[Entry, ...]:
    """`event_links` as entries not yet published (seq 0), with the event's trigger."""
    trigger = trigger_of(event, rules)
    return tuple(Entry(*link, 0, trigger) for link in event_links(event, rules))


def journey_of(events: Iterable[AnyEvent], rules: Rules) -> Journey:
    """The journey of a set of events (one customer's), by the 5A rules in event-time order."""
    links: list[Link] = []
    stage = Stage.NONE
    for event in sorted(events, key=order_key):
        for link in event_links(event, rules):
            if link.stage > stage:
                links.append(link)
                stage = link.stage
    return tuple(links)


class Row(NamedTuple):
    """A link as the transition it is published as (every field the chain decides)."""

    link: Any  # Link or Entry
    from_stage: str
    to_stage: str
    kind: str
    dwell_ms: int | None


def row_after(previous: Any, link: Any) -> Row:
    """The row of `link` entered right after `previous` (None: the first contact).

    The dwell is clamped at 0: in a merged chain links are in event-time order, so only an
    entry appended to a journey written before journeys were kept (state format < 3) can
    come before the entry it follows.
    """
    if previous is None:
        return Row(link, "none", LABELS[link[2]], "forward" if link[2] == Stage.AWARE else "skip", None)
    return Row(link, LABELS[previous[2]], LABELS[link[2]], "forward" if link[2] == previous[2] + 1 else "skip",
               max(0, (link[0] - previous[0]) // 1000))


def chain_rows(journey: Sequence[Any]) -> list[Row]:
    rows = []
    previous = None
    for link in journey:
        rows.append(row_after(previous, link))
        previous = link
    return rows


class Correction(NamedTuple):
    """A merge as the stream publishes it: the rows withdrawn, then the rows added."""

    journey: tuple[Entry, ...]  # the merged journey, every entry with the seq it is published under
    retracted: list[Row]  # rows of the old journey no longer in it (as they were published)
    emitted: list[Row]  # rows the old journey lacked or published differently (new seqs, chain order)
    seq: int  # the highest seq used


def correct(journey: Sequence[Entry], additions: Iterable[Entry], seq: int) -> Correction:
    """Merge `additions` into a published journey: which rows to retract and which to emit.

    A row is kept (same seq, nothing published) when the merged chain has its link with the same
    `from_stage`, `kind` and `dwell_ms`; otherwise the old row is retracted and the link, if it
    stays, is published again under a new seq. New seqs follow `seq` in chain order, so a seq is
    never reused and a retraction always names exactly one published row.
    """
    old_rows = {_link_order(row.link): row for row in chain_rows(journey)}
    kept: set[tuple] = set()
    entries: list[Entry] = []
    emitted: list[Row] = []
    for row in chain_rows(merge(journey, additions)):
        key = _link_order(row.link)
        old = old_rows.get(key)
        if old is not None and old[1:] == row[1:]:
            entries.append(old.link)
            kept.add(key)
            continue
        seq += 1
        entry = row.link._replace(seq=seq)
        entries.append(entry)
        emitted.append(row._replace(link=entry))
    retracted = [row for key, row in old_rows.items() if key not in kept]
    return Correction(tuple(entries), retracted, emitted, seq)
