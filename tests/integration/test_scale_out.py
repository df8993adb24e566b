"""Two workers, one consumer group, eight partitions: fail-over and fail-back keep the result."""

from __future__ import annotations

from pathlib import Path

import pytest

from journey.local import free_port
from tests.integration.test_faults import TANSU_EXACT_OFFSETS, write_events
from tests.support.pipeline import Pipeline, scrape, wait_until
from tests.support.supervisor import Supervisor

pytestmark = pytest.mark.integration


def assigned(port: int) -> int:
    try:
        return int(scrape(port).get("journey_assigned_partitions", 0))
    except OSError:
        return 0  # restarting


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_two_supervised_workers_fail_over_and_back(broker, clickhouse, tmp_path: Path, store: str) -> None:
    """With rocksdb, a's tables of the partitions b held meanwhile are stale but a changelog prefix:
    a catches them up from their offsets when they come back."""
    pipeline = Pipeline(broker, clickhouse, tmp_path, partitions=8)
    pipeline.setup()
    events = write_events(tmp_path / "events.jsonl", 1500, seed=81)
    expected = len(pipeline.replay(events))
    pipeline.journey("produce", str(events))

    ports = {"a": free_port(), "b": free_port()}

    def worker(name: str) -> Supervisor:
        return Supervisor(lambda: pipeline.spawn_worker(
            ports[name], **TANSU_EXACT_OFFSETS,
            JOURNEY_STATE_STORE=store, JOURNEY_STATE_DIR=str(tmp_path / f"state-{name}"),
        )).start()

    a, b = worker("a"), worker("b")
    try:
        wait_until(lambda: assigned(ports["a"]) > 0 and assigned(ports["b"]) > 0
                   and assigned(ports["a"]) + assigned(ports["b"]) == 8, 180, "both workers own partitions")
        wait_until(lambda: pipeline.stored_count() >= expected // 4, 300, "a quarter of the rows")

        a.kill()  # the node is gone; b must take over its partitions and their state
        wait_until(lambda: assigned(ports["b"]) == 8, 180, "b owns all eight partitions")
        wait_until(lambda: pipeline.stored_count() >= expected // 2, 300, "half of the rows")

        a = worker("a")  # back again: partitions are shared once more
        wait_until(lambda: assigned(ports["a"]) > 0 and assigned(ports["b"]) > 0, 180, "partitions rebalanced back")
        pipeline.assert_equals_replay(events)
    finally:
        a.stop()
        b.stop()
    crashes = [code for code in a.exit_codes + b.exit_codes if code != 0]
    print(f"worker exits restarted by the supervisors: {crashes}")
