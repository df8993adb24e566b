"""The analysts' layer over `transitions`: rollups fed by materialized views, and plain views.

Every derived table holds only *idempotent* aggregate states — `uniqExact`, `argMax`, `max` —
never `count()` or `sum()`. A materialized view fires on every INSERT, before the
ReplacingMergeTree of `transitions` has deduplicated anything (DESIGN.md §5), so a batch the
sink re-sends reaches the rollups twice; these states give the same answer for a row seen once
or twice. The same property makes the backfill in `migrations()` safe to repeat.

Corrections (DESIGN.md §1b): a row may later be withdrawn by a retraction (the same row with
`retracted = 1`). The rollups keep **entries** (every row, live or withdrawn, by a 64-bit hash of
`(customer_id, seq)`) and **retractions** (the withdrawn ones) side by side; live = entries −
retractions. A retraction repeats its row's fields, so it lands in the same group; both states
are sets, so the answer is the same whatever order rows and retractions arrived in, however often
either was re-sent, and for a backfill from a table that has already merged a row away into its
retraction (the retraction alone still counts as an entry and a retraction).

- `stage_entries_daily` — stage entries per day x brand x stage x influence zone x channel:
  live customers entering = `uniqExactMerge(entries) - uniqExactMerge(retractions)` (a customer
  has at most one live entry per stage); fed by `stage_entries_daily_mv`. Period queries read it
  and never scan `transitions`.
- `referrals_daily` — per day x brand x referrer: the customers that advocate brought (their
  aware transition carries `referrer_id`), entries and retractions likewise; fed by
  `referrals_daily_mv`.
- `customer_state` — one row per (brand, customer_id) after merges: per stage, the highest seq
  that entered it and the highest seq withdrawn from it (the stage is live when the first is
  higher: each new entry of a stage has a higher seq than the one it replaced), its time and
  the dwell before it, and the first touch: the channel, influence zone and campaign of the
  row entering aware (by seq too, so a corrected aware row wins over the one it replaced);
  fed by `customer_state_mv`. A database from before the first touch is rebuilt by `migrate`
  (`rebuild_customer_state`).
- `live_transitions` — the transitions that count: `transitions FINAL` without retracted rows.
- Views that hide the `-Merge` functions: `stage_entries` (daily live counts) and
  `customer_current_stage` (one row per customer with a live journey; no FINAL needed).

Rendered for both dialects of `sinks.clickhouse.tables`: the statements are valid on Debian's
18.16 server and on current ClickHouse. Documented column by column in docs/analysts.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sinks.clickhouse.tables import INFLUENCE_ENUM, STAGE_ENUM, TRANSITION_COLUMNS, Dialect
from sinks.clickhouse.target import checked_identifier

#: Stages after aware: each has a dwell in `customer_state`.
LATER_STAGES = ("appeal", "ask", "act", "advocate")
STAGES = ("aware", *LATER_STAGES)
#: The row identity the rollups count: (customer_id, seq), hashed (works on every server version).
ROW_HASH = "sipHash64(concat(customer_id, '/', toString(seq)))"
LIVE = "uniqExactMerge(entries) - uniqExactMerge(retractions)"
#: Bit n of `stages_entered` is set when the customer entered stage n (aware = 1 ... advocate = 5).
STAGE_BIT = {"aware": 2, "appeal": 4, "ask": 8, "act": 16, "advocate": 32}

VIEWS = ("live_transitions", "stage_entries", "customer_current_stage")

#: The first touch: fields of the row entering aware kept per customer, (name, what it is).
FIRST_TOUCH_FIELDS = (("channel", "channel ('' when none)"), ("influence", "O-zone (own, other, outer)"),
                      ("campaign", "campaign ('' when none)"))
#: How each is read from a transitions row (as a String: one state type on every server version).
FIRST_TOUCH_VALUE = {"channel": "ifNull(channel, '')", "influence": "toString(influence)",
                     "campaign": "ifNull(campaign, '')"}


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
        *_entry_columns("entering rows"),
    ]


def _entry_columns(what: str) -> list[tuple[str, str, str]]:
    return [
        ("entries", "AggregateFunction(uniqExact, UInt64)", f"{what}, live or withdrawn (hash of customer_id, seq)"),
        ("retractions", "AggregateFunction(uniqExact, UInt64)",
         f"those withdrawn; live = {LIVE}"),
    ]


ENTRY_STATES = f"""    uniqExactState({ROW_HASH}) AS entries,
    uniqExactStateIf({ROW_HASH}, retracted = 1) AS retractions"""


def _stage_entries_select(db: str) -> str:
    return f"""SELECT
    brand,
    toDate(occurred_at) AS day,
    to_stage AS stage,
    influence,
    ifNull(channel, '') AS channel,
{ENTRY_STATES}
FROM {db}.transitions
GROUP BY brand, day, stage, influence, channel"""


def create_stage_entries_view(database: str) -> str:
    db = _db(database)
    return f"""
