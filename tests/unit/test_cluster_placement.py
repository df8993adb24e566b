"""One definition per table, rendered for one server or for a cluster (sinks/clickhouse/placement.py)."""

from __future__ import annotations

import re

import pytest

from journey.settings import Settings
from sinks.clickhouse.placement import INSERT_SETTINGS, SINGLE_SERVER, Placement
from sinks.clickhouse.tables import Dialect, migrations

LEGACY, MODERN = Dialect((18, 16)), Dialect((24, 8))
CLUSTER = Placement("analytics")
CREATED = re.compile(r"^CREATE (TABLE|MATERIALIZED VIEW|VIEW|DATABASE) IF NOT EXISTS (\S+)")


def created(statements: list[str]) -> dict[str, tuple[str, str]]:
    """name -> (kind, statement) for every CREATE."""
    out = {}
    for sql in statements:
        m = CREATED.match(sql)
        if m:
            out[m.group(2)] = (m.group(1), sql)
    return out


@pytest.mark.parametrize("dialect", [LEGACY, MODERN])
def test_a_single_server_gets_the_definitions_as_written(dialect: Dialect) -> None:
    assert migrations("journey", dialect) == migrations("journey", dialect, SINGLE_SERVER)
    assert not any("ON CLUSTER" in s or "Replicated" in s or "Distributed" in s for s in migrations("journey", dialect))
    assert SINGLE_SERVER.insert_settings == {}


@pytest.mark.parametrize("dialect", [LEGACY, MODERN])
def test_a_rollup_rebuilt_is_dropped_on_every_server_with_its_shards(dialect: Dialect) -> None:
    from sinks.clickhouse.analytics import rebuild_customer_state

    sync = " SYNC" if dialect.modern else ""
    statements = rebuild_customer_state("journey", dialect)
    assert SINGLE_SERVER.render(statements) == statements
    assert CLUSTER.render(statements) == [
        f"DROP TABLE IF EXISTS journey.{name} ON CLUSTER analytics{sync}"
        for table in ("customer_state_mv", "customer_current_stage", "customer_state")
        for name in (table, table + "_local")]


@pytest.mark.parametrize("dialect", [LEGACY, MODERN])
def test_every_create_goes_on_the_cluster(dialect: Dialect) -> None:
    for sql in CLUSTER.render(migrations("journey", dialect)):
        if sql.startswith("CREATE"):
            assert " ON CLUSTER analytics" in sql.splitlines()[0], sql


@pytest.mark.parametrize("dialect", [LEGACY, MODERN])
def test_each_table_becomes_replicated_shards_behind_a_distributed_table_of_the_same_name(dialect: Dialect) -> None:
    single = created(migrations("journey", dialect))
    cluster = created(migrations("journey", dialect, CLUSTER))
    tables = [name for name, (kind, _) in single.items() if kind == "TABLE"]
    assert "journey.transitions" in tables and len(tables) >= 4
    for name in tables:
        kind, local = cluster[name + "_local"]
        engine = re.search(r"ENGINE = (\w+)\((.*)\)", local).groups()  # type: ignore[union-attr]
        assert engine[0].startswith("Replicated") and engine[0].endswith("MergeTree")
        db, table = name.split(".")
        assert engine[1].startswith(f"'/clickhouse/tables/{{shard}}/{db}/{table}_local', '{{replica}}'")
        # the single-server engine's own arguments follow (e.g. the replacing version column)
        single_args = re.search(r"ENGINE = \w+\((.*)\)", single[name][1]).group(1)  # type: ignore[union-attr]
        assert engine[1].endswith(single_args) if single_args else engine[1].endswith("'{replica}'")
        # same columns and layout: the renderer only touches the name and the engine
        assert local.split("\n", 1)[1].split("ENGINE")[0] == single[name][1].split("\n", 1)[1].split("ENGINE")[0]
        kind, front = cluster[name]
        assert kind == "TABLE"
        assert f"AS {name}_local\nENGINE = Distributed(analytics, {db}, {table}_local, " in front


def test_a_customer_s_rows_live_on_one_shard() -> None:
    cluster = created(migrations("journey", LEGACY, CLUSTER))
    assert cluster["journey.transitions"][1].endswith("sipHash64(customer_id))")
    assert cluster["journey.customer_state"][1].endswith("sipHash64(customer_id))")
    # Rollups without a customer hold mergeable partial states: any shard will do.
    assert cluster["journey.stage_entries_daily"][1].endswith("rand())")


def test_materialized_views_write_and_read_their_shard_s_local_tables() -> None:
    single = created(migrations("journey", LEGACY))
    cluster = created(migrations("journey", LEGACY, CLUSTER))
    views = [name for name, (kind, _) in single.items() if kind == "MATERIALIZED VIEW"]
    assert views
    for name in views:
        sql = cluster[name][1]
        target = re.search(r" TO (\S+) AS", sql).group(1)  # type: ignore[union-attr]
        assert target.endswith("_local")
        assert "FROM journey.transitions_local" in sql
        assert re.sub(r"journey\.(\w+)_local", r"journey.\1", sql.split(" AS\n", 1)[1]) == \
            single[name][1].split(" AS\n", 1)[1]


