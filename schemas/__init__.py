"""Wire contracts: pydantic v2 models for the input events and the transition record."""

from schemas.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    SCHEMA_VERSION,
    ClickstreamEvent,
    Event,
    PurchaseEvent,
    ShareEvent,
    parse_event,
)
from schemas.transition import STAGES, Transition

AnyEvent = ClickstreamEvent | PurchaseEvent | ShareEvent

__all__ = [
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "STAGES",
    "AnyEvent",
    "ClickstreamEvent",
    "Event",
    "PurchaseEvent",
    "ShareEvent",
    "Transition",
    "parse_event",
]
