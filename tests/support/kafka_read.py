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


def largest_record(bootstrap: str, topics: list[str], partitions: int) -> tuple[int, str]:
    """(bytes, topic) of the largest record (key + value + headers) in the topics, read to their end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024)
    tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    largest = (0, "")
    try:
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for r in records:
                    size = len(r.key or b"") + len(r.value or b"") + sum(len(k) + len(v) for k, v in r.headers or [])
                    largest = max(largest, (size, tp.topic))
    finally:
        consumer.close()
    return largest