def test_views_and_backfills_read_the_distributed_tables_unchanged() -> None:
    single = migrations("journey", LEGACY)
    cluster = migrations("journey", LEGACY, CLUSTER)
    for name, (kind, sql) in created(single).items():
        if kind == "VIEW":
            assert created(cluster)[name][1] == sql.replace(f"{name} AS", f"{name} ON CLUSTER analytics AS", 1)
    backfills = [s for s in single if s.startswith("INSERT")]
    assert backfills and [s for s in cluster if s.startswith("INSERT")] == backfills
    assert CLUSTER.insert_settings == INSERT_SETTINGS == {"insert_distributed_sync": 1}


def test_a_new_table_and_view_need_no_rule_of_their_own() -> None:
    """What issue 13 adds (a retractions table, a view over it) comes out right as it is written."""
    new = [
        "CREATE TABLE IF NOT EXISTS j.retractions\n(\n    brand String,\n    customer_id String,\n"
        "    seq UInt32,\n    retracted_at DateTime('UTC')\n)\nENGINE = ReplacingMergeTree(retracted_at)\n"
        "ORDER BY (brand, customer_id, seq)",
        "CREATE TABLE IF NOT EXISTS j.retracted_daily\n(\n    day Date,\n    n AggregateFunction(uniqExact, UInt64)\n)\n"
        "ENGINE = AggregatingMergeTree()\nORDER BY day",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS j.retracted_daily_mv TO j.retracted_daily AS\n"
        "SELECT toDate(retracted_at) AS day, uniqExactState(sipHash64(customer_id, seq)) AS n\n"
        "FROM j.retractions GROUP BY day",
        "CREATE VIEW IF NOT EXISTS j.live AS SELECT * FROM j.retractions FINAL",
    ]
    out = CLUSTER.render(new)
    assert len(out) == 6
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/j/retractions_local', '{replica}', retracted_at)" \
        in out[0]
    assert out[1].endswith("Distributed(analytics, j, retractions_local, sipHash64(customer_id))")
    assert out[3].endswith("Distributed(analytics, j, retracted_daily_local, rand())")
    assert " TO j.retracted_daily_local AS" in out[4] and "FROM j.retractions_local GROUP BY" in out[4]
    assert out[5] == "CREATE VIEW IF NOT EXISTS j.live ON CLUSTER analytics AS SELECT * FROM j.retractions FINAL"


@pytest.mark.parametrize("sql", [
    "ALTER TABLE j.t ADD COLUMN x UInt8",
    "CREATE TABLE IF NOT EXISTS j.t\n(\n    x UInt8\n)\nENGINE = Memory",
    "CREATE TABLE IF NOT EXISTS j.t\n(\n    x UInt8\n)\nENGINE = ReplicatedMergeTree('/p', 'r')\nORDER BY x",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS j.v TO j.elsewhere AS SELECT 1",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS j.v ENGINE = MergeTree ORDER BY x AS SELECT 1 AS x",
])
def test_a_statement_the_cluster_cannot_take_is_refused_by_name(sql: str) -> None:
    with pytest.raises(ValueError, match="cannot place"):
        CLUSTER.render([sql])
    assert SINGLE_SERVER.render([sql]) == [sql]


@pytest.mark.parametrize("name", ["my-cluster", "a b", "x;DROP", "1st"])
def test_cluster_names_are_identifiers(name: str) -> None:
    with pytest.raises(ValueError):
        Placement(name)
    with pytest.raises(ValueError):
        Settings(clickhouse_cluster=name)


def test_the_cluster_setting_defaults_to_one_server() -> None:
    assert Settings().clickhouse_cluster is None
    assert Settings(clickhouse_cluster="journey").clickhouse_cluster == "journey"


def test_a_url_names_other_servers_to_try() -> None:
    from sinks.clickhouse.target import ClickHouseTarget

    target = ClickHouseTarget.from_url("clickhouse://u:pw@ch-s1r1:9000/journey?alt_hosts=ch-s1r2:9000,ch-s2r1")
    assert target.alt_hosts == ("ch-s1r2:9000", "ch-s2r1:9000")
    assert str(target) == "clickhouse://u@ch-s1r1:9000/journey?alt_hosts=ch-s1r2:9000,ch-s2r1:9000"
    assert ClickHouseTarget.from_url("clickhouses://h/db?alt_hosts=h2").alt_hosts == ("h2:9440",)
    assert ClickHouseTarget.from_url("clickhouse://h/db").alt_hosts == ()
    for bad in ("h2:x", ":9000", "h 2:9000"):
        with pytest.raises(ValueError, match="alt_hosts"):
            ClickHouseTarget.from_url(f"clickhouse://h/db?alt_hosts={bad}")
