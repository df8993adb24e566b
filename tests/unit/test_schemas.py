"""Wire contracts (DESIGN.md §2-§3): event validation at the edge and the transition record."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from schemas import ClickstreamEvent, PurchaseEvent, ShareEvent, Transition, parse_event
from schemas.rejections import decode
from schemas.jsonschema_export import SCHEMA_DIR, rendered_schemas
from sinks.clickhouse.tables import TRANSITION_COLUMNS
from tests.unit.builders import raw_event


PURCHASE = {"type": "purchase", "order_id": "o1", "amount": 9.5, "currency": "EUR", "status": "completed"}
SHARE = {"type": "share", "kind": "review", "rating": 4}


@pytest.mark.parametrize(
    ("fields", "model"),
    [({}, ClickstreamEvent), ({**PURCHASE, "action": ...}, PurchaseEvent), ({**SHARE, "action": ...}, ShareEvent)],
    ids=["clickstream", "purchase", "share"],
)
def test_type_selects_the_model(fields, model):
    event = parse_event(raw_event(**fields))
    assert type(event) is model
    assert event.brand == "default"
    assert event.channel is None


@pytest.mark.parametrize("stamp", ["2024-03-01T12:00:00", "2024-03-01 12:00:00", "2024-03-01T12:00:00.123456"])
def test_naive_timestamps_are_rejected(stamp):
    with pytest.raises(ValidationError) as info:
        parse_event(raw_event(occurred_at=stamp))
    assert {e["type"] for e in info.value.errors()} == {"timezone_aware"}


@pytest.mark.parametrize(
    ("stamp", "utc"),
    [
        ("2024-03-01T14:00:00+02:00", datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)),
        ("2024-03-01T07:30:00-04:30", datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)),
        ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)),
        ("2024-03-01T00:30:00.000250+01:00", datetime(2024, 2, 29, 23, 30, 0, 250, tzinfo=timezone.utc)),
    ],
)
def test_offsets_are_normalised_to_utc(stamp, utc):
    event = parse_event(raw_event(occurred_at=stamp))
    assert event.occurred_at == utc
    assert event.occurred_at.utcoffset().total_seconds() == 0
    assert event.occurred_at.tzinfo == timezone.utc


def test_unknown_extra_fields_are_ignored():
    event = parse_event(raw_event(new_field="x", nested={"a": 1}))
    assert "new_field" not in event.model_dump()
    assert not hasattr(event, "new_field")


@pytest.mark.parametrize("field", ["event_id", "customer_id", "brand", "session_id", "referrer_id", "channel"])
@pytest.mark.parametrize("char", ["\x00", "\n", "\x1f", "\x7f"], ids=["nul", "newline", "unit_sep", "del"])
def test_control_characters_in_ids_are_rejected(field, char):
    rejection = decode(raw_event(**{field: f"abc{char}def"}), 65_536)
    assert rejection.code == "invalid_fields"
    assert rejection.reason == f"{field}: must not contain control characters"


@pytest.mark.parametrize("field", ["event_id", "customer_id"])
def test_ids_are_required_and_non_empty(field):
    with pytest.raises(ValidationError):
        parse_event(raw_event(**{field: ""}))
    with pytest.raises(ValidationError):
        parse_event(raw_event(**{field: ...}))


def test_unicode_ids_are_fine():
    assert parse_event(raw_event(customer_id="Zoë-李")).customer_id == "Zoë-李"


@pytest.mark.parametrize("rating", [0, 6, 4.5])
def test_review_rating_is_1_to_5(rating):
    with pytest.raises(ValidationError):
        parse_event(raw_event(**{**SHARE, "action": ..., "rating": rating}))


@pytest.mark.parametrize(
    "bad",
    [{"status": "pending"}, {"currency": "eur"}, {"amount": -1}, {"amount": "NaN"}],
    ids=["status", "currency", "negative", "nan"],
)
def test_purchase_fields_are_checked(bad):
    with pytest.raises(ValidationError):
        parse_event(raw_event(**{**PURCHASE, "action": ..., **bad}))


def test_events_are_frozen():
    event = parse_event(raw_event())
    with pytest.raises(ValidationError):
        event.customer_id = "other"  # type: ignore[misc]


# --- the transition record (§3) -----------------------------------------------------------------

SECTION_3_FIELDS = [
    "brand", "customer_id", "seq", "from_stage", "to_stage", "kind", "occurred_at",
    "trigger_event_id", "trigger_event_type", "channel", "influence", "referrer_id", "dwell_ms",
    "campaign", "retracted",  # the analysts' breakdowns (§3) and corrections (§1b)
]


def transition(**overrides) -> dict:
    record = {
        "brand": "default", "customer_id": "c1", "seq": 1, "from_stage": "none", "to_stage": "aware",
        "kind": "forward", "occurred_at": "2024-03-01T12:00:00Z", "trigger_event_id": "e1",
        "trigger_event_type": "clickstream", "channel": None, "influence": "own",
        "referrer_id": None, "dwell_ms": None, "campaign": None, "retracted": False,
    }
    return {**record, **overrides}


def test_transition_has_exactly_the_section_3_fields():
    assert list(Transition.model_fields) == SECTION_3_FIELDS
    assert list(TRANSITION_COLUMNS) == SECTION_3_FIELDS
    assert set(json.loads(Transition.model_validate(transition()).model_dump_json())) == set(SECTION_3_FIELDS)


def test_transition_json_round_trip_uses_lowercase_stages_and_nulls():
    record = Transition.model_validate(transition())
    as_json = json.loads(record.model_dump_json())
    assert as_json["from_stage"] == "none" and as_json["dwell_ms"] is None and as_json["referrer_id"] is None
    assert Transition.model_validate_json(record.model_dump_json()) == record
    assert record.key == ("default", "c1", 1)


@pytest.mark.parametrize(
    "bad",
    [
        {"seq": 0},
        {"to_stage": "Aware"},
        {"kind": "back"},
        {"influence": "peer"},
        {"dwell_ms": -1},
        {"occurred_at": "2024-03-01T12:00:00"},
        {"extra": 1},
    ],
    ids=["seq", "stage", "kind", "influence", "dwell", "naive", "extra"],
)
def test_transition_rejects_bad_records(bad):
    with pytest.raises(ValidationError):
        Transition.model_validate(transition(**bad))


# --- JSON Schema drift ------------------------------------------------------------------------------


def test_committed_json_schemas_match_the_models():
    rendered = rendered_schemas()
    committed = {path.name: path.read_text() for path in SCHEMA_DIR.glob("*.json")}
    assert committed == rendered, (
        "schemas/jsonschema/ is out of date with the pydantic models: "
        "run `python -m schemas.jsonschema_export` and commit the result"
    )


def test_a_trusted_transition_is_the_validated_one() -> None:
    from datetime import datetime, timezone

    from schemas import Transition

    values = dict(brand="b", customer_id="c", seq=2, from_stage="aware", to_stage="act", kind="skip",
                  occurred_at=datetime(2026, 1, 1, tzinfo=timezone.utc), trigger_event_id="e",
                  trigger_event_type="purchase", channel=None, influence="own", referrer_id=None, dwell_ms=5,
                  campaign=None, retracted=False)
    trusted, validated = Transition.trusted(**values), Transition(**values)
    assert trusted == validated and hash(trusted) == hash(validated)
    assert trusted.model_dump_json() == validated.model_dump_json()
    assert trusted.model_fields_set == validated.model_fields_set
