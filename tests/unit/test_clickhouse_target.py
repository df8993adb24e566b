"""Where ClickHouse is (one URL, secret password) and the DDL rendered per server dialect."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from schemas import Transition
from sinks.clickhouse.tables import (
    TRANSITION_COLUMNS,
    Dialect,
    create_database,
    create_transitions,
    migrations,
)
from sinks.clickhouse.target import ClickHouseTarget

URLS = [
    # url, (host, port, database, user, password, secure, verify)
    ("clickhouse://localhost", ("localhost", 9000, "journey", "default", "", False, True)),
    ("clickhouse://127.0.0.1:9000/journey", ("127.0.0.1", 9000, "journey", "default", "", False, True)),
    ("clickhouse://alice:s3cret@db.example:9001/analytics", ("db.example", 9001, "analytics", "alice", "s3cret", False, True)),
    ("clickhouse://bob@db/sales_2024", ("db", 9000, "sales_2024", "bob", "", False, True)),
    ("clickhouse://us%40er:p%40ss%3Aw%2Fd@h/db", ("h", 9000, "db", "us@er", "p@ss:w/d", False, True)),
    ("clickhouses://h/db", ("h", 9440, "db", "default", "", True, True)),
    ("clickhouse://h/db?secure=1", ("h", 9440, "db", "default", "", True, True)),
    ("clickhouse://h/db?secure=true", ("h", 9440, "db", "default", "", True, True)),
    ("clickhouse://h:9000/db?secure=yes", ("h", 9000, "db", "default", "", True, True)),
    ("clickhouse://h/db?secure=0", ("h", 9000, "db", "default", "", False, True)),
    ("clickhouses://h/db?verify=false", ("h", 9440, "db", "default", "", True, False)),
    ("clickhouse://[::1]:9000/db", ("::1", 9000, "db", "default", "", False, True)),
]


@pytest.mark.parametrize(("url", "expected"), URLS, ids=[u for u, _ in URLS])
def test_from_url(url, expected):
    target = ClickHouseTarget.from_url(url)
    got = (
        target.host, target.port, target.database, target.user,
        target.password.get_secret_value(), target.secure, target.verify,
    )
    assert got == expected


def test_a_private_ca_comes_from_the_url():
    assert ClickHouseTarget.from_url("clickhouses://h/db?ca=/etc/journey/ca.pem").ca_certs == "/etc/journey/ca.pem"
    assert ClickHouseTarget.from_url("clickhouses://h/db").ca_certs is None


@pytest.mark.parametrize(("error", "expected"), [
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate", "?ca="),
    ("Hostname mismatch, certificate is not valid for 'db'.", "not valid for 'h'"),
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number", "does not speak TLS"),
])
def test_tls_failures_are_named_with_their_fix(error, expected):
    from sinks.clickhouse.connection import unreachable_message

    message = unreachable_message(ClickHouseTarget.from_url("clickhouses://h/db"), OSError(error))
    assert expected in message and "cannot reach" not in message
    plain = unreachable_message(ClickHouseTarget.from_url("clickhouse://h/db"), OSError(error))
    assert plain.startswith("cannot reach ClickHouse at h:9000")


def test_explicit_password_wins_over_the_url():
    target = ClickHouseTarget.from_url("clickhouse://u:from-url@h/db", password=SecretStr("from-settings"))
    assert target.password.get_secret_value() == "from-settings"


@pytest.mark.parametrize("url", ["clickhouse://alice:s3cret@db:9001/analytics", "clickhouses://a:s3cret@h/db?secure=1"])
def test_the_password_is_never_shown(url):
    target = ClickHouseTarget.from_url(url)
    for text in (str(target), repr(target), f"{target}", target.address):
        assert "s3cret" not in text
    assert str(target).startswith(("clickhouse://", "clickhouses://"))
    assert "@" in str(target) and target.user in str(target)


def test_str_names_the_target():
    assert str(ClickHouseTarget.from_url("clickhouse://alice:pw@db:9001/analytics")) == "clickhouse://alice@db:9001/analytics"
    assert str(ClickHouseTarget.from_url("clickhouses://h/x")) == "clickhouses://default@h:9440/x"


@pytest.mark.parametrize(
    "database",
    ["my-db", "1db", "a/b", "x" * 65, "db;DROP", "db%20x", "journey.transitions"],
)
def test_invalid_database_identifier_is_rejected(database):
    with pytest.raises(ValueError, match="database name"):
        ClickHouseTarget.from_url(f"clickhouse://h/{database}")


@pytest.mark.parametrize("url", ["http://h:8123/db", "tcp://h/db", "h:9000/db"])
def test_unsupported_scheme_is_rejected(url):
    with pytest.raises(ValueError, match="scheme"):
        ClickHouseTarget.from_url(url)


# --- DDL per dialect ----------------------------------------------------------------------------

LEGACY = Dialect((18, 16))
MODERN = Dialect((24, 8))


def test_legacy_dialect_types():
    assert not LEGACY.modern
    assert LEGACY.timestamp == "DateTime('UTC')"
    assert LEGACY.label() == "String"
    assert LEGACY.label(nullable=True) == "Nullable(String)"
    assert LEGACY.timestamp_precision_us == 1_000_000


def test_modern_dialect_types():
    assert MODERN.modern
    assert MODERN.timestamp == "DateTime64(6, 'UTC')"
    assert MODERN.label() == "LowCardinality(String)"
    assert MODERN.label(nullable=True) == "LowCardinality(Nullable(String))"
    assert MODERN.timestamp_precision_us == 1


@pytest.mark.parametrize(("version", "modern"), [((19, 17), False), ((20, 1), True), ((26, 9), True)])
def test_dialect_boundary(version, modern):
    assert Dialect(version).modern is modern


def test_legacy_ddl_uses_only_types_18_16_has():
    ddl = create_transitions("journey", LEGACY)
    assert "DateTime64" not in ddl and "LowCardinality" not in ddl
    assert "occurred_at        DateTime('UTC')" in ddl


def test_modern_ddl_uses_precise_times_and_low_cardinality():
    ddl = create_transitions("journey", MODERN)
    assert "DateTime64(6, 'UTC')" in ddl
    assert "brand              LowCardinality(String)" in ddl


@pytest.mark.parametrize("dialect", [LEGACY, MODERN], ids=["legacy", "modern"])
def test_transitions_table_is_idempotent_on_brand_customer_seq(dialect):
    ddl = create_transitions("analytics", dialect)
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS analytics.transitions")
    assert "ENGINE = ReplacingMergeTree(retracted)" in ddl  # a retraction wins whatever the arrival order
    assert "ORDER BY (brand, customer_id, seq)" in ddl
    body = [line.split()[0] for line in ddl.splitlines() if line.startswith("    ")]
    assert body == [*TRANSITION_COLUMNS, "ingested_at"]


def test_columns_follow_the_transition_model():
    assert TRANSITION_COLUMNS == tuple(Transition.model_fields)


@pytest.mark.parametrize("build", [create_database, lambda db: create_transitions(db, MODERN)])
def test_ddl_refuses_unsafe_database_names(build):
    with pytest.raises(ValueError):
        build("journey; DROP TABLE x")


def test_migrations_create_database_then_table():
    statements = migrations("journey", LEGACY)
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS journey"
    assert statements[1] == create_transitions("journey", LEGACY)
