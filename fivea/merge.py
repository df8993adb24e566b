"""The merge of two journeys (DESIGN.md §1b): what a late event, or a link between two ids, does.

A journey is kept as its live transitions — at most five `Link`s, one per stage entered, in
chain order — not as its events. That is enough to merge: the transitions of the union of two
event sets are exactly the two sets' journeys' links, taken together in event-time order (ties
by `event_id`, then by stage), that raise the running maximum stage. An event that raises the
union's maximum raises it within its own set, so no event history is needed.

`from_stage`, `kind` and `dwell_ms` are not stored: they follow the chain (`chain_rows`). A late
event is merged as the one-event journey it is (`event_links`), which may add a link and
supersede later ones. Merging is commutative, associative and idempotent (tests/unit/test_merge.py,
hypothesis, against the replay of the union).

Pure: the stream and the replay both call it; nothing here knows Kafka or ClickHouse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from fivea.path import event_time_us, order_key
from fivea.rules import Rules
from fivea.stages import LABELS, Stage
from schemas import AnyEvent


class Link(NamedTuple):
    """One live transition: `stage` entered at `at_us` by event `event_id`.

    The field order is the merge order: event time, then event id, then stage (an event's own
    `aware` link comes before its signal's).
    """

    at_us: int
    event_id: str
    stage: Stage


Journey = tuple[Link, ...]


def merge(*journeys: Iterable[Link]) -> Journey:
    """The journey of the union of the journeys' event sets."""
    running = Stage.NONE
    kept: list[Link] = []
    for link in sorted(link for journey in journeys for link in journey):
        if link.stage > running:
            kept.append(link)
            running = link.stage
    return tuple(kept)


def event_links(event: AnyEvent, rules: Rules) -> Journey:
    """The journey of one event alone: `none -> aware`, then its signal if that is higher."""
    at_us = event_time_us(event.occurred_at)
    aware = Link(at_us, event.event_id, Stage.AWARE)
    signal = rules.signal(event)
    return (aware, Link(at_us, event.event_id, signal)) if signal > Stage.AWARE else (aware,)


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

    link: Link
    from_stage: str
    to_stage: str
    kind: str
    dwell_ms: int | None


def chain_rows(journey: Sequence[Link]) -> list[Row]:
    rows = []
    previous: Link | None = None
    for link in journey:
        from_stage = previous.stage if previous else Stage.NONE
        rows.append(Row(
            link, LABELS[from_stage], LABELS[link.stage],
            "forward" if link.stage == from_stage + 1 else "skip",
            None if previous is None else (link.at_us - previous.at_us) // 1000,
        ))
        previous = link
    return rows
