"""The same DDL on current ClickHouse (chDB embeds the 26.x engine): modern types, idempotent rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.clickhouse.tables import TRANSITION_COLUMNS, Dialect, migrations

pytestmark = pytest.mark.integration
chdb_session = pytest.importorskip("chdb.session")

ROW = "('default', 'c1', 1, 'none', 'aware', 'forward', '2026-01-01 00:00:00.123456', 'e1', 'clickstream', NULL, 'own', NULL, NULL, NULL, 0)"


def test_migrations_run_twice_and_a_resent_row_counts_once(tmp_path: Path) -> None:
    session = chdb_session.Session(str(tmp_path / "chdb"))
    try:
        version = session.query("SELECT version()", "CSV").data().strip().strip('"')
        dialect = Dialect(tuple(int(x) for x in version.split(".")[:2]))
        assert dialect.modern
        for _ in range(2):
            for statement in migrations("journey", dialect):
                session.query(statement)
        columns = session.query(
            "SELECT name, type FROM system.columns WHERE database = 'journey' AND table = 'transitions'", "CSV"
        ).data()
        assert "DateTime64(6, \\'UTC\\')" in columns or "DateTime64(6, 'UTC')" in columns
        assert "LowCardinality(String)" in columns
        insert = f"INSERT INTO journey.transitions ({', '.join(TRANSITION_COLUMNS)}) VALUES {ROW}"
        session.query(insert)
        session.query(insert)  # the sink re-sending a batch
        result = session.query("SELECT count(), toString(any(occurred_at)) FROM journey.transitions FINAL", "CSV")
        assert result.data().strip() == '1,"2026-01-01 00:00:00.123456"'
    finally:
        session.close()
