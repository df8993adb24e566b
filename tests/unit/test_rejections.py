"""Raw bytes -> event or a rejection (reason code + readable reason), and the dead-letter record."""

from __future__ import annotations

import pytest

from schemas import ClickstreamEvent
from schemas.rejections import REASONS, Rejection, decode
from streams.deadletter import DLQ_MAX_PAYLOAD, dead_letter, header_map
from tests.unit.builders import raw_event

LIMIT = 4096


CASES = [
    # (bytes, code, words the reason must contain, case id)
    (b"x" * (LIMIT + 1), "too_large", ["4097 bytes", "4096"], "too large"),
    (None, "invalid_json", ["tombstone"], "tombstone"),
    (b"", "invalid_json", ["not a JSON document"], "empty"),
    (b"not json", "invalid_json", ["not a JSON document"], "not json"),
    (b'{"type": "clickstream",', "invalid_json", ["not a JSON document"], "truncated json"),
    (b"\xff\xfe{}", "invalid_json", ["not a JSON document"], "invalid utf-8 bytes"),
    (raw_event(customer_id="c\udcff").replace(b"\\udcff", b"\xff"), "invalid_json", ["not a JSON document"], "invalid utf-8 in a string"),
    (b"[1, 2]", "invalid_json", ["not an object"], "array"),
    (b"null", "invalid_json", ["not an object"], "null"),
    (b"42", "invalid_json", ["not an object"], "number"),
    (b'"clickstream"', "invalid_json", ["not an object"], "string"),
    (b"{}", "missing_type", ["type"], "empty object"),
    (raw_event(type=...), "missing_type", ["type"], "no type"),
    (raw_event(type="pageview"), "unknown_type", ["type", "clickstream"], "unknown type"),
    (raw_event(type=None), "unknown_type", ["type"], "null type"),
    (raw_event(schema_version=2), "unsupported_schema_version", ["schema_version"], "version 2"),
    (raw_event(schema_version=...), "unsupported_schema_version", ["schema_version"], "no version"),
    (raw_event(occurred_at="2024-03-01T12:00:00"), "naive_timestamp", ["occurred_at", "timezone"], "naive"),
    (raw_event(customer_id="a\x00b"), "invalid_fields", ["customer_id", "control characters"], "control char"),
    (raw_event(action=...), "invalid_fields", ["action", "required"], "missing field"),
    (raw_event(occurred_at="yesterday"), "invalid_fields", ["occurred_at"], "bad timestamp"),
    (
        raw_event(type="purchase", action=..., order_id="o", amount=-1, currency="eur", status="done"),
        "invalid_fields",
        ["amount", "currency", "status"],
        "several bad fields",
    ),
]


@pytest.mark.parametrize(("data", "code", "words"), [c[:3] for c in CASES], ids=[c[3] for c in CASES])
def test_decode_rejects_with_a_code_and_a_readable_reason(data, code, words):
    result = decode(data, max_bytes=LIMIT)
    assert isinstance(result, Rejection)
    assert result.code == code
    assert result.code in REASONS
    for word in words:
        assert word in result.reason
    assert result.reason.isprintable()


def test_every_reason_code_is_exercised():
    assert {c[1] for c in CASES} == set(REASONS)


def test_valid_event_decodes():
    event = decode(raw_event(), max_bytes=LIMIT)
    assert isinstance(event, ClickstreamEvent)
    assert event.event_id == "e1"


def test_limit_is_inclusive():
    payload = raw_event()
    assert isinstance(decode(payload, max_bytes=len(payload)), ClickstreamEvent)
    assert decode(payload, max_bytes=len(payload) - 1).code == "too_large"


def test_many_errors_are_summarised():
    payload = raw_event(type="purchase", action=..., event_id="", customer_id="", order_id="", amount=-1, currency="x", status="x")
    result = decode(payload, max_bytes=LIMIT)
    assert result.code == "invalid_fields"
    assert "(+1 more)" in result.reason


# --- dead letters ---------------------------------------------------------------------------------


def test_dead_letter_keeps_the_original_bytes_and_the_context():
    letter = dead_letter(
        key=b"c1", value=b"not json", topic="journey.clickstream", partition=3, offset=42,
        code="invalid_json", reason="not a JSON document: ...",
    )
    assert (letter.key, letter.value) == (b"c1", b"not json")
    assert header_map(letter.headers) == {
        "journey.dlq.reason.code": "invalid_json",
        "journey.dlq.reason": "not a JSON document: ...",
        "journey.dlq.source.topic": "journey.clickstream",
        "journey.dlq.source.partition": "3",
        "journey.dlq.source.offset": "42",
        "journey.dlq.original.size": "8",
        "journey.dlq.truncated": "false",
    }


def test_oversized_dead_letter_is_truncated_and_says_so():
    letter = dead_letter(
        key=None, value=b"x" * (DLQ_MAX_PAYLOAD + 10), topic="t", partition=0, offset=0,
        code="too_large", reason="big",
    )
    headers = header_map(letter.headers)
    assert len(letter.value) == DLQ_MAX_PAYLOAD
    assert headers["journey.dlq.truncated"] == "true"
    assert headers["journey.dlq.original.size"] == str(DLQ_MAX_PAYLOAD + 10)


def test_tombstone_dead_letter_has_an_empty_value():
    letter = dead_letter(key=b"k", value=None, topic="t", partition=0, offset=1, code="invalid_json", reason="x")
    assert letter.value == b""
    assert header_map(None) == {}
