"""Segment Spec messages as our events: the contract's edge for what people already have (DESIGN.md §2b).

Segment, RudderStack, Jitsu and PostHog's CDP emit the Segment Spec (`track`, `page`, `screen`,
`identify`, `alias`); their Kafka destinations deliver one JSON message per record. Each message
becomes one event of our contract, then flows like any other (alignment, the 5A core, identity,
the sink):

- ids and time: `messageId` → `event_id`; `userId` → `customer_id`; `anonymousId` →
  `anonymous_id`; `timestamp`, else `originalTimestamp` → `occurred_at` (with a timezone).
- `page` and `screen` → a clickstream event (action `Page Viewed` / `Screen Viewed`).
- `track` by event name, through the Segment table of the rules (`SegmentMapping.events`, name →
  stage): a name of the spec's Order events (`Order ...`) is a **purchase** (completed when its
  stage is act, else a purchase without signal, like a refund); `Product Reviewed` (stage
  `review`) a **review** whose rating decides (the share rules); any other name mapped to
  advocate a **share**; everything else a **clickstream** event whose action is the event name
  (the rules map it to its stage; names not in the table count as contact, aware).
- `identify` with both ids, and `alias` (`previousId` → `userId`, the previous id taken as an
  anonymous id: two customers are never merged) → an `identify` event: a link. An `identify`
  with one id, and `group`, carry nothing for a journey: `Ignored`.
- channel from `context.campaign.medium` (utm_medium), normalised by `SegmentMapping.mediums`;
  any other medium passes through lowercased; no medium but a `context.page.referrer` on
  another host → `referral`; nothing → `direct`. Campaign from `context.campaign.name`;
  referrer (an advocate's customer id) from `properties.referrer_id`.
- brand: the topic's (`JOURNEY_SEGMENT_BRAND`), or `properties.brand` when the rules say
  `brand = "property"` (a marketplace tracking each brand's path).

Anything that is not a usable message is a `Rejection` with a reason, as on the other topics;
unknown fields are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import ValidationError

from schemas.events import ClickstreamEvent, IdentifyEvent, PurchaseEvent, ShareEvent
from schemas.rejections import Rejection, classify

PAGE_ACTIONS = {"page": "Page Viewed", "screen": "Screen Viewed"}
CALLS = ("track", "page", "screen", "identify", "alias", "group")


@dataclass(frozen=True)
class SegmentMapping:
    """The Segment table of the rules (stage labels as strings: this module knows no stages)."""

    events: Mapping[str, str] = field(default_factory=dict)  # track name -> stage label, or "review"
    mediums: Mapping[str, str] = field(default_factory=dict)  # utm_medium -> channel
    brand: str = "topic"  # "topic" or "property"


@dataclass(frozen=True)
class Ignored:
    """A valid Segment message that carries nothing for a journey (counted, not dead-lettered)."""

    reason: str


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def channel_of(context: Mapping[str, Any], mediums: Mapping[str, str]) -> str:
    campaign = context.get("campaign") if isinstance(context.get("campaign"), Mapping) else {}
    medium = _text(campaign.get("medium"))
    if medium:
        medium = medium.strip().lower()
        return mediums.get(medium, medium)
    page = context.get("page") if isinstance(context.get("page"), Mapping) else {}
    referrer = _text(page.get("referrer"))
    if referrer:
        own = urlsplit(_text(page.get("url")) or "").hostname
        other = urlsplit(referrer).hostname
        if other and other != own:
            return "referral"
    return "direct"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def translate(doc: Any, mapping: SegmentMapping, brand: str) -> dict[str, Any] | Rejection | Ignored:
    """A parsed Segment message as the fields of one of our events (validated by the caller)."""
    if not isinstance(doc, Mapping):
        return Rejection("invalid_json", "the JSON document is not an object (a Segment message)")
    call = doc.get("type")
    if not isinstance(call, str):
        return Rejection("missing_type", "missing `type` (a Segment call: track, page, screen, identify or alias)")
    if call not in CALLS:
        return Rejection("unknown_type", f"unknown Segment call type {call!r} (expected track, page, screen, "
                                         "identify or alias)")
    if call == "group":
        return Ignored("group call")
    properties = doc.get("properties") if isinstance(doc.get("properties"), Mapping) else {}
    context = doc.get("context") if isinstance(doc.get("context"), Mapping) else {}
    common: dict[str, Any] = {
        "schema_version": 1,
        "event_id": doc.get("messageId"),
        "occurred_at": doc.get("timestamp") or doc.get("originalTimestamp"),
        "brand": (_text(properties.get("brand")) if mapping.brand == "property" else None) or brand,
    }
    if common["event_id"] is None:
        return Rejection("invalid_fields", "messageId: Field required")
    if common["occurred_at"] is None:
        return Rejection("invalid_fields", "timestamp: Field required (or originalTimestamp)")
    user, anonymous = doc.get("userId"), doc.get("anonymousId")
    if call in ("identify", "alias"):
        if call == "alias":
            anonymous = doc.get("previousId")
            if anonymous is None or user is None:
                return Rejection("invalid_fields", "alias: needs previousId and userId")
        elif user is None or anonymous is None:
            return Ignored("identify with one id (traits only: no link)")
        return {**common, "type": "identify", "customer_id": user, "anonymous_id": anonymous}
    ids = {key: value for key, value in (("customer_id", user), ("anonymous_id", anonymous)) if value is not None}
    if not ids:
        return Rejection("invalid_fields", "a Segment message needs userId, anonymousId or both")
    base = {**common, **ids, "channel": channel_of(context, mapping.mediums)}
    if call in PAGE_ACTIONS:
        return {**base, **_click_extras(context, properties), "type": "clickstream", "action": PAGE_ACTIONS[call]}
    name = doc.get("event")
    if not isinstance(name, str) or not name:
        return Rejection("invalid_fields", "event: a track call needs the event name")
    stage = mapping.events.get(name)
    if name.startswith("Order "):
        return {**base, "type": "purchase", "status": "completed" if stage == "act" else "refunded",
                "order_id": str(properties.get("order_id") or doc.get("messageId")),
                "amount": _number(properties.get("revenue", properties.get("total"))) or 0.0,
                "currency": (_text(properties.get("currency")) or "USD").upper()}
    if stage == "review":
        rating = properties.get("rating")
        return {**base, "type": "share", "kind": "review",
                "rating": rating if isinstance(rating, int) and not isinstance(rating, bool) and 1 <= rating <= 5
                else None, "product_id": _text(properties.get("product_id"))}
    if stage == "advocate":
        return {**base, "type": "share", "kind": "share", "network": _text(properties.get("share_via")),
                "product_id": _text(properties.get("product_id"))}
    return {**base, **_click_extras(context, properties), "type": "clickstream", "action": name}


def _click_extras(context: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    campaign = context.get("campaign") if isinstance(context.get("campaign"), Mapping) else {}
    page = context.get("page") if isinstance(context.get("page"), Mapping) else {}
    extras = {"campaign": _text(campaign.get("name")), "referrer_id": _text(properties.get("referrer_id")),
              "product_id": _text(properties.get("product_id")), "url": _text(page.get("url"))}
    return {key: value for key, value in extras.items() if value is not None}


_MODELS = {"clickstream": ClickstreamEvent, "purchase": PurchaseEvent, "share": ShareEvent, "identify": IdentifyEvent}


def decode_segment(raw: bytes | None, max_bytes: int, mapping: SegmentMapping, brand: str = "default"
                   ) -> ClickstreamEvent | PurchaseEvent | ShareEvent | IdentifyEvent | Rejection | Ignored:
    """One record value of the Segment topic; never raises for bad input."""
    if raw is None:
        return Rejection("invalid_json", "empty record value (tombstone)")
    if len(raw) > max_bytes:
        return Rejection("too_large", f"payload is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", f"not a JSON document: {exc}")
    fields = translate(doc, mapping, brand)
    if not isinstance(fields, dict):
        return fields
    try:
        return _MODELS[fields["type"]].model_validate_json(orjson.dumps(fields))
    except ValidationError as exc:
        rejection = classify(exc)
        return Rejection(rejection.code, "Segment message: " + rejection.reason)
