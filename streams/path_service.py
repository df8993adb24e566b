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

A worker that takes a partition over fences it (streams/fencing.py) before its first output,
and stamps every record it writes with its epoch: a worker that stalled past its session and
wakes up with a batch in hand cannot make that batch count anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter, defaultdict
from typing import Any

from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from fivea import Rules, order_key, reconcile
from journey.metrics import JourneyMetrics
from journey.settings import Settings
from schemas import Transition
from schemas.rejections import Rejection, decode
from schemas.segment import Ignored, decode_segment
from streams.alignment import EventTimeAligner
from streams.deadletter import quarantine
from streams.identity_log import read_message
from streams.fencing import FENCE_KEY, FenceTracker, describe_epoch, fence_headers, judge, next_epoch, read_stamp, stamp
from streams.group_service import Fetched, GroupService
from streams.kafka_io import (Landed, Outbox, new_group_consumer, new_producer, new_reader, partition_for,
                              read_back_fences, read_ranges)
from streams.path_processor import PathProcessor
from streams.state_codec import decode_state, encode_state, state_key
from streams.state_store import new_state_store, outputs_from_header

log = logging.getLogger("journey.path")

PATH_BATCH = 20_000  # records per poll; one state write per customer per batch
POLL_MS = 50
HOMES_REMEMBERED = 200_000
END_OFFSETS_EVERY_S = 0.01  # at most this often, a fresh end-offset request for idle-looking inputs


#: The recovery's log line, as tools read it back (bench, tests): records, incremental, stale, seconds, customers.
RECOVERED_LOG = re.compile(
    r"state of partitions \[[\d, ]*\] recovered: (?P<records>\d+) changelog records \((?P<incremental>\d+) "
    r"partitions caught up from their table's offset, (?P<stale>\d+) stale records dropped\) in "
    r"(?P<seconds>[\d.]+)s, (?P<customers>\d+) customers held \((?P<store>\w+)")


def _event_or_reason(raw: bytes, max_bytes: int) -> Any:
    result = decode(raw, max_bytes)
    return result.reason if isinstance(result, Rejection) else result


def changelog_topic(settings: Settings) -> str:
    return f"{settings.group_id}-customer-state-changelog"


