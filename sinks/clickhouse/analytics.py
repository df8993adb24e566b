"""The analysts' layer over `transitions`: rollups fed by materialized views, and plain views.

Every derived table holds only *idempotent* aggregate states — `uniqExact`, `argMax`, `min`,
`max`, `groupBitOr` — never `count()` or `sum()`. A materialized view fires on every INSERT,
before the ReplacingMergeTree of `transitions` has deduplicated anything (DESIGN.md §5), so a
batch the sink re-sends reaches the rollups twice; these states give the same answer for a row
seen once or twice. The same property makes the backfill in `migrations()` safe to repeat.

- `stage_entries_daily` — customers entering each stage per day x brand x stage x influence
  zone x channel (`uniqExact` of a 64-bit hash of `customer_id`: half the size of a string
  state and twice as fast to merge; two customers colliding becomes likely only around 5
  billion customers in one count);
  fed by `stage_entries_daily_mv`. Period queries read it and never scan `transitions`.
- `referrals_daily` — per day x brand x referrer: the customers that advocate brought (their
  aware transition carries `referrer_id`); fed by `referrals_daily_mv`.
- `customer_state` — one row per (brand, customer_id) after merges: current stage (the latest
  transition, by `seq`, wins), when each stage was entered, the dwell before each stage;
  fed by `customer_state_mv`.
- Views that hide the `-Merge` functions: `stage_entries` (daily counts) and
  `customer_current_stage` (one row per customer; no FINAL needed).

Rendered for both dialects of `sinks.clickhouse.tables`: the statements are valid on Debian's
18.16 server and on current ClickHouse. Documented column by column in docs/analysts.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sinks.clickhouse.tables import INFLUENCE_ENUM, STAGE_ENUM, Dialect
from sinks.clickhouse.target import checked_identifier

#: Stages after aware: each has an entry time and a dwell in `customer_state`.
LATER_STAGES = ("appeal", "ask", "act", "advocate")
#: Bit n of `stages_entered` is set when the customer entered stage n (aware = 1 ... advocate = 5).
STAGE_BIT = {"aware": 2, "appeal": 4, "ask": 8, "act": 16, "advocate": 32}

VIEWS = ("stage_entries", "customer_current_stage")


def _db(database: str) -> str:
    return checked_identifier(database, "database name")


def _columns(columns: list[tuple[str, str, str]]) -> str:
    """`name type, -- comment` lines, aligned, with the comma before the comment."""
    width = max(len(name) for name, _, _ in columns)
    last = len(columns) - 1
    decls = [f"{name.ljust(width)}  {type_}" + ("," if i < last else "") for i, (name, type_, _) in enumerate(columns)]
    widest = min(56, max(len(d) for d in decls))
    return "\n".join(f"    {d.ljust(widest)}  -- {comment}" for d, (_, _, comment) in zip(decls, columns))


# -- rollups: tables fed from `transitions` by a materialized view ---------------------------


@dataclass(frozen=True)
class Rollup:
    """An AggregatingMergeTree fed by `<name>_mv` from `transitions`, and backfilled from it."""

    name: str
    layout: str  # PARTITION BY / ORDER BY lines
    columns: Callable[[Dialect], list[tuple[str, str, str]]]
    select: Callable[[str], str]  # database -> the SELECT over transitions

    def create_table(self, database: str, dialect: Dialect) -> str:
        return f"""
CREATE TABLE IF NOT EXISTS {_db(database)}.{self.name}
(
{_columns(self.columns(dialect))}
)
ENGINE = AggregatingMergeTree()
{self.layout}
""".strip()

    def create_view(self, database: str) -> str:
        db = _db(database)
        return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{self.name}_mv TO {db}.{self.name} AS\n" \
            + self.select(db)

    def backfill(self, database: str) -> str:
        db = _db(database)
        return f"INSERT INTO {db}.{self.name}\n{self.select(db)}"


# -- stage entries per day ------------------------------------------------------------------


def _stage_entries_columns(dialect: Dialect) -> list[tuple[str, str, str]]:
    return [
        ("brand", dialect.label(), "brand of the journey"),
        ("day", "Date", "UTC day of the entering transition's occurred_at"),
        ("stage", STAGE_ENUM, "stage entered (transitions.to_stage)"),
        ("influence", INFLUENCE_ENUM, "O-zone of the entering transition"),
        ("channel", dialect.label(), "its channel ('' when it had none)"),
        ("customers", "AggregateFunction(uniqExact, UInt64)",
         "who entered (sipHash64 of customer_id): uniqExactMerge(customers)"),
    ]


def _stage_entries_select(db: str) -> str:
    return f"""SELECT
    brand,
    toDate(occurred_at) AS day,
    to_stage AS stage,
    influence,
    ifNull(channel, '') AS channel,
    uniqExactState(sipHash64(customer_id)) AS customers
