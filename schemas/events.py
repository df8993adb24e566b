"""Input events: three self-describing JSON shapes joined by a discriminated union on `type`.

Policy for unknown fields: **ignored**. Producers may add fields without breaking workers
(forward compatibility); nothing unknown is stored or forwarded. A breaking change bumps
`schema_version`, and a worker rejects versions it does not know (dead letter, with reason).

Timestamps must carry a timezone (naive ones are rejected: their meaning depends on the
producer's clock settings) and are normalised to UTC.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Annotated, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
)

SCHEMA_VERSION = 1


#: No control characters. Checked by pydantic-core's regex engine, not a Python validator (six
#: strings per event); `schemas.rejections` words the failure as "must not contain control characters".
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


#: Event times must fit every ClickHouse time type the sink may use (DateTime ends in 2106).
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


#: Identifiers end up in Kafka keys, ClickHouse keys and logs: bounded, printable.
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE)
]
#: Free-text labels (channel, campaign, network...): short and printable.
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=PRINTABLE)
]
UtcTimestamp = Annotated[AwareDatetime, Field(ge=EARLIEST, lt=LATEST), AfterValidator(_to_utc)]


class _Event(BaseModel):
    # strict: a wire contract means "10" is not a number and true is not 1.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    schema_version: Literal[1]
    event_id: Identifier
    customer_id: Identifier
    occurred_at: UtcTimestamp
    brand: Label = "default"
    channel: Label | None = None


class ClickstreamEvent(_Event):
    """A page or app interaction (clickstream topic)."""

    type: Literal["clickstream"]
    action: Label
    session_id: Identifier | None = None
    product_id: Identifier | None = None
    campaign: Label | None = None
    referrer_id: Identifier | None = None
    url: Annotated[str, StringConstraints(max_length=2048)] | None = None


class PurchaseItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    product_id: Identifier
    quantity: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    price: Annotated[float, Field(ge=0), AfterValidator(_finite)] | None = None


class PurchaseEvent(_Event):
    """An order (purchases topic). Only `completed` is a purchase signal; `refunded` is none."""

    type: Literal["purchase"]
    order_id: Identifier
    amount: Annotated[float, Field(ge=0), AfterValidator(_finite)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    status: Literal["completed", "refunded"]
    items: Annotated[list[PurchaseItem], Field(max_length=1000)] | None = None


class ShareEvent(_Event):
    """Advocacy or word of mouth (shares topic): shares, recommendations, invites, reviews."""

    type: Literal["share"]
    kind: Literal["share", "recommend", "invite", "review"]
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    network: Label | None = None
    product_id: Identifier | None = None


Event = Annotated[Union[ClickstreamEvent, PurchaseEvent, ShareEvent], Field(discriminator="type")]
EVENT_TYPES = ("clickstream", "purchase", "share")

#: The one parser for events on the wire: `EVENT_ADAPTER.validate_json(raw_bytes)`.
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


_validate_json = EVENT_ADAPTER.validator.validate_json  # pydantic-core's, without TypeAdapter's Python wrapper (~10%)


def parse_event(raw: bytes | str) -> ClickstreamEvent | PurchaseEvent | ShareEvent:
    """Validate one JSON document; raises `pydantic.ValidationError` with the reasons."""
    return _validate_json(raw)
