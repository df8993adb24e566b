"""One person, one journey, for real: anonymous visitors who sign in later, merged live (issue 14).

6,000 visitors, 60% of them browsing under a device id first (some never sign in, some on two
devices), sign-ins by `identify` events delivered 10 s behind everything else (so links arrive
before, between and long after the anonymous events they cover), anonymous ids and customers
hashed to different partitions. Each run ends with ClickHouse's live rows equal to `journey
replay` (which resolves identity first), `customer_identities` holding exactly the replay's
winning links, and the report counting persons — with no fault, with kill -9 while links flow,
and with a second worker joining.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fivea.identity import resolve
from schemas import parse_event
from streams.kafka_io import partition_for
from tests.integration.test_faults import TANSU_EXACT_OFFSETS
from tests.support.pipeline import Pipeline, metric, scrape, wait_until

pytestmark = pytest.mark.integration

GENERATE = ("--customers", "6000", "--seed", "23", "--p-anonymous", "0.6", "--p-never-sign-in", "0.2",
            "--p-second-device", "0.3", "--p-browse-after-purchase", "0.6", "--quiet")
LAGGED = ("--lag", "identify=10", "--rate", "3000")


def events_file(pipeline: Pipeline, tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    pipeline.journey("generate", *GENERATE, "-o", str(path))
    events = [parse_event(line) for line in path.read_bytes().splitlines()]
    assert len(events) >= 20_000
    first: dict[str, bool] = {}
    links = resolve(events)
    for event in sorted(events, key=lambda e: (e.occurred_at, e.event_id)):
        if event.type != "identify":
            first.setdefault(links.person_of(event), event.customer_id is None)
    assert sum(first.values()) >= 0.3 * len(first)  # persons who browsed anonymously first
    crossing = [link for link in links.winner.values()
                if partition_for(link.anonymous_id, pipeline.partitions) != partition_for(link.customer_id,
                                                                                         pipeline.partitions)]
    assert len(crossing) > 100  # the merge travels between partitions
    return path


def assert_identities_and_persons(pipeline: Pipeline, events_path: Path) -> None:
    events = [parse_event(line) for line in events_path.read_bytes().splitlines()]
    links = resolve(events)
    wanted = sorted((link.anonymous_id, link.customer_id) for link in links.winner.values())
    stored = pipeline.query(f"SELECT anonymous_id, customer_id FROM {pipeline.database}.customer_identities FINAL")
    assert sorted((row["anonymous_id"], row["customer_id"]) for row in stored) == wanted
    persons = {links.person_of(event) for event in events if event.type != "identify"}
    report = pipeline.query(f"SELECT count() AS n FROM {pipeline.database}.customer_current_stage")
    assert int(report[0]["n"]) == len(persons)  # persons, with no identity join at query time


@pytest.mark.parametrize("pipeline", ["server"], indirect=True)
def test_anonymous_visitors_who_sign_in_later_are_one_person(pipeline: Pipeline, tmp_path: Path) -> None:
    events = events_file(pipeline, tmp_path)
    _, port = pipeline.start_worker()
    pipeline.finish_generator(pipeline.start_generator(*GENERATE, *LAGGED))
    pipeline.assert_equals_replay(events)
    assert_identities_and_persons(pipeline, events)
    samples = scrape(port)
    linked = samples.get('journey_identity_links_total{outcome="linked"}', 0)
    merges = samples.get("journey_identity_merges_total", 0)
    print(f"links {linked:.0f}, merges {merges:.0f}, forwarded {samples.get('journey_identity_forwarded_events_total', 0):.0f}")
    assert linked > 500 and merges == linked


@pytest.mark.parametrize("pipeline", ["server"], indirect=True)
def test_a_worker_killed_repeatedly_while_links_flow(pipeline: Pipeline, tmp_path: Path) -> None:
    events = events_file(pipeline, tmp_path)
    producer = pipeline.start_generator(*GENERATE, *LAGGED)
    for kill in range(3):
        worker, port = pipeline.start_worker(**TANSU_EXACT_OFFSETS)
        wait_until(lambda: metric(port, "journey_identity_merges_total") >= 20 * (kill + 1) or worker.poll() is not None
                   or producer.poll() is not None, 240, f"merges before kill #{kill + 1}")
        pipeline.kill_worker(worker)
    pipeline.start_worker(**TANSU_EXACT_OFFSETS)
    pipeline.finish_generator(producer)
    pipeline.assert_equals_replay(events)
    assert_identities_and_persons(pipeline, events)


@pytest.mark.parametrize("pipeline", ["server"], indirect=True)
def test_two_workers_and_a_rebalance_while_links_flow(pipeline: Pipeline, tmp_path: Path) -> None:
    events = events_file(pipeline, tmp_path)
    producer = pipeline.start_generator(*GENERATE, *LAGGED)
    _, first = pipeline.start_worker(**TANSU_EXACT_OFFSETS)
    wait_until(lambda: metric(first, "journey_identity_merges_total") > 0 or producer.poll() is not None, 240,
               "the first worker merging")
    _, second = pipeline.start_worker(**TANSU_EXACT_OFFSETS)
    wait_until(lambda: metric(first, "journey_assigned_partitions") > 0 and
               metric(second, "journey_assigned_partitions") > 0, 180, "both workers own partitions")
    pipeline.finish_generator(producer)
    pipeline.assert_equals_replay(events)
    assert_identities_and_persons(pipeline, events)
