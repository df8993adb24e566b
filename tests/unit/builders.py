"""Small event builders and runners shared by the unit tests (no I/O).

    click("c1", "product_view", at=minute(3))
    purchase("c1", at=minute(5))                  # completed
    purchase("c1", "refunded", at=minute(6))
    share("c1", "review", rating=5, at=minute(9))
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from fivea import CustomerState, Rules, advance
from schemas import AnyEvent, ClickstreamEvent, IdentifyEvent, PurchaseEvent, ShareEvent, Transition

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
RULES = Rules.default()

_ids = itertools.count(1)


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def second(n: float) -> datetime:
    return T0 + timedelta(seconds=n)


def _id(event_id: str | None) -> str:
    return event_id if event_id is not None else f"ev-{next(_ids):06d}"


def click(
    cid: str | None,
    action: str,
    *,
    anon: str | None = None,
    at: datetime = T0,
    id: str | None = None,
    brand: str = "default",
    channel: str | None = None,
    campaign: str | None = None,
    referrer: str | None = None,
) -> ClickstreamEvent:
    return ClickstreamEvent(
        type="clickstream",
        schema_version=1,
        event_id=_id(id),
        customer_id=cid,
        anonymous_id=anon,
        occurred_at=at,
        action=action,
        brand=brand,
        channel=channel,
        campaign=campaign,
        referrer_id=referrer,
    )


def purchase(
    cid: str | None,
    status: str = "completed",
    *,
    anon: str | None = None,
    at: datetime = T0,
    id: str | None = None,
    brand: str = "default",
    channel: str | None = None,
) -> PurchaseEvent:
    return PurchaseEvent(
        type="purchase",
        schema_version=1,
        event_id=_id(id),
        customer_id=cid,
        anonymous_id=anon,
        occurred_at=at,
        order_id=f"order-{cid or anon}",
        amount=10.0,
        currency="EUR",
        status=status,
        brand=brand,
        channel=channel,
    )


def share(
    cid: str | None,
    kind: str = "share",
    *,
    anon: str | None = None,
    rating: int | None = None,
    at: datetime = T0,
    id: str | None = None,
    brand: str = "default",
    channel: str | None = None,
) -> ShareEvent:
    return ShareEvent(
        type="share",
        schema_version=1,
        event_id=_id(id),
        customer_id=cid,
        anonymous_id=anon,
        occurred_at=at,
        kind=kind,
        rating=rating,
        brand=brand,
        channel=channel,
    )


def identify(anon: str, cid: str, *, at: datetime = T0, id: str | None = None, brand: str = "default") -> IdentifyEvent:
    return IdentifyEvent(type="identify", schema_version=1, event_id=_id(id), customer_id=cid, anonymous_id=anon,
                         occurred_at=at, brand=brand)


def run(events: Iterable[AnyEvent], rules: Rules = RULES) -> list[Transition]:
    """Apply events to ONE customer's state in the given (arrival) order; collect transitions."""
    state: CustomerState | None = None
    out: list[Transition] = []
    for event in events:
        state, transitions, *_ = advance(state, event, rules)
        out.extend(transitions)
    return out


def moves(transitions: Iterable[Transition]) -> list[tuple[str, str, str]]:
    """(from_stage, to_stage, kind) per transition: the compact form most tables compare."""
    return [(t.from_stage, t.to_stage, t.kind) for t in transitions]


def raw_event(**fields: object) -> bytes:
    """A valid clickstream event as JSON bytes; override fields, or drop one with `...`."""
    base: dict[str, object] = {
        "type": "clickstream",
        "schema_version": 1,
        "event_id": "e1",
        "customer_id": "c1",
        "occurred_at": "2024-03-01T12:00:00Z",
        "action": "page_view",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def live(transitions: Iterable[Transition]) -> list[tuple]:
    """The rows left once retractions are applied, every field but seq, in chain order.

    What ClickHouse's `live_transitions` holds, and what the promise of DESIGN.md §1b compares
    with the replay.
    """
    rows: dict[tuple, Transition] = {}
    withdrawn: set[tuple] = set()
    for t in transitions:
        if t.retracted:
            withdrawn.add(t.key)  # the table's version: a retraction wins whatever the order
        else:
            assert rows.setdefault(t.key, t) == t, f"seq {t.key} published twice with different rows"
    rows = {key: t for key, t in rows.items() if key not in withdrawn}
    ordered = sorted(rows.values(), key=lambda t: (t.brand, t.customer_id, t.occurred_at, t.trigger_event_id,
                                                   t.to_stage))
    return [tuple(v for k, v in t.model_dump().items() if k != "seq") for t in ordered]
