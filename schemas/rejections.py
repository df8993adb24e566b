"""Raw bytes -> a valid event, or a rejection with a reason code and a readable reason.

Shared by the stream (dead letters) and `journey replay` (stderr), so both refuse alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from schemas import AnyEvent, parse_event
from schemas.events import PRINTABLE

# Reason codes are metric label values: a small fixed set.
REASONS = (
    "too_large",
    "invalid_json",
    "missing_type",
    "unknown_type",
    "unsupported_schema_version",
    "naive_timestamp",
    "invalid_fields",
)


@dataclass(frozen=True, slots=True)
class Rejection:
    code: str
    reason: str


def _describe(error: dict) -> str:
    if error["type"] == "value_error" and len(error["loc"]) <= 1:  # a rule over the whole event
        return error["msg"].removeprefix("Value error, ")
    where = ".".join(str(part) for part in error["loc"][1:] or error["loc"]) or "document"
    if error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == PRINTABLE:
        return f"{where}: must not contain control characters"
    return f"{where}: {error['msg']}"


def classify(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False, include_input=False)
    kinds = {e["type"] for e in errors}
    if "json_invalid" in kinds or "json_type" in kinds:
        return Rejection("invalid_json", f"not a JSON document: {errors[0]['msg']}")
    if "union_tag_not_found" in kinds:
        return Rejection("missing_type", "missing `type` (expected clickstream, purchase, share or identify)")
    if "union_tag_invalid" in kinds:
        return Rejection("unknown_type", "unknown `type` (expected clickstream, purchase, share or identify)")
    if kinds & {"model_attributes_type", "model_type", "dict_type"}:
        return Rejection("invalid_json", "the JSON document is not an object")
    if any(e["loc"][-1] == "schema_version" for e in errors):
        return Rejection("unsupported_schema_version", "schema_version is missing or not 1 (the only version this worker reads)")
    if "timezone_aware" in kinds:
        return Rejection("naive_timestamp", "occurred_at has no timezone (use RFC 3339 with Z or an offset)")
    detail = "; ".join(_describe(e) for e in errors[:5])
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return Rejection("invalid_fields", detail + more)


def decode(raw: bytes | None, max_bytes: int) -> AnyEvent | Rejection:
    """Validate one record value; never raises for bad input."""
    if raw is None:
        return Rejection("invalid_json", "empty record value (tombstone)")
    if len(raw) > max_bytes:
        return Rejection("too_large", f"payload is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        return parse_event(raw)
    except ValidationError as exc:
        return classify(exc)
