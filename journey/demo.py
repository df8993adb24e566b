"""`journey demo`: the whole pipeline on this machine, from nothing to stage counts.

Starts a Tansu broker (memory only) and a clickhouse-server (data kept under the work
directory), creates topics, migrates, runs one `journey worker` process, feeds a generated
population and waits until ClickHouse holds every transition the offline replay predicts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from clickhouse_driver import Client

from fivea import Rules, replay
from fivea.ratios import PathMetrics
from journey.errors import JourneyError
from journey.generate import generate, to_jsonl
from journey.local import LocalService, ServiceError, free_port, start_broker, start_clickhouse
from schemas import parse_event

DATABASE = "journey"


def _step(number: int, text: str) -> None:
    print(f"[{number}/6] {text}", flush=True)


def _journey(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        result = subprocess.run([sys.executable, "-m", "journey.cli", *args], env=env, stdout=out, stderr=out)
    if result.returncode:
        raise JourneyError(f"`journey {' '.join(args)}` failed — see {log}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_summary(client: Client) -> None:
    rows = client.execute(
        f"SELECT to_stage, count() FROM {DATABASE}.transitions FINAL GROUP BY to_stage"
    )
    counts = {str(stage): n for stage, n in rows}
    metrics = PathMetrics.from_counts(counts)
    widest = max(counts.values(), default=1)
    print("\ncustomers entering each stage")
    for stage in ("aware", "appeal", "ask", "act", "advocate"):
        n = counts.get(stage, 0)
        print(f"  {stage:<9} {n:>8,}  {'█' * max(1 if n else 0, round(40 * n / widest))}")
    print(f"\n  PAR (act/aware)      {_fmt(metrics.par)}")
    print(f"  BAR (advocate/aware) {_fmt(metrics.bar)}")
    for name, value in metrics.stage_ratios.items():
        print(f"  {name:<20} {_fmt(value)}")
    print(f"  path shape           {metrics.shape} (distance to bow tie {_fmt(metrics.bow_tie_distance)})")


def run_demo(workdir: Path, *, customers: int, seed: int, keep: bool) -> int:
    workdir = workdir.resolve()
    if (workdir / "worker").exists():
        shutil.rmtree(workdir / "worker")  # the broker starts empty: old offsets/state mean nothing
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "demo.log"
    services: list[LocalService] = []
    worker: subprocess.Popen | None = None
    try:
        _step(1, "starting a Kafka-compatible broker (Tansu, memory only)")
        broker = start_broker(workdir / "broker")
        services.append(broker)
        _step(2, "starting ClickHouse server")
        clickhouse = start_clickhouse(workdir / "clickhouse")
        services.append(clickhouse)
        metrics_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
        env.update(
            JOURNEY_KAFKA_BROKERS=broker.address,
            JOURNEY_CLICKHOUSE_URL=f"clickhouse://default@{clickhouse.address}/{DATABASE}",
            JOURNEY_PRODUCER_IDEMPOTENCE="false",  # Tansu has no idempotent producer
            JOURNEY_SESSION_TIMEOUT_S="8",
            JOURNEY_DATA_DIR=str(workdir / "worker"),
            JOURNEY_METRICS_HOST="127.0.0.1",
            JOURNEY_METRICS_PORT=str(metrics_port),
        )
        _step(3, "creating topics and migrating ClickHouse")
        _journey(["topics"], env, log)
        _journey(["migrate"], env, log)

        _step(4, f"starting a worker (metrics: http://127.0.0.1:{metrics_port}/metrics)")
        worker_log = workdir / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "journey.cli", "worker"], env=env,
            stdout=worker_log.open("wb"), stderr=subprocess.STDOUT,
        )

        events_file = workdir / "events.jsonl"
        _step(5, f"simulating {customers:,} customers and producing their events")
        with events_file.open("wb") as out:
            count = sum(out.write(to_jsonl(e)) > 0 for e in generate(customers, seed=seed))
        _journey(["produce", str(events_file), "--quiet"], env, log)
        expected = sum(1 for _ in replay((parse_event(line) for line in events_file.open("rb")), Rules.default()))
        print(f"      {count:,} events produced; the offline replay predicts {expected:,} transitions")

        _step(6, "waiting for the worker to store every transition in ClickHouse")
        client = Client(host=clickhouse.host, port=clickhouse.port, send_receive_timeout=30)
        stored = 0
        deadline = time.monotonic() + 600
        while stored < expected:
            if worker.poll() is not None:
                raise JourneyError(f"the worker exited with {worker.returncode} — see {worker_log}")
            if time.monotonic() > deadline:
                raise JourneyError(f"only {stored:,} of {expected:,} transitions arrived — see {worker_log}")
            time.sleep(0.5)
            stored = client.execute(f"SELECT count() FROM {DATABASE}.transitions FINAL")[0][0]
            print(f"\r      {stored:,} / {expected:,} transitions stored", end="", flush=True)
        print()
        print_summary(client)
        client.disconnect()
        _where(workdir, clickhouse, metrics_port, events_file, worker_log, keep)
        if keep:
            print("\neverything keeps running; Ctrl-C stops it all.")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    except ServiceError as exc:
        raise JourneyError(str(exc)) from None
    except KeyboardInterrupt:
        return 130
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        for service in reversed(services):
            service.stop()


def _where(workdir: Path, clickhouse: LocalService, metrics_port: int, events: Path, worker_log: Path,
           keep: bool) -> None:
    query = f"SELECT to_stage, count() FROM {DATABASE}.transitions FINAL GROUP BY to_stage"
    print("\nwhere the data is")
    print(f"  events (JSON Lines)   {events}")
    print(f"  ClickHouse data       {workdir / 'clickhouse'} (table {DATABASE}.transitions)")
    print(f"  worker log            {worker_log}")
    if keep:
        print(f"  query it              clickhouse-client --port {clickhouse.port} -q \"{query}\"")
        print(f"  metrics               http://127.0.0.1:{metrics_port}/metrics")
    else:
        print(f"  query it later        journey replay {events} | head   (or rerun with --keep and use clickhouse-client)")
