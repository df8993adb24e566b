"""Identity (DESIGN.md §1c): anonymous ids linked to customers, and what a link does to journeys.

A **person** is a known customer together with every anonymous id linked to them; an anonymous
id never linked is a person of its own, `anon:<anonymous_id>`. A person's journey is the 5A
journey of the union of the events of all their ids. Links are per brand; an anonymous id
belongs to at most one customer: the first link by event time (ties by event id) wins, a later
link of the same anonymous id to another customer is a conflict (ignored). Two customer ids are
never merged.

Two ways to the same journeys, both here:
- the replay's: `resolve` every link of an input first, then replay each person's events;
- the stream's: when a link is applied to an anonymous person (`link_anonymous`), its rows are
  retracted and its journey is merged into the customer's (`absorb`, the merge rule of
  fivea/merge.py); events of a linked anonymous id that arrive later go to the customer.
The stream applies links in arrival order: a conflicting link that arrives after the link it
beats in event time cannot undo it (counted as a late conflict; the replay picks the earlier).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from fivea.merge import Entry, chain_rows, correct, row_after
from fivea.ordering import event_time_us
from fivea.path import CustomerState, Step, publish
from schemas import ANONYMOUS_PREFIX, AnyEvent, IdentifyEvent, Transition


class IdLink(NamedTuple):
    """`anonymous_id` is `customer_id`, learned from event `event_id` at `at_us` (event time)."""

    brand: str
    anonymous_id: str
    customer_id: str
    at_us: int
    event_id: str

    @property
    def order(self) -> tuple[int, str]:
        return (self.at_us, self.event_id)


def anonymous_person(anonymous_id: str) -> str:
    return ANONYMOUS_PREFIX + anonymous_id


def link_of(event: AnyEvent) -> IdLink | None:
    """The link an event carries: both ids on one event, or an identify event."""
    if event.customer_id is None or event.anonymous_id is None:
        return None
    return IdLink(event.brand, event.anonymous_id, event.customer_id, event_time_us(event.occurred_at), event.event_id)


def is_contact(event: AnyEvent) -> bool:
    """An identify event is a link only: it gives no transition."""
    return type(event) is not IdentifyEvent


class Links:
    """The winning link of each (brand, anonymous id): first by event time, the rest conflicts."""

    def __init__(self) -> None:
        self.winner: dict[tuple[str, str], IdLink] = {}
        self.conflicts: list[IdLink] = []

    def add(self, link: IdLink) -> None:
        key = (link.brand, link.anonymous_id)
        held = self.winner.get(key)
        if held is None or link.order < held.order:
            if held is not None and held.customer_id != link.customer_id:
                self.conflicts.append(held)
            self.winner[key] = link
        elif link.customer_id != held.customer_id:
            self.conflicts.append(link)

    def person_of(self, event: AnyEvent) -> str:
        """The person whose journey the event is in."""
        if event.customer_id is not None:
            return event.customer_id
        link = self.winner.get((event.brand, event.anonymous_id))
        return link.customer_id if link is not None else anonymous_person(event.anonymous_id)


def resolve(events: Iterable[AnyEvent]) -> Links:
    """Every link of an input, first by event time winning (the replay's way)."""
    links = Links()
    for event in events:
        link = link_of(event)
        if link is not None:
            links.add(link)
    return links


# -- the stream's way ------------------------------------------------------------------------


class Linked(NamedTuple):
    """What applying a link to the anonymous person's state did."""

    state: CustomerState
    transitions: list[Transition]  # the anonymous person's rows, retracted
    entries: tuple[Entry, ...]  # its journey, to merge into the customer's (empty: nothing to merge)
    outcome: str  # "linked", "known" (the same link again), "conflict", "late_conflict"


def link_anonymous(state: CustomerState | None, link: IdLink) -> Linked:
    """Apply a link at the anonymous id's partition: the first link applied wins.

    On the first link, every live row of the anonymous person is retracted and its journey is
    handed over (to be merged into the customer's, `absorb`); the state keeps only the link, its
    seq counter (a seq is never reused) and its recent ids. Later events of the anonymous id go
    to the customer.
    """
    state = state or CustomerState()
    if state.linked_to:
        if state.linked_to == link.customer_id:
            return Linked(state, [], (), "known")
        late = link.order < (state.link_us, state.link_id)
        return Linked(state, [], (), "late_conflict" if late else "conflict")
    person = anonymous_person(link.anonymous_id)
    retracted = [publish(row, link.brand, person, retracted=True) for row in chain_rows(state.journey)
                 if row.link.trigger is not None]
    entries = tuple(entry for entry in state.journey if entry.trigger is not None)
    linked = state._replace(journey=(), linked_to=link.customer_id, link_us=link.at_us, link_id=link.event_id)
    return Linked(linked, retracted, entries, "linked")


def absorb(state: CustomerState | None, entries: Sequence[Entry], brand: str, customer_id: str) -> Step:
    """Merge an anonymous person's journey into the customer's: retractions, then corrected rows."""
    state = state or CustomerState()
    if not entries:
        return Step(state, [])
    if state.legacy:
        return _absorb_forward(state, entries, brand, customer_id)
    correction = correct(state.journey, (entry._replace(seq=0) for entry in entries), state.seq)
    transitions = [publish(row, brand, customer_id, retracted=True) for row in correction.retracted]
    transitions += [publish(row, brand, customer_id) for row in correction.emitted]
    return Step(state._replace(journey=correction.journey, seq=correction.seq), transitions,
                corrected=bool(correction.retracted), retracted=len(correction.retracted))


def _absorb_forward(state: CustomerState, entries: Sequence[Entry], brand: str, customer_id: str) -> Step:
    """A journey written before journeys were kept (state format < 3): the entries above it are appended."""
    journey, seq, transitions = list(state.journey), state.seq, []
    for entry in sorted(entries, key=lambda e: (e.at_us, e.event_id, e.stage)):
        previous = journey[-1]
        if entry.stage <= previous.stage:
            continue
        seq += 1
        entry = entry._replace(seq=seq)
        transitions.append(publish(row_after(previous, entry), brand, customer_id))
        journey.append(entry)
    return Step(state._replace(journey=tuple(journey), seq=seq), transitions)
