"""`journey demo`: the whole pipeline on this machine, from nothing to a live 5A view.

Starts a Tansu broker (memory only), uses an embedded ClickHouse (chDB, data kept under the
work directory), creates topics, migrates, runs one `journey worker` process, streams a
generated population into Kafka at a bounded rate and shows the path filling up live, until
ClickHouse holds every transition the offline replay predicts, then writes the 5A report as one
HTML page (`journey report --format html`) and prints its path. Nothing to install by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import orjson

from fivea import Rules, replay
from fivea.ratios import PathMetrics
from journey.errors import JourneyError
from journey.generate import PRESETS, generate, to_jsonl
from journey.live import LiveSource, Snapshot, plain_line, render
from journey.local import LocalService, ServiceError, free_port, start_broker
from journey.produce import produce
from journey.settings import Settings
from journey.stack import run_journey

DATABASE = "journey"
#: The demo's population: the funnel preset with anonymous browsing and sign-ins (DESIGN.md §1c).
DEMO_PROFILE = replace(PRESETS["funnel"], anonymous=0.4, never_sign_in=0.25, second_device=0.2,
                       browse_after_purchase=0.3)
STAGE_COUNTS = f"SELECT to_stage, count() AS customers FROM {DATABASE}.live_transitions GROUP BY to_stage"


def _step(number: int, text: str) -> None:
    print(f"[{number}/5] {text}", flush=True)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_summary(counts: dict[str, int]) -> None:
    metrics = PathMetrics.from_counts(counts)
    widest = max(counts.values(), default=1) or 1
    print("\npersons entering each stage (customers with their linked devices; anonymous visitors on their own)")
    for stage in ("aware", "appeal", "ask", "act", "advocate"):
        n = counts.get(stage, 0)
        print(f"  {stage:<9} {n:>8,}  {'█' * max(1 if n else 0, round(40 * n / widest))}")
    print(f"\n  PAR (act/aware)      {_fmt(metrics.par)}")
    print(f"  BAR (advocate/aware) {_fmt(metrics.bar)}")
    for name, value in metrics.stage_ratios.items():
        print(f"  {name:<20} {_fmt(value)}")
    print(f"  path shape           {metrics.shape} (distance to bow tie {_fmt(metrics.bow_tie_distance)})")


def run_demo(workdir: Path, *, customers: int, seed: int, keep: bool, rate: float, events: Path | None = None,
             segment: bool = False) -> int:
    """The whole pipeline on simulated customers, or on `events` (a JSON Lines file in our contract)."""
    workdir = workdir.resolve()
    if (workdir / "worker").exists():
        shutil.rmtree(workdir / "worker")  # the broker starts empty: old offsets/state mean nothing
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "demo.log"
    chdb_dir = workdir / "chdb"
    clickhouse_url = f"chdb://{chdb_dir}?database={DATABASE}"
    broker: LocalService | None = None
    worker: subprocess.Popen | None = None
    try:
        _step(1, "starting a Kafka-compatible broker (Tansu, memory only)")
        broker = start_broker(workdir / "broker")
        metrics_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
        env.update(
            JOURNEY_KAFKA_BROKERS=broker.address,
            JOURNEY_CLICKHOUSE_URL=clickhouse_url,
            JOURNEY_PRODUCER_IDEMPOTENCE="false",  # Tansu has no idempotent producer
            JOURNEY_SESSION_TIMEOUT_S="8",
            JOURNEY_METRICS_HOST="127.0.0.1",
            JOURNEY_METRICS_PORT=str(metrics_port),
        )
        _step(2, f"creating topics and migrating the embedded ClickHouse (chDB) in {chdb_dir}")
        run_journey(["topics"], env, log)
        run_journey(["migrate"], env, log)
        _truncate(chdb_dir)  # earlier demo runs leave their rows: start from an empty table

        _step(3, f"starting a worker (metrics: http://127.0.0.1:{metrics_port}/metrics)")
        worker_log = workdir / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "journey.cli", "worker"], env=env,
            stdout=worker_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

        if events is None:
            _step(4, f"simulating {customers:,} visitors ({DEMO_PROFILE.anonymous:.0%} browse anonymously until they "
                     "sign in, some on two devices; counts are of persons)")
            events_file = workdir / "events.jsonl"
            with events_file.open("wb") as out:
                count = sum(out.write(to_jsonl(e)) > 0 for e in generate(customers, seed=seed, profile=DEMO_PROFILE))
        else:
            _step(4, f"reading your events from {events}")
            events_file = events.resolve()
        count, valid, expected = predict(events_file, segment)
        invalid = count - len(valid)
        note = f" ({invalid:,} invalid: they go to the dead-letter topic)" if invalid else ""
        print(f"      {count:,} events{note}; the offline replay predicts {expected:,} transitions")

        _step(5, f"producing them at up to {rate:,.0f} events/s while the worker places customers on the path")
        producer = PacedProducer(events_file, env, rate, segment)
        producer.start()

        source = LiveSource(f"http://127.0.0.1:{metrics_port}/metrics", lambda: stage_counts(env))
        snap = _watch(source, producer, worker, worker_log, expected, keep)
        print_summary(snap.stage_counts)
        report = workdir / "report.html"
        run_journey(["report", "--brand", "default", "--format", "html", "-o", str(report)], env, log)
        _where(workdir, clickhouse_url, events_file, worker_log, report)
        return 0
    except ServiceError as exc:
        raise JourneyError(str(exc)) from None
    except KeyboardInterrupt:
        print("\nstopping...")
        _where(workdir, clickhouse_url, workdir / "events.jsonl", workdir / "worker.log")
        return 130
    finally:
        stopped = []
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
            stopped.append("the worker")
        if broker is not None:
            broker.stop()
            stopped.append("the broker (its topics lived in memory)")
        if stopped:
            print(f"\nstopped {' and '.join(stopped)}; the ClickHouse data stays in {chdb_dir}", flush=True)


def predict(events_file: Path, segment: bool = False) -> tuple[int, list, int]:
    """(lines, valid events, transitions the replay predicts) of a JSON Lines file (`segment`: Segment Spec)."""
    from schemas.rejections import Rejection, decode
    from schemas.segment import Ignored, decode_segment

    try:
        lines = [line for line in events_file.read_bytes().splitlines() if line.strip()]
    except OSError as exc:
        raise JourneyError(f"cannot read {events_file}: {exc.strerror}") from None
    settings, rules = Settings(), Rules.default()
    if segment:
        decoded = (decode_segment(line, settings.max_event_bytes, rules.segment, settings.segment_brand) for line in lines)
    else:
        decoded = (decode(line, settings.max_event_bytes) for line in lines)
    valid = [e for e in decoded if not isinstance(e, (Rejection, Ignored))]
    return len(lines), valid, sum(1 for _ in replay(valid, rules))


def _truncate(chdb_dir: Path) -> None:
    from sinks.clickhouse.backends import ChdbBackend

    from sinks.clickhouse.analytics import DERIVED_TABLES

    backend = ChdbBackend(chdb_dir, DATABASE)
    try:
        for table in ("transitions", "customer_identities", *DERIVED_TABLES):
            backend.execute(f"TRUNCATE TABLE {DATABASE}.{table}")
    finally:
        backend.close()


def stage_counts(env: dict[str, str]) -> dict[str, int]:
    """Customers per stage, asked through `journey sql` (the worker holds the chDB directory)."""
    result = subprocess.run(
        [sys.executable, "-m", "journey.cli", "sql", STAGE_COUNTS, "--format", "json"],
        env=env, capture_output=True, timeout=60,
    )
    if result.returncode:
        raise JourneyError(result.stderr.decode().strip())
    rows = [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {row["to_stage"]: int(row["customers"]) for row in rows}


class PacedProducer(threading.Thread):
    """Feeds the events file to Kafka at a bounded rate, counting what it sent."""

    def __init__(self, events_file: Path, env: dict[str, str], rate: float, segment: bool = False) -> None:
        super().__init__(name="demo-producer", daemon=True)
        self.events_file = events_file
        self.settings = Settings(
            kafka_brokers=env["JOURNEY_KAFKA_BROKERS"], producer_idempotence=False
        )
        self.rate = rate
        self.segment = segment
        self.sent = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def _lines(self):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        with self.events_file.open("rb") as lines:
            for line in lines:
                ahead = self.sent / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
                self.sent += 1
                yield line

    def run(self) -> None:
        try:
            produce(self._lines(), self.settings, progress=None, segment=self.segment)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
        finally:
            self.done.set()


def _watch(source: LiveSource, producer: PacedProducer, worker: subprocess.Popen, worker_log: Path,
           expected: int, keep: bool) -> Snapshot:
    """Refresh the view until every expected transition is stored (and, with --keep, until Ctrl-C)."""
    interactive = sys.stdout.isatty()
    live = None
    if interactive:
        from rich.live import Live

        live = Live(refresh_per_second=2, transient=False)
        live.start()
    try:
        last_plain = 0.0
        while True:
            if worker.poll() is not None:
                raise JourneyError(f"the worker exited with {worker.returncode} — see {worker_log}")
            if producer.error is not None:
                raise JourneyError(f"producing failed: {producer.error}")
            snap = source.snapshot(producer.sent)
            stored = sum(snap.stage_counts.values())
            if live is not None:
                live.update(render(snap))
            elif time.monotonic() - last_plain >= 2:
                last_plain = time.monotonic()
                print(plain_line(snap), flush=True)
            if producer.done.is_set() and stored == expected and not keep:  # corrections may pass through more
                if live is None:
                    print(plain_line(snap), flush=True)
                print(f"\n      done: all {expected:,} transitions the replay predicts are in ClickHouse; "
                      f"{snap.consumed:,.0f} events at {snap.average:,.0f} events/s on average")
                return snap
            time.sleep(0.5)
    finally:
        if live is not None:
            live.stop()


def _command() -> str:
    """How this user runs `journey` (the venv's script when it is not on PATH)."""
    found = shutil.which("journey")
    script = Path(sys.executable).with_name("journey")
    if found and Path(found).resolve() == script.resolve():
        return "journey"
    return str(script) if script.exists() else f"{sys.executable} -m journey.cli"


def _where(workdir: Path, clickhouse_url: str, events: Path, worker_log: Path, report: Path | None = None) -> None:
    journey = _command()
    print("\nwhere the data is")
    if report is not None:
        print(f"  the 5A report (HTML)  {report} (open it in a browser; it works offline)")
    print(f"  events (JSON Lines)   {events}")
    print(f"  ClickHouse (chDB)     {workdir / 'chdb'} (table {DATABASE}.transitions)")
    print(f"  worker log            {worker_log}")
    print(f"  query it              {journey} sql \"SELECT to_stage, count() FROM journey.live_transitions GROUP BY to_stage\" \\")
    print(f"                          --clickhouse-url '{clickhouse_url}'")
    print(f"  the 5A report         {journey} report --brand default --clickhouse-url '{clickhouse_url}'")
    print("                          (add --format html -o report.html for the page with charts)")
