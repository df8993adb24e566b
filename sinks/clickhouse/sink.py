"""Transitions into the idempotent `transitions` table, one INSERT per batch.

Rows go as the driver's argument, never as SQL text (values in SQL text hang on 18.16 and
would be an injection risk). A re-sent batch changes nothing: the table replaces rows with
the same (brand, customer_id, seq), and rows carry their own partition key (occurred_at).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from schemas import Transition
from sinks.clickhouse.connection import UNREACHABLE, connect, server_dialect, unreachable_message
from sinks.clickhouse.tables import TRANSITION_COLUMNS, Dialect, migrations
from sinks.clickhouse.target import ClickHouseTarget
from sinks.contract import SinkUnavailable

INSERT_TRANSITIONS = "INSERT INTO {db}.transitions ({columns}) VALUES"


def _naive_utc(moment: datetime) -> datetime:
    # The driver reads naive datetimes in the column's timezone, which is UTC.
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def transition_row(t: Transition) -> tuple:
    return (
        t.brand,
        t.customer_id,
        t.seq,
        t.from_stage,
        t.to_stage,
        t.kind,
        _naive_utc(t.occurred_at),
        t.trigger_event_id,
        t.trigger_event_type,
        t.channel,
        t.influence,
        t.referrer_id,
        t.dwell_ms,
    )


def migrate(target: ClickHouseTarget) -> tuple[Dialect, list[str]]:
    """Create the database and tables if missing; returns the dialect and statements run."""
    client = connect(target, with_database=False)
    try:
        dialect = server_dialect(client)
        statements = migrations(target.database, dialect)
        for statement in statements:
            client.execute(statement)
        return dialect, statements
    finally:
        client.disconnect()


class ClickHouseSink:
    def __init__(self, target: ClickHouseTarget, *, timeout_s: float = 30.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._client: Client | None = None
        self.dialect: Dialect | None = None
        self._insert = INSERT_TRANSITIONS.format(db=target.database, columns=", ".join(TRANSITION_COLUMNS))

    def setup(self) -> None:
        client = self._connected()
        exists = client.execute(
            "SELECT count() FROM system.tables WHERE database = %(db)s AND name = 'transitions'",
            {"db": self.target.database},
        )[0][0]
        if not exists:
            raise SinkUnavailable(
                f"ClickHouse at {self.target.address} has no table {self.target.database}.transitions"
                " — run `journey migrate`"
            )

    def _connected(self) -> Client:
        if self._client is None:
            self._client = connect(self.target, timeout_s=self.timeout_s)
            self.dialect = server_dialect(self._client)
        return self._client

    def write(self, batch: Sequence[Transition]) -> None:
        if not batch:
            return
        try:
            self._connected().execute(self._insert, [transition_row(t) for t in batch])
        except (*UNREACHABLE, ch_errors.Error) as exc:
            self.close()  # reconnect on the next attempt
            if isinstance(exc, UNREACHABLE):
                raise SinkUnavailable(unreachable_message(self.target, exc)) from exc
            raise SinkUnavailable(f"ClickHouse at {self.target.address} refused the insert: {exc}") from exc

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.disconnect()
            finally:
                self._client = None
