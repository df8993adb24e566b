"""Event time as the core orders it: microseconds since the epoch, ties broken by event id."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from schemas import AnyEvent

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def event_time_us(moment: datetime) -> int:
    """Microseconds since the epoch: exact for Python datetimes, cheap to compare and store."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def time_of_us(at_us: int) -> datetime:
    """The UTC datetime of `event_time_us` (exact inverse)."""
    return EPOCH + timedelta(microseconds=at_us)


def order_key(event: AnyEvent) -> tuple[datetime, str]:
    """Event-time order with ties broken by event_id (DESIGN.md §1 rule 4)."""
    return (event.occurred_at, event.event_id)
