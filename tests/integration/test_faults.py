"""What production does to a stream job, survived: each run ends equal to `journey replay`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from journey.generate import generate, to_jsonl
from tests.support.pipeline import Pipeline, metric, normalise, scrape, wait_until

pytestmark = pytest.mark.integration

# Tansu answers "latest offset" a few records short when producers batch; a worker then stops
# its changelog recovery early and forgets state (DESIGN.md §5). One record per produce request
# makes the end offsets exact: a test-broker setting, not a production one.
TANSU_EXACT_OFFSETS = {"JOURNEY_PRODUCER_MAX_BATCH_SIZE": "1"}


def write_events(path: Path, customers: int, seed: int) -> Path:
    path.write_bytes(b"".join(to_jsonl(e) for e in generate(customers, seed=seed)))
    return path


@pytest.mark.parametrize("pipeline", ["server"], indirect=True)
def test_worker_killed_repeatedly_ends_equal_to_replay(pipeline: Pipeline, tmp_path: Path) -> None:
    events = write_events(tmp_path / "events.jsonl", 800, seed=31)
    expected = len(pipeline.replay(events))
    pipeline.journey("produce", str(events))
    rng = random.Random(7)
    for kill in range(3):
        worker, _ = pipeline.start_worker(**TANSU_EXACT_OFFSETS)
        # Kill at a random point of the stream: after some but not all transitions are stored.
        target = int(expected * (kill + 1) / 4 + rng.randint(0, expected // 8))
        wait_until(lambda: pipeline.stored_count() >= target or worker.poll() is not None, 240,
                   f"{target} rows before kill #{kill + 1}")
        pipeline.kill_worker(worker)
    pipeline.start_worker(**TANSU_EXACT_OFFSETS)
    pipeline.assert_equals_replay(events)


@pytest.mark.parametrize("pipeline", ["server"], indirect=True)
def test_duplicates_and_disorder_have_defined_results(pipeline: Pipeline, tmp_path: Path) -> None:
    """Every event delivered twice (producer retries) and each customer's events shuffled
    within a topic: duplicates are ignored, dwell times never negative, late arrivals counted."""
    lines = [to_jsonl(e) for e in generate(200, seed=41)]
    rng = random.Random(3)
    delivered = lines + rng.sample(lines, len(lines))  # everything twice, second copy shuffled
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(delivered))
    pipeline.journey("produce", str(events))
    _, port = pipeline.start_worker()
    expected = pipeline.replay(events)  # replay ignores the repeated ids as well
    pipeline.wait_for_rows(len(expected), timeout=240)
    wait_until(lambda: scrape(port).get("journey_events_duplicate_total", 0) >= len(lines), 60,
               "every second copy counted as a duplicate")
    stored = pipeline.stored_transitions()
    assert all(row["dwell_ms"] is None or row["dwell_ms"] >= 0 for row in stored)
    # The first copies arrive in time order, so the result is exactly the replay's.
    precision = pipeline.precision_us()
    assert normalise(stored, precision) == normalise(expected, precision)


def test_clickhouse_outage_is_retried_and_nothing_is_lost(broker, tmp_path: Path) -> None:
    from journey.local import start_clickhouse

    clickhouse = start_clickhouse(tmp_path / "clickhouse")
    pipeline = Pipeline(broker, clickhouse, tmp_path)
    try:
        pipeline.setup()
        events = write_events(tmp_path / "events.jsonl", 600, seed=51)
        expected = len(pipeline.replay(events))
        pipeline.journey("produce", str(events))
        # Small sink batches so the outage hits mid-stream.
        worker, port = pipeline.start_worker(JOURNEY_SINK_BATCH_ROWS="100", JOURNEY_SINK_BATCH_SECONDS="0.2")
        wait_until(lambda: pipeline.stored_count() > 0, 120, "first rows")
        tcp, http = clickhouse.port, clickhouse.ports["http"]
        clickhouse.stop()

        def outage_seen() -> bool:
            metrics = scrape(port)
            return metrics.get("journey_sink_clickhouse_up") == 0 and metrics.get("journey_sink_failures_total", 0) >= 2

        wait_until(outage_seen, 120, "the outage in the metrics")
        assert worker.poll() is None  # still running, retrying with backoff
        log = (tmp_path / f"worker-{pipeline.started}.log").read_text()
        assert "cannot reach ClickHouse" in log and "retrying" in log

        clickhouse = pipeline.clickhouse = start_clickhouse(tmp_path / "clickhouse", tcp_port=tcp, http_port=http)
        pipeline.assert_equals_replay(events)
        assert scrape(port)["journey_sink_clickhouse_up"] == 1
        assert pipeline.stored_count() == expected
    finally:
        pipeline.stop_workers()
        clickhouse.stop()


def test_a_worker_starts_while_clickhouse_is_down(broker, tmp_path: Path) -> None:
    """The path does not need ClickHouse: transitions flow to their topic, rows follow once it is up."""
    from journey.local import start_clickhouse

    clickhouse = start_clickhouse(tmp_path / "clickhouse")
    pipeline = Pipeline(broker, clickhouse, tmp_path)
    try:
        pipeline.setup()
        tcp, http = clickhouse.port, clickhouse.ports["http"]
        clickhouse.stop()
        events = write_events(tmp_path / "events.jsonl", 300, seed=57)
        pipeline.journey("produce", str(events))
        worker, port = pipeline.start_worker()
        transitions = len(pipeline.replay(events))
        wait_until(lambda: metric(port, "journey_transitions_total") >= transitions, 180,
                   "every transition published while ClickHouse is down")
        assert worker.poll() is None
        # Restarted on the same port a moment after it stopped (its old connections in TIME_WAIT).
        clickhouse = pipeline.clickhouse = start_clickhouse(tmp_path / "clickhouse", tcp_port=tcp, http_port=http)
        pipeline.assert_equals_replay(events)
        log = (tmp_path / f"worker-{pipeline.started}.log").read_text()
        assert "starting anyway" in log
    finally:
        pipeline.stop_workers()
        clickhouse.stop()


def test_broker_paused_then_resumed_the_worker_recovers(broker, clickhouse, tmp_path: Path) -> None:
    """SIGSTOP, not a restart: the test broker keeps its data in memory only."""
    pipeline = Pipeline(broker, clickhouse, tmp_path)
    try:
        pipeline.setup()
        events = write_events(tmp_path / "events.jsonl", 600, seed=61)
        pipeline.journey("produce", str(events))
        pipeline.start_worker()
        wait_until(lambda: pipeline.stored_count() > 0, 120, "first rows")
        broker.pause()
        try:
            import time

            time.sleep(12)  # the outage itself, longer than the session timeout (8 s)
        finally:
            broker.resume()
        pipeline.assert_equals_replay(events)
    finally:
        pipeline.stop_workers()


def adversarial_payloads(rng: random.Random, count: int) -> list[bytes]:
    """Records a hostile or broken producer sends; each must be refused with a reason."""
    base = {"type": "purchase", "schema_version": 1, "event_id": "x", "customer_id": "c",
            "occurred_at": "2026-01-02T00:00:00Z", "order_id": "o", "amount": 1.0, "currency": "EUR",
            "status": "completed"}
    makers = [
        lambda: json.dumps({**base, "amount": rng.choice(["ten", None, [], {}, True])}),
        lambda: json.dumps({**base, "amount": -rng.uniform(0.01, 1e6)}),
        lambda: json.dumps({**base, "order_id": "z" * rng.randint(201, 20_000)}),
        lambda: "[" * rng.randint(500, 5_000) + "]" * 10,
        lambda: json.dumps({**base, "occurred_at": rng.choice(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                                                               "2150-01-01T00:00:00Z", "1900-01-01T00:00:00Z"])}),
        lambda: json.dumps({**base, "customer_id": "c\x00" + rng.choice(["\n", "\x1b[2J", "\x07"])}),
        lambda: json.dumps({**base, "type": rng.choice(["Purchase", "", "click", 7])}),
        lambda: json.dumps({**base, "occurred_at": "2026-01-02 00:00:00"}),
        lambda: json.dumps(rng.choice([[], 1, "x", None])),
    ]
    payloads = [rng.choice(makers)().encode() for _ in range(count)]
    payloads += [b'{"type": "share", "event_id": "\xff\xfe\xfd"}'] * 5  # invalid UTF-8
    return payloads


def test_poison_input_at_volume_is_quarantined(pipeline: Pipeline, tmp_path: Path) -> None:
    rng = random.Random(13)
    good = [to_jsonl(e) for e in generate(120, seed=71)]
    # Ids full of SQL are valid ids: accepted, stored verbatim, harmless (values are never SQL).
    sql_ids = [
        json.dumps({"type": "clickstream", "schema_version": 1, "event_id": f"sql-{i}",
                    "customer_id": f"'); DROP TABLE transitions; -- {i}", "occurred_at": "2026-01-03T00:00:00Z",
                    "action": "page_view"}).encode() + b"\n"
        for i in range(3)
    ]
    good_file = tmp_path / "good.jsonl"
    good_file.write_bytes(b"".join(good + sql_ids))
    bad = adversarial_payloads(rng, 200)
    mixed = [(line, True) for line in good + sql_ids] + [(line + b"\n", False) for line in bad]
    rng.shuffle(mixed)
    # Shuffling would put a customer's good events out of time order; keep their relative order.
    good_iter = iter(good + sql_ids)
    ordered = [next(good_iter) if is_good else line for line, is_good in mixed]
    events = tmp_path / "mixed.jsonl"
    events.write_bytes(b"".join(ordered))

    pipeline.journey("produce", str(events), "--topic", pipeline.topic("clickstream"))
    worker, port = pipeline.start_worker()
    pipeline.assert_equals_replay(good_file)
    wait_until(lambda: sum(v for k, v in scrape(port).items() if k.startswith("journey_deadletters_total{")) >= len(bad),
               60, "every bad record dead-lettered")
    assert worker.poll() is None
    metrics = scrape(port)
    assert sum(v for k, v in metrics.items() if k.startswith("journey_deadletters_total{")) == len(bad)
    stored_ids = {row["customer_id"] for row in pipeline.stored_transitions()}
    assert {f"'); DROP TABLE transitions; -- {i}" for i in range(3)} <= stored_ids
