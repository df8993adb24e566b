"""Issue 17's choice for the sink on a cluster: how to insert so the commit waits for the owning shard.

    .venv/bin/python -m bench.cluster_insert --customers 40000

Starts a local 2 shards x 2 replicas cluster with ZooKeeper (journey/local_cluster.py) and one
clickhouse-server, migrates a database for each way of writing, and inserts the same replayed
transitions (`--customers` simulated customers) in batches of each `--batch` size:

- one server (the baseline);
- the Distributed `transitions` with `insert_distributed_sync=1` (what the sink does);
- the Distributed table asynchronously (the server's default: queued on its disk, NOT durable
  before the commit — for comparison only);
- each shard's `transitions_local` directly, the client splitting each batch by the shard the
  Distributed table would choose (`sipHash64(customer_id) % 2`).

Rows per second of wall time, one run each, in the order above; overwrites
`bench/results/cluster_insert.md`. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from clickhouse_driver import Client

from bench.throughput import describe_machine, machine_section, say
from fivea import Rules, replay
from journey.generate import generate, to_jsonl
from journey.local import start_clickhouse
from journey.local_cluster import start_cluster
from schemas import EVENT_ADAPTER
from sinks.clickhouse.placement import Placement
from sinks.clickhouse.sink import transition_row
from sinks.clickhouse.tables import TRANSITION_COLUMNS, Dialect, migrations

RESULTS = Path(__file__).resolve().parent / "results" / "cluster_insert.md"
COLUMNS = ", ".join(TRANSITION_COLUMNS)


def timed(rows: list[tuple], batch: int, insert: Callable[[list[tuple]], None]) -> float:
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        insert(rows[i:i + batch])
    return len(rows) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=40_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[10_000, 1_000])
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="journey-cluster-insert-"))
    events = [EVENT_ADAPTER.validate_json(to_jsonl(e)) for e in generate(args.customers, seed=5)]
    rows = [transition_row(t) for t in replay(events, Rules.default())]
    say(f"{len(rows):,} transitions of {args.customers:,} customers")
    cluster = start_cluster(workdir / "cluster", name="bench")
    single = start_clickhouse(workdir / "single")
    results: list[tuple[str, int, float]] = []
    try:
        entry = Client("127.0.0.1", port=cluster.entry.tcp_port, send_receive_timeout=300)
        one = Client("127.0.0.1", port=single.port, send_receive_timeout=300)
        shards = {s: Client("127.0.0.1", port=cluster.node(s, 1).tcp_port, send_receive_timeout=300) for s in (1, 2)}
        sync = {"insert_distributed_sync": 1}
        for batch in args.batch:
            names = {way: f"b_{way}_{batch}" for way in ("one", "sync", "async", "direct")}
            for statement in migrations(names["one"], Dialect((18, 16))):
                one.execute(statement)
            for way in ("sync", "async", "direct"):
                for statement in migrations(names[way], Dialect((18, 16)), Placement("bench")):
                    entry.execute(statement, settings=sync)
            shard_of: dict[str, int] = {}  # filled from the server before the direct writes

            def direct(part: list[tuple], table: str = f"{names['direct']}.transitions_local") -> None:
                split: dict[int, list[tuple]] = {1: [], 2: []}
                for row in part:
                    split[shard_of[row[1]]].append(row)
                for shard, shard_rows in split.items():
                    if shard_rows:
                        shards[shard].execute(f"INSERT INTO {table} ({COLUMNS}) VALUES", shard_rows)

            ways: list[tuple[str, Callable[[list[tuple]], None]]] = [
                ("one server", lambda p: one.execute(f"INSERT INTO {names['one']}.transitions ({COLUMNS}) VALUES", p)),
                ("Distributed, insert_distributed_sync=1 (the sink)",
                 lambda p: entry.execute(f"INSERT INTO {names['sync']}.transitions ({COLUMNS}) VALUES", p,
                                         settings=sync)),
                ("Distributed, asynchronous (not durable)",
                 lambda p: entry.execute(f"INSERT INTO {names['async']}.transitions ({COLUMNS}) VALUES", p)),
                ("each shard directly", direct),
            ]
            for name, insert in ways:
                if insert is direct:  # the shard of each customer, as the Distributed table computed it
                    shard_of.update({c: 1 + int(h) for c, h in entry.execute(
                        f"SELECT DISTINCT customer_id, sipHash64(customer_id) % 2 FROM {names['sync']}.transitions")})
                rate = timed(rows, batch, insert)
                say(f"batch {batch:>6,}: {name}: {rate:,.0f} rows/s")
                results.append((name, batch, rate))
    finally:
        cluster.stop()
        single.stop()
    lines = ["# Inserting transitions into a 2 x 2 cluster (issue 17)", "",
             f"`python -m bench.cluster_insert --customers {args.customers}`: {len(rows):,} transitions, "
             "ClickHouse 18.16 (Debian), ZooKeeper 3.8, every server on this machine.", "",
             "| way of writing | batch rows | rows/s |", "|---|---:|---:|",
             *(f"| {name} | {batch:,} | {rate:,.0f} |" for name, batch, rate in results), "",
             *machine_section(describe_machine(), {})]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
