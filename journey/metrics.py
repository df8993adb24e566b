"""Prometheus metrics of a worker. One object, registry injected, so tests use a fresh one.

Conventions: `journey_` prefix, `_total` counters, seconds for durations, and labels with a
small fixed set of values only (topics, stages, reason codes): never customer or event ids.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
FRESHNESS_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400, 604800)
ROW_BUCKETS = (1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000)


class JourneyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "journey_events_consumed",
            "Input records consumed, by source topic and outcome "
            "(accepted, rekeyed, deadlettered).",
            ["topic", "outcome"],
            registry=r,
        )
        self.transitions = Counter(
            "journey_transitions",
            "Stage transitions published (live rows), by from/to stage; minus "
            "journey_transitions_retracted_total, the rows that still count.",
            ["from_stage", "to_stage"],
            registry=r,
        )
        self.retracted = Counter(
            "journey_transitions_retracted",
            "Published transitions withdrawn by a correction (a late event merged into the journey, "
            "DESIGN.md §1b), by the withdrawn row's from/to stage.",
            ["from_stage", "to_stage"],
            registry=r,
        )
        self.identity_links = Counter(
            "journey_identity_links",
            "Links (an anonymous id is a customer) applied at the anonymous id's partition, by outcome: linked "
            "(the first), known (the same link again), conflict (another customer: ignored), late_conflict "
            "(another customer with an earlier event time, which the replay would have chosen).",
            ["outcome"],
            registry=r,
        )
        self.identity_merges = Counter(
            "journey_identity_merges",
            "Anonymous journeys merged into their customer's journey (DESIGN.md §1c).",
            registry=r,
        )
        self.identity_forwarded = Counter(
            "journey_identity_forwarded_events",
            "Events of an already linked anonymous id, sent on to their customer's partition.",
            registry=r,
        )
        self.corrections = Counter(
            "journey_corrections",
            "Late events that changed rows already published: each withdrew rows and published corrected ones.",
            registry=r,
        )
        self.deadletters = Counter(
            "journey_deadletters",
            "Records sent to the dead-letter topic, by reason code.",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "journey_events_duplicate",
            "Valid events ignored because their event_id was already applied for the customer.",
            registry=r,
        )
        self.late = Counter(
            "journey_events_late",
            "Events applied after a later event of the same customer (arrived out of order); merged into "
            "the journey, so they count whether or not they changed a published row.",
            registry=r,
        )
        self.fenced_records = Counter(
            "journey_fenced_records",
            "Records dropped because a worker wrote them after losing their partition (a stale epoch; "
            "streams/fencing.py), by the log they were read from: changelog, transitions, rekeyed or identity.",
            ["log"],
            registry=r,
        )
        self.fenced_partitions = Counter(
            "journey_fenced_partitions",
            "Times this worker found one of its partitions fenced by a newer owner (it had stalled past "
            "its session) and stopped working on it until the group reassigned it.",
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "journey_assigned_partitions",
            "Input partitions (per topic) this worker owns now; summed over workers = JOURNEY_PARTITIONS.",
            registry=r,
        )
        self.aligner_buffered = Gauge(
            "journey_aligner_buffered_events",
            "Valid events held back to be applied in event-time order.",
            registry=r,
        )
        self.aligner_forced = Counter(
            "journey_aligner_forced_releases",
            "Events applied before every other input of their partition was known to be past them, "
            "by reason (idle_timeout, lag_wait_cap, buffer_full): each may be applied out of event-time order.",
            ["reason"],
            registry=r,
        )
        self.path_batch_records = Histogram(
            "journey_path_batch_records",
            "Input records per batch the path polled and applied.",
            buckets=ROW_BUCKETS,
            registry=r,
        )
        self.sink_batch_rows = Histogram(
            "journey_sink_batch_rows",
            "Rows per ClickHouse insert.",
            buckets=ROW_BUCKETS,
            registry=r,
        )
        self.sink_rows = Counter("journey_sink_rows", "Rows inserted into ClickHouse.", registry=r)
        self.sink_insert_seconds = Histogram(
            "journey_sink_insert_seconds",
            "Duration of one successful ClickHouse insert.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sink_failures = Counter(
            "journey_sink_failures",
            "Failed ClickHouse insert attempts (each is retried with backoff).",
            registry=r,
        )
        self.sink_up = Gauge(
            "journey_sink_clickhouse_up",
            "1 when the last ClickHouse insert succeeded, 0 while inserts are failing.",
            registry=r,
        )
        self.event_lag = Histogram(
            "journey_event_to_clickhouse_lag_seconds",
            "From an event's occurred_at to its transition being stored in ClickHouse.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.pipeline_latency = Histogram(
            "journey_pipeline_latency_seconds",
            "From an input event reaching Kafka (its record timestamp) to its transition being "
            "stored in ClickHouse: the pipeline's freshness.",
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )


def observe_many(histogram: Histogram, amounts: Iterable[float]) -> None:
    """`histogram.observe(a)` for each amount, with one locked update per bucket instead of per amount.

    The sink observes two histograms per stored row; per-row `observe` cost ~2.5 us a row.
    Uses prometheus_client's bucket internals (stable since 0.4); a unit test compares the
    result with plain `observe`, so a change there fails loudly.
    """
    histogram._raise_if_not_observable()
    bounds = histogram._upper_bounds
    tally: Tally[int] = Tally()
    total = 0.0
    for amount in amounts:
        tally[bisect_left(bounds, amount)] += 1  # first bound >= amount, as `observe` picks
        total += amount
    if not tally:
        return
    histogram._sum.inc(total)
    for index, count in tally.items():
        histogram._buckets[index].inc(count)