CREATE VIEW IF NOT EXISTS {db}.stage_entries AS
SELECT brand, day, stage, influence, channel, {LIVE} AS customers
FROM {db}.stage_entries_daily
GROUP BY brand, day, stage, influence, channel
""".strip()


# -- referrals per day ----------------------------------------------------------------------


def _referrals_columns(dialect: Dialect) -> list[tuple[str, str, str]]:
    return [
        ("brand", dialect.label(), "brand of the journey"),
        ("day", "Date", "UTC day the referred customer became aware"),
        ("referrer_id", "String", "the advocate whose share brought them"),
        *_entry_columns("aware rows of the customers they brought"),
    ]


def _referrals_select(db: str) -> str:
    return f"""SELECT
    brand,
    toDate(occurred_at) AS day,
    ifNull(referrer_id, '') AS referrer_id,
{ENTRY_STATES}
FROM {db}.transitions
WHERE to_stage = 'aware' AND ifNull(referrer_id, '') != ''
GROUP BY brand, day, referrer_id"""


# -- one row per customer -------------------------------------------------------------------


def _customer_state_columns(dialect: Dialect) -> list[tuple[str, str, str]]:
    ts = dialect.timestamp
    return [
        ("brand", dialect.label(), "brand of the journey"),
        ("customer_id", "String", "the customer"),
        *((f"{s}_seq", "AggregateFunction(maxIf, UInt32, UInt8)", f"highest seq of a row entering {s} (0: never)")
          for s in STAGES),
        *((f"{s}_withdrawn", "AggregateFunction(maxIf, UInt32, UInt8)",
           f"highest seq of a retracted row entering {s}: live when {s}_seq is higher") for s in STAGES),
        *((f"{s}_at", f"AggregateFunction(argMaxIf, {ts}, UInt32, UInt8)", f"occurred_at of that row entering {s}")
          for s in STAGES),
        *((f"ms_to_{s}", "AggregateFunction(argMaxIf, UInt64, UInt32, UInt8)",
           f"dwell_ms of that row entering {s}: time in the stage before") for s in LATER_STAGES),
        *((f"aware_{field}", "AggregateFunction(argMaxIf, String, UInt32, UInt8)",
           f"{what} of that row entering aware: the first touch") for field, what in FIRST_TOUCH_FIELDS),
    ]


def _customer_state_select(db: str) -> str:
    seqs = ",\n".join(f"    maxIfState(seq, to_stage = '{s}') AS {s}_seq" for s in STAGES)
    withdrawn = ",\n".join(
        f"    maxIfState(seq, to_stage = '{s}' AND retracted = 1) AS {s}_withdrawn" for s in STAGES)
    entered = ",\n".join(f"    argMaxIfState(occurred_at, seq, to_stage = '{s}') AS {s}_at" for s in STAGES)
    dwell = ",\n".join(
        f"    argMaxIfState(ifNull(dwell_ms, toUInt64(0)), seq, to_stage = '{s}') AS ms_to_{s}" for s in LATER_STAGES
    )
    touch = ",\n".join(
        f"    argMaxIfState(CAST({FIRST_TOUCH_VALUE[field]} AS String), seq, to_stage = 'aware') AS aware_{field}"
        for field, _ in FIRST_TOUCH_FIELDS)
    return f"""SELECT
    brand,
    customer_id,
{seqs},
{withdrawn},
{entered},
{dwell},
{touch}
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


