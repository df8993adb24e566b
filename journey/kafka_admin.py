"""Topic checks and creation with kafka-python, with errors that name the fix."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from journey.errors import JourneyError, kafka_unreachable

PLAINTEXT: Mapping[str, Any] = {"security_protocol": "PLAINTEXT"}


def _admin(brokers: list[str], timeout_s: float, security: Mapping[str, Any]) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            **security,
            bootstrap_servers=brokers,
            client_id="journey-admin",
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
    except (KafkaError, OSError):
        raise kafka_unreachable(",".join(brokers), security) from None


def partition_counts(
    brokers: list[str], timeout_s: float = 10.0, security: Mapping[str, Any] = PLAINTEXT
) -> dict[str, int]:
    """Topic -> partition count, for every topic the cluster has."""
    try:
        consumer = KafkaConsumer(**security, bootstrap_servers=brokers, bootstrap_timeout_ms=int(timeout_s * 1000))
    except (KafkaError, OSError):
        raise kafka_unreachable(",".join(brokers), security) from None
    try:
        return {topic: len(consumer.partitions_for_topic(topic) or ()) for topic in consumer.topics()}
    finally:
        consumer.close()


def create_topics(
    brokers: list[str],
    topics: Mapping[str, int],
    timeout_s: float = 30.0,
    security: Mapping[str, Any] = PLAINTEXT,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Create missing topics with their partition counts (and topic configs); returns the names created."""
    existing = partition_counts(brokers, security=security)
    missing = {name: n for name, n in topics.items() if name not in existing}
    if missing:
        admin = _admin(brokers, timeout_s, security)
        try:
            for name, partitions in missing.items():
                try:
                    admin.create_topics([NewTopic(
                        name, num_partitions=partitions, replication_factor=1,
                        topic_configs=dict((configs or {}).get(name, {})),
                    )])
                except TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()
        deadline = time.monotonic() + timeout_s
        while True:
            existing = partition_counts(brokers, security=security)
            if all(existing.get(name) == n for name, n in missing.items()):
                break
            if time.monotonic() > deadline:
                raise JourneyError(f"topics {sorted(missing)} did not appear on {','.join(brokers)} in time")
            time.sleep(0.2)
    mismatched = {n: existing[n] for n in topics if n in existing and existing[n] != topics[n]}
    if mismatched:
        details = ", ".join(f"{name} has {count}" for name, count in mismatched.items())
        raise JourneyError(
            f"topics exist with other partition counts ({details}); journey topics must all have "
            f"{next(iter(topics.values()))} partitions — set JOURNEY_PARTITIONS to match"
        )
    return sorted(missing)
