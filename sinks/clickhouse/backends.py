"""Two ways to reach ClickHouse, one interface: a server over the native protocol, or chDB.

Selected by URL: `clickhouse://user@host:9000/db` (`clickhouses://` for TLS) or
`chdb:///path/to/dir?database=journey` (the engine embedded in this process, data kept in
the directory). Queries use ClickHouse's own parameter syntax, `{name:Type}`, on both: chDB
binds them itself; for the native driver they become its client-side `%(name)s` escaping,
which also works on servers too old for server-side parameters.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from clickhouse_driver import errors as ch_errors
from pydantic import SecretStr

from sinks.clickhouse.connection import UNREACHABLE, connect, server_dialect, unreachable_message
from sinks.clickhouse.tables import Dialect
from sinks.clickhouse.target import ClickHouseTarget, checked_identifier
from sinks.contract import SinkUnavailable

PARAMETER = re.compile(r"\{(\w+):[^{}]+\}")
OWNER_FILE = "journey-owner.json"


class QueryError(RuntimeError):
    """ClickHouse rejected a statement (syntax, unknown table, types...): the message says why."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


class Backend(Protocol):
    database: str
    dialect: Dialect

    def execute(self, sql: str, settings: Mapping[str, Any] | None = None) -> None:
        """Run a statement (DDL, INSERT ... SELECT) with optional query settings."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult: ...

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple],
               settings: Mapping[str, Any] | None = None) -> None: ...

    def close(self) -> None: ...


def to_driver_params(sql: str) -> str:
    """`{name:Type}` placeholders -> clickhouse-driver's `%(name)s` (and `%` -> `%%`)."""
    return PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%"))