def create_live_transitions(database: str) -> str:
    """The rows that count: each (brand, customer_id, seq) once, retracted ones left out.

    The table's version column is `retracted`, so FINAL keeps the retraction of a row whatever
    the order the two arrived in (a re-sent original never revives it).
    """
    db = _db(database)
    columns = ", ".join(c for c in TRANSITION_COLUMNS if c != "retracted")
    return f"""
CREATE VIEW IF NOT EXISTS {db}.live_transitions AS
SELECT {columns}, ingested_at
FROM {db}.transitions FINAL
WHERE retracted = 0
""".strip()


def create_customer_current_stage_view(database: str) -> str:
    db = _db(database)
    live = ",\n".join(f"        maxIfMerge({s}_seq) > maxIfMerge({s}_withdrawn) AS {s}_live" for s in STAGES)
    times = ",\n".join(f"        argMaxIfMerge({s}_at) AS {s}_at_" for s in STAGES)
    dwell = ",\n".join(f"        argMaxIfMerge(ms_to_{s}) AS ms_to_{s}_" for s in LATER_STAGES)
    touch = ",\n".join(f"        argMaxIfMerge(aware_{field}) AS first_{field}" for field, _ in FIRST_TOUCH_FIELDS)
    touch_out = ", ".join(f"first_{field}" for field, _ in FIRST_TOUCH_FIELDS)
    entered = ",\n".join(f"    if({s}_live, {s}_at_, NULL) AS {s}_at" for s in LATER_STAGES)
    current = ", ".join(f"{s}_live, '{s}'" for s in reversed(STAGES))
    since = ", ".join(f"{s}_live, {s}_at_" for s in reversed(LATER_STAGES))
    bits = " + ".join(f"{s}_live * {STAGE_BIT[s]}" for s in STAGES)
    return f"""
CREATE VIEW IF NOT EXISTS {db}.customer_current_stage AS
SELECT
    brand,
    customer_id,
    CAST(multiIf({current}, 'none') AS {STAGE_ENUM}) AS stage,
    multiIf({since}, aware_at_) AS stage_since,
    aware_at_ AS first_seen,
{entered},
    if(act_live, if(appeal_live, ms_to_appeal_, 0) + if(ask_live, ms_to_ask_, 0) + ms_to_act_, NULL)
        AS aware_to_act_ms,
    if(act_live AND advocate_live, ms_to_advocate_, NULL) AS act_to_advocate_ms,
    toUInt8({bits}) AS stages_entered,
    {touch_out}
FROM
(
    SELECT
        brand,
        customer_id,
{live},
{times},
{dwell},
{touch}
    FROM {db}.customer_state
    GROUP BY brand, customer_id
)
WHERE aware_live
""".strip()


# -- migrations -----------------------------------------------------------------------------


def backfills(database: str) -> list[str]:
    """Fold rows already in `transitions` into the rollups (safe to repeat: idempotent states).

    A view only sees inserts made after it exists; this covers rows written before (an upgrade)
    and any written between creating a view and this statement (counted twice, harmlessly).
    """
    return [rollup.backfill(database) for rollup in ROLLUPS]


def rebuild_customer_state(database: str, dialect: Dialect) -> list[str]:
    """Drop `customer_state`, its materialized view and the view over it, for `migrations()` to
    create them anew and backfill them from `transitions` (a rollup that changed shape: states of
    another shape cannot be altered into it). Nothing is lost: the rollup is derived. On current
    servers `SYNC` drops at once (an Atomic database delays a drop; on a cluster the replicated
    table's ZooKeeper path must be free for the CREATE that follows).
    """
    db = _db(database)
    sync = " SYNC" if dialect.modern else ""
    return [f"DROP TABLE IF EXISTS {db}.{name}{sync}"
            for name in ("customer_state_mv", "customer_current_stage", "customer_state")]


def analytics_migrations(database: str, dialect: Dialect) -> list[str]:
    """Tables, then the materialized views feeding them, then the views, then the backfill."""
    return [
        *(rollup.create_table(database, dialect) for rollup in ROLLUPS),
        *(rollup.create_view(database) for rollup in ROLLUPS),
        create_live_transitions(database),
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
