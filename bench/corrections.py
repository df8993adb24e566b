"""Issue 13's figures: what corrections cost at 0%, 1% and 10% late events.

    .venv/bin/python -m bench.corrections --events 400000

In one run, on the shared harness of `bench/throughput.py` (its own Tansu broker and
clickhouse-server on free ports), for each late fraction:

1. the generated events (seed 5) in event-time order, then that fraction of them, chosen at
   random, delivered `--delay` lines later (a late purchase, a phone's offline queue) — the
   same file for the core and the worker;
2. the core as the worker runs it (`streams.path_processor.PathProcessor` over batches of
   20,000 with encoded states, as the memory store holds them): events/s, late events,
   corrections, rows retracted and published, mean encoded state per customer;
3. the worker: the file produced to fresh topics, one `journey worker` timed from ready until
   ClickHouse's live rows equal `journey replay` of the file (compared row for row on every
   field but seq).

It overwrites `bench/results/corrections.md`. Not a test: no assertion on speed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.throughput import cpu_seconds, machine_section, per, run_with_services, say, worker_on_fresh_topics
from tests.support.pipeline import Pipeline, normalise, scrape

RESULTS = Path(__file__).resolve().parent / "results" / "corrections.md"
BATCH = 20_000


@dataclass
class Case:
    late_share: float
    events: int = 0
    core_seconds: float = 0.0
    late: int = 0
    corrections: int = 0
    retracted: int = 0
    published: int = 0
    customers: int = 0
    state_bytes: int = 0
    worker_seconds: float = 0.0
    worker_cpu: float = 0.0
    worker_corrections: float = 0.0
    equal: bool = False

    @property
    def name(self) -> str:
        return f"{self.late_share:.0%} late"


def write_input(source: list[bytes], path: Path, share: float, delay: int, seed: int) -> None:
    """`source` (event-time order) with `share` of the lines moved `delay` lines later."""
    rng = random.Random(seed)
    moved: dict[int, list[bytes]] = {}
    kept: list[tuple[int, bytes]] = []
    for i, line in enumerate(source):
        if rng.random() < share:
            moved.setdefault(i + delay, []).append(line)
        else:
            kept.append((i, line))
    with path.open("wb") as out:
        for i, line in kept:
            for late in moved.pop(i, ()):
                out.write(late)
            out.write(line)
        for _, lines in sorted(moved.items()):
            out.writelines(lines)


def measure_core(case: Case, path: Path) -> None:
    from fivea import Rules
    from journey.gc_tuning import tune_gc_for_batches
    from schemas.rejections import decode
    from streams.path_processor import PathProcessor

    events = [decode(line, 65_536) for line in path.read_bytes().splitlines()]
    case.events = len(events)
    tune_gc_for_batches()
    processor, table = PathProcessor(Rules.default()), {}
    started = time.perf_counter()
    for at in range(0, len(events), BATCH):
        outcome = processor.apply(events[at:at + BATCH], table)
        table.update(outcome.changed)
        case.late += outcome.late
        case.corrections += outcome.corrections
        for transition in outcome.transitions:
            if transition.retracted:
                case.retracted += 1
            else:
                case.published += 1
    case.core_seconds = time.perf_counter() - started
    case.customers = len(table)
    case.state_bytes = sum(len(value) for value in table.values())
    say(f"  core: {case.events:,} events in {case.core_seconds:.1f}s ({per(case.events, case.core_seconds):,.0f}/s); "
        f"{case.late:,} late, {case.corrections:,} corrections, {case.retracted:,} rows retracted")


def measure_worker(case: Case, path: Path, broker, clickhouse, workdir: Path) -> None:
    expected = Pipeline(broker, clickhouse, workdir).replay(path)  # before the worker: not timed
    pipeline, proc, port, ready, cpu_at_ready = worker_on_fresh_topics(
        broker, clickhouse, workdir / f"late{int(case.late_share * 100)}", path)
    wanted = normalise(expected, pipeline.precision_us())
    try:
        while (stored := pipeline.stored_count()) != len(expected) or \
                normalise(pipeline.stored_transitions(), pipeline.precision_us()) != wanted:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}")
            if time.monotonic() - ready > 900:
                break
            say(f"  worker: {stored:,} / {len(expected):,} live rows", end="\r")
            time.sleep(0.5)
        case.worker_seconds = time.monotonic() - ready
        case.worker_cpu = cpu_seconds(proc.pid) - cpu_at_ready
        case.worker_corrections = scrape(port).get("journey_corrections_total", 0.0)
        case.equal = normalise(pipeline.stored_transitions(), pipeline.precision_us()) == wanted
        print(file=sys.stderr)
        say(f"  worker: {case.events:,} events in {case.worker_seconds:.1f}s from ready "
            f"({per(case.events, case.worker_seconds):,.0f}/s); equal to replay: {case.equal}")
    finally:
        pipeline.stop_workers()


def render(cases: list[Case], args: argparse.Namespace, machine: dict[str, str], versions: dict[str, str]) -> str:
    base = cases[0]
    rows = []
    for c in cases:
        core_rate, worker_rate = per(c.events, c.core_seconds), per(c.events, c.worker_seconds)
        rows.append(
            f"| {c.name} | {c.late:,} | {c.corrections:,} | {c.retracted:,} | {c.published:,} "
            f"| {core_rate:,.0f} events/s ({per(core_rate, per(base.events, base.core_seconds)):.2f}x) "
            f"| {worker_rate:,.0f} events/s ({per(worker_rate, per(base.events, base.worker_seconds)):.2f}x) "
            f"| {c.worker_cpu:.1f} | {c.state_bytes / max(c.customers, 1):.0f} B | {'yes' if c.equal else '**no**'} |")
    lines = [
        "# Issue 13: what corrections cost",
        "",
        f"Written by `bench/corrections.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} (UTC). Re-run to overwrite.",
        "",
        "## Command",
        "",
        "```",
        f"python -m bench.corrections --events {args.events} --delay {args.delay}",
        "```",
        "",
        "## Results",
        "",
        f"{base.events:,} generated events (seed {args.seed}, {base.customers:,} customers); in each case that share "
        f"of them, chosen at random, is delivered {args.delay:,} lines late. *Late* counts events older than what their "
        "customer had applied; *corrections* those that changed published rows (the rest merged without a change, "
        "e.g. a late click below the current stage); *retracted* and *published* are the rows the core emitted. "
        "*core* is `PathProcessor` over batches of 20,000 with encoded states; *worker* is one `journey worker` "
        "from ready until ClickHouse's live rows equal the replay, with its CPU seconds; *state* the mean encoded "
        "state per customer (what the memory store holds per customer, before dict overhead).",
        "",
        "| late share | late events (core) | corrections | rows retracted | rows published | core | worker, from ready "
        "| worker CPU-s | state | equal to replay |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Memory and throughput before and after corrections (in-order input, the issue-6 bench): "
        "`throughput_after_fencing.md` (before) and `throughput_after_corrections.md` (after).",
        "",
        *machine_section(machine, versions),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=400_000, help="at least this many events [%(default)s]")
    parser.add_argument("--delay", type=int, default=20_000, help="lines a late event is moved [%(default)s]")
    parser.add_argument("--seed", type=int, default=5, help="generator seed [%(default)s]")
    parser.add_argument("--shares", default="0,0.01,0.1", help="late fractions, comma-separated [%(default)s]")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args(argv)

    import tempfile

    from journey.generate import generate_lines

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="journey-corrections-"))
    customers = max(1, args.events * 10 // 43)
    source = [line.raw for line in generate_lines(customers, seed=args.seed)]
    cases = [Case(float(share)) for share in args.shares.split(",")]

    def measure(broker, clickhouse) -> None:
        for case in cases:
            say(f"{case.name}: writing {len(source):,} events")
            path = workdir / f"late{int(case.late_share * 100)}.jsonl"
            write_input(source, path, case.late_share, args.delay, args.seed)
            measure_core(case, path)
            measure_worker(case, path, broker, clickhouse, workdir)

    return run_with_services(workdir, RESULTS, measure, lambda machine, versions: render(cases, args, machine, versions))


if __name__ == "__main__":
    raise SystemExit(main())
