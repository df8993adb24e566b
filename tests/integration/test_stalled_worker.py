"""A worker frozen past its session timeout, then resumed, cannot fork a customer's history (issue 11).

Two workers share the partitions. One is frozen (SIGSTOP) while it has a batch in flight — the
test waits for its metrics to count a batch's transitions, which it does right after handing
them to its producer, then stops it at once — for longer than its session timeout, so the
other takes its partitions over. Events keep arriving while it is frozen; when it resumes
(SIGCONT) it goes on with what it had fetched before it learns that it left the group, and its
writes land after the new owner's. Then the other worker is frozen in turn. Every run ends
equal to `journey replay`; the fencing counters say what was dropped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from journey.generate import generate, to_jsonl
from journey.local import free_port
from tests.integration.test_faults import TANSU_EXACT_OFFSETS
from tests.support.pipeline import Pipeline, metric, wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 4
SESSION_TIMEOUT_S = 8  # tests/support/pipeline.py


class Worker:
    """One worker of the pair: a fixed metrics port and state directory across restarts."""

    def __init__(self, pipeline: Pipeline, name: str, store: str) -> None:
        self.pipeline, self.name, self.store = pipeline, name, store
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.fenced_partitions = 0.0

    def start(self) -> "Worker":
        self.proc = self.pipeline.spawn_worker(
            self.port, **TANSU_EXACT_OFFSETS, JOURNEY_STATE_STORE=self.store,
            JOURNEY_STATE_DIR=str(self.pipeline.workdir / f"state-{self.name}"))
        self.pipeline.workers.append(self.proc)
        return self

    def assigned(self) -> int:
        return int(metric(self.port, "journey_assigned_partitions"))

    def batches(self) -> float:
        return metric(self.port, "journey_path_batch_records_count")

    def transitions(self) -> float:
        return metric(self.port, "journey_transitions_total")

    def kill(self) -> None:
        assert self.proc is not None
        self.fenced_partitions += metric(self.port, "journey_fenced_partitions_total")
        self.pipeline.kill_worker(self.proc)
        self.proc = None

    def freeze_while_sending(self, trigger: Path | None, produce_meanwhile: Path, other: "Worker") -> None:
        """Produce `trigger` (if given), freeze once this worker sends transitions, produce `produce_meanwhile`."""
        assert self.proc is not None
        before = self.transitions()
        if trigger is not None:
            self.pipeline.journey("produce", str(trigger))
        wait_until(lambda: self.transitions() > before, 120, f"worker {self.name} sending a batch", interval=0.01)
        os.kill(self.proc.pid, signal.SIGSTOP)
        try:
            # The other worker takes every partition over, and events keep coming.
            wait_until(lambda: other.assigned() == PARTITIONS, SESSION_TIMEOUT_S * 10,
                       f"worker {other.name} owning every partition while {self.name} is frozen")
            progressed = other.batches()
            self.pipeline.journey("produce", str(produce_meanwhile))
            wait_until(lambda: other.batches() > progressed, 120, f"worker {other.name} working on them")
        finally:
            os.kill(self.proc.pid, signal.SIGCONT)
        # Awake: it finds out it left the group, rejoins, and gets partitions again.
        wait_until(lambda: self.assigned() > 0 and other.assigned() > 0
                   and self.assigned() + other.assigned() == PARTITIONS, 180, "partitions shared again")


def slices(path: Path, customers: int, seed: int, shares: tuple[float, ...]) -> list[Path]:
    """The generated events in consecutive files of these shares (each partition's order kept across them)."""
    lines = [to_jsonl(e) for e in generate(customers, seed=seed)]
    path.write_bytes(b"".join(lines))
    files, start = [], 0
    for i, share in enumerate(shares):
        end = len(lines) if i == len(shares) - 1 else start + int(len(lines) * share)
        part = path.with_suffix(f".{i}.jsonl")
        part.write_bytes(b"".join(lines[start:end]))
        files.append(part)
        start = end
    return files


@pytest.mark.parametrize(("store", "kills"), [("memory", False), ("memory", True), ("rocksdb", True)])
def test_a_worker_stalled_past_its_session_cannot_fork_history(broker, clickhouse, tmp_path: Path,
                                                               store: str, kills: bool) -> None:
    pipeline = Pipeline(broker, clickhouse, tmp_path, partitions=PARTITIONS)
    pipeline.setup()
    events = tmp_path / "events.jsonl"
    # A large first slice: each worker's first batch is big, so its output is still in flight when frozen.
    first, during_a, trigger_b, during_b, last = slices(events, 1600, seed=111,
                                                       shares=(0.4, 0.15, 0.2, 0.1, 0.15))
    a, b = Worker(pipeline, "a", store).start(), Worker(pipeline, "b", store).start()
    try:
        wait_until(lambda: a.assigned() > 0 and b.assigned() > 0, 180, "both workers own partitions")

        a.freeze_while_sending(first, during_a, other=b)
        if kills:
            b.kill()  # kill -9 right after the fail-back: b's partitions go to a, then come back
            b.start()
            wait_until(lambda: a.assigned() > 0 and b.assigned() > 0, 180, "b back")

        b.freeze_while_sending(trigger_b, during_b, other=a)
        if kills:
            a.kill()
            a.start()
        pipeline.journey("produce", str(last))
        pipeline.assert_equals_replay(events)
    finally:
        fenced = {w.name: w.fenced_partitions + metric(w.port, "journey_fenced_partitions_total") for w in (a, b)}
        dropped = {w.name: metric(w.port, "journey_fenced_records_total") for w in (a, b)}
        print(f"partitions found fenced: {fenced}; stale records dropped by the live workers: {dropped}")
        pipeline.stop_workers()


def test_a_frozen_owners_late_rows_never_enter_a_reconciliation(broker, clickhouse, tmp_path: Path) -> None:
    """The log a frozen owner and its successor leave, written record by record, then read by a new owner.

    Owner 1 published a customer's row; owner 2 fenced the partition; owner 1, waking, got a
    retraction of that row in after owner 2's fence (stale: the sink drops it); owner 2 then
    wrote a state whose batch began publishing right at that retraction. A third owner
    reconciles from there: it must judge the retraction stale as the sink did — with the epoch
    of the state record that named the offset — and not publish the row again (a second live
    copy of it in ClickHouse).
    """
    from kafka import KafkaProducer

    from streams.fencing import FENCE_KEY, fence_headers, next_epoch, read_stamp, stamp
    from streams.path_service import changelog_topic
    from streams.state_store import outputs_from_header
    from journey.settings import Settings
    from tests.support.kafka_read import read_topics

    pipeline = Pipeline(broker, clickhouse, tmp_path, partitions=1)
    pipeline.setup()
    lines = [to_jsonl(e) for e in generate(30, seed=113)]
    before, after = tmp_path / "before.jsonl", tmp_path / "events.jsonl"
    later = {json.loads(line)["customer_id"] for line in lines[-5:]}  # customers kept for after the takeovers
    before.write_bytes(b"".join(line for line in lines if json.loads(line)["customer_id"] not in later))
    after.write_bytes(b"".join(lines))
    try:
        pipeline.journey("produce", str(before))
        pipeline.start_worker()
        expected = pipeline.assert_equals_replay(before)
        pipeline.stop_workers()  # a clean stop: every state recorded, every offset committed
        pipeline.workers.clear()

        changelog = changelog_topic(Settings(group_id=f"{pipeline.name}-group"))
        transitions = pipeline.topic("transitions")
        records = read_topics(broker.address, [transitions, changelog], 1, len(expected) + 2)
        row = next(r for r in records if r.topic == transitions and r.value)  # owner 1's first row
        customer = json.loads(row.value)["customer_id"]
        state = [r for r in records if r.topic == changelog and r.key and customer.encode() in r.key][-1]
        first = read_stamp(row.headers).epoch
        second = next_epoch(first, 0)

        producer = KafkaProducer(bootstrap_servers=broker.address, enable_idempotence=False, acks="all")
        try:
            for topic in (changelog, transitions):  # owner 2 takes the partition over
                producer.send(topic, key=FENCE_KEY, value=b"", partition=0, headers=fence_headers(second)).get(30)
            retraction = {**json.loads(row.value), "retracted": True}  # owner 1 wakes up: lands after the fence
            late = producer.send(transitions, key=row.key, value=json.dumps(retraction).encode(), partition=0,
                                 headers=stamp(first)).get(30)
            # Owner 2 records a batch that began publishing right there (the state itself unchanged).
            producer.send(changelog, key=state.key, value=state.value, partition=0,
                          headers=[*stamp(second), outputs_from_header(late.offset)]).get(30)
        finally:
            producer.close()

        pipeline.start_worker()  # owner 3; its fixes, if any, land before the rows of the events below
        later_file = tmp_path / "later.jsonl"
        later_file.write_bytes(b"".join(line for line in lines if json.loads(line)["customer_id"] in later))
        pipeline.journey("produce", str(later_file))
        pipeline.assert_equals_replay(after, timeout=120)
    finally:
        pipeline.stop_workers()