def typed_params(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Values given as text (e.g. `journey sql --param limit=5`) as the numbers their placeholders
    declare: the driver's client-side escaping would quote them (`LIMIT '5'` is a syntax error).
    chDB binds by type itself."""
    typed = dict(params)
    for name, type_ in re.findall(r"\{(\w+):([^{}]+)\}", sql):
        value = typed.get(name)
        if isinstance(value, str):
            number = int if re.match(r"U?Int\d+$", type_) else float if re.match(r"Float\d+$", type_) else None
            try:
                typed[name] = number(value) if number else value
            except ValueError:
                pass  # not a number: the server names the error
    return typed


class NativeBackend:
    """A ClickHouse server over the native protocol (clickhouse-driver)."""

    def __init__(self, target: ClickHouseTarget, *, timeout_s: float = 30.0, with_database: bool = True) -> None:
        self.target = target
        self.database = target.database
        self.client = connect(target, timeout_s=timeout_s, with_database=with_database)
        self.dialect = server_dialect(self.client)

    def _run(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.client.execute(sql, *args, **kwargs)
        except UNREACHABLE as exc:
            raise SinkUnavailable(unreachable_message(self.target, exc)) from exc
        except ch_errors.ServerException as exc:
            raise QueryError(exc.message.strip().split("\nStack trace")[0]) from None

    def execute(self, sql: str, settings: Mapping[str, Any] | None = None) -> None:
        self._run(sql, settings=dict(settings) if settings else None)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        if params:
            rows, types = self._run(to_driver_params(sql), typed_params(sql, params), with_column_types=True)
        else:
            rows, types = self._run(sql, with_column_types=True)
        return QueryResult([name for name, _ in types], [tuple(r) for r in rows])

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple],
               settings: Mapping[str, Any] | None = None) -> None:
        # Rows as the driver's argument, never as SQL text (DESIGN.md §5).
        self._run(f"INSERT INTO {self.database}.{checked_identifier(table, 'table')} ({', '.join(columns)}) VALUES",
                  rows, settings=dict(settings) if settings else None)

    def close(self) -> None:
        self.client.disconnect()

    def __str__(self) -> str:
        return str(self.target)


class ChdbLocked(SinkUnavailable):
    """Another process holds the chDB directory (an embedded engine allows one per directory)."""

    def __init__(self, path: Path, owner: dict[str, Any] | None) -> None:
        self.path = path
        self.owner = owner
        who = f" (pid {owner['pid']})" if owner else ""
        super().__init__(
            f"chDB data directory {path} is in use by another process{who} — stop it, or run "
            "`journey sql` to query through it"
        )


def _no_settings(settings: Mapping[str, Any] | None) -> None:
    if settings:
        raise QueryError(f"chDB is one embedded engine, not a cluster: settings {sorted(settings)} do not apply")


def _chdb_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    return value


class ChdbBackend:
    """ClickHouse's current engine embedded in this process (chDB), persisted in a directory.

    Thread-safe: the sink's executor thread and the local SQL endpoint share one session.
    """

    def __init__(self, path: Path, database: str, lock_wait_s: float = 30.0) -> None:
        try:
            from chdb import session as chdb_session
        except ImportError:
            raise SinkUnavailable("chdb is not installed — pip install chdb (or use a clickhouse:// URL)") from None
        self.path = path.resolve()
        self.database = checked_identifier(database, "database name")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # A process that owns the directory for good (a worker) announces itself: go through it
        # without trying the lock, which makes chDB print "Cannot lock file" on stderr.
        owner = read_owner(self.path)
        if owner and process_alive(owner.get("pid")):
            raise ChdbLocked(self.path, owner)
        # A short-lived `journey sql` or `migrate` may hold the directory for a moment: wait a
        # little before calling it taken.
        deadline = time.monotonic() + lock_wait_s
        while True:
            try:
                self.session = chdb_session.Session(str(self.path))
                break
            except Exception as exc:  # chDB reports a held directory as a generic error
                text = str(exc)
                if not ("lock" in text.lower() or "EmbeddedServer" in text):
                    raise
                owner = read_owner(self.path)
                if owner or time.monotonic() > deadline:
                    raise ChdbLocked(self.path, owner) from None
                time.sleep(0.2)
        version = self._raw("SELECT version()", "CSV").strip().strip('"')
        self.dialect = Dialect(tuple(int(part) for part in version.split(".")[:2]))  # type: ignore[arg-type]

    def _raw(self, sql: str, fmt: str, params: Mapping[str, Any] | None = None) -> str:
        with self._lock:
            try:
                result = self.session.query(sql, fmt, params=dict(params) if params else None)
            except RuntimeError as exc:
                raise QueryError(str(exc).strip()) from None
        return result.data() if hasattr(result, "data") else str(result)

    def execute(self, sql: str, settings: Mapping[str, Any] | None = None) -> None:
        _no_settings(settings)
        self._raw(sql, "CSV")

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        text = self._raw(sql, "JSONCompact", params)
        if not text.strip():
            return QueryResult([], [])
        doc = json.loads(text)
        return QueryResult([m["name"] for m in doc["meta"]], [tuple(row) for row in doc["data"]])

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple],
               settings: Mapping[str, Any] | None = None) -> None:
        import pyarrow as pa

        _no_settings(settings)

        data = {name: [_chdb_value(row[i]) for row in rows] for i, name in enumerate(columns)}
        batch = pa.table(data)  # noqa: F841 - read by name in the SQL below
        table_name = checked_identifier(table, "table")
        with self._lock:
            self.session.query(
                f"INSERT INTO {self.database}.{table_name} ({', '.join(columns)}) "
                f"SELECT {', '.join(columns)} FROM Python(batch)"
            )

    def close(self) -> None:
        with self._lock:
            self.session.close()

    def __str__(self) -> str:
        return f"chdb://{self.path}?database={self.database}"


@dataclass(frozen=True)
class BackendURL:
    """A parsed JOURNEY_CLICKHOUSE_URL."""

    scheme: str
    target: ClickHouseTarget | None = None
    path: Path | None = None
    database: str = "journey"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str, password: SecretStr | None = None) -> "BackendURL":
        scheme = urlsplit(url).scheme
        if scheme == "chdb":
            parts = urlsplit(url)
            raw_path = (parts.netloc + parts.path) or ".journey/chdb"
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            database = checked_identifier(query.get("database", "journey"), "database name")
            return cls("chdb", path=Path(raw_path), database=database)
        target = ClickHouseTarget.from_url(url, password)
        return cls("clickhouse", target=target, database=target.database)

    def open(self, *, with_database: bool = True, timeout_s: float = 30.0) -> Backend:
        if self.scheme == "chdb":
            assert self.path is not None
            return ChdbBackend(self.path, self.database)
        assert self.target is not None
        return NativeBackend(self.target, timeout_s=timeout_s, with_database=with_database)

    def __str__(self) -> str:
        return f"chdb://{self.path}?database={self.database}" if self.scheme == "chdb" else str(self.target)


def process_alive(pid: Any) -> bool:
    """Whether another process with this id runs (the owner of a chDB directory, a local service)."""
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_owner(path: Path) -> dict[str, Any] | None:
    """Who holds a chDB directory, as written by `announce_owner` (None if unknown)."""
    try:
        return json.loads((path / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
