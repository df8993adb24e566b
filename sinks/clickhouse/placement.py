"""Where the tables live: one server, or a cluster of shards x replicas. One renderer for both.

The definitions in `tables.py` and `analytics.py` are written once, for a single server. A
`Placement` renders their statements for where they run; for a single server it returns them
as they are. For a cluster (`Placement("name")`, a cluster of the servers' `remote_servers`)
each statement is rewritten by its kind, never by table name, so a new table, materialized view
or view comes out right without a line here:

- `CREATE DATABASE db` -> `... ON CLUSTER c`.
- `CREATE TABLE db.t (...) ENGINE = XMergeTree(args) ...` -> two tables, both `ON CLUSTER`:
  `db.t_local` with `ReplicatedXMergeTree('/clickhouse/tables/{shard}/db/t_local', '{replica}',
  args)` (the servers' `macros` fill in shard and replica), and `db.t`, a `Distributed` table
  over the `_local` tables of every shard. Writers and readers keep using `db.t`, so the sink,
  the query library, `journey report` and Grafana run unchanged.
- Sharding key of `db.t`: `sipHash64(customer_id)` when the table has a `customer_id` column,
  so all of a customer's rows (and, with identity resolution, a person's, which are written
  under the person's customer id) live on one shard: `FINAL`, `argMax` and per-customer
  `GROUP BY`s read through the Distributed table stay exact. Tables without a customer
  (daily rollups) use `rand()`: their rows are partial aggregate states, merged by every read.
- `CREATE MATERIALIZED VIEW db.v TO db.t AS SELECT ... FROM db.s` -> `ON CLUSTER`, writing to
  and reading from the `_local` tables: the view fires on the replica that receives an insert
  into its shard's `s_local`, its output part replicates like any other (no double counting).
- `CREATE VIEW` -> `ON CLUSTER`, body unchanged: it reads the Distributed tables.
- `DROP TABLE IF EXISTS db.x [SYNC]` (a rollup rebuilt by a migration) -> `ON CLUSTER`, for
  `db.x` and for `db.x_local` (a table's shards; `IF EXISTS` skips it for a view). `SYNC`
  (current servers) frees a replicated table's ZooKeeper path at once, for the CREATE after it.
- `INSERT INTO db.t SELECT ... FROM db.s` (a backfill) -> unchanged: it reads and writes
  through the Distributed tables (run it with `insert_distributed_sync=1`: `INSERT_SETTINGS`).

Any other statement raises `ValueError`: a definition the cluster cannot take is found by the
unit tests, not by a production migration.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sinks.clickhouse.target import checked_identifier

#: Suffix of the per-shard (replicated) table behind each Distributed table.
LOCAL_SUFFIX = "_local"
#: Settings of every INSERT on a cluster: a Distributed insert returns only once every shard it
#: writes to has the rows (else it queues them on the receiving server's disk: not durable).
INSERT_SETTINGS = {"insert_distributed_sync": 1}

_NAME = r"([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)"
_CREATE_DATABASE = re.compile(r"^(CREATE DATABASE IF NOT EXISTS [A-Za-z_][A-Za-z0-9_]*)$")
_CREATE_TABLE = re.compile(rf"^CREATE TABLE IF NOT EXISTS {_NAME}(\s*\(.*?\n\))\s*ENGINE = (\w+)(?:\(((?:[^()]|\([^()]*\))*)\))?(.*)$",
                           re.S)
_CREATE_MV = re.compile(rf"^CREATE MATERIALIZED VIEW IF NOT EXISTS {_NAME} TO {_NAME}( AS\s.*)$", re.S)
_CREATE_VIEW = re.compile(rf"^CREATE VIEW IF NOT EXISTS {_NAME}( AS\s.*)$", re.S)
_DROP = re.compile(rf"^DROP TABLE IF EXISTS {_NAME}( SYNC)?$")
_INSERT_SELECT = re.compile(rf"^INSERT INTO {_NAME}(?:\s*\([^)]*\))?\s+SELECT\s.*$", re.S)
_CUSTOMER_COLUMN = re.compile(r"^\s+customer_id\s", re.M)


@dataclass(frozen=True)
class Placement:
    """`Placement()`: one server (statements as written). `Placement("c")`: cluster `c`."""

    cluster: str | None = None

    def __post_init__(self) -> None:
        if self.cluster is not None:
            checked_identifier(self.cluster, "cluster name")

    @property
    def insert_settings(self) -> dict[str, int]:
        """Settings the sink and the backfills pass with every INSERT."""
        return dict(INSERT_SETTINGS) if self.cluster else {}

    def render(self, statements: Sequence[str]) -> list[str]:
        if self.cluster is None:
            return list(statements)
        tables: set[tuple[str, str]] = set()  # (db, name) of tables turned into _local + Distributed
        out: list[str] = []
        for statement in statements:
            out.extend(self._render_one(statement.strip(), tables))
        return out

    def _render_one(self, sql: str, tables: set[tuple[str, str]]) -> list[str]:
        c = self.cluster
        if m := _CREATE_DATABASE.match(sql):
            return [f"{m.group(1)} ON CLUSTER {c}"]
        if m := _CREATE_TABLE.match(sql):
            db, name, columns, engine, args, layout = m.groups()
            if not engine.endswith("MergeTree") or engine.startswith("Replicated"):
                raise ValueError(f"cannot place {db}.{name} on a cluster: engine {engine} is not a plain *MergeTree")
            local = name + LOCAL_SUFFIX
            zk_args = [f"'/clickhouse/tables/{{shard}}/{db}/{local}'", "'{replica}'"]
            if args and args.strip():
                zk_args.append(args.strip())
            key = "sipHash64(customer_id)" if _CUSTOMER_COLUMN.search(columns) else "rand()"
            tables.add((db, name))
            return [
                f"CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER {c}{columns}\n"
                f"ENGINE = Replicated{engine}({', '.join(zk_args)}){layout}",
                f"CREATE TABLE IF NOT EXISTS {db}.{name} ON CLUSTER {c} AS {db}.{local}\n"
                f"ENGINE = Distributed({c}, {db}, {local}, {key})",
            ]
        if m := _CREATE_MV.match(sql):
            db, name, to_db, to_name, body = m.groups()
            if (to_db, to_name) not in tables:
                raise ValueError(f"cannot place {db}.{name} on a cluster: it writes to {to_db}.{to_name}, "
                                 "which is not a table of this migration")
            return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{name} ON CLUSTER {c} "
                    f"TO {to_db}.{to_name}{LOCAL_SUFFIX}{_to_local(body, tables)}"]
        if m := _CREATE_VIEW.match(sql):
            db, name, body = m.groups()
            return [f"CREATE VIEW IF NOT EXISTS {db}.{name} ON CLUSTER {c}{body}"]
        if m := _DROP.match(sql):
            db, name, sync = m.groups()
            return [f"DROP TABLE IF EXISTS {db}.{table} ON CLUSTER {c}{sync or ''}"
                    for table in (name, name + LOCAL_SUFFIX)]
        if _INSERT_SELECT.match(sql):
            return [sql]
        raise ValueError(f"cannot place this statement on a cluster (no rule for its kind):\n{sql[:200]}")


def _to_local(body: str, tables: set[tuple[str, str]]) -> str:
    """A materialized view's SELECT, reading its shard's `_local` tables (whole names only)."""
    for db, name in tables:
        body = re.sub(rf"\b{re.escape(db)}\.{re.escape(name)}\b(?!{LOCAL_SUFFIX})", f"{db}.{name}{LOCAL_SUFFIX}", body)
    return body


SINGLE_SERVER = Placement()
