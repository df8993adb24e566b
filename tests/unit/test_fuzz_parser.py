"""The edge parser under random and adversarial input: it never raises, it always decides."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import ClickstreamEvent, PurchaseEvent, ShareEvent
from schemas.rejections import REASONS, Rejection, decode

LIMIT = 65_536
VALID = (ClickstreamEvent, PurchaseEvent, ShareEvent)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
FIELDS = ["type", "schema_version", "event_id", "customer_id", "occurred_at", "action", "amount",
          "currency", "status", "order_id", "kind", "rating", "brand", "channel", "referrer_id"]
GOOD = {"type": "purchase", "schema_version": 1, "event_id": "e1", "customer_id": "c1",
        "occurred_at": "2026-01-01T00:00:00Z", "order_id": "o1", "amount": 10.5, "currency": "EUR",
        "status": "completed"}


def decided(raw: bytes) -> None:
    result = decode(raw, LIMIT)
    if isinstance(result, Rejection):
        assert result.code in REASONS and result.reason
    else:
        assert isinstance(result, VALID)


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes(raw: bytes) -> None:
    decided(raw)


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=len(FIELDS)))
def test_any_json_object_of_event_like_fields(doc: dict) -> None:
    decided(json.dumps(doc, allow_nan=True).encode())


@FUZZ
@given(st.sampled_from(sorted(GOOD)), json_values)
def test_a_valid_event_with_one_field_replaced(field: str, value: object) -> None:
    decided(json.dumps({**GOOD, field: value}, allow_nan=True).encode())


@FUZZ
@given(st.text(min_size=1, max_size=300))
def test_ids_with_any_characters(identifier: str) -> None:
    result = decode(json.dumps({**GOOD, "customer_id": identifier}).encode(), LIMIT)
    has_control = any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in identifier)
    if has_control or len(identifier) > 200:
        assert isinstance(result, Rejection)
    else:
        assert isinstance(result, PurchaseEvent) and result.customer_id == identifier


def test_deep_nesting_and_huge_strings_are_refused_not_crashed() -> None:
    decided(b"[" * 100_000 + b"]" * 100_000)
    decided(json.dumps({**GOOD, "order_id": "x" * 10_000_000}).encode())
    decided(b'{"type": "purchase", "event_id": "\xff\xfe"}')
