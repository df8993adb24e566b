"""The worker's services: the path (inputs -> transitions and state) and the sink (-> ClickHouse).

Each runs its own consumer group, so `JOURNEY_ROLE=stream` and `JOURNEY_ROLE=sink` workers
scale separately; `all` runs both in one process.
"""

from __future__ import annotations

from mode import Service

from fivea import Rules
from journey.metrics import JourneyMetrics
from journey.settings import Settings
from sinks.contract import Sink
from streams.path_service import PathService, changelog_topic
from streams.sink_service import SinkService


def own_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Topics the worker writes (created if missing) -> topic configs."""
    return {
        settings.topic_rekeyed: {},
        settings.topic_identity: {},
        settings.topic_transitions: {},
        settings.topic_deadletter: {},
        changelog_topic(settings): {"cleanup.policy": "compact"},
    }


def build_services(settings: Settings, metrics: JourneyMetrics, rules: Rules, sink: Sink | None) -> list[Service]:
    services: list[Service] = []
    if settings.role in ("all", "stream"):
        services.append(PathService(settings, metrics, rules))
    if settings.role in ("all", "sink") and sink is not None:
        services.append(SinkService(settings, metrics, sink))
    return services
