"""`journey worker`: check the surroundings, then run the stream services until stopped.

The services run under mode's Worker (Faust's service runtime): signals, graceful stop
(offsets committed, group left), and a non-zero exit when a service crashes, so a supervisor
restarts the process.
"""

from __future__ import annotations

import logging

from mode import Worker

from journey.errors import JourneyError
from journey.gc_tuning import tune_gc_for_batches
from journey.health import serve
from journey.kafka_admin import create_topics, partition_counts
from journey.kafka_security import kafka_client_config
from journey.metrics import JourneyMetrics
from journey.rules_file import load_rules
from journey.sql_endpoint import serve_sql
from journey.settings import Settings
from sinks.clickhouse.sink import ClickHouseSink, PlacementMismatch
from sinks.clickhouse.backends import BackendURL, ChdbLocked
from sinks.clickhouse.placement import Placement
from sinks.contract import SinkUnavailable
from streams.app import build_services, own_topics

log = logging.getLogger("journey.worker")


def check_topics(settings: Settings) -> None:
    """Inputs must exist (producers own them); the worker's own topics are created if missing."""
    security = kafka_client_config(settings)
    counts = partition_counts(settings.broker_list, security=security)
    missing = [t for t in settings.input_topics.values() if t not in counts]
    if missing:
        raise JourneyError(
            f"input topics {missing} do not exist on {settings.kafka_brokers} — create them with "
            f"`journey topics --partitions {settings.partitions}` (or set the JOURNEY_TOPIC_* names)"
        )
    wrong = {t: counts[t] for t in settings.input_topics.values() if counts[t] != settings.partitions}
    if wrong:
        raise JourneyError(
            f"input topics must have {settings.partitions} partitions (JOURNEY_PARTITIONS) to be "
            f"co-partitioned with the state table, but: {wrong}"
        )
    own = own_topics(settings)
    create_topics(settings.broker_list, {t: settings.partitions for t in own}, security=security, configs=own)


def build_sink(settings: Settings) -> ClickHouseSink:
    try:
        url = BackendURL.parse(settings.clickhouse_url, settings.clickhouse_password)
    except ValueError as exc:
        raise JourneyError(f"JOURNEY_CLICKHOUSE_URL: {exc}") from None
    try:
        sink = ClickHouseSink(url, placement=Placement(settings.clickhouse_cluster))
    except SinkUnavailable as exc:
        raise JourneyError(str(exc)) from None  # a cluster on chDB: a setting to fix, not an outage
    try:
        sink.setup()
    except (ChdbLocked, PlacementMismatch) as exc:
        # another process holds the directory, or the tables are for another placement: waiting will not help
        raise JourneyError(str(exc)) from None
    except SinkUnavailable as exc:
        # The path does not need ClickHouse, and the sink waits and retries before its first
        # insert as it does during any outage: the transitions topic is the buffer meanwhile.
        log.warning("%s — starting anyway: the sink retries until it can write", exc)
    return sink


def run_worker(settings: Settings) -> None:
    rules = load_rules(settings.rules_file)
    check_topics(settings)
    sink = build_sink(settings) if settings.role in ("all", "sink") else None
    if sink is not None and sink.url.scheme == "chdb":
        # This process now holds the chDB directory: let `journey sql` query through it.
        serve_sql(sink.connected, sink.url.path)
    metrics = JourneyMetrics()
    services = build_services(settings, metrics, rules, sink)
    if settings.metrics_port:
        serve(metrics.registry, settings.metrics_host, settings.metrics_port, ready=lambda: _ready(services))
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    worker = Worker(*services, loglevel=settings.log_level.upper(), override_logging=True, quiet=True)
    tune_gc_for_batches()
    worker.execute_from_commandline()


def _ready(services: list) -> bool:
    """Ready once the path owns partitions with their state recovered and the sink has joined its group."""
    return all(service.started and service.ready for service in services)
