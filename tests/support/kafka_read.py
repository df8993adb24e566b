"""Read every record of some topics from the beginning (no group), bounded by a deadline."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition


def read_topics(bootstrap: str, topics: list[str], partitions: int, expected: int, timeout: float = 60) -> list:
    """Polls until `expected` records arrived (or the deadline), then once more to catch extras."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024)
    assigned = [TopicPartition(t, p) for t in topics for p in range(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        records.extend(r for batch in consumer.poll(timeout_ms=500).values() for r in batch)
    finally:
        consumer.close()
    return records
