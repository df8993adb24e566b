"""Dead-letter records: the original bytes plus where they came from and why they were refused.

Headers follow the Kafka Connect DLQ convention (context in headers, payload untouched), so
standard tooling can inspect and replay them. A payload larger than the dead-letter limit is
truncated, and the header `journey.dlq.truncated` says so with the original size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.rejections import Rejection

if TYPE_CHECKING:
    from journey.metrics import JourneyMetrics
    from streams.kafka_io import Outbox

log = logging.getLogger("journey.deadletter")

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


def quarantine(out: "Outbox", topic: str, metrics: "JourneyMetrics", record: Any, rejection: Rejection) -> None:
    """Queue one consumed record for the dead-letter topic (same partition), count and log it."""
    letter = dead_letter(
        key=record.key, value=record.value, topic=record.topic, partition=record.partition,
        offset=record.offset, code=rejection.code, reason=rejection.reason,
    )
    out.add(topic, record.partition, letter.key, letter.value, headers=letter.headers)
    metrics.deadletters.labels(rejection.code).inc()
    log.warning("dead letter %s[%d]@%d: %s (%s)", record.topic, record.partition, record.offset,
                rejection.reason, rejection.code)
