"""Per-customer 5A state machine: a pure step `(state, event) -> (state, transitions)`.

Semantics (DESIGN.md §1): the first event gives `none -> aware`; an event whose signal is
above the current stage gives one transition to it (`forward` to the next stage, `skip`
past some); stages never go down; a repeated event_id among the customer's last
`RECENT_IDS` applied is ignored; `seq` numbers each customer's published rows 1, 2, ... so
storing them is idempotent.

The state keeps the customer's journey — its live transitions, at most five — so an event that
arrives after later ones were applied is merged in (fivea/merge.py, DESIGN.md §1b): the step
then emits retractions of the rows the merge withdraws and the corrected rows, and the live rows
equal what the replay of the same events in event-time order gives. An event that comes after
the journey's last entry takes the fast path: it can only append.

Applying an event twice never changes the journey (merging is idempotent), so redelivery is
harmless even without the id check; the id check exists for the contract "same id, different
payload: the first one wins", within the window. The window is a count, not the whole history,
so a customer's state and the work per event stay bounded however many events the customer
sends (DESIGN.md §1d).
"""

from __future__ import annotations

from hashlib import blake2b
from typing import NamedTuple

from fivea.merge import Entry, Row, chain_rows, correct, event_entries, row_after, trigger_of
from fivea.ordering import EPOCH, event_time_us, order_key, time_of_us
from fivea.rules import Rules
from fivea.stages import Stage
from schemas import AnyEvent, Transition

__all__ = ["EPOCH", "RECENT_IDS", "CustomerState", "Step", "advance", "event_id_digest", "event_time_us",
           "order_key", "reconcile"]

#: How many of a customer's most recently applied event ids are remembered for duplicate
#: detection. Duplicates in practice are producer retries and the redelivery after a crash
#: (about one commit interval, 1 s by default): 64 covers both for any customer sending fewer
#: than 64 events a second, at 8 bytes each. Beyond the window a duplicate is still harmless
#: (merging an event already in the journey changes nothing).
RECENT_IDS = 64


def event_id_digest(event_id: str) -> int:
    """Stable 64-bit digest of an event id (Python's hash() changes between processes)."""
    return int.from_bytes(blake2b(event_id.encode(), digest_size=8).digest(), "big")


class CustomerState(NamedTuple):
    """Immutable; a NamedTuple because one is built per event (a frozen dataclass costs 3x more)."""

    journey: tuple[Entry, ...] = ()  # live transitions in chain order (at most one per stage)
    seq: int = 0  # highest seq published so far (retracted rows keep theirs: never reused)
    last_us: int = -1  # latest (time, id) applied: decides "late"
    last_id: str = ""
    recent: tuple[int, ...] = ()  # event_id digests of the last RECENT_IDS events applied, oldest first
    # An anonymous person only (fivea/identity.py): the customer its id was linked to, and the link's (time, id).
    linked_to: str = ""
    link_us: int = 0
    link_id: str = ""

    @property
    def stage(self) -> Stage:
        return self.journey[-1].stage if self.journey else Stage.NONE

    @property
    def entered_us(self) -> int:
        """When the current stage was entered (event time)."""
        return self.journey[-1].at_us if self.journey else 0

    @property
    def legacy(self) -> bool:
        """Written before journeys were kept (state format < 3): late events cannot be merged."""
        return bool(self.journey) and self.journey[0].trigger is None


class Step(NamedTuple):
    state: CustomerState
    transitions: list[Transition]  # retractions first, then new rows
    duplicate: bool = False
    late: bool = False
    corrected: bool = False  # a late event changed rows already published
    retracted: int = 0  # rows withdrawn


def publish(row: Row, brand: str, customer_id: str, retracted: bool = False, occurred_at=None) -> Transition:
    """The transition record of a journey row (`occurred_at`: the entry's time, when the caller has it)."""
    entry = row.link
    trigger = entry.trigger
    return Transition.trusted(
        brand=brand,
        customer_id=customer_id,
        seq=entry.seq,
        from_stage=row.from_stage,
        to_stage=row.to_stage,
        kind=row.kind,
        occurred_at=occurred_at or time_of_us(entry.at_us),
        trigger_event_id=entry.event_id,
        trigger_event_type=trigger.event_type,
        channel=trigger.channel,
        influence=trigger.influence,
        referrer_id=trigger.referrer_id,
        dwell_ms=row.dwell_ms,
        campaign=trigger.campaign,
        retracted=retracted,
    )