FROM {db}.transitions
GROUP BY brand, day, stage, influence, channel"""


def create_stage_entries_view(database: str) -> str:
    db = _db(database)
    return f"""
CREATE VIEW IF NOT EXISTS {db}.stage_entries AS
SELECT brand, day, stage, influence, channel, uniqExactMerge(customers) AS customers
FROM {db}.stage_entries_daily
GROUP BY brand, day, stage, influence, channel
""".strip()


# -- referrals per day ----------------------------------------------------------------------


def _referrals_columns(dialect: Dialect) -> list[tuple[str, str, str]]:
    return [
        ("brand", dialect.label(), "brand of the journey"),
        ("day", "Date", "UTC day the referred customer became aware"),
        ("referrer_id", "String", "the advocate whose share brought them"),
        ("customers", "AggregateFunction(uniqExact, UInt64)",
         "who they brought (sipHash64 of customer_id): uniqExactMerge(customers)"),
    ]


def _referrals_select(db: str) -> str:
    return f"""SELECT
    brand,
    toDate(occurred_at) AS day,
    ifNull(referrer_id, '') AS referrer_id,
    uniqExactState(sipHash64(customer_id)) AS customers
FROM {db}.transitions
WHERE to_stage = 'aware' AND ifNull(referrer_id, '') != ''
GROUP BY brand, day, referrer_id"""


# -- one row per customer -------------------------------------------------------------------


def _customer_state_columns(dialect: Dialect) -> list[tuple[str, str, str]]:
    ts = dialect.timestamp
    return [
        ("brand", dialect.label(), "brand of the journey"),
        ("customer_id", "String", "the customer"),
        ("stage", f"AggregateFunction(argMax, {STAGE_ENUM}, UInt32)", "current stage: to_stage of the highest seq"),
        ("stage_since", f"AggregateFunction(argMax, {ts}, UInt32)", "occurred_at of that transition"),
        ("first_seen", f"AggregateFunction(min, {ts})", "when the customer became aware (first transition)"),
        ("stages_entered", "AggregateFunction(groupBitOr, UInt8)",
         "bit n set when stage n was entered (aware = 1 ... advocate = 5)"),
        *((f"{s}_at", f"AggregateFunction(minIf, {ts}, UInt8)", f"when {s} was entered (1970-01-01 when never)")
          for s in LATER_STAGES),
        *((f"ms_to_{s}", "AggregateFunction(maxIf, UInt64, UInt8)",
           f"dwell_ms of the transition into {s}: time in the stage before (0 when never)") for s in LATER_STAGES),
    ]


def _customer_state_select(db: str) -> str:
    entered = ",\n".join(f"    minIfState(occurred_at, to_stage = '{s}') AS {s}_at" for s in LATER_STAGES)
    dwell = ",\n".join(
        f"    maxIfState(ifNull(dwell_ms, toUInt64(0)), to_stage = '{s}') AS ms_to_{s}" for s in LATER_STAGES
    )
    return f"""SELECT
    brand,
    customer_id,
    argMaxState(to_stage, seq) AS stage,
    argMaxState(occurred_at, seq) AS stage_since,
    minState(occurred_at) AS first_seen,
    groupBitOrState(toUInt8(bitShiftLeft(1, toUInt8(to_stage)))) AS stages_entered,
{entered},
{dwell}
FROM {db}.transitions
GROUP BY brand, customer_id"""


ROLLUPS = (
    Rollup("stage_entries_daily", "PARTITION BY toYYYYMM(day)\nORDER BY (brand, day, stage, influence, channel)",
           _stage_entries_columns, _stage_entries_select),
    Rollup("referrals_daily", "PARTITION BY toYYYYMM(day)\nORDER BY (brand, day, referrer_id)",
           _referrals_columns, _referrals_select),
    Rollup("customer_state", "ORDER BY (brand, customer_id)", _customer_state_columns, _customer_state_select),
)

#: Derived tables, fed from `transitions` (empty them together with it).
DERIVED_TABLES = tuple(rollup.name for rollup in ROLLUPS)


def create_customer_current_stage_view(database: str) -> str:
    db = _db(database)
    entered = ",\n".join(
        f"    if(bitAnd(stages_entered, {STAGE_BIT[s]}) != 0, {s}_at_, NULL) AS {s}_at" for s in LATER_STAGES
    )
    merged = ",\n".join(f"        minIfMerge({s}_at) AS {s}_at_" for s in LATER_STAGES)
    dwell = ",\n".join(f"        maxIfMerge(ms_to_{s}) AS ms_to_{s}_" for s in LATER_STAGES)
    return f"""
