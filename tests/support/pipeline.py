"""A journey pipeline under test: unique topics and database, the real CLI as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clickhouse_driver import Client

from journey.local import LocalService, free_port
from schemas.transition import transition_fields

JOURNEY = [sys.executable, "-m", "journey.cli"]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll until `predicate()` is truthy; a deadline, not a speed assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _iso(value: datetime, precision_us: int) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    micro = value.microsecond - value.microsecond % precision_us
    return value.replace(microsecond=micro).isoformat()


#: What the promise of DESIGN.md §1b compares: every field of a live row but its seq.
COMPARED_FIELDS = tuple(name for name in transition_fields() if name not in ("seq", "retracted"))


def normalise(rows: Iterable[dict[str, Any]], precision_us: int) -> list[tuple]:
    """Live transitions as comparable tuples (every field but seq), at the precision the server stores."""
    out = []
    for row in rows:
        row = dict(row)
        if row.get("retracted"):
            continue
        at = row["occurred_at"]
        if isinstance(at, str):
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        row["occurred_at"] = _iso(at, precision_us)
        out.append(tuple(row[name] for name in COMPARED_FIELDS))
    return sorted(out, key=lambda r: tuple("" if v is None else str(v) for v in r))


@dataclass
class Pipeline:
    broker: LocalService
    clickhouse: LocalService
    workdir: Path
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    partitions: int = 4
    backend: str = "server"  # "server": clickhouse-server over the native protocol; "chdb": embedded
    workers: list[subprocess.Popen] = field(default_factory=list)
    started: int = 0
    settings_env: dict[str, str] = field(default_factory=dict)  # e.g. TLS settings, for every command

    @property
    def clickhouse_url(self) -> str:
        if self.backend == "chdb":
            return f"chdb://{self.workdir / 'chdb'}?database={self.database}"
        return f"clickhouse://default@{self.clickhouse.address}/{self.database}"

    @property
    def database(self) -> str:
        return f"db_{self.name}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
        env.update(
            JOURNEY_KAFKA_BROKERS=self.broker.address,
            JOURNEY_TOPIC_CLICKSTREAM=f"{self.name}.clickstream",
            JOURNEY_TOPIC_PURCHASES=f"{self.name}.purchases",
            JOURNEY_TOPIC_SHARES=f"{self.name}.shares",
            JOURNEY_TOPIC_SEGMENT=f"{self.name}.segment",
            JOURNEY_TOPIC_TRANSITIONS=f"{self.name}.transitions",
            JOURNEY_TOPIC_DEADLETTER=f"{self.name}.deadletter",
            JOURNEY_TOPIC_REKEYED=f"{self.name}.rekeyed",
            JOURNEY_TOPIC_IDENTITY=f"{self.name}.identity",
            JOURNEY_GROUP_ID=f"{self.name}-group",
            JOURNEY_PARTITIONS=str(self.partitions),
            JOURNEY_CLICKHOUSE_URL=self.clickhouse_url,
            JOURNEY_PRODUCER_IDEMPOTENCE="false",  # Tansu lacks InitProducerId (DESIGN.md §5)
            JOURNEY_SESSION_TIMEOUT_S="8",  # group joins take half of it on Tansu
            JOURNEY_SINK_BATCH_SECONDS="0.5",
            JOURNEY_METRICS_HOST="127.0.0.1",
        )
        env.update(self.settings_env)
        env.update(extra)
        return env

    def topic(self, kind: str) -> str:
        return f"{self.name}.{kind}"

    def journey(self, *args: str, check: bool = True, input: bytes | None = None, **env: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*JOURNEY, *args], env=self.env(**env), input=input, capture_output=True, timeout=600
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"journey {' '.join(args)} exited {result.returncode}:\n{result.stderr.decode()[-3000:]}"
            )
        return result

    def start_generator(self, *args: str) -> subprocess.Popen:
        """`journey generate ARGS --to-kafka` publishing live beside the workers (its log: generator.log)."""
        log = open(self.workdir / "generator.log", "wb")
        return subprocess.Popen([*JOURNEY, "generate", *args, "--to-kafka"], env=self.env(), stdout=log, stderr=log)

    def finish_generator(self, generator: subprocess.Popen, timeout: float = 300) -> None:
        if generator.wait(timeout=timeout) != 0:
            raise AssertionError(f"journey generate exited {generator.returncode}: see {self.workdir / 'generator.log'}")

    def setup(self) -> None:
        self.journey("topics")
        self.journey("migrate")

    def spawn_worker(self, metrics_port: int, **env: str) -> subprocess.Popen:
        """A worker process, not tracked: for supervisors that expect workers to exit."""
        self.started += 1
        log = open(self.workdir / f"worker-{self.started}.log", "wb")
        return subprocess.Popen(
            [*JOURNEY, "worker"], env=self.env(JOURNEY_METRICS_PORT=str(metrics_port), **env), stdout=log, stderr=log
        )

    def start_worker(self, **env: str) -> tuple[subprocess.Popen, int]:
        port = free_port()
        proc = self.spawn_worker(port, **env)
        self.workers.append(proc)
        return proc, port

    def kill_worker(self, proc: subprocess.Popen) -> None:
        """`kill -9`: no shutdown, no final commit, as when a node dies."""
        proc.kill()
        proc.wait()
        self.workers.remove(proc)

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows as dicts; chDB is queried through `journey sql` (and so through a running worker)."""
        if self.backend == "chdb":
            out = self.journey("sql", sql, "--format", "json").stdout
            return [json.loads(line) for line in out.splitlines() if line.strip()]
        client = Client(host=self.clickhouse.host, port=self.clickhouse.port, send_receive_timeout=30)
        try:
            rows, types = client.execute(sql, with_column_types=True)
        finally:
            client.disconnect()
        return [dict(zip([name for name, _ in types], row)) for row in rows]

    def stored_count(self) -> int:
        exists = self.query(
            f"SELECT count() AS n FROM system.tables WHERE database = '{self.database}' AND name = 'transitions'"
        )[0]["n"]
        if not int(exists):
            return 0
        return int(self.query(f"SELECT count() AS n FROM {self.database}.live_transitions")[0]["n"])

    def _check_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() not in (None, 0):
                raise AssertionError(f"worker exited with {proc.returncode}: see {self.workdir}")

    def wait_for_rows(self, expected: int, timeout: float = 180) -> None:
        """Until ClickHouse holds exactly `expected` live rows (corrections may pass through more)."""
        def done() -> bool:
            self._check_workers()
            return self.stored_count() == expected

        wait_until(done, timeout, f"{expected} live transitions in ClickHouse (have {self.stored_count()})")

    def wait_for_replay(self, expected: list[dict[str, Any]], timeout: float = 180) -> list[tuple]:
        """Until the live rows equal `expected` (the replay's), or the deadline; returns them normalised.

        The caller asserts equality afterwards, so a difference left at the deadline shows as a diff.
        """
        precision = self.precision_us()
        wanted = normalise(expected, precision)
        deadline = time.monotonic() + timeout
        while True:
            self._check_workers()
            stored = normalise(self.stored_transitions(), precision)
            if stored == wanted or time.monotonic() > deadline:
                return stored
            time.sleep(1.0)

    def assert_equals_replay(self, events_file: Path, timeout: float = 300) -> list[dict[str, Any]]:
        """The promise of DESIGN.md §1b: once `events_file` is consumed, the live rows equal
        `journey replay` of it on every field but seq. Returns the replay's rows.

        A failure says what differs in a few lines (counts, the first rows missing and extra, the
        customers concerned) and quotes the workers' errors: on CI a full diff of 50,000 rows
        would push the test's name out of the part of the output anyone gets to see.
        """
        expected = self.replay(events_file)
        stored = self.wait_for_replay(expected, timeout=timeout)
        wanted = normalise(expected, self.precision_us())
        if stored != wanted:
            raise AssertionError(self._difference(wanted, stored))
        return expected

    def _difference(self, wanted: list[tuple], stored: list[tuple]) -> str:
        missing = sorted(set(wanted) - set(stored))
        extra = sorted(set(stored) - set(wanted))
        repeated = len(stored) - len(set(stored))
        customers = sorted({row[COMPARED_FIELDS.index("customer_id")] for row in missing + extra})
        lines = [f"live rows differ from the replay: {len(missing)} missing, {len(extra)} extra, "
                 f"{repeated} stored twice, over {len(customers)} customers (first: {customers[:5]})"]
        lines += [f"  missing {row}" for row in missing[:3]] + [f"  extra   {row}" for row in extra[:3]]
        for log in sorted(self.workdir.glob("worker-*.log")):
            errors = [line for line in log.read_text(errors="replace").splitlines()
                      if "ERROR" in line or "Traceback" in line or "CRITICAL" in line]
            if errors:
                lines.append(f"  {log.name}: {len(errors)} error lines, last: {errors[-1][:300]}")
        lines.append(f"  logs: {self.workdir}")
        return "\n".join(lines)

    def stored_transitions(self) -> list[dict[str, Any]]:
        """The live rows (`live_transitions`: retracted rows left out)."""
        return self.query(f"SELECT {', '.join(COMPARED_FIELDS)} FROM {self.database}.live_transitions")

    def precision_us(self) -> int:
        version = self.query("SELECT version() AS v")[0]["v"]
        major, minor = (int(x) for x in version.split(".")[:2])
        return 1 if (major, minor) >= (20, 1) else 1_000_000

    def replay(self, events_file: Path) -> list[dict[str, Any]]:
        out = self.journey("replay", str(events_file)).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def scrape(port: int) -> dict[str, float]:
    """Prometheus text exposition -> {'name{labels}': value} (samples only)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def metric(port: int, name: str) -> float:
    """A metric summed over its labels; 0 while the worker is not serving yet (or restarting)."""
    try:
        samples = scrape(port)
    except OSError:
        return 0.0
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))
