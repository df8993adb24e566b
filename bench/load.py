"""Load test: >= 1,000,000 events at a steady rate through one worker, then two (issue 5).

    cd /work/main && .venv/bin/python -m bench.load --events 1000000 --rate 1000

Not a timed test: a script that measures and writes bench/results/load.md. For each worker
count in `--workers` (1 then 2) it starts a fresh Tansu broker and clickhouse-server on free
ports, creates the topics (8 partitions) and a fresh database, starts that many `journey worker`
processes (one consumer group, each its own metrics port) and waits until
they own all partitions. Then a producer process publishes the events at `--rate` per second,
each stamped with its send time, and the script polls until every event is applied and every
transition the workers emitted is in ClickHouse. It records:

- events/s: the rate offered, and events / (first send -> last row stored);
- end-to-end lag per stored transition, from the send of the event that triggered it to the row
  being in ClickHouse (see "Lag" below), p50 and p99;
- peak RSS of each worker (VmHWM in /proc/PID/status, read before it is stopped);
- dead letters (the workers' journey_deadletters_total; `--malformed` mixes bad records in, so
  the figure must equal the number of bad records sent);
- whether the stored transitions equal `journey replay` of exactly the records that were sent.

Lag. The generator's event times lie in a simulated month; published at a steady rate they would
be weeks old on arrival, so `occurred_at` would not measure the pipeline. The producer therefore
rewrites each valid event's `occurred_at` to the wall-clock time (microseconds, strictly
increasing, so the event-time order is the send order) just before `send()`, and writes the
records exactly as sent to a file, which `journey replay` reads for the expected result. Every
stored transition carries its triggering event's `occurred_at` (= send time) and ClickHouse's
`ingested_at` (`DEFAULT now()` at insert), so `ingested_at - occurred_at` is the end-to-end lag
of that transition: producer batching, broker, fetch, alignment, the 5A core, the transitions
topic, the sink's batching and the insert. Both columns are whole seconds on ClickHouse 18.16,
so per row that is exact only to +-1 s. The workers also observe the same interval at
microsecond precision into the histogram `journey_event_to_clickhouse_lag_seconds` after each
successful insert; its p50/p99 (summed over workers, interpolated within buckets as Prometheus'
histogram_quantile does) are reported next to the per-row figures. Events that change no stage
produce no row and so have no measurable lag.

Everything it started is stopped on exit, error or Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import random
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
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from bench.throughput import (
    EVENTS_PER_CUSTOMER,
    ch_client,
    cpu_seconds,
    describe_machine,
    describe_versions,
    machine_section,
    peak_rss_mib,
    say,
    scan_log,
    self_cpu_seconds,
    write_events,
)
from journey.local import LocalService, free_port, start_broker, start_clickhouse
from tests.support.pipeline import Pipeline, normalise, scrape

RESULTS = Path(__file__).resolve().parent / "results" / "load.md"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
LAG_METRIC = "journey_event_to_clickhouse_lag_seconds"


# --- the producer process ----------------------------------------------------------------------


def _iso_us(micros: int) -> str:
    return (EPOCH + timedelta(microseconds=micros)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def produce_child(argv: list[str]) -> int:
    """`python -m bench.load _produce SOURCE SENT STATUS RATE MALFORMED SEED` (environment: JOURNEY_*).

    Publishes SOURCE's events at RATE per second, each with occurred_at = its send time; before
    each, with probability MALFORMED (repeatedly), a bad record made from it (journey.generate's
    defects) to the clickstream topic, as `journey generate --malformed` does. Writes every
    record as sent to SENT, and its progress to STATUS (JSON, replaced about twice a second).

    The client is librdkafka (confluent-kafka, a test dependency) with the Java/kafka-python
    murmur2 partitioner, so every customer lands on the partition `journey produce` would pick
    (the workers' "rekeyed" count stays 0); kafka-python costs ~0.3 ms of Python per record, a
    third of a core at 1,000/s, which would be taken from the workers on this 2-core machine.
    `journey produce`'s other settings are kept: acks=all, linger 20 ms, no idempotence on Tansu.
    """
    import confluent_kafka

    from journey.generate import DEFECTS, Pacer, corrupt
    from journey.settings import Settings

    source, sent_path, status_path = Path(argv[0]), Path(argv[1]), Path(argv[2])
    rate, malformed, seed = float(argv[3]), float(argv[4]), int(argv[5])
    settings = Settings()
    producer = confluent_kafka.Producer({
        "bootstrap.servers": settings.kafka_brokers,
        "partitioner": "murmur2_random",  # = kafka-python's and Java's default for keyed records
        "acks": "all",
        "linger.ms": 20,
        "enable.idempotence": settings.producer_idempotence,
        "queue.buffering.max.messages": 1_000_000,
    })
    pacer = Pacer(rate if rate > 0 else None)
    rng = random.Random(f"{seed}/load-malformed")
    failures: list[str] = []
    state: dict[str, Any] = {"sent": 0, "valid": 0, "malformed": 0, "first_us": None, "last_us": None,
                             "done": False, "flushed_us": None, "failures": 0, "cpu_s": 0.0}
    topics = settings.input_topics
    last_us = 0
    next_status = 0.0

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    def write_status() -> None:
        usage = os.times()
        state["cpu_s"] = usage.user + usage.system
        state["failures"] = len(failures)
        tmp = status_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(state))
        tmp.replace(status_path)

    def send(value: bytes, topic: str, key: bytes | None) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        out.write(value + b"\n")
        state["sent"] += 1

    with source.open("rb") as src, sent_path.open("wb") as out:
        for line in src:
            doc = orjson.loads(line)
            key = doc["customer_id"].encode()
            while malformed and rng.random() < malformed:
                pacer.take()
                bad = corrupt(doc, rng.choice(DEFECTS), rng)
                send(bad, settings.topic_clickstream, key)  # where a broken producer would have sent it
                state["malformed"] += 1
            pacer.take()
            now_us = time.time_ns() // 1000
            last_us = now_us = max(now_us, last_us + 1)  # strictly increasing: no ties to break
            doc["occurred_at"] = _iso_us(now_us)
            send(orjson.dumps(doc), topics[doc["type"]], key)
            state["valid"] += 1
            state["first_us"] = state["first_us"] or now_us
            state["last_us"] = now_us
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + 0.5
                write_status()
    remaining = producer.flush(120)
    state["flushed_us"] = time.time_ns() // 1000
    state["done"] = True
    if remaining:
        failures.append(f"{remaining} records still queued after 120 s")
    write_status()
    if failures:
        print(f"{len(failures)} records were not accepted by Kafka: {failures[0]}", file=sys.stderr)
        return 1
    return 0


def read_status(path: Path) -> dict[str, Any]:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}


# --- /proc and metrics helpers -----------------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def total(samples: list[dict[str, float]], prefix: str, where: str = "") -> float:
    """Sum over workers of the samples whose name starts with `prefix` (and contains `where`)."""
    return sum(v for s in samples for k, v in s.items() if k.startswith(prefix) and where in k)


def histogram(samples: list[dict[str, float]], name: str) -> list[tuple[float, float]]:
    """Cumulative (le, count) of a histogram, summed over workers, by bucket bound."""
    buckets: Counter[float] = Counter()
    for s in samples:
        for key, value in s.items():
            if key.startswith(f"{name}_bucket{{"):
                le = key.split('le="', 1)[1].split('"', 1)[0]
                buckets[math.inf if le == "+Inf" else float(le)] += value
    return sorted(buckets.items())


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> tuple[float, float, float] | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding rank q.

    Returns (estimate, bucket lower bound, bucket upper bound): the bounds are all the histogram
    knows; the estimate inside a wide bucket (60-300 s) can be far from the true quantile."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower, lower, le  # beyond the last finite bound: that bound is all one can say
            estimate = lower + (le - lower) * (rank - below) / (count - below) if count > below else le
            return estimate, lower, le
        lower, below = le, count
    return lower, lower, math.inf


# --- one configuration -------------------------------------------------------------------------


@dataclass
class Run:
    workers: int
    rate: float
    events: int = 0  # valid events sent
    malformed: int = 0  # bad records sent
    transitions: int = 0  # replay of the records sent
    ready_s: float = 0.0  # workers started -> all partitions owned
    rebalances: int = 0  # changes of the partition split seen after ready
    produce_s: float = 0.0  # first send -> last send
    flush_s: float = 0.0  # last send -> producer flushed
    producer_cpu_s: float = 0.0
    wall_s: float = 0.0  # first send -> last row stored
    drain_s: float = 0.0  # last send -> last row stored
    all_applied_s: float | None = None  # first send -> every event applied (polled)
    max_backlog: int = 0  # max of (records sent - records consumed), polled
    backlog_at_last_send: int = 0
    complete: bool = False
    worker_cpu_s: list[float] = field(default_factory=list)
    worker_peak_rss_mib: list[float] = field(default_factory=list)
    worker_events: list[float] = field(default_factory=list)  # accepted per worker
    tansu_cpu_s: float = 0.0
    tansu_peak_rss_mib: float = 0.0
    clickhouse_cpu_s: float = 0.0
    bench_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    cpu_window_s: float = 0.0  # wall time over which the CPU seconds were taken
    metrics: dict[str, float] = field(default_factory=dict)
    lag_rows: int = 0
    lag_p50_s: float | None = None  # per stored row, whole seconds (ingested_at - occurred_at)
    lag_p99_s: float | None = None
    lag_max_s: float | None = None
    lag_avg_s: float | None = None
    hist_p50: tuple[float, float, float] | None = None  # the workers' histogram: estimate, bucket bounds
    hist_p99: tuple[float, float, float] | None = None
    hist_count: float = 0.0
    hist_le: dict[str, float] = field(default_factory=dict)  # share of observations <= bound
    stored_final: int = 0
    stored_raw: int = 0
    equal: bool | None = None
    mismatch: str = ""
    timeline: list[tuple] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load1_samples: list[float] = field(default_factory=list)
    log_levels: list[dict[str, int]] = field(default_factory=list)
    log_samples: list[list[str]] = field(default_factory=list)
    started_utc: str = ""
    note: str = ""

    @property
    def offered_rate(self) -> float:
        return self.events / self.produce_s if self.produce_s else 0.0

    @property
    def end_to_end_rate(self) -> float:
        return self.events / self.wall_s if self.wall_s else 0.0


def wait_ready(ports: list[int], procs: list[subprocess.Popen], partitions: int, timeout: float) -> list[int]:
    """Until every worker owns some partitions and together all; returns the split."""
    deadline = time.monotonic() + timeout
    stable_since, last = None, None
    while True:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited with {proc.returncode} before owning partitions")
        split = []
        for port in ports:
            try:
                split.append(int(scrape(port).get("journey_assigned_partitions", 0)))
            except OSError:
                split.append(0)
        if all(split) and sum(split) == partitions:
            # Two workers: the first one owns everything until the second joins. Stable for 3 s.
            if split != last:
                stable_since, last = time.monotonic(), split
            elif time.monotonic() - stable_since >= 3.0:
                return split
        else:
            stable_since, last = None, None
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers did not share the {partitions} partitions within {timeout:.0f} s: {split}")
        time.sleep(0.5)


def lag_from_clickhouse(pipeline: Pipeline, run: Run) -> None:
    """Per stored transition: first ingested_at - occurred_at, whole seconds (18.16: DateTime)."""
    client = ch_client(pipeline.clickhouse)
    try:
        rows = client.execute(f"""
            SELECT count(), quantilesExact(0.5, 0.99)(lag), max(lag), avg(lag)
            FROM (SELECT toInt64(toUInt32(min(ingested_at))) - toInt64(toUInt32(any(occurred_at))) AS lag
                  FROM {pipeline.database}.transitions GROUP BY brand, customer_id, seq)""")
    finally:
        client.disconnect()
    count, (p50, p99), top, avg = rows[0]
    run.lag_rows, run.lag_p50_s, run.lag_p99_s, run.lag_max_s, run.lag_avg_s = count, p50, p99, top, avg


def compare(pipeline: Pipeline, expected: list[dict[str, Any]], run: Run) -> None:
    precision = pipeline.precision_us()
    stored = normalise(pipeline.stored_transitions(), precision)
    wanted = normalise(expected, precision)
    run.stored_final = len(stored)
    client = ch_client(pipeline.clickhouse)
    try:
        run.stored_raw = client.execute(f"SELECT count() FROM {pipeline.database}.transitions")[0][0]
    finally:
        client.disconnect()
    run.equal = stored == wanted
    if run.equal:
        return
    missing, extra = set(wanted) - set(stored), set(stored) - set(wanted)
    customers = sorted({row[1] for row in missing | extra})
    detail = []
    for customer in customers[:2]:
        detail.append(f"{customer}: replay only {sorted(r[2:] for r in missing if r[1] == customer)}, "
                      f"stored only {sorted(r[2:] for r in extra if r[1] == customer)}")
    run.mismatch = (f"{len(stored):,} stored vs {len(wanted):,} replayed; {len(missing):,} replayed rows missing, "
                    f"{len(extra):,} stored rows not in replay, {len(customers):,} customers differ; first (seq, from, to, "
                    f"kind, occurred_at, trigger event, type, channel, influence, referrer, dwell_ms): "
                    + "; ".join(detail))


def run_config(n_workers: int, args: argparse.Namespace, source: Path, workdir: Path,
               results: list[Run]) -> Run:
    run = Run(workers=n_workers, rate=args.rate)
    results.append(run)
    run.started_utc = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    run.load_before = os.getloadavg()
    cfgdir = workdir / f"workers-{n_workers}"
    cfgdir.mkdir()
    services: list[LocalService] = []
    pipeline: Pipeline | None = None
    producer: subprocess.Popen | None = None
    try:
        say(f"[{n_workers} worker(s)] starting Tansu and clickhouse-server")
        broker = start_broker(cfgdir / "tansu")
        services.append(broker)
        clickhouse = start_clickhouse(cfgdir / "clickhouse", log_level="warning")
        services.append(clickhouse)
        pipeline = Pipeline(broker, clickhouse, cfgdir, name=f"load{uuid.uuid4().hex[:8]}",
                            partitions=args.partitions)
        pipeline.setup()
        if not results[0].metrics and run is results[0]:
            args.versions = describe_versions(pipeline, broker)
            try:
                args.versions["confluent-kafka (load generator)"] = metadata.version("confluent-kafka")
            except metadata.PackageNotFoundError:
                args.versions["confluent-kafka (load generator)"] = "not installed"
            args.worker_env = {k: v for k, v in pipeline.env().items() if k.startswith("JOURNEY_") and not k.startswith(
                ("JOURNEY_TOPIC_", "JOURNEY_KAFKA_", "JOURNEY_CLICKHOUSE_", "JOURNEY_DATA_", "JOURNEY_GROUP_",
                 "JOURNEY_METRICS_"))}

        say(f"[{n_workers} worker(s)] starting the workers; waiting until they own all {args.partitions} partitions")
        ports, procs, logs = [], [], []
        started = time.monotonic()
        for i in range(n_workers):
            port = free_port()
            proc = pipeline.spawn_worker(port)
            pipeline.workers.append(proc)
            ports.append(port)
            procs.append(proc)
            logs.append(cfgdir / f"worker-{pipeline.started}.log")
        split = wait_ready(ports, procs, args.partitions, 240)
        run.ready_s = time.monotonic() - started
        say(f"  ready after {run.ready_s:.1f} s: partitions per worker {split}")

        sent_file, status_file = cfgdir / "sent.jsonl", cfgdir / "producer.json"
        pids = [p.pid for p in procs]
        cpu0 = {"tansu": cpu_seconds(broker.process.pid), "ch": cpu_seconds(clickhouse.process.pid),
                "workers": [cpu_seconds(pid) for pid in pids], "bench": self_cpu_seconds(),
                "machine": machine_busy_seconds(), "at": time.monotonic()}
        say(f"[{n_workers} worker(s)] producing {args.expected_events:,} events at {args.rate:,.0f}/s"
            f"{f' (+{args.malformed:.2%} malformed)' if args.malformed else ''}")
        producer = subprocess.Popen(
            [sys.executable, "-m", "bench.load", "_produce", str(source), str(sent_file), str(status_file),
             str(args.rate), str(args.malformed), str(args.seed)],
            env=pipeline.env(), stderr=open(cfgdir / "producer.log", "wb"))
        t0 = time.monotonic()
        deadline = t0 + args.timeout
        next_report = next_sample = t0
        last_split = split
        last_progress, last_change = None, t0
        metrics: list[dict[str, float]] = [{} for _ in ports]
        status: dict[str, Any] = {}
        producer_done_at = None
        while True:
            now = time.monotonic()
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker exited with {proc.returncode}; see {cfgdir}")
            status = read_status(status_file) or status
            if producer.poll() is not None and producer_done_at is None:
                if producer.returncode != 0:
                    raise RuntimeError(f"the producer exited with {producer.returncode}; see {cfgdir}/producer.log")
                status = read_status(status_file)
                producer_done_at = now
                run.backlog_at_last_send = int(status["sent"] - consumed) if last_progress else 0
                say(f"\n  producer done: {status['valid']:,} events + {status['malformed']:,} malformed "
                    f"in {(status['last_us'] - status['first_us']) / 1e6:.1f} s")
            for i, port in enumerate(ports):
                try:
                    metrics[i] = scrape(port)
                except OSError:
                    pass
            applied = total(metrics, "journey_events_consumed_total{", 'outcome="accepted"')
            consumed = applied + total(metrics, "journey_events_consumed_total{", 'outcome="deadlettered"')
            emitted = total(metrics, "journey_transitions_total{")
            stored = total(metrics, "journey_sink_rows_total")
            sent = status.get("sent", 0)
            run.max_backlog = max(run.max_backlog, int(sent - consumed))
            split_now = [int(m.get("journey_assigned_partitions", 0)) for m in metrics]
            if split_now != last_split:
                run.rebalances += 1
                say(f"\n  partition split changed: {last_split} -> {split_now}")
                last_split = split_now
            progress = (consumed, emitted, stored)
            if progress != last_progress:
                last_progress, last_change = progress, now
            if status.get("first_us") and run.all_applied_s is None and producer_done_at and \
                    applied >= status["valid"]:
                run.all_applied_s = time.time() - status["first_us"] / 1e6
            if now >= next_sample:
                next_sample += args.sample
                load1 = os.getloadavg()[0]
                run.load1_samples.append(load1)
                run.timeline.append((now - t0, sent, consumed, emitted, stored, int(sent - consumed),
                                     total(metrics, "journey_aligner_buffered_events"),
                                     [round(rss_mib(pid)) for pid in pids], load1))
            finished = (producer_done_at is not None and consumed >= status["sent"] and emitted > 0
                        and stored >= emitted and now - last_change >= args.settle)
            if finished:
                run.complete = True
                break
            if now > deadline:
                run.note = (f"timed out after {args.timeout:.0f} s: {consumed:,.0f} of {sent:,} records consumed, "
                            f"{stored:,.0f} of {emitted:,.0f} emitted transitions stored")
                say(f"\n  {run.note}")
                break
            if now >= next_report:
                next_report += 5.0
                say(f"  sent {sent:>9,}  consumed {consumed:>9,.0f}  backlog {sent - consumed:>7,.0f}  "
                    f"stored {stored:>9,.0f} / {emitted:,.0f}  load {os.getloadavg()[0]:.2f}", end="\r")
            time.sleep(0.5)
        print(file=sys.stderr)
        end_wall = time.time() - (time.monotonic() - last_change)  # the last change, in wall-clock time
        # Read before stopping: /proc/PID goes with the process.
        run.worker_cpu_s = [cpu_seconds(pid) - c for pid, c in zip(pids, cpu0["workers"])]
        run.worker_peak_rss_mib = [peak_rss_mib(pid) for pid in pids]
        run.worker_events = [total([m], "journey_events_consumed_total{", 'outcome="accepted"') for m in metrics]
        run.tansu_cpu_s = cpu_seconds(broker.process.pid) - cpu0["tansu"]
        run.tansu_peak_rss_mib = peak_rss_mib(broker.process.pid)
        run.clickhouse_cpu_s = cpu_seconds(clickhouse.process.pid) - cpu0["ch"]
        run.bench_cpu_s = self_cpu_seconds() - cpu0["bench"]
        run.machine_busy_s = machine_busy_seconds() - cpu0["machine"]
        run.cpu_window_s = time.monotonic() - cpu0["at"]
        run.events, run.malformed = status.get("valid", 0), status.get("malformed", 0)
        run.producer_cpu_s = status.get("cpu_s", 0.0)
        if status.get("first_us") and status.get("last_us"):
            run.produce_s = (status["last_us"] - status["first_us"]) / 1e6
            run.wall_s = end_wall - status["first_us"] / 1e6
            run.drain_s = end_wall - status["last_us"] / 1e6
            if status.get("flushed_us"):
                run.flush_s = (status["flushed_us"] - status["last_us"]) / 1e6
        run.metrics = {
            "events accepted": applied,
            "records dead-lettered (consumed)": total(metrics, "journey_events_consumed_total{", 'outcome="deadlettered"'),
            "records rekeyed": total(metrics, "journey_events_consumed_total{", 'outcome="rekeyed"'),
            "dead letters": total(metrics, "journey_deadletters_total"),
            "late events": total(metrics, "journey_events_late_total"),
            "duplicate events": total(metrics, "journey_events_duplicate_total"),
            "transitions emitted": emitted,
            "sink rows inserted": stored,
            "sink inserts": total(metrics, "journey_sink_batch_rows_count"),
            "sink insert seconds": total(metrics, "journey_sink_insert_seconds_sum"),
            "sink failures": total(metrics, "journey_sink_failures_total"),
        }
        buckets = histogram(metrics, LAG_METRIC)
        run.hist_p50, run.hist_p99 = histogram_quantile(0.5, buckets), histogram_quantile(0.99, buckets)
        run.hist_count = buckets[-1][1] if buckets else 0.0
        for le, count in buckets:
            if le in (0.5, 1, 2, 5, 10, 30) and run.hist_count:
                run.hist_le[f"{le:g}"] = count / run.hist_count
        pipeline.stop_workers()
        for log in logs:
            levels, samples = scan_log(log)
            run.log_levels.append(levels)
            run.log_samples.append(samples)

        say(f"[{n_workers} worker(s)] lag from ClickHouse; replay of the records sent; comparison")
        lag_from_clickhouse(pipeline, run)
        if run.complete:
            expected = pipeline.replay(sent_file)
            run.transitions = len(expected)
            compare(pipeline, expected, run)
            del expected
        run.load_after = os.getloadavg()
        say(f"  {run.end_to_end_rate:,.0f} events/s end to end, lag p50 {run.lag_p50_s} s p99 {run.lag_p99_s} s "
            f"(histogram {_hq(run.hist_p50)} / {_hq(run.hist_p99)}), peak RSS {run.worker_peak_rss_mib}, "
            f"dead letters {run.metrics['dead letters']:,.0f}, equal to replay: {run.equal}")
        return run
    finally:
        if producer is not None and producer.poll() is None:
            producer.terminate()
            producer.wait(timeout=10)
        if pipeline is not None:
            pipeline.stop_workers()
        for service in reversed(services):
            service.stop()


# --- report ------------------------------------------------------------------------------------


def _s(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f} s"


def _hq(value: tuple[float, float, float] | None) -> str:
    """A histogram quantile with the bucket it lies in."""
    if value is None:
        return "—"
    estimate, lower, upper = value
    return f"{estimate:.2f} s (bucket {lower:g}–{upper:g} s)"


def _mib(values: list[float]) -> str:
    return " + ".join(f"{v:,.0f}" for v in values) + " MiB"


def figures(run: Run) -> list[tuple[str, str]]:
    m = run.metrics
    per_worker = " / ".join(f"{e:,.0f}" for e in run.worker_events)
    others = run.machine_busy_s - sum(run.worker_cpu_s) - run.tansu_cpu_s - run.clickhouse_cpu_s \
        - run.producer_cpu_s - run.bench_cpu_s
    rows = [
        ("events (valid) + malformed records", f"{run.events:,} + {run.malformed:,}"),
        ("**events/s, end to end**", f"**{run.end_to_end_rate:,.0f}** ({run.events:,} events, first send to last "
                                     f"row stored {run.wall_s:,.1f} s)"),
        ("offered rate (producer)", f"{run.offered_rate:,.0f} events/s (target {run.rate:,.0f}; first to last send "
                                    f"{run.produce_s:,.1f} s; flush {run.flush_s:.1f} s)"),
        ("kept up?", f"max backlog {run.max_backlog:,} records (sent − consumed, polled every 0.5 s); "
                     f"{run.backlog_at_last_send:,} at the last send; last row stored {run.drain_s:.1f} s after "
                     f"the last send; all events applied {_s(run.all_applied_s)} after the first send"),
        ("**lag p50 / p99 (per stored row)**", f"**{_s(run.lag_p50_s, 0)} / {_s(run.lag_p99_s, 0)}** (max "
                                               f"{_s(run.lag_max_s, 0)}, mean {_s(run.lag_avg_s)}; "
                                               f"{run.lag_rows:,} rows; whole seconds, ±1 s)"),
        ("lag p50 / p99 (workers' histogram)", f"{_hq(run.hist_p50)} / {_hq(run.hist_p99)} "
                                               f"({run.hist_count:,.0f} observations; share ≤ bound: "
                                               + ", ".join(f"{k} s {v:.1%}" for k, v in run.hist_le.items()) + ")"),
        ("**peak RSS per worker**", f"**{_mib(run.worker_peak_rss_mib)}** (VmHWM)"),
        ("**dead letters**", f"**{m.get('dead letters', 0):,.0f}** ({run.malformed:,} malformed records sent)"),
        ("**equal to replay**", "not checked (run incomplete)" if run.equal is None
         else "**yes**" if run.equal else f"**no** — {run.mismatch}"),
        ("transitions", f"{run.transitions:,} replayed; {run.stored_final:,} stored with FINAL, {run.stored_raw:,} "
                        f"without (re-inserted: {run.stored_raw - run.stored_final:,}); "
                        f"{m.get('transitions emitted', 0):,.0f} emitted, {m.get('sink rows inserted', 0):,.0f} "
                        f"inserted by the sinks"),
        ("late / duplicate events", f"{m.get('late events', 0):,.0f} / {m.get('duplicate events', 0):,.0f}"),
        ("events applied per worker", per_worker),
        ("workers ready", f"{run.ready_s:.1f} s from start to owning all partitions; partition split changes "
                          f"during the run: {run.rebalances}"),
        ("CPU seconds", f"workers {' + '.join(f'{c:,.0f}' for c in run.worker_cpu_s)} "
                        f"({run.events / sum(run.worker_cpu_s) if sum(run.worker_cpu_s) else 0:,.0f} events/CPU-s); "
                        f"Tansu {run.tansu_cpu_s:,.0f}; ClickHouse {run.clickhouse_cpu_s:,.0f}; producer "
                        f"{run.producer_cpu_s:,.0f}; bench {run.bench_cpu_s:,.0f}; everything else on the machine "
                        f"{max(others, 0):,.0f}; all over {run.cpu_window_s:,.0f} s wall, i.e. "
                        f"{(os.cpu_count() or 1) * run.cpu_window_s:,.0f} CPU-s on {os.cpu_count()} cores, of which "
                        f"{run.machine_busy_s:,.0f} were busy"),
        ("Tansu peak RSS", f"{run.tansu_peak_rss_mib:,.0f} MiB"),
        ("load average", f"before {' '.join(f'{x:.2f}' for x in run.load_before)}; during (1 min, sampled) "
                         f"min {min(run.load1_samples, default=0):.2f} / mean "
                         f"{sum(run.load1_samples) / max(len(run.load1_samples), 1):.2f} / max "
                         f"{max(run.load1_samples, default=0):.2f}; after {' '.join(f'{x:.2f}' for x in run.load_after)}"),
        ("started", f"{run.started_utc} UTC"),
    ]
    if run.note:
        rows.insert(0, ("**note**", f"**{run.note}**"))
    return rows


def render(runs: list[Run], args: argparse.Namespace) -> str:
    lines = [
        "# Load test: >= 1,000,000 events through one worker, then two",
        "",
        f"Written by `bench/load.py` on {args.started_utc} (UTC). Re-run to overwrite; see `bench/README.md` and "
        "the script's docstring for what each figure means.",
        "",
        "## Command",
        "",
        "```",
        args.command,
        "```",
        "",
        "## Summary",
        "",
        f"Data: {args.expected_events:,} events of {args.customers:,} customers (`journey.generate`, seed {args.seed}), "
        f"published at {args.rate:,.0f}/s with {args.malformed:.2%} malformed records mixed in; {args.partitions} "
        "partitions per topic.",
        "",
        "| | " + " | ".join(f"{r.workers} worker{'s' if r.workers > 1 else ''}" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    summary = [
        ("events", lambda r: f"{r.events:,}"),
        ("events/s end to end", lambda r: f"{r.end_to_end_rate:,.0f}"),
        ("lag p50 / p99 per row (±1 s)", lambda r: f"{_s(r.lag_p50_s, 0)} / {_s(r.lag_p99_s, 0)}"),
        ("lag p50 / p99 histogram (bucket)", lambda r: f"{_hq(r.hist_p50)} / {_hq(r.hist_p99)}"),
        ("peak RSS per worker", lambda r: _mib(r.worker_peak_rss_mib)),
        ("dead letters / malformed sent", lambda r: f"{r.metrics.get('dead letters', 0):,.0f} / {r.malformed:,}"),
        ("equal to replay", lambda r: "—" if r.equal is None else "yes" if r.equal else "**no**"),
        ("late events", lambda r: f"{r.metrics.get('late events', 0):,.0f}"),
        ("max backlog", lambda r: f"{r.max_backlog:,}"),
        ("load average (1 min) during", lambda r: f"{sum(r.load1_samples) / max(len(r.load1_samples), 1):.2f} "
                                                  f"(max {max(r.load1_samples, default=0):.2f})"),
    ]
    lines += [f"| {name} | " + " | ".join(fn(r) for r in runs) + " |" for name, fn in summary]
    for run in runs:
        title = f"{run.workers} worker{'s' if run.workers > 1 else ''}"
        lines += ["", f"## {title}", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in figures(run)), "",
                  f"Timeline (every {args.sample:.0f} s; records sent/consumed, transitions emitted/stored, "
                  "backlog = sent − consumed, events held by the aligners, worker RSS MiB, load average 1 min):",
                  "", "| t | sent | consumed | emitted | stored | backlog | held | RSS | load |",
                  "|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        lines += [f"| {t:,.0f} s | {s:,} | {c:,.0f} | {e:,.0f} | {st:,.0f} | {b:,} | {h:,.0f} | "
                  f"{' + '.join(map(str, rss))} | {load:.2f} |"
                  for t, s, c, e, st, b, h, rss, load in run.timeline]
        lines += ["", "Final /metrics, summed over workers:", "",
                  *(f"- {k}: {v:,.3f}".rstrip("0").rstrip(".") for k, v in run.metrics.items())]
        for i, (levels, samples) in enumerate(zip(run.log_levels, run.log_samples), 1):
            lines += ["", f"Worker {i} log lines by level: "
                      f"{', '.join(f'{k} {v}' for k, v in sorted(levels.items())) or 'none'}."]
            if samples:
                lines += ["", "```", *samples, "```"]
    lines += [
        "",
        "## How to read",
        "",
        "Each configuration starts from nothing (its own broker, ClickHouse and topics) and runs the same "
        "generated events, published at the same steady rate by a separate producer process (librdkafka, "
        "murmur2 partitioner) while the workers run: a live stream, not a backlog. So *events/s end to end* "
        "is the rate offered, as long as the workers keep up (small backlog, last row stored a few seconds "
        "after the last send); a worker "
        "count that cannot keep up shows a growing backlog and lag, and then events/s is its capacity. For "
        "capacity from a backlog see `results/throughput.md`. *Lag* is per stored transition, from the send of "
        "its triggering event (whose `occurred_at` the producer sets to the send time) to its row in "
        "ClickHouse: the per-row figures are `ingested_at - occurred_at`, both whole seconds on ClickHouse "
        "18.16, so ±1 s; the histogram figures are the workers' own microsecond observations after each "
        "insert, interpolated within buckets (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30 s ...), so coarse where the "
        "buckets are wide. *Equal to replay* compares the stored rows (FINAL) with `journey replay` of the "
        "exact records sent, malformed ones included (replay skips them as the workers dead-letter them). "
        "The machine has 2 cores shared by the workers, Tansu, ClickHouse, the producer and whatever else "
        "runs on it (the CPU line says how much that was): read figures as this code on this machine.",
        "",
        "## Worker settings",
        "",
        "Settings that differ from the defaults (the integration-test profile, `tests/support/pipeline.py`); "
        "each worker also gets its own `JOURNEY_METRICS_PORT`, and all share one "
        "`JOURNEY_GROUP_ID`:",
        "",
        *(f"- `{k}={v}`" for k, v in sorted(getattr(args, "worker_env", {}).items())),
        "",
        *machine_section(args.machine, getattr(args, "versions", {})),
    ]
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="at least this many events [%(default)s]")
    parser.add_argument("--rate", type=float, default=1000, help="events per second; 0: unpaced [%(default)s]")
    parser.add_argument("--workers", default="1,2", help="worker counts to run, in order [%(default)s]")
    parser.add_argument("--malformed", type=float, default=0.001,
                        help="fraction of bad records mixed in, to be dead-lettered [%(default)s]")
    parser.add_argument("--seed", type=int, default=5, help="generator seed [%(default)s]")
    parser.add_argument("--partitions", type=int, default=8, help="partitions per topic [%(default)s]")
    parser.add_argument("--timeout", type=float, help="max seconds per configuration from the first send "
                                                      "[3 x events/rate + 600]")
    parser.add_argument("--settle", type=float, default=10,
                        help="done when everything sent is consumed, every emitted transition is stored and "
                             "nothing changed for this many seconds [%(default)s]")
    parser.add_argument("--sample", type=float, default=60, help="timeline interval in seconds [%(default)s]")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to write [bench/results/...]")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    args = parser.parse_args(argv)
    args.worker_counts = [int(x) for x in args.workers.split(",") if x.strip()]
    if args.timeout is None:
        args.timeout = 3 * args.events / args.rate + 600 if args.rate > 0 else 7200
    return args


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_produce"]:
        return produce_child(argv[1:])
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    args.command = f"cd {shlex.quote(os.getcwd())} && {python} -m bench.load {shlex.join(argv)}".rstrip()
    args.started_utc = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    args.machine = describe_machine()
    workdir = Path(tempfile.mkdtemp(prefix="journey-load-"))
    say(f"working in {workdir}")
    runs: list[Run] = []
    ok = False
    try:
        source = workdir / "events.jsonl"
        say(f"generating >= {args.events:,} events (seed {args.seed}, ~{args.events / EVENTS_PER_CUSTOMER:,.0f} "
            "customers)")
        args.expected_events, _, args.customers, _ = write_events(source, args.events, args.seed, None)
        say(f"  {args.expected_events:,} events, {args.customers:,} customers")
        for n in args.worker_counts:
            run_config(n, args, source, workdir, runs)
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(render(runs, args))  # after each configuration: a partial record survives
            say(f"written: {args.results}")
        ok = all(r.complete and r.equal for r in runs)
        for run in runs:
            print(f"\n{run.workers} worker(s):")
            for name, value in figures(run):
                print(f"  {name.strip('*'):<36} {value.replace('**', '')}")
        return 0 if ok else 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        say("interrupted: stopping everything")
        return 130
    except Exception:
        if runs:  # record what was measured before the failure
            runs[-1].note = runs[-1].note or f"failed: {sys.exc_info()[1]}"
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(render(runs, args))
        raise
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"kept {workdir} (per configuration: tansu/, clickhouse/, worker-N.log, producer.log, sent.jsonl)")


if __name__ == "__main__":
    sys.exit(main())
