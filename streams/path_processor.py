"""Applies released events and identity messages to person states through the core, one state write per batch.

Framework-free: the path service hands it events in apply order, the identity messages of the
batch and a mapping holding the encoded states; it returns what to publish (transitions and
identity records) and which states changed.

Whose state an event goes to (DESIGN.md §1c): an event with a customer id, the customer's; an
anonymous id's event, the anonymous person's (`anon:<id>`) — unless that id is already linked,
in which case it is forwarded to the customer's partition. An event that carries both ids, or an
identify event, also sends a link to the anonymous id's partition (streams/identity_log.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fivea import CustomerState, Rules, advance
from fivea.identity import absorb, anonymous_person, is_contact, link_anonymous, link_of
from schemas import AnyEvent, Transition
from streams.identity_log import Message, Outgoing, event_record, link_record, merge_record
from streams.state_codec import decode_state, encode_state, state_key


@dataclass
class BatchOutcome:
    transitions: list[Transition] = field(default_factory=list)
    changed: dict[bytes, bytes] = field(default_factory=dict)  # state key -> encoded state
    identity: list[Outgoing] = field(default_factory=list)  # records for the identity topic
    duplicates: int = 0
    late: int = 0
    corrections: int = 0  # late events that changed rows already published (retractions among transitions)
    links: Counter[str] = field(default_factory=Counter)  # link outcomes: linked, known, conflict, late_conflict
    merges: int = 0  # anonymous journeys merged into a customer's
    forwarded: int = 0  # events of a linked anonymous id sent to its customer


class PathProcessor:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def apply(self, events: Iterable[AnyEvent], states: Mapping[bytes, bytes],
              messages: Iterable[Message] = ()) -> BatchOutcome:
        outcome = BatchOutcome()
        touched: dict[bytes, CustomerState | None] = {}
        loaded: dict[bytes, CustomerState | None] = {}

        def state_of(key: bytes) -> CustomerState | None:
            if key in touched:
                return touched[key]
            state = loaded[key] = touched[key] = decode_state(states.get(key))
            return state

        def apply_event(event: AnyEvent, person: str) -> None:
            key = state_key(event.brand, person)
            step = advance(state_of(key), event, self.rules, person)
            touched[key] = step.state
            outcome.transitions.extend(step.transitions)
            outcome.duplicates += step.duplicate
            outcome.late += step.late
            outcome.corrections += step.corrected

        for message in messages:
            if message.kind == "event":
                apply_event(message.event, message.person)
            elif message.kind == "link":
                link = message.link
                key = state_key(link.brand, anonymous_person(link.anonymous_id))
                linked = link_anonymous(state_of(key), link)
                touched[key] = linked.state
                outcome.transitions.extend(linked.transitions)
                outcome.links[linked.outcome] += 1
                if linked.outcome == "linked":
                    outcome.identity.append(merge_record(link, linked.entries))
            else:  # merge
                link = message.link
                key = state_key(link.brand, link.customer_id)
                step = absorb(state_of(key), message.entries, link.brand, link.customer_id)
                touched[key] = step.state
                outcome.transitions.extend(step.transitions)
                outcome.merges += 1

        for event in events:
            if event.anonymous_id is not None:
                link = link_of(event)
                if link is not None:
                    outcome.identity.append(link_record(link))
                if not is_contact(event):
                    continue
                if event.customer_id is None:
                    held = state_of(state_key(event.brand, event.person))
                    if held is not None and held.linked_to:
                        outcome.identity.append(event_record(event, held.linked_to))
                        outcome.forwarded += 1
                        continue
            apply_event(event, event.person)

        for key, state in touched.items():
            if state is not loaded[key]:  # duplicates return the state unchanged
                outcome.changed[key] = encode_state(state)
        return outcome