class PathService(GroupService):
    def __init__(self, settings: Settings, metrics: JourneyMetrics, rules: Rules, **kwargs: Any) -> None:
        super().__init__(settings, metrics, **kwargs)
        # Aligned by event time: our contract's topics, the Segment topic (schemas/segment.py), rekeyed events.
        self.inputs = (*settings.input_topics.values(), settings.topic_segment, settings.topic_rekeyed)
        self.identity = settings.topic_identity  # read too, not aligned (streams/identity_log.py)
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
        self._generation = 0  # the group generation of the current assignment (0 where unknown)
        self._rekeyed_fences = FenceTracker()  # epochs seen per rekeyed partition and writer
        self._outputs_end: dict[int, int] = {}  # per owned partition: the transitions' end after our last send
        self._identity_next: dict[TopicPartition, int] = {}  # identity records processed: the offset to commit

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
                  [*self.inputs, self.identity])

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
        rekeyed, segment = self.settings.topic_rekeyed, self.settings.topic_segment
        messages: dict[int, list[Any]] = defaultdict(list)
        for tp, records in fetched.items():
            if tp.partition not in self._assigned or tp.partition in self.store.fenced:
                continue
            if tp.topic == self.identity:
                self._read_identity(tp, records, messages[tp.partition], out)
                continue
            valid = []
            for record in records:
                if tp.topic == rekeyed:
                    keep, stale = self._rekeyed_fences.admit(tp, record)
                    if stale:
                        self.metrics.fenced_records.labels("rekeyed").inc()
                    if not keep:
                        continue
                if tp.topic == segment:
                    result = decode_segment(record.value, self.settings.max_event_bytes, self.processor.rules.segment,
                                            self.settings.segment_brand)
                else:
                    result = decode(record.value, self.settings.max_event_bytes)
                if isinstance(result, Rejection):
                    quarantine(out, self.settings.topic_deadletter, self.metrics, record, result)
                    counts[(tp.topic, "deadlettered")] += 1
                elif isinstance(result, Ignored):
                    counts[(tp.topic, "ignored")] += 1
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
        stamps = {p: stamp(self.store.epoch[p]) for p in self._assigned if p in self.store.epoch}
        forward_stamps: dict[tuple[str, int], list[tuple[str, bytes]]] = {}
        for record, event in released:
            if record.partition in self.store.fenced:
                continue  # found fenced while this batch was aligned: the new owner has it
            home = self._home(event.routing_id)
            if record.partition != home and record.topic != rekeyed:
                headers = forward_stamps.get((record.topic, record.partition))
                if headers is None:
                    headers = forward_stamps[(record.topic, record.partition)] = [
                        ("journey.source.topic", record.topic.encode()),
                        *stamp(self.store.epoch[record.partition], writer=record.partition)]
                # A Segment message moves as the event it became: the rekeyed topic carries our contract.
                value = event.model_dump_json(exclude_none=True).encode() if record.topic == segment else record.value
                out.add(rekeyed, home, event.routing_id.encode(), value, headers=headers, timestamp_ms=record.timestamp)
                counts[(record.topic, "rekeyed")] += 1
            else:
                local[record.partition].append((record, event))
                counts[(record.topic, "accepted")] += 1

        states: list[tuple[int, bytes, bytes | None]] = self._rewrites()
        transitions = duplicates = late = corrections = 0
        by_stage: Counter[tuple[str, str]] = Counter()
        withdrawn: Counter[tuple[str, str]] = Counter()
        links: Counter[str] = Counter()
        merges = forwarded = 0
        for partition in {*local, *(p for p, found in messages.items() if found)}:
            if partition in self.store.fenced:
                continue
            items = local.get(partition, [])
            produced_ms = {event.event_id: record.timestamp for record, event in items}
            table = self.store.table(partition)
            outcome = self.processor.apply([event for _, event in items], table, messages.get(partition, ()))
            headers = stamps[partition]
            for record in outcome.identity:
                out.add(self.identity, self._home(record.routing_id), record.routing_id.encode(), record.value,
                        headers=[*record.headers, *stamp(self.store.epoch[partition], writer=partition)])
            links.update(outcome.links)
            merges += outcome.merges
            forwarded += outcome.forwarded
            for transition in outcome.transitions:
                out.add(self.settings.topic_transitions, partition, transition.customer_id.encode(),
                        transition.model_dump_json().encode(), headers=headers,
                        timestamp_ms=produced_ms.get(transition.trigger_event_id))
                (withdrawn if transition.retracted else by_stage)[(transition.from_stage, transition.to_stage)] += 1
            for key, value in outcome.changed.items():
                states.append((partition, key, value))
            transitions += len(outcome.transitions)
            duplicates += outcome.duplicates
            late += outcome.late
            corrections += outcome.corrections

        if out.records or states:
            self._sending = asyncio.ensure_future(self._send(out, states, dict(self._outputs_end)))

        for (topic, outcome_name), n in counts.items():
            self.metrics.events.labels(topic, outcome_name).inc(n)
        for (from_stage, to_stage), n in by_stage.items():
            self.metrics.transitions.labels(from_stage, to_stage).inc(n)
        for (from_stage, to_stage), n in withdrawn.items():
            self.metrics.retracted.labels(from_stage, to_stage).inc(n)
        if corrections:
            self.metrics.corrections.inc(corrections)
        for link_outcome, n in links.items():
            self.metrics.identity_links.labels(link_outcome).inc(n)
        if merges:
            self.metrics.identity_merges.inc(merges)
        if forwarded:
            self.metrics.identity_forwarded.inc(forwarded)
        if duplicates:
            self.metrics.duplicates.inc(duplicates)
        if late:
            self.metrics.late.inc(late)

    async def _send(self, out: Outbox, states: list[tuple[int, bytes, bytes | None]],
                    outputs_from: dict[int, int]) -> None:
        """Make one batch's output durable, while the next batch is fetched and decoded.

        Transitions (and dead letters, rekeyed events) first, then the states that say they
        happened. The other order would lose rows. A crash in between leaves rows in the log
        that no state records; each state record says where its batch began publishing
        (`outputs_from[p]`, the transitions' end before the batch), so the next owner reads
        from there and reconciles (`_reconcile`).
        """
        if out.records:
            self._published(await out.send())
        if states:
            changelog = Outbox(self.producer)
            stamps: dict[int, list[tuple[str, bytes]]] = {}
            for partition, key, value in states:
                if key == FENCE_KEY:  # a stale writer's fence was the last one: ours again
                    changelog.add(self.store.topic, partition, FENCE_KEY, b"",
                                  headers=fence_headers(self.store.epoch[partition]))
                    continue
                headers = stamps.get(partition)
                if headers is None:
                    headers = stamps[partition] = [*stamp(self.store.epoch[partition]),
                                                   outputs_from_header(outputs_from.get(partition, -1))]
                changelog.add(self.store.topic, partition, key, value, headers=headers)
            # The tables change only now, with the changelog offset that holds these states:
            # a table that outlives the process (rocksdb) is then always a changelog prefix.
            fenced, stale = await self.store.commit(self.reader, states, await changelog.send(), outputs_from)
            if stale:
                self.metrics.fenced_records.labels("changelog").inc(stale)
            self._lost(fenced)

    def _read_identity(self, tp: TopicPartition, records: list[Any], into: list[Any], out: Outbox) -> None:
        """Identity records of one partition, in offset order: fences applied, each decoded to a message."""
        for record in records:
            self._identity_next[tp] = record.offset + 1
            keep, stale = self._rekeyed_fences.admit(tp, record)
            if stale:
                self.metrics.fenced_records.labels("identity").inc()
            if not keep:
                continue
            message = read_message(record, lambda raw: _event_or_reason(raw, self.settings.max_event_bytes))
            if isinstance(message, str):
                quarantine(out, self.settings.topic_deadletter, self.metrics, record,
                           Rejection("invalid_fields", message))
                continue
            into.append(message)

    def _published(self, landed: dict[tuple[str, int], Landed]) -> None:
        for (topic, partition), span in landed.items():
            if topic == self.settings.topic_transitions and partition in self._outputs_end:
                self._outputs_end[partition] = max(self._outputs_end[partition], span.last + 1)

    def _rewrites(self) -> list[tuple[int, bytes, bytes | None]]:
        """States to write again: keys whose last changelog record is a stale writer's (fencing.py)."""
        states: list[tuple[int, bytes, bytes | None]] = []
        for partition, keys in self.store.rewrite.items():
            if keys and partition in self._assigned and partition not in self.store.fenced:
                table = self.store.table(partition)
                states.extend((partition, key, None if key == FENCE_KEY else table.get(key)) for key in keys)
                log.info("partition %d: writing %d states again over a stale writer's", partition, len(keys))
                keys.clear()
        return states

    def _lost(self, fenced: set[int]) -> None:
        """Partitions a newer owner has fenced: no more work or commits here until the group reassigns."""
        if not fenced:
            return
        for partition in sorted(fenced):
            log.warning("partition %d: fenced by a newer owner (epoch %s above ours, %s): this worker lost it "
                        "while stalled; its late writes are ignored and it stops work on the partition until "
                        "the group reassigns it", partition, describe_epoch(self.store.highest_epoch(partition)),
                        describe_epoch(self.store.epoch.get(partition, 0)))
        self.metrics.fenced_partitions.inc(len(fenced))
        self.aligner.drop_partitions(fenced)

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
    def _committable(self) -> dict[TopicPartition, OffsetAndMetadata]:
        offsets = {}
        for tp in self.consumer.assignment():
            if tp.partition in self.store.fenced:
                continue
            held = self.aligner.held_from(tp.topic, tp.partition)
            received = self.aligner.received_offset(tp.topic, tp.partition)
            offset = held if held is not None else None if received is None else received + 1
            if tp.topic == self.identity:
                offset = self._identity_next.get(tp)
            if offset is not None:
                mixed = tp.topic in (self.settings.topic_rekeyed, self.identity)  # several writers: epochs per writer
                metadata = self._rekeyed_fences.metadata(tp) if mixed else ""
                offsets[tp] = OffsetAndMetadata(offset, metadata)
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
        if result.stale:
            self.metrics.fenced_records.labels("changelog").inc(result.stale)
        await self._fence(partitions)
        await self._load_rekeyed_fences()
        await self._reconcile([p for p in partitions if p not in self.store.fenced])
        self._to_recover.clear()
        log.info(
            "state of partitions %s recovered: %d changelog records (%d partitions caught up from their "
            "table's offset, %d stale records dropped) in %.2fs, %d customers held (%s, %s)", partitions,
            result.records, result.incremental, result.stale, time.perf_counter() - started, len(self.store),
            self.settings.state_store, self.store.counting,
        )

    async def _fence(self, partitions: list[int]) -> None:
        """Take the partitions over: a fence with a new epoch in every log the path writes for them.

        The changelog is read up to our fence, so the table holds exactly what counts: every
        record before the fence, none of an older epoch after it (streams/fencing.py).
        """
        # The changelog's fences land first, the outputs' after: a state the old owner got into the
        # changelog before our fence then has its rows (sent before it) before our fence in the
        # outputs too, whatever brokers lead the partitions; none of a state we read is dropped.
        changelog, outputs = Outbox(self.producer), Outbox(self.producer)
        for partition in partitions:
            epoch = self.store.epoch[partition] = next_epoch(self.store.highest_epoch(partition), self._generation)
            headers = fence_headers(epoch)
            changelog.add(self.store.topic, partition, FENCE_KEY, b"", headers=headers)
            outputs.add(self.settings.topic_transitions, partition, FENCE_KEY, b"", headers=headers)
            for home in range(self.settings.partitions):
                outputs.add(self.settings.topic_rekeyed, home, FENCE_KEY, b"", headers=fence_headers(epoch, partition))
                outputs.add(self.identity, home, FENCE_KEY, b"", headers=fence_headers(epoch, partition))
        fenced = await changelog.send()
        landed = await outputs.send()
        for partition in partitions:
            self._outputs_end[partition] = landed[(self.settings.topic_transitions, partition)].last + 1
        read = await self.store.catch_up(
            self.reader, {p: fenced[(self.store.topic, p)].last + 1 for p in partitions})
        if read.stale:
            self.metrics.fenced_records.labels("changelog").inc(read.stale)
        self._lost({p for p in partitions if self.store.is_fenced(p)})
        log.info("fenced partitions %s at epochs %s", partitions,
                 ", ".join(describe_epoch(self.store.epoch[p]) for p in partitions))

    async def _reconcile(self, partitions: list[int]) -> None:
        """Rows a crashed owner published but never recorded in a state: withdraw or re-publish them.

        Reads partition p of the transitions from the last batch start the changelog records
        (`outputs_from`) up to our fence, under the readers' fencing rule (what the sink will
        store), and hands each customer's rows to the core's `reconcile`. The fixes go out like
        a batch: rows first, then the states. Nothing to do after a clean hand-over: the state
        then records every row of its last batch. Where no state record says where to start (a
        crash before the partition's first state landed, or states written before this header)
        the whole partition is read, once: after the first batch lands, the header says.
        """
        ranges = {}
        # The readers' rule applied from the middle of the log: the writer that said where its batch
        # began had fenced the transitions before it, so what follows in a lower epoch is stale
        # (a frozen owner's rows that landed late). From the beginning, the fences say it all.
        highest: dict[int, int] = {}
        unknown = [TopicPartition(self.settings.topic_transitions, p) for p in partitions
                   if self.store.outputs_from(p) < 0]
        beginnings = await self.reader.beginning_offsets(unknown) if unknown else {}
        for partition in partitions:
            tp = TopicPartition(self.settings.topic_transitions, partition)
            start, highest[partition] = self.store.outputs_from(partition), self.store.outputs_epoch(partition)
            if start < 0:
                start, highest[partition] = beginnings[tp], 0
            end = self._outputs_end[partition] - 1  # before our fence
            if start < end:
                ranges[tp] = (start, end)
        if not ranges:
            return
        published: dict[tuple[int, bytes], list[Transition]] = defaultdict(list)
        read = 0
        async for tp, records, _ in read_ranges(self.reader, ranges):
            end = ranges[tp][1]
            for record in records:
                if record.offset >= end:
                    continue
                highest[tp.partition], keep, _stale = judge(highest[tp.partition], read_stamp(record.headers))
                if not keep:
                    continue
                read += 1
                row = Transition.model_validate_json(record.value)
                published[(tp.partition, state_key(row.brand, row.customer_id))].append(row)
        out = Outbox(self.producer)
        states: list[tuple[int, bytes, bytes | None]] = []
        fixed = Counter()
        for (partition, key), rows in published.items():
            raw = self.store.table(partition).get(key)
            before = decode_state(raw)
            after, fixes = reconcile(before, rows)
            if after != before:
                states.append((partition, key, encode_state(after)))
            headers = stamp(self.store.epoch[partition])
            for row in fixes:
                out.add(self.settings.topic_transitions, partition, row.customer_id.encode(),
                        row.model_dump_json().encode(), headers=headers)
                fixed["retracted" if row.retracted else "published again"] += 1
                if row.retracted:
                    self.metrics.retracted.labels(row.from_stage, row.to_stage).inc()
                else:
                    self.metrics.transitions.labels(row.from_stage, row.to_stage).inc()
        if states or out.records:
            await self._send(out, states, dict(self._outputs_end))
        log.info("partitions %s: %d rows published since the last recorded batch read back; %d withdrawn and %d "
                 "published again for %d customers (rows a crashed owner published without recording them)",
                 sorted(tp.partition for tp in ranges), read, fixed["retracted"], fixed["published again"],
                 len(states))

    async def _load_rekeyed_fences(self) -> None:
        """Epochs seen on the rekeyed and identity partitions before their committed offsets.

        From the commit's metadata; where the broker kept none (Tansu), read back from the
        records before the committed offset, as the sink does: a stale writer's record after a
        fence this worker's predecessor had already read is then still judged stale.
        """
        tps = [tp for tp in self.consumer.assignment() if tp.topic in (self.settings.topic_rekeyed, self.identity)]
        try:
            committed = await self.consumer._coordinator.fetch_committed_offsets(tps)  # noqa: SLF001 - metadata
        except (KafkaError, AttributeError) as exc:
            log.info("rekeyed fences: commit metadata unavailable (%s): reading them back", exc)
            committed = {}
        rescan: dict[TopicPartition, int] = {}
        for tp in tps:
            found = committed.get(tp)
            if not self._rekeyed_fences.load(tp, found.metadata if found is not None else None):
                if found is not None and found.offset > 0:
                    rescan[tp] = found.offset
        if rescan:
            read = await read_back_fences(self.reader, self._rekeyed_fences, rescan)
            log.info("fences of %d rekeyed and identity partitions read back from %d records (the broker kept no "
                     "commit metadata)", len(rescan), read)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self._commit(force=True)
        except KafkaError as exc:
            log.warning("commit on revocation failed (%s): the next owner replays a few events", exc)
        partitions = {tp.partition for tp in revoked}
        dropped = self.aligner.drop_partitions(partitions)
        self._assigned -= partitions
        for tp in revoked:
            self._rekeyed_fences.forget(tp)
            self._identity_next.pop(tp, None)
        if dropped:
            log.info("rebalance: %d held events go back to their next owner", len(dropped))

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned = {tp.partition for tp in assigned}
        self._to_recover = set(self._assigned)
        # Where the broker tells it (Apache Kafka does; the test broker says 0), the generation
        # orders two owners that claim the same tenure (streams/fencing.py).
        self._generation = getattr(getattr(self.consumer, "_coordinator", None), "generation", 0) or 0
        self.store.keep_only(self._assigned)
        self.store.fenced.clear()  # every partition of the new assignment is fenced anew by us
        self.metrics.assigned_partitions.set(len(self._assigned))
        log.info("assigned partitions %s", sorted(self._assigned))
