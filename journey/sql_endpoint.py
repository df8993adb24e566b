"""Queries for a chDB directory that another process holds.

An embedded engine allows one process per data directory. The process that holds it (the
worker) serves read-only SQL on a loopback port and announces the port in the directory
(`journey-owner.json`); `journey sql` sends its query there when it cannot open the
directory itself. Loopback only, read-only statements only: this is a local convenience,
not a server.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from journey.errors import JourneyError
from sinks.clickhouse.backends import OWNER_FILE, Backend, QueryResult

READ_ONLY = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.IGNORECASE)


def is_read_only(sql: str) -> bool:
    return bool(READ_ONLY.match(sql)) and ";" not in sql.strip().rstrip(";")


def serve_sql(backend: Callable[[], Backend], directory: Path) -> ThreadingHTTPServer:
    """`backend` returns the live backend (the sink reconnects after failures)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != "/sql":
                return self._reply(404, {"error": "POST /sql"})
            try:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                sql, params = request["sql"], request.get("params") or {}
            except (ValueError, KeyError, TypeError):
                return self._reply(400, {"error": 'expected JSON {"sql": "...", "params": {...}}'})
            if not is_read_only(sql):
                return self._reply(403, {"error": "only one read-only statement (SELECT, SHOW, DESCRIBE, ...)"})
            try:
                result = backend().query(sql, params)
            except Exception as exc:  # noqa: BLE001 - the query's error goes back to the caller
                return self._reply(400, {"error": str(exc).strip()[:2000]})
            self._reply(200, {"columns": result.columns, "rows": result.rows})

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = orjson.dumps(body, default=str)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="journey-sql", daemon=True).start()
    owner_file = directory / OWNER_FILE
    owner_file.write_text(json.dumps({"pid": os.getpid(), "sql_url": f"http://127.0.0.1:{server.server_port}/sql"}))
    atexit.register(lambda: owner_file.unlink(missing_ok=True))
    return server


def query_owner(owner: dict[str, Any], sql: str, params: dict[str, Any] | None = None) -> QueryResult:
    request = urllib.request.Request(
        owner["sql_url"],
        data=orjson.dumps({"sql": sql, "params": params or {}}),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise JourneyError(json.loads(exc.read() or b"{}").get("error", str(exc))) from None
    except (urllib.error.URLError, OSError):
        raise JourneyError(
            f"the chDB directory is held by pid {owner.get('pid')}, which does not answer queries — "
            "is it still running?"
        ) from None
    return QueryResult(body["columns"], [tuple(row) for row in body["rows"]])
