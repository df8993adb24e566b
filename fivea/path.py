"""Per-customer 5A state machine: a pure step `(state, event) -> (state, transitions)`.

Semantics (DESIGN.md §1): the first event gives `none -> aware`; an event whose signal is
above the current stage gives one transition to it (`forward` to the next stage, `skip`
past some); stages never go down; a repeated event_id among the customer's last
`RECENT_IDS` applied is ignored; `seq` numbers each customer's transitions 1, 2, ... so
storing them is idempotent.

Applying an event twice can never emit twice: after the first application the stage is at
least the event's signal. Redelivery is therefore harmless even without the id check; the
id check exists for the contract "same id, different payload: the first one wins", within
the window. The window is a count, not the whole history, so a customer's state and the work
per event stay bounded however many events the customer sends (DESIGN.md §1d).
"""

from __future__ import annotations

from datetime import datetime, timezone
from hashlib import blake2b
from typing import NamedTuple

from fivea.rules import Rules
from fivea.stages import LABELS, Stage
from schemas import AnyEvent, ClickstreamEvent, Transition

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: How many of a customer's most recently applied event ids are remembered for duplicate
#: detection. Duplicates in practice are producer retries and the redelivery after a crash
#: (about one commit interval, 1 s by default): 64 covers both for any customer sending fewer
#: than 64 events a second, at 8 bytes each (a state stays under ~600 bytes). Beyond the
#: window a duplicate is still harmless (it cannot emit again); it is counted as late instead.
RECENT_IDS = 64


def event_time_us(moment: datetime) -> int:
    """Microseconds since the epoch: exact for Python datetimes, cheap to compare and store."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def event_id_digest(event_id: str) -> int:
    """Stable 64-bit digest of an event id (Python's hash() changes between processes)."""
    return int.from_bytes(blake2b(event_id.encode(), digest_size=8).digest(), "big")


def order_key(event: AnyEvent) -> tuple[datetime, str]:
    """Event-time order with ties broken by event_id (DESIGN.md §1 rule 4)."""
    return (event.occurred_at, event.event_id)


class CustomerState(NamedTuple):
    """Immutable; a NamedTuple because one is built per event (a frozen dataclass costs 3x more)."""

    stage: Stage = Stage.NONE
    entered_us: int = 0  # when the current stage was entered (event time)
    seq: int = 0  # transitions emitted so far
    last_us: int = -1  # latest (time, id) applied: decides "late"
    last_id: str = ""
    recent: tuple[int, ...] = ()  # event_id digests of the last RECENT_IDS events applied, oldest first


class Step(NamedTuple):
    state: CustomerState
    transitions: list[Transition]
    duplicate: bool = False
    late: bool = False


def advance(state: CustomerState | None, event: AnyEvent, rules: Rules) -> Step:
    """Apply one event to one customer's state."""
    if state is None:
        state = CustomerState()
    digest = event_id_digest(event.event_id)
    if digest in state.recent:
        return Step(state, [], duplicate=True)

    at_us = event_time_us(event.occurred_at)
    late = state.stage != Stage.NONE and (at_us, event.event_id) < (state.last_us, state.last_id)
    stage, entered_us, seq = state.stage, state.entered_us, state.seq
    transitions: list[Transition] = []

    def move(to_stage: Stage) -> None:
        nonlocal stage, entered_us, seq
        seq += 1
        transitions.append(
            Transition.trusted(
                brand=event.brand,
                customer_id=event.customer_id,
                seq=seq,
                from_stage=LABELS[stage],
                to_stage=LABELS[to_stage],
                kind="forward" if to_stage == stage + 1 else "skip",
                occurred_at=event.occurred_at,
                trigger_event_id=event.event_id,
                trigger_event_type=event.type,
                channel=event.channel,
                influence=rules.influence(event),
                referrer_id=event.referrer_id if type(event) is ClickstreamEvent else None,
                # Out-of-order arrival may put the trigger before the stage entry: clamp at 0.
                dwell_ms=None if stage == Stage.NONE else max(0, (at_us - entered_us) // 1000),
            )
        )
        stage, entered_us = to_stage, at_us

    if stage == Stage.NONE:
        move(Stage.AWARE)
    signal = rules.signal(event)
    if signal > stage:
        move(signal)

    newest_us, newest_id = max((state.last_us, state.last_id), (at_us, event.event_id))
    recent = (*state.recent[1:], digest) if len(state.recent) >= RECENT_IDS else (*state.recent, digest)
    return Step(CustomerState(stage, entered_us, seq, newest_us, newest_id, recent), transitions, late=late)
