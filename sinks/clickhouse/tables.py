"""DDL as code: each table defined once, rendered for the server it runs on.

Two dialects, chosen by server version (DESIGN.md §5):
- current ClickHouse (>= 20.1): `DateTime64(6, 'UTC')` event times, `LowCardinality` labels;
- legacy servers such as Debian's 18.16: `DateTime('UTC')` (second precision: sub-second
  parts of `occurred_at` are dropped) and plain `String` labels (LowCardinality was
  experimental there). Row identity never depends on the dropped precision.
"""

from __future__ import annotations

from dataclasses import dataclass

from sinks.clickhouse.placement import SINGLE_SERVER, Placement
from sinks.clickhouse.target import checked_identifier

STAGE_ENUM = "Enum8('none' = 0, 'aware' = 1, 'appeal' = 2, 'ask' = 3, 'act' = 4, 'advocate' = 5)"
KIND_ENUM = "Enum8('forward' = 1, 'skip' = 2)"
EVENT_TYPE_ENUM = "Enum8('clickstream' = 1, 'purchase' = 2, 'share' = 3)"
INFLUENCE_ENUM = "Enum8('own' = 1, 'other' = 2, 'outer' = 3)"

#: Column order of the transitions table = field order of schemas.Transition.
TRANSITION_COLUMNS = (
    "brand",
    "customer_id",
    "seq",
    "from_stage",
    "to_stage",
    "kind",
    "occurred_at",
    "trigger_event_id",
    "trigger_event_type",
    "channel",
    "influence",
    "referrer_id",
    "dwell_ms",
)


@dataclass(frozen=True)
class Dialect:
    version: tuple[int, int]

    @property
    def modern(self) -> bool:
        return self.version >= (20, 1)

    @property
    def timestamp(self) -> str:
        return "DateTime64(6, 'UTC')" if self.modern else "DateTime('UTC')"

    @property
    def timestamp_precision_us(self) -> int:
        """Smallest time step the server stores, in microseconds."""
        return 1 if self.modern else 1_000_000

    def label(self, nullable: bool = False) -> str:
        base = "Nullable(String)" if nullable else "String"
        return f"LowCardinality({base})" if self.modern else base


def create_database(database: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {checked_identifier(database, 'database name')}"


def create_transitions(database: str, dialect: Dialect) -> str:
    db = checked_identifier(database, "database name")
    return f"""
CREATE TABLE IF NOT EXISTS {db}.transitions
(
    brand              {dialect.label()},            -- brand the customer journey belongs to ('default' when none)
    customer_id        String,                       -- the customer, as the producers identify them
    seq                UInt32,                       -- the customer's transition number: 1, 2, ...
    from_stage         {STAGE_ENUM},                 -- stage left ('none' for the first transition)
    to_stage           {STAGE_ENUM},                 -- stage entered
    kind               {KIND_ENUM},                  -- 'forward' to the next stage, 'skip' past one or more
    occurred_at        {dialect.timestamp},          -- event time of the triggering event (UTC)
    trigger_event_id   String,                       -- event_id of the triggering event
    trigger_event_type {EVENT_TYPE_ENUM},            -- its type
    channel            {dialect.label(nullable=True)}, -- its channel (NULL when it had none)
    influence          {INFLUENCE_ENUM},             -- Kotler's O-zone: own, other (peers), outer (marketing)
    referrer_id        Nullable(String),             -- the advocate whose share brought this customer
    dwell_ms           Nullable(UInt64),             -- ms spent in from_stage (NULL for the first transition)
    ingested_at        DateTime('UTC') DEFAULT now() -- when the sink wrote the row (the replacing version)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (brand, customer_id, seq)
""".strip()


def migrations(database: str, dialect: Dialect, placement: Placement = SINGLE_SERVER) -> list[str]:
    """Every statement `journey migrate` runs, in order; each is idempotent.

    Rendered for `placement`: one server, or a cluster (sinks/clickhouse/placement.py).

    After the spine's table come the analysts' rollups, the materialized views that feed them,
    their views and a backfill (sinks/clickhouse/analytics.py; safe to repeat).
    """
    from sinks.clickhouse.analytics import analytics_migrations  # it builds on this module

    return placement.render(
        [create_database(database), create_transitions(database, dialect), *analytics_migrations(database, dialect)])
