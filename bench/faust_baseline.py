"""The baseline issue 6 measures against: a straightforward Faust implementation of the path.

One agent over the three input topics; per event: validate, read the customer's state from a
changelog-backed Faust table, apply the 5A core, write the state back (one changelog record per
event) and send each transition (one send per transition). No event-time alignment, no
ClickHouse: it does less than the real worker, so the ratio against it is conservative. It runs
with the worker's garbage-collector settings (journey/gc_tuning.py), so the ratio measures the
path, not that knob.

    python -m bench.faust_baseline --brokers 127.0.0.1:9092 --status FILE worker -l warn

It writes "<events done> <seconds since its first event>" to FILE about once a second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import faust

from fivea import Rules, advance
from journey.gc_tuning import tune_gc_for_batches
from schemas.rejections import Rejection, decode
from streams.state_codec import decode_state, encode_state, state_key

RULES = Rules.default()


def build(brokers: str, group: str, status: Path, topics: list[str], partitions: int) -> faust.App:
    app = faust.App(
        group, broker=f"kafka://{brokers}", env={}, store="memory://", web_enabled=False, autodiscover=False,
        topic_partitions=partitions, topic_disable_leader=True, consumer_auto_offset_reset="earliest",
        broker_session_timeout=8, broker_heartbeat_interval=2, broker_rebalance_timeout=8,
        datadir=str(status.parent / f"{group}-data"),
    )
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*topics, **raw)
    transitions = app.topic(f"{group}-transitions", partitions=partitions, **raw)
    table = app.Table("state", partitions=partitions, key_type=bytes, value_type=bytes)
    progress = {"done": 0, "first": 0.0, "written": 0.0}

    @app.agent(inputs)
    async def path(stream: faust.StreamT) -> None:
        async for value in stream:
            event = decode(value, 65_536)
            if not isinstance(event, Rejection):
                key = state_key(event.brand, event.customer_id)
                step = advance(decode_state(table.get(key)), event, RULES)
                table[key] = encode_state(step.state)
                for transition in step.transitions:
                    await transitions.send(key=transition.customer_id.encode(),
                                           value=transition.model_dump_json().encode())
            now = time.monotonic()
            if not progress["done"]:
                progress["first"] = now
            progress["done"] += 1
            if now - progress["written"] >= 1.0:
                progress["written"] = now
                status.write_text(f"{progress['done']} {now - progress['first']:.3f}\n")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--group", default=f"faust-baseline-{os.getpid()}")
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--topics", default="journey.clickstream,journey.purchases,journey.shares")
    args, rest = parser.parse_known_args()
    app = build(args.brokers, args.group, args.status, args.topics.split(","), args.partitions)
    sys.argv = [sys.argv[0], *rest]
    tune_gc_for_batches()
    app.main()


if __name__ == "__main__":
    main()
