"""Wire contracts: pydantic v2 models for the input events and the transition record."""

from schemas.events import (
    ANONYMOUS_PREFIX,
    EVENT_ADAPTER,
    EVENT_TYPES,
    SCHEMA_VERSION,
    ClickstreamEvent,
    Event,
    IdentifyEvent,
    PurchaseEvent,
    ShareEvent,
    parse_event,
)
from schemas.transition import STAGES, Transition

AnyEvent = ClickstreamEvent | PurchaseEvent | ShareEvent | IdentifyEvent
#: Events that are contacts (they move a journey); an IdentifyEvent is a link only.
ContactEvent = ClickstreamEvent | PurchaseEvent | ShareEvent

__all__ = [
    "ANONYMOUS_PREFIX",
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "STAGES",
    "AnyEvent",
    "ClickstreamEvent",
    "ContactEvent",
    "Event",
    "IdentifyEvent",
    "PurchaseEvent",
    "ShareEvent",
    "Transition",
    "parse_event",
]
