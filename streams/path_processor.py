"""Applies released events to customer states through the core, one state write per batch.

Framework-free: the path service hands it events in apply order and a mapping holding the
encoded states; it returns what to publish and which states changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fivea import CustomerState, Rules, advance
from schemas import AnyEvent, Transition
from streams.state_codec import decode_state, encode_state, state_key


@dataclass
class BatchOutcome:
    transitions: list[Transition] = field(default_factory=list)
    changed: dict[bytes, bytes] = field(default_factory=dict)  # state key -> encoded state
    duplicates: int = 0
    late: int = 0
    corrections: int = 0  # late events that changed rows already published (retractions among transitions)


class PathProcessor:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def apply(self, events: Iterable[AnyEvent], states: Mapping[bytes, bytes]) -> BatchOutcome:
        outcome = BatchOutcome()
        touched: dict[bytes, CustomerState] = {}
        loaded: dict[bytes, CustomerState | None] = {}
        for event in events:
            key = state_key(event.brand, event.customer_id)
            if key in touched:
                state = touched[key]
            else:
                state = loaded[key] = decode_state(states.get(key))
            step = advance(state, event, self.rules)
            touched[key] = step.state
            outcome.transitions.extend(step.transitions)
            outcome.duplicates += step.duplicate
            outcome.late += step.late
            outcome.corrections += step.corrected
        for key, state in touched.items():
            if state is not loaded[key]:  # duplicates return the state unchanged
                outcome.changed[key] = encode_state(state)
        return outcome