def advance(state: CustomerState | None, event: AnyEvent, rules: Rules, person: str | None = None) -> Step:
    """Apply one event to one person's state (`person`: their id; default: the event's own, `event.person`)."""
    if state is None:
        state = CustomerState()
    digest = event_id_digest(event.event_id)
    if digest in state.recent:
        return Step(state, [], duplicate=True)

    at_us = event_time_us(event.occurred_at)
    at = (at_us, event.event_id)
    journey = state.journey
    late = bool(journey) and at < (state.last_us, state.last_id)
    newest_us, newest_id = max((state.last_us, state.last_id), at)
    recent = (*state.recent[1:], digest) if len(state.recent) >= RECENT_IDS else (*state.recent, digest)

    customer_id = person if person is not None else event.person
    last = journey[-1] if journey else None
    if last is None or at > (last.at_us, last.event_id) or state.legacy:
        journey, transitions, seq = _append(state, event, at_us, rules, customer_id)
        return Step(CustomerState(journey, seq, newest_us, newest_id, recent, state.linked_to, state.link_us,
                                  state.link_id), transitions, late=late)

    correction = correct(journey, event_entries(event, rules), state.seq)
    brand = event.brand
    transitions = [publish(row, brand, customer_id, retracted=True) for row in correction.retracted]
    transitions += [publish(row, brand, customer_id) for row in correction.emitted]
    changed = bool(correction.retracted)
    return Step(state._replace(journey=correction.journey, seq=correction.seq, last_us=newest_us, last_id=newest_id,
                               recent=recent), transitions,
                late=late, corrected=changed, retracted=len(correction.retracted))


def _append(state: CustomerState, event: AnyEvent, at_us: int, rules: Rules, customer_id: str
            ) -> tuple[tuple[Entry, ...], list[Transition], int]:
    """The fast path: the event comes after every entry of the journey, so it can only add to it."""
    journey, seq = state.journey, state.seq
    stage = state.stage
    added: list[Entry] = []
    signal = rules.signal(event)
    if stage == Stage.NONE or signal > stage:
        trigger = trigger_of(event, rules)
        if stage == Stage.NONE:
            seq += 1
            added.append(Entry(at_us, event.event_id, Stage.AWARE, seq, trigger))
            stage = Stage.AWARE
        if signal > stage:
            seq += 1
            added.append(Entry(at_us, event.event_id, signal, seq, trigger))
    if not added:
        return journey, [], seq
    transitions = []
    previous = journey[-1] if journey else None
    for entry in added:
        transitions.append(publish(row_after(previous, entry), event.brand, customer_id, occurred_at=event.occurred_at))
        previous = entry
    return journey + tuple(added), transitions, seq


def reconcile(state: CustomerState | None, published: list[Transition]) -> tuple[CustomerState, list[Transition]]:
    """Bring a customer's published rows back in line with their state, after a crash.

    Without transactions, a worker can die after its transitions reached the log but before
    the state recording them did. The next owner resumes from the older state, so rows the
    lost attempt published (`published`, in log order: rows and retractions of this customer)
    may be live in the table although the state does not hold them, or withdrawn although it
    does. This withdraws the first kind, publishes the second again under new seqs, and moves
    the seq counter past every seq seen, so no seq is ever reused. Redelivered events then
    apply to a state whose published rows are exactly its journey. Idempotent.
    """
    state = state or CustomerState()
    live: dict[int, Transition] = {}
    withdrawn: set[int] = set()
    top = state.seq
    for t in published:
        top = max(top, t.seq)
        if t.retracted:
            withdrawn.add(t.seq)
            live.pop(t.seq, None)
        elif t.seq not in withdrawn:
            live[t.seq] = t
    held = {entry.seq for entry in state.journey}
    # A journey written before journeys were kept (format < 3) stands for rows up to its legacy
    # entry's seq: those rows are history the state does not list, not a lost attempt's.
    history = max((entry.seq for entry in state.journey if entry.trigger is None), default=0)
    out = [_withdrawal(t) for seq, t in sorted(live.items()) if seq not in held and seq > history]
    journey: list[Entry] = []
    if published and any(entry.seq in withdrawn for entry in state.journey):
        brand, customer_id = published[0].brand, published[0].customer_id
        for row in chain_rows(state.journey):
            entry = row.link
            if entry.seq in withdrawn and entry.trigger is not None:
                top += 1
                entry = entry._replace(seq=top)
                out.append(publish(row._replace(link=entry), brand, customer_id))
            journey.append(entry)
    else:
        journey = list(state.journey)
    return state._replace(journey=tuple(journey), seq=top), out


def _withdrawal(t: Transition) -> Transition:
    return Transition.trusted(**{**t.__dict__, "retracted": True})
