"""JOURNEY_STATE_STORE=rocksdb: a restarted worker reads only the changelog written since its
tables' offsets, and the result still equals `journey replay`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from journey.generate import generate, to_jsonl
from streams.path_service import RECOVERED_LOG
from tests.integration.test_faults import TANSU_EXACT_OFFSETS
from tests.support.pipeline import Pipeline, wait_until

pytestmark = pytest.mark.integration


def customers_of(events: list[dict]) -> set[tuple[str, str]]:
    return {(event.get("brand") or "default", event["customer_id"]) for event in events}


def recoveries(log: Path) -> list[tuple[int, int, int]]:
    """(changelog records read, partitions caught up incrementally, customers held) per recovery."""
    return [(int(m["records"]), int(m["incremental"]), int(m["customers"]))
            for m in RECOVERED_LOG.finditer(log.read_text(errors="replace")) if m["store"] == "rocksdb"]


@pytest.mark.parametrize("pipeline", ["server"], indirect=True)
def test_restarted_worker_resumes_from_its_tables_on_disk(pipeline: Pipeline, tmp_path: Path) -> None:
    events = sorted(generate(800, seed=91), key=lambda e: (datetime.fromisoformat(e["occurred_at"]), e["event_id"]))
    first, second = events[: len(events) // 2], events[len(events) // 2:]
    first_file, all_file = tmp_path / "first.jsonl", tmp_path / "all.jsonl"
    first_file.write_bytes(b"".join(map(to_jsonl, first)))
    all_file.write_bytes(b"".join(map(to_jsonl, events)))
    expected_all = len(pipeline.replay(all_file))
    # Tansu's end offsets are exact only with one record per batch (DESIGN.md §5); a stored
    # offset past a short end would look out of range and force a rebuild.
    store = {"JOURNEY_STATE_STORE": "rocksdb", "JOURNEY_STATE_DIR": str(tmp_path / "state"), **TANSU_EXACT_OFFSETS}

    # 1. A worker applies the first half and stops cleanly: its tables end where the changelog ends.
    pipeline.journey("produce", str(first_file))
    pipeline.start_worker(**store)
    pipeline.assert_equals_replay(first_file)
    pipeline.stop_workers()
    stored_first = pipeline.stored_count()
    customers = len(customers_of(first))
    assert recoveries(tmp_path / "worker-1.log")[0] == (0, 0, 0)  # a fresh directory: built from scratch

    # 2. Restarted with the second half waiting: nothing to read back, every customer still known.
    second_file = tmp_path / "second.jsonl"
    second_file.write_bytes(b"".join(map(to_jsonl, second)))
    pipeline.journey("produce", str(second_file))
    worker, _ = pipeline.start_worker(**store)
    log = tmp_path / "worker-2.log"
    wait_until(lambda: recoveries(log), 120, "the restarted worker's recovery")
    assert recoveries(log)[0] == (0, pipeline.partitions, customers)

    # 3. Killed mid-stream (no shutdown), restarted: caught up from the tables' offsets again.
    midway = (stored_first + expected_all) // 2
    wait_until(lambda: pipeline.stored_count() >= midway or worker.poll() is not None, 240, "part of the second half")
    pipeline.kill_worker(worker)
    pipeline.start_worker(**store)
    pipeline.assert_equals_replay(all_file)
    read, incremental, held = recoveries(tmp_path / "worker-3.log")[0]
    assert incremental == pipeline.partitions
    # At most the states of the one batch acknowledged but not yet stored when it died.
    assert read <= len(customers_of(second))
    assert held >= customers
