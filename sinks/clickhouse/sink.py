"""Transitions into the idempotent `transitions` table, one INSERT per batch.

Rows are passed as data (the native driver's argument, an Arrow table for chDB), never as SQL
text (values in SQL text hang on 18.16 and would be an injection risk). A re-sent batch changes nothing: the table replaces rows with
the same (brand, customer_id, seq), a retraction winning over the live row whatever the order,
and rows carry their own partition key (occurred_at).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from clickhouse_driver import errors as ch_errors

from schemas import Transition
from sinks.clickhouse.analytics import rebuild_customer_state
from sinks.clickhouse.backends import Backend, BackendURL, QueryError
from sinks.clickhouse.placement import SINGLE_SERVER, Placement
from sinks.clickhouse.tables import (
    BEFORE_CORRECTIONS,
    IDENTITY_COLUMNS,
    TRANSITION_COLUMNS,
    Dialect,
    migrations,
    rebuild_for_corrections,
)
from sinks.contract import IdentityRow, SinkUnavailable


def transition_row(t: Transition) -> tuple:
    return (
        t.brand,
        t.customer_id,
        t.seq,
        t.from_stage,
        t.to_stage,
        t.kind,
        t.occurred_at,  # aware: both backends convert to the UTC column (no local-time guessing)
        t.trigger_event_id,
        t.trigger_event_type,
        t.channel,
        t.influence,
        t.referrer_id,
        t.dwell_ms,
        t.campaign,
        int(t.retracted),
    )


class PlacementMismatch(SinkUnavailable):
    """The tables were migrated for another placement (one server vs a cluster): a setting to
    fix, not an outage to wait out."""


def check_placement(url: BackendURL, placement: Placement) -> None:
    if placement.cluster and url.scheme != "clickhouse":
        raise SinkUnavailable(f"JOURNEY_CLICKHOUSE_CLUSTER={placement.cluster} needs clickhouse:// servers, "
                              f"not {url.scheme}: chDB is one embedded engine")


class RebuildNeeded(Exception):
    """The `transitions` table predates corrections: `journey migrate --rebuild` moves it."""


def _predates_corrections(backend: Backend, database: str) -> bool:
    columns = backend.query(f"SELECT name FROM system.columns WHERE database = '{database}' "
                            "AND table = 'transitions'").rows
    return bool(columns) and ("retracted",) not in {tuple(row) for row in columns}


def _predates_first_touch(backend: Backend, database: str) -> bool:
    """A `customer_state` rollup from before it kept the first touch (issue 16)."""
    columns = {row[0] for row in backend.query(
        f"SELECT name FROM system.columns WHERE database = '{database}' AND table = 'customer_state'").rows}
    return bool(columns) and "aware_channel" not in columns


def migrate(url: BackendURL, rebuild: bool = False,
            placement: Placement = SINGLE_SERVER) -> tuple[Dialect, list[str]]:
    """Create the database and tables if missing; returns the dialect and statements run.

    A `transitions` table of the layout before corrections is moved to the current one when
    `rebuild` is set (tables.rebuild_for_corrections), and refused otherwise (RebuildNeeded).
    A `customer_state` from before the first touch is dropped and rebuilt from `transitions`
    (analytics.rebuild_customer_state), on one server or on the cluster.
    On a cluster (`placement`) every statement goes `ON CLUSTER` (each server must be up: the
    distributed DDL queue waits for all of them) and the backfills insert synchronously.
    """
    check_placement(url, placement)
    backend = url.open(with_database=False)
    try:
        statements = []
        if _predates_corrections(backend, url.database):
            if not rebuild:
                raise RebuildNeeded(
                    f"{url.database}.transitions was created before corrections (no `retracted` column, "
                    "versioned by ingestion time), and a table engine cannot be altered: run `journey migrate "
                    f"--rebuild` with the workers stopped. It copies the rows into a new table, keeps the old one "
                    f"as {url.database}.{BEFORE_CORRECTIONS} and rebuilds the analysts' layer (README, "
                    "'ClickHouse: the transitions table')")
            if placement.cluster:
                raise RebuildNeeded(
                    f"{url.database}.transitions was created before corrections: rebuild it on its single server "
                    "(`journey migrate --rebuild` without a cluster), then move it to the cluster as README "
                    "\"Moving a single server to a cluster\" says")
            statements += rebuild_for_corrections(url.database, backend.dialect)
        elif _predates_first_touch(backend, url.database):  # a derived rollup: dropped, rebuilt, backfilled
            statements += placement.render(rebuild_customer_state(url.database, backend.dialect))
        rendered = migrations(url.database, backend.dialect, placement)
        _check_engines(backend, url.database, rendered)
        statements += rendered
        for statement in statements:
            backend.execute(statement, placement.insert_settings)
        return backend.dialect, statements
    finally:
        backend.close()


_CREATES_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS \w+\.(\w+)\b.*?\bENGINE = (\w+)", re.S)


def _check_engines(backend: Backend, database: str, statements: list[str]) -> None:
    """`CREATE ... IF NOT EXISTS` would skip a table that exists with another engine (a single
    server's `transitions` where the cluster wants a Distributed one, or the reverse) and leave
    a mix: refuse, naming the way out. Migrations never convert a table in place."""
    existing = dict(backend.query("SELECT name, engine FROM system.tables WHERE database = {db:String}",
                                  {"db": database}).rows)
    for statement in statements:
        match = _CREATES_TABLE.match(statement)
        if match and match.group(1) in existing and existing[match.group(1)] != match.group(2):
            name, wanted = match.groups()
            raise SinkUnavailable(
                f"{database}.{name} exists as a {existing[name]} table, not the {wanted} this migration creates "
                f"(JOURNEY_CLICKHOUSE_CLUSTER decides which): migrate never converts a table in place — "
                "use another database, or move the data as README \"Moving a single server to a cluster\" says")


class ClickHouseSink:
    """Writes batches of transitions through a backend (server or chDB), reconnecting on failure.

    On a cluster (`placement`) it writes to the Distributed `transitions` with
    `insert_distributed_sync=1`: `write` returns only once a replica of every shard that owns a
    row of the batch has it, so the caller's offset commit stays behind a durable write. A
    shard that is down or a replica in read-only mode (ZooKeeper lost) fails the whole insert
    (SinkUnavailable: the caller retries the same batch; rows a healthy shard took are
    replaced by the retry's copies).
    """

    def __init__(self, url: BackendURL, *, timeout_s: float = 30.0, placement: Placement = SINGLE_SERVER) -> None:
        check_placement(url, placement)
        self.url = url
        self.placement = placement
        self.timeout_s = timeout_s
        self.backend: Backend | None = None
        self.checked = False  # setup() succeeded once

    def setup(self) -> None:
        backend = self.connected()
        engines = dict(backend.query(
            "SELECT name, engine FROM system.tables WHERE database = {db:String} "
            "AND name IN ('transitions', 'customer_identities')", {"db": self.url.database},
        ).rows)
        for table in ("transitions", "customer_identities"):
            if table not in engines:
                raise SinkUnavailable(f"{self.url} has no table {self.url.database}.{table} — run `journey migrate`")
        distributed = engines["transitions"] == "Distributed"
        if distributed != bool(self.placement.cluster):
            raise PlacementMismatch(
                f"{self.url}: {self.url.database}.transitions is {'a Distributed' if distributed else 'a single-server'} "
                f"table but JOURNEY_CLICKHOUSE_CLUSTER is {self.placement.cluster or 'unset'} — set it to the "
                "cluster the tables were migrated for (or migrate with --cluster)")
        self.checked = True

    def connected(self) -> Backend:
        if self.backend is None:
            self.backend = self.url.open(timeout_s=self.timeout_s)
        return self.backend

    def write(self, batch: Sequence[Transition], identities: Sequence[IdentityRow] = ()) -> None:
        if not batch and not identities:
            return
        if not self.checked:
            self.setup()  # a worker may start before ClickHouse is up, or migrated
        try:
            if batch:
                self.connected().insert("transitions", TRANSITION_COLUMNS, [transition_row(t) for t in batch],
                                        self.placement.insert_settings)
            if identities:
                self.connected().insert("customer_identities", IDENTITY_COLUMNS, [tuple(row) for row in identities],
                                        self.placement.insert_settings)
        except SinkUnavailable:
            self.close()  # reconnect on the next attempt
            raise
        except (QueryError, ch_errors.Error) as exc:
            self.close()
            raise SinkUnavailable(f"{self.url} refused the insert: {exc}") from exc

    def close(self) -> None:
        if self.backend is not None:
            try:
                self.backend.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped anyway
                pass
            finally:
                self.backend = None
