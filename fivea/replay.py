"""Offline replay: the reference the stream is checked against (same core, sorted input)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fivea.path import CustomerState, advance, order_key
from fivea.rules import Rules
from schemas import AnyEvent, Transition


def customer_key(event: AnyEvent) -> tuple[str, str]:
    return (event.brand, event.customer_id)


def replay(events: Iterable[AnyEvent], rules: Rules) -> Iterator[Transition]:
    """Apply events in event-time order (ties by event_id) and yield transitions in that order."""
    states: dict[tuple[str, str], CustomerState] = {}
    for event in sorted(events, key=order_key):
        key = customer_key(event)
        step = advance(states.get(key), event, rules)
        states[key] = step.state
        yield from step.transitions
