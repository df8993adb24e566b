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
    "campaign",
    "retracted",
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


def create_transitions(database: str, dialect: Dialect, table: str = "transitions") -> str:
    db = checked_identifier(database, "database name")
    return f"""
CREATE TABLE IF NOT EXISTS {db}.{checked_identifier(table, 'table name')}
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
    campaign           Nullable(String),             -- the triggering event's campaign (NULL when none)
    retracted          UInt8,                        -- 1: withdraws the row with the same (brand, customer_id, seq)
    ingested_at        DateTime('UTC') DEFAULT now() -- when the sink wrote the row
)
ENGINE = ReplacingMergeTree(retracted)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (brand, customer_id, seq)
""".strip()


IDENTITY_COLUMNS = ("brand", "anonymous_id", "customer_id", "linked_at", "link_event_id", "learned_at")


def create_customer_identities(database: str, dialect: Dialect) -> str:
    """Each anonymous id's customer (DESIGN.md §1c), one row per (brand, anonymous_id)."""
    db = checked_identifier(database, "database name")
    return f"""
CREATE TABLE IF NOT EXISTS {db}.customer_identities
(
    brand          {dialect.label()},   -- links are per brand
    anonymous_id   String,              -- the device or cookie id
    customer_id    String,              -- the customer it was linked to (the first link applied wins)
    linked_at      {dialect.timestamp}, -- event time of the link (the event with both ids, or the identify event)
    link_event_id  String,              -- that event's id
    learned_at     DateTime('UTC')      -- when the worker applied the link and merged the journeys
)
ENGINE = ReplacingMergeTree()
ORDER BY (brand, anonymous_id)
""".strip()


#: Where `journey migrate --rebuild` leaves a table written before corrections (issue 13).
BEFORE_CORRECTIONS = "transitions_before_corrections"


def rebuild_for_corrections(database: str, dialect: Dialect) -> list[str]:
    """Statements that move a `transitions` table of the previous layout to the current one.

    Before corrections the table had no `campaign` and `retracted` and was versioned by
    `ingested_at`; an engine cannot be altered, so: a new table, the rows copied (deduplicated,
    all live), the analysts' layer dropped (its states changed shape), the names swapped. The
    old table is kept as `transitions_before_corrections`; `migrations()` then rebuilds the
    analysts' layer and backfills it from the new table.
    """
    from sinks.clickhouse.analytics import DERIVED_TABLES, VIEWS  # it builds on this module

    db = checked_identifier(database, "database name")
    old_columns = ", ".join(c for c in TRANSITION_COLUMNS if c not in ("campaign", "retracted"))
    return [
        f"DROP TABLE IF EXISTS {db}.transitions_next",
        create_transitions(database, dialect, table="transitions_next"),
        f"INSERT INTO {db}.transitions_next ({old_columns}, retracted, ingested_at)\n"
        f"SELECT {old_columns}, 0, ingested_at FROM {db}.transitions FINAL",
        *(f"DROP TABLE IF EXISTS {db}.{name}_mv" for name in DERIVED_TABLES),
        *(f"DROP TABLE IF EXISTS {db}.{name}" for name in (*VIEWS, *DERIVED_TABLES)),
        f"RENAME TABLE {db}.transitions TO {db}.{BEFORE_CORRECTIONS}, {db}.transitions_next TO {db}.transitions",
    ]


def migrations(database: str, dialect: Dialect, placement: Placement = SINGLE_SERVER) -> list[str]:
    """Every statement `journey migrate` runs, in order; each is idempotent.

    Rendered for `placement`: one server, or a cluster (sinks/clickhouse/placement.py).

    After the spine's table come the analysts' rollups, the materialized views that feed them,
    their views and a backfill (sinks/clickhouse/analytics.py; safe to repeat).
    """
    from sinks.clickhouse.analytics import analytics_migrations  # it builds on this module

    return placement.render([create_database(database), create_transitions(database, dialect),
                             create_customer_identities(database, dialect), *analytics_migrations(database, dialect)])
