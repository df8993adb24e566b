"""The path: input records -> event-time order -> 5A core -> transitions and states, in batches.

    clickstream ┐                                 ┌─> transitions (keyed by customer, partition p)
    purchases   ├─> decode ─> align ─> core (p) ──┤
    shares      │     │ (bad)   │ (misplaced)     └─> state changelog (one record per customer per batch)
    rekeyed   <─┘     v         └─> rekeyed topic, partition = murmur2(customer_id)
                 dead letters

One batch at a time, and per batch: everything it produces is acknowledged by the broker
(transitions before the states that record them) before the input offsets behind it can be
committed. Those sends overlap the next batch's fetch and decode; the core waits for them
(it reads the states they record), and so does every commit. A crash replays at most the
uncommitted records; the event-id dedup in the state and the idempotent ClickHouse table
absorb them. Events held by the aligner are never committed past.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from typing import Any

from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import TopicPartition

from fivea import Rules, order_key
from journey.metrics import JourneyMetrics
from journey.settings import Settings
from schemas.rejections import Rejection, decode
from streams.alignment import EventTimeAligner
from streams.deadletter import quarantine
from streams.group_service import Fetched, GroupService
from streams.kafka_io import Outbox, new_group_consumer, new_producer, new_reader, partition_for
from streams.path_processor import PathProcessor
from streams.state_store import new_state_store

log = logging.getLogger("journey.path")

PATH_BATCH = 20_000  # records per poll; one state write per customer per batch
POLL_MS = 50
HOMES_REMEMBERED = 200_000
END_OFFSETS_EVERY_S = 0.01  # at most this often, a fresh end-offset request for idle-looking inputs


def changelog_topic(settings: Settings) -> str:
    return f"{settings.group_id}-customer-state-changelog"


class PathService(GroupService):
    def __init__(self, settings: Settings, metrics: JourneyMetrics, rules: Rules, **kwargs: Any) -> None:
        super().__init__(settings, metrics, **kwargs)
        self.inputs = (*settings.input_topics.values(), settings.topic_rekeyed)
        self.aligner = EventTimeAligner(self.inputs, settings.align_max_idle_ms / 1000)
        self.processor = PathProcessor(rules)
        self.store = new_state_store(settings.state_store, changelog_topic(settings), settings.state_dir)
        self._assigned: set[int] = set()
        self._to_recover: set[int] = set()
        self._last_commit = 0.0
        self._ends: dict[TopicPartition, int] = {}
        self._ends_at = 0.0
        self._homes: dict[str, int] = {}
        self._sending: asyncio.Future | None = None  # the previous batch's output, on its way

    @property
    def ready(self) -> bool:
        """Joined its group, with the state of every partition it owns recovered."""
        return self._joined and not self._to_recover

    async def on_start(self) -> None:
        self.producer = new_producer(self.settings)
        self.reader = new_reader(self.settings)
        await self.producer.start()
        await self.reader.start()
        self.join(new_group_consumer(self.settings, self.settings.group_id, max_poll_records=PATH_BATCH),
                  list(self.inputs))

    async def on_stop(self) -> None:
        if not self.clients_started:
            return
        async with self._lock:
            try:
                await self._commit(force=True)
            except KafkaError as exc:
                log.warning("final commit failed (%s): the next owner replays a few events", exc)
            await self.consumer.stop()
            self.store.close()
        await self.reader.stop()
        await self.producer.stop()

    def poll_limits(self) -> tuple[int, int]:
        return POLL_MS, PATH_BATCH

    async def handle(self, fetched: Fetched) -> None:
        await self._recover()
        await self._process(fetched)
        await self._commit(force=False)

    # -- one batch -------------------------------------------------------------------------
    async def _process(self, fetched: Fetched) -> None:
        if fetched:
            self.metrics.path_batch_records.observe(sum(len(records) for records in fetched.values()))
        out = Outbox(self.producer)
        counts: Counter[tuple[str, str]] = Counter()
        for tp, records in fetched.items():
            if tp.partition not in self._assigned:
                continue
            valid = []
            for record in records:
                result = decode(record.value, self.settings.max_event_bytes)
                if isinstance(result, Rejection):
                    quarantine(out, self.settings.topic_deadletter, self.metrics, record, result)
                    counts[(tp.topic, "deadlettered")] += 1
                else:
                    valid.append((order_key(result), record.offset, (record, result)))
            if records:
                self.aligner.add(tp.topic, tp.partition, valid, received=records[-1].offset)
        caught_up = await self._input_progress()
        # Everything above overlapped the previous batch's sends; the core needs its states.
        await self._settle()
        released = self.aligner.release(time.monotonic(), lambda topic, p: caught_up.get((topic, p)))
        self.metrics.aligner_buffered.set(len(self.aligner))
        for reason, count in self.aligner.forced.items():
            self.metrics.aligner_forced.labels(reason).inc(count)
        self.aligner.forced.clear()

        local: dict[int, list[tuple[Any, Any]]] = defaultdict(list)
        for record, event in released:
            home = self._home(event.customer_id)
            if record.partition != home and record.topic != self.settings.topic_rekeyed:
                out.add(self.settings.topic_rekeyed, home, event.customer_id.encode(), record.value,
                        headers=[("journey.source.topic", record.topic.encode())], timestamp_ms=record.timestamp)
                counts[(record.topic, "rekeyed")] += 1
            else:
                local[record.partition].append((record, event))
                counts[(record.topic, "accepted")] += 1

        states: list[tuple[int, bytes, bytes]] = []
        transitions = duplicates = late = 0
        by_stage: Counter[tuple[str, str]] = Counter()
        for partition, items in local.items():
            produced_ms = {event.event_id: record.timestamp for record, event in items}
            table = self.store.table(partition)
            outcome = self.processor.apply([event for _, event in items], table)
            for transition in outcome.transitions:
                out.add(self.settings.topic_transitions, partition, transition.customer_id.encode(),
                        transition.model_dump_json().encode(), timestamp_ms=produced_ms.get(transition.trigger_event_id))
                by_stage[(transition.from_stage, transition.to_stage)] += 1
            for key, value in outcome.changed.items():
                states.append((partition, key, value))
            transitions += len(outcome.transitions)
            duplicates += outcome.duplicates
            late += outcome.late

        if out.records or states:
            self._sending = asyncio.ensure_future(self._send(out, states))

        for (topic, outcome_name), n in counts.items():
            self.metrics.events.labels(topic, outcome_name).inc(n)
        for (from_stage, to_stage), n in by_stage.items():
            self.metrics.transitions.labels(from_stage, to_stage).inc(n)
        if duplicates:
            self.metrics.duplicates.inc(duplicates)
        if late:
            self.metrics.late.inc(late)

    async def _send(self, out: Outbox, states: list[tuple[int, bytes, bytes]]) -> None:
        """Make one batch's output durable, while the next batch is fetched and decoded.

        Transitions (and dead letters, rekeyed events) first, then the states that say they
        happened: a crash in between re-emits the same (brand, customer_id, seq) rows, which
        the table absorbs. The other order would lose them.
        """
        if out.records:
            await out.send()
        if states:
            changelog = Outbox(self.producer)
            for partition, key, value in states:
                changelog.add(self.store.topic, partition, key, value)
            # The tables change only now, with the changelog offset that holds these states:
            # a table that outlives the process (rocksdb) is then always a changelog prefix.
            self.store.commit_states(states, await changelog.send())

    async def _settle(self) -> None:
        """Wait for the batch in flight (if any); its failure is raised here."""
        sending, self._sending = self._sending, None
        if sending is not None:
            await sending

    def _home(self, customer_id: str) -> int:
        """The customer's partition (murmur2 is pure Python: remembered for recent customers)."""
        home = self._homes.get(customer_id)
        if home is None:
            if len(self._homes) >= HOMES_REMEMBERED:
                self._homes.clear()
            home = self._homes[customer_id] = partition_for(customer_id, self.settings.partitions)
        return home

    async def _input_progress(self) -> dict[tuple[str, int], bool | None]:
        """For each empty input the aligner waits on: True caught up, False more on the broker, None unknown.

        The high-water mark of a partition's last fetch can be older than records already on
        the broker (a partition is fetched again only once its buffer is drained), so an input
        that looks caught up is confirmed with a fresh end-offset request before another
        input's later event is let through.
        """
        progress: dict[tuple[str, int], bool | None] = {}
        confirm: dict[TopicPartition, int] = {}
        for topic, partition in self.aligner.waiting_inputs():
            tp = TopicPartition(topic, partition)
            if partition not in self._assigned:
                progress[(topic, partition)] = None
                continue
            highwater = self.consumer.highwater(tp)  # None before this partition's first fetch
            position = await self.consumer.position(tp)
            if highwater is not None and position < highwater:
                progress[(topic, partition)] = False
            else:
                confirm[tp] = position
        if confirm:
            now = time.monotonic()
            if now - self._ends_at >= END_OFFSETS_EVERY_S or not confirm.keys() <= self._ends.keys():
                self._ends = await self.consumer.end_offsets(list(confirm))
                self._ends_at = now
            for tp, position in confirm.items():
                progress[(tp.topic, tp.partition)] = position >= self._ends[tp]
        return progress

    # -- offsets, rebalances ---------------------------------------------------------------
    def _committable(self) -> dict[TopicPartition, int]:
        offsets = {}
        for tp in self.consumer.assignment():
            held = self.aligner.held_from(tp.topic, tp.partition)
            received = self.aligner.received_offset(tp.topic, tp.partition)
            if held is not None:
                offsets[tp] = held
            elif received is not None:
                offsets[tp] = received + 1
        return offsets

    async def _commit(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_commit < self.settings.commit_interval_s:
            return
        await self._settle()  # offsets are committed only behind durable output
        self._last_commit = now
        offsets = self._committable()
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:
            log.info("commit skipped (%s): the group is rebalancing", exc)

    async def _recover(self) -> None:
        if not self._to_recover:
            return
        await self._settle()  # the changelog holds this worker's own last states first
        partitions, started = sorted(self._to_recover), time.perf_counter()
        result = await self.store.recover(self.reader, partitions)
        self._to_recover.clear()
        log.info(
            "state of partitions %s recovered: %d changelog records (%d partitions caught up from their "
            "table's offset) in %.2fs, %d customers held (%s, %s)", partitions, result.records, result.incremental,
            time.perf_counter() - started, len(self.store), self.settings.state_store, self.store.counting,
        )

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self._commit(force=True)
        except KafkaError as exc:
            log.warning("commit on revocation failed (%s): the next owner replays a few events", exc)
        partitions = {tp.partition for tp in revoked}
        dropped = self.aligner.drop_partitions(partitions)
        self._assigned -= partitions
        if dropped:
            log.info("rebalance: %d held events go back to their next owner", len(dropped))

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned = {tp.partition for tp in assigned}
        self._to_recover = set(self._assigned)
        self.store.keep_only(self._assigned)
        self.metrics.assigned_partitions.set(len(self._assigned))
        log.info("assigned partitions %s", sorted(self._assigned))