CREATE VIEW IF NOT EXISTS {db}.customer_current_stage AS
SELECT
    brand,
    customer_id,
    stage,
    stage_since,
    first_seen,
{entered},
    if(bitAnd(stages_entered, {STAGE_BIT['act']}) != 0,
       ms_to_appeal_ + ms_to_ask_ + ms_to_act_, NULL) AS aware_to_act_ms,
    if(bitAnd(stages_entered, {STAGE_BIT['act'] | STAGE_BIT['advocate']}) = {STAGE_BIT['act'] | STAGE_BIT['advocate']},
       ms_to_advocate_, NULL) AS act_to_advocate_ms,
    stages_entered
FROM
(
    SELECT
        brand,
        customer_id,
        argMaxMerge(stage) AS stage,
        argMaxMerge(stage_since) AS stage_since,
        minMerge(first_seen) AS first_seen,
        groupBitOrMerge(stages_entered) AS stages_entered,
{merged},
{dwell}
    FROM {db}.customer_state
    GROUP BY brand, customer_id
)
""".strip()


# -- migrations -----------------------------------------------------------------------------


def backfills(database: str) -> list[str]:
    """Fold rows already in `transitions` into the rollups (safe to repeat: idempotent states).

    A view only sees inserts made after it exists; this covers rows written before (an upgrade)
    and any written between creating a view and this statement (counted twice, harmlessly).
    """
    return [rollup.backfill(database) for rollup in ROLLUPS]


def analytics_migrations(database: str, dialect: Dialect) -> list[str]:
    """Tables, then the materialized views feeding them, then the views, then the backfill."""
    return [
        *(rollup.create_table(database, dialect) for rollup in ROLLUPS),
        *(rollup.create_view(database) for rollup in ROLLUPS),
        create_stage_entries_view(database),
        create_customer_current_stage_view(database),
        *backfills(database),
    ]


# -- the query library ----------------------------------------------------------------------

SQL_DIR = Path(__file__).resolve().with_name("sql")
LIBRARY_DATABASE = "journey"  # the database name written in the files
_HEADER = re.compile(r"^--\s?(.*)$")
_FIELD = re.compile(r"^(title|params|reads|server):\s*(.*)$")
_VERSION = re.compile(r"ClickHouse\s*>=\s*(\d+)\.(\d+)")


@dataclass(frozen=True)
class LibraryQuery:
    """One file of sinks/clickhouse/sql: a header of `--` lines, then one SELECT.

    The header gives `title:`, free text, `params:`, `reads:` and `server:` (`any`, or
    `ClickHouse >= X.Y` when older servers cannot run it). The SQL names the database
    `journey`; `sql(database)` renders it for another (a checked identifier).
    """

    name: str
    title: str
    description: str
    params: str
    reads: str
    server: str
    body: str

    @property
    def requires(self) -> tuple[int, int] | None:
        """Oldest server version that runs it (None: any)."""
        match = _VERSION.search(self.server)
        return (int(match.group(1)), int(match.group(2))) if match else None

    def defaults(self) -> dict[str, str]:
        """Each parameter's default from the header (`name Type = value`): the file runs as it is."""
        return {name: value.strip("'") for name, value in _PARAM_DEFAULT.findall(self.params)}

    def sql(self, database: str = LIBRARY_DATABASE) -> str:
        db = _db(database)
        return re.sub(rf"\b{LIBRARY_DATABASE}\.(?=\w)", f"{db}.", self.body)

    @classmethod
    def parse(cls, name: str, text: str) -> "LibraryQuery":
        fields: dict[str, str] = {}
        description: list[str] = []
        lines = text.splitlines()
        body_start = 0
        for body_start, line in enumerate(lines):
            header = _HEADER.match(line)
            if not header:
                break
            field_match = _FIELD.match(header.group(1))
            if field_match:
                fields[field_match.group(1)] = field_match.group(2).strip()
            else:
                description.append(header.group(1).strip())
        else:
            body_start = len(lines)
        body = "\n".join(lines[body_start:]).strip()
        return cls(name, fields.get("title", name), " ".join(description), fields.get("params", ""),
                   fields.get("reads", ""), fields.get("server", "any"), body)


_PARAM_DEFAULT = re.compile(r"(\w+) \w+(?:\([^)]*\))? = ('[^']*'|[^\s,]+)")


def library() -> dict[str, LibraryQuery]:
    """Every query of the library, by file name without `.sql`."""
    return {path.stem: LibraryQuery.parse(path.stem, path.read_text()) for path in sorted(SQL_DIR.glob("*.sql"))}


def library_query(name: str) -> LibraryQuery:
    path = SQL_DIR / f"{name}.sql"
    return LibraryQuery.parse(name, path.read_text())
