"""Transitions into the idempotent `transitions` table, one INSERT per batch.

Rows are passed as data (the native driver's argument, an Arrow table for chDB), never as SQL
text (values in SQL text hang on 18.16 and would be an injection risk). A re-sent batch changes nothing: the table replaces rows with
the same (brand, customer_id, seq), a retraction winning over the live row whatever the order,
and rows carry their own partition key (occurred_at).
"""

from __future__ import annotations

from collections.abc import Sequence

from clickhouse_driver import errors as ch_errors

from schemas import Transition
from sinks.clickhouse.backends import Backend, BackendURL, QueryError
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


class RebuildNeeded(Exception):
    """The `transitions` table predates corrections: `journey migrate --rebuild` moves it."""


def _predates_corrections(backend: Backend, database: str) -> bool:
    columns = backend.query(f"SELECT name FROM system.columns WHERE database = '{database}' "
                            "AND table = 'transitions'").rows
    return bool(columns) and ("retracted",) not in {tuple(row) for row in columns}


def migrate(url: BackendURL, rebuild: bool = False) -> tuple[Dialect, list[str]]:
    """Create the database and tables if missing; returns the dialect and statements run.

    A `transitions` table of the layout before corrections is moved to the current one when
    `rebuild` is set (tables.rebuild_for_corrections), and refused otherwise (RebuildNeeded).
    """
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
            statements += rebuild_for_corrections(url.database, backend.dialect)
        statements += migrations(url.database, backend.dialect)
        for statement in statements:
            backend.execute(statement)
        return backend.dialect, statements
    finally:
        backend.close()


class ClickHouseSink:
    """Writes batches of transitions through a backend (server or chDB), reconnecting on failure."""

    def __init__(self, url: BackendURL, *, timeout_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.backend: Backend | None = None
        self.checked = False  # setup() succeeded once

    def setup(self) -> None:
        backend = self.connected()
        found = {row[0] for row in backend.query(
            "SELECT name FROM system.tables WHERE database = {db:String} "
            "AND name IN ('transitions', 'customer_identities')", {"db": self.url.database},
        ).rows}
        for table in ("transitions", "customer_identities"):
            if table not in found:
                raise SinkUnavailable(f"{self.url} has no table {self.url.database}.{table} — run `journey migrate`")
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
                self.connected().insert("transitions", TRANSITION_COLUMNS, [transition_row(t) for t in batch])
            if identities:
                self.connected().insert("customer_identities", IDENTITY_COLUMNS, [tuple(row) for row in identities])
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
