"""Dead-letter records: the original bytes plus where they came from and why they were refused.

Headers follow the Kafka Connect DLQ convention (context in headers, payload untouched), so
standard tooling can inspect and replay them. A payload larger than the dead-letter limit is
truncated, and the header `journey.dlq.truncated` says so with the original size.
"""

from __future__ import annotations

from dataclasses import dataclass

DLQ_MAX_PAYLOAD = 512 * 1024  # stays well under Kafka's default 1 MiB message limit


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def dead_letter(
    *,
    key: bytes | None,
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    code: str,
    reason: str,
) -> DeadLetter:
    payload = value or b""
    truncated = len(payload) > DLQ_MAX_PAYLOAD
    headers = [
        ("journey.dlq.reason.code", code.encode()),
        ("journey.dlq.reason", reason.encode("utf-8", "replace")[:2000]),
        ("journey.dlq.source.topic", topic.encode()),
        ("journey.dlq.source.partition", str(partition).encode()),
        ("journey.dlq.source.offset", str(offset).encode()),
        ("journey.dlq.original.size", str(len(payload)).encode()),
        ("journey.dlq.truncated", b"true" if truncated else b"false"),
    ]
    return DeadLetter(key, payload[:DLQ_MAX_PAYLOAD], headers)


def header_map(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """Readable view of a dead letter's headers (for tools and tests)."""
    return {k: v.decode("utf-8", "replace") for k, v in headers or []}
