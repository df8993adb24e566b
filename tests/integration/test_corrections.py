"""Out-of-step topics for real: the stream corrects itself and ends equal to `journey replay` (issue 13).

Purchases and shares are published 12 s behind the clickstream (a slower service) while the
worker runs, and half the buyers keep browsing after they buy: clicks made after a purchase
reach the worker before it, so the worker publishes a journey it must later correct
(retractions, then corrected rows, DESIGN.md §1b). Each run ends with ClickHouse's live rows
equal to the replay on every field but seq — with no fault, with the worker killed (-9)
repeatedly while corrections flow, and with a second worker joining (a rebalance) mid-stream.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.integration.test_faults import TANSU_EXACT_OFFSETS
from tests.support.pipeline import Pipeline, metric, scrape, wait_until

pytestmark = pytest.mark.integration

GENERATE = ("--customers", "12000", "--seed", "21", "--p-browse-after-purchase", "0.5", "--quiet")
LAGGED = ("--lag", "purchase=12", "--lag", "share=12", "--rate", "4000")  # published live: a slower service


def events_file(pipeline: Pipeline, tmp_path: Path) -> Path:
    """The events as they happened (the replay sorts them by event time anyway)."""
    path = tmp_path / "events.jsonl"
    pipeline.journey("generate", *GENERATE, "-o", str(path))
    assert len(path.read_bytes().splitlines()) >= 50_000
    return path


def stored_retractions(pipeline: Pipeline) -> int:
    return int(pipeline.query(f"SELECT count() AS n FROM {pipeline.database}.transitions "
                              "WHERE retracted = 1")[0]["n"])


@pytest.mark.parametrize("pipeline", ["server"], indirect=True)
def test_late_purchases_and_shares_are_corrected_to_the_replay(pipeline: Pipeline, tmp_path: Path) -> None:
    events = events_file(pipeline, tmp_path)
    _, port = pipeline.start_worker()
    pipeline.finish_generator(pipeline.start_generator(*GENERATE, *LAGGED))
    pipeline.assert_equals_replay(events)
    samples = scrape(port)
    late, corrections = samples["journey_events_late_total"], samples["journey_corrections_total"]
    retracted = sum(v for k, v in samples.items() if k.startswith("journey_transitions_retracted_total{"))
    print(f"late events {late:.0f}, corrections {corrections:.0f}, rows retracted {retracted:.0f}")
    assert late > 100 and corrections > 20 and retracted >= corrections
    assert stored_retractions(pipeline) == retracted  # each retraction stored once, none lost


@pytest.mark.parametrize("pipeline", ["server"], indirect=True)
def test_a_worker_killed_repeatedly_while_corrections_flow(pipeline: Pipeline, tmp_path: Path) -> None:
    events = events_file(pipeline, tmp_path)
    producer = pipeline.start_generator(*GENERATE, *LAGGED)
    rng = random.Random(13)
    corrected = 0.0
    for kill in range(3):
        worker, port = pipeline.start_worker(**TANSU_EXACT_OFFSETS)
        # Kill once this life of the worker has corrected something (or after a few seconds more).
        wait_until(lambda: metric(port, "journey_corrections_total") >= rng.randint(1, 5) or worker.poll() is not None
                   or producer.poll() is not None, 240, f"corrections before kill #{kill + 1}")
        corrected += metric(port, "journey_corrections_total")
        pipeline.kill_worker(worker)
    _, last = pipeline.start_worker(**TANSU_EXACT_OFFSETS)
    pipeline.finish_generator(producer)
    pipeline.assert_equals_replay(events)
    # Corrections happened (in the killed lives or, when the kills came early, in the last one).
    assert corrected + metric(last, "journey_corrections_total") > 0 and stored_retractions(pipeline) > 0


@pytest.mark.parametrize("pipeline", ["server"], indirect=True)
def test_two_workers_and_a_rebalance_while_corrections_flow(pipeline: Pipeline, tmp_path: Path) -> None:
    events = events_file(pipeline, tmp_path)
    producer = pipeline.start_generator(*GENERATE, *LAGGED)
    _, first = pipeline.start_worker(**TANSU_EXACT_OFFSETS)
    wait_until(lambda: metric(first, "journey_corrections_total") > 0 or producer.poll() is not None, 240,
               "the first worker correcting")
    _, second = pipeline.start_worker(**TANSU_EXACT_OFFSETS)  # the group rebalances mid-stream
    wait_until(lambda: metric(first, "journey_assigned_partitions") > 0 and
               metric(second, "journey_assigned_partitions") > 0, 180, "both workers own partitions")
    pipeline.finish_generator(producer)
    pipeline.assert_equals_replay(events)
    assert metric(first, "journey_corrections_total") + metric(second, "journey_corrections_total") > 0
