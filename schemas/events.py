"""Input events: four self-describing JSON shapes joined by a discriminated union on `type`.

Policy for unknown fields: **ignored**. Producers may add fields without breaking workers
(forward compatibility); nothing unknown is stored or forwarded. A breaking change bumps
`schema_version`, and a worker rejects versions it does not know (dead letter, with reason).
Additions within a version are optional fields only: `anonymous_id` and the `identify` type
were added to version 1 this way (issue 14), so every event valid before is valid now — with
one narrowing, documented in the README: a `customer_id` may not start with `anon:`, the prefix
of the persons that are anonymous ids never linked to a customer (DESIGN.md §1c).

Identity (DESIGN.md §1c): an event carries `customer_id` (a known customer), `anonymous_id` (a
device or cookie id), or both — at least one. One with both links them; an `identify` event is
a link only, not a contact.

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
    model_validator,
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


#: The person id of an anonymous id never linked to a customer: `anon:<anonymous_id>` (a
#: customer id may not start with it, so the two never collide).
ANONYMOUS_PREFIX = "anon:"


def _ids_in_json_schema(schema: dict) -> None:
    """The rules of `_Identified._ids`, for JSON Schema readers: at least one id; no reserved prefix."""
    if "customer_id" not in schema.get("required", ()):
        schema["anyOf"] = [{"required": ["customer_id"]}, {"required": ["anonymous_id"]}]
    for option in schema["properties"]["customer_id"].get("anyOf", [schema["properties"]["customer_id"]]):
        if option.get("type") == "string":
            option["not"] = {"pattern": f"^{ANONYMOUS_PREFIX}"}


class _Identified(BaseModel):
    # strict: a wire contract means "10" is not a number and true is not 1.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True, json_schema_extra=_ids_in_json_schema)

    schema_version: Literal[1]
    event_id: Identifier
    customer_id: Identifier | None = None
    anonymous_id: Identifier | None = None
    occurred_at: UtcTimestamp
    brand: Label = "default"

    @model_validator(mode="after")
    def _ids(self):
        if self.customer_id is None:
            if self.anonymous_id is None:
                raise ValueError("an event needs customer_id, anonymous_id or both")
        elif self.customer_id.startswith(ANONYMOUS_PREFIX):
            raise ValueError(f"customer_id must not start with {ANONYMOUS_PREFIX!r} (the prefix of anonymous persons)")
        return self

    @property
    def person(self) -> str:
        """Whose journey the event is in, before links are known: the customer, else the anonymous id's person."""
        return self.customer_id if self.customer_id is not None else ANONYMOUS_PREFIX + self.anonymous_id

    @property
    def routing_id(self) -> str:
        """The id producers key the event by (DESIGN.md §1c): the customer's, else the anonymous id."""
        return self.customer_id if self.customer_id is not None else self.anonymous_id


class _Event(_Identified):
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


class IdentifyEvent(_Identified):
    """A link only (DESIGN.md §1c): this anonymous id is this customer. No contact, no transition."""

    type: Literal["identify"]
    customer_id: Identifier
    anonymous_id: Identifier


Event = Annotated[Union[ClickstreamEvent, PurchaseEvent, ShareEvent, IdentifyEvent], Field(discriminator="type")]
EVENT_TYPES = ("clickstream", "purchase", "share", "identify")

#: The one parser for events on the wire: `EVENT_ADAPTER.validate_json(raw_bytes)`.
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


_validate_json = EVENT_ADAPTER.validator.validate_json  # pydantic-core's, without TypeAdapter's Python wrapper (~10%)


def parse_event(raw: bytes | str) -> ClickstreamEvent | PurchaseEvent | ShareEvent | IdentifyEvent:
    """Validate one JSON document; raises `pydantic.ValidationError` with the reasons."""
    return _validate_json(raw)
