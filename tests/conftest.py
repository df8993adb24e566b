"""Shared fixtures: one real broker and one real ClickHouse server per test session.

Tests isolate themselves by name (unique topics, consumer group and database per test),
which is what production tenants sharing a cluster do too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from journey.local import LocalService
    from journey.local_cluster import LocalCluster
    from tests.support.pipeline import Pipeline


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    from journey.local import start_broker

    service = start_broker(tmp_path_factory.mktemp("tansu"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    from journey.local import start_clickhouse

    service = start_clickhouse(tmp_path_factory.mktemp("clickhouse"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def clickhouse_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """ZooKeeper and 2 shards x 2 replicas of clickhouse-server 18.16 as cluster `journey`
    (journey/local_cluster.py), started on first use and stopped at the end of the session."""
    from journey.local_cluster import start_cluster

    cluster = start_cluster(tmp_path_factory.mktemp("cluster"), name="journey")
    yield cluster
    cluster.stop()


@pytest.fixture(params=["server", "chdb"])
def pipeline(
    request: pytest.FixtureRequest, broker: LocalService, clickhouse: LocalService, tmp_path: Path
) -> Iterator[Pipeline]:
    """Topics created and database migrated, on each ClickHouse backend: the native server
    (Debian 18.16) and chDB (current engine, embedded). Workers are stopped after the test."""
    from tests.support.pipeline import Pipeline

    pipe = Pipeline(broker, clickhouse, tmp_path, backend=getattr(request, "param", "server"))
    pipe.setup()
    yield pipe
    pipe.stop_workers()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """>= 10,000 events over >= 1,000 customers from the generator (deterministic)."""
    from journey.generate import generate, to_jsonl

    path = tmp_path_factory.mktemp("data") / "events.jsonl"
    with path.open("wb") as out:
        for event in generate(2500, seed=3):
            out.write(to_jsonl(event))
    return path
