"""Offline replay: the reference the stream is checked against (same core, sorted input).

Identity is resolved first (DESIGN.md §1c): every link of the input, the first by event time
winning, decides whose journey each event is in; then each person's contact events are applied
in event-time order (ties by event_id). Events that carry only a customer id — all data before
identity — mean exactly what they meant.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fivea.identity import is_contact, resolve
from fivea.path import CustomerState, advance, order_key
from fivea.rules import Rules
from schemas import AnyEvent, Transition


def customer_key(event: AnyEvent) -> tuple[str, str]:
    """The state key of an event before links are known: (brand, its person)."""
    return (event.brand, event.person)


def replay(events: Iterable[AnyEvent], rules: Rules) -> Iterator[Transition]:
    """Resolve identity, then apply each person's events in event-time order; yield transitions in that order."""
    events = list(events)
    links = resolve(events)
    states: dict[tuple[str, str], CustomerState] = {}
    for event in sorted(filter(is_contact, events), key=order_key):
        person = links.person_of(event)
        key = (event.brand, person)
        step = advance(states.get(key), event, rules, person)
        states[key] = step.state
        yield from step.transitions
