"""A mode service that is one member of a consumer group and handles its fetches one at a time.

The path and the sink are both this: fetch, then handle the batch under a lock that rebalance
callbacks take too. A rebalance can revoke partitions between a fetch and its handling; the
batch is then dropped, because nothing past it was committed and the partitions' next owner
fetches those records again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import ConsumerStoppedError
from aiokafka.structs import TopicPartition
from mode import Service

from journey.metrics import JourneyMetrics
from journey.settings import Settings

Fetched = dict[TopicPartition, list[Any]]


class GroupService(Service):
    """Subclasses give `poll_limits` and `handle`, and may add `on_revoked` / `on_assigned`."""

    def __init__(self, settings: Settings, metrics: JourneyMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics
        self._lock = asyncio.Lock()
        self._generation = 0  # bumped on revocation: batches fetched before it are dropped
        self._joined = False

    def join(self, consumer: AIOKafkaConsumer, topics: list[str]) -> None:
        """Subscribe and start joining the group in the background (it takes seconds, and every
        service of the worker joins its own group at the same time)."""
        self.consumer = consumer
        consumer.subscribe(topics, listener=_Rebalance(self))
        self._joining = asyncio.ensure_future(consumer.start())

    @property
    def clients_started(self) -> bool:
        """False when `on_start` failed before its clients existed (nothing to stop then)."""
        return hasattr(self, "_joining")

    def poll_limits(self) -> tuple[int, int]:
        """(timeout_ms, max_records) of the next fetch."""
        raise NotImplementedError

    async def handle(self, fetched: Fetched) -> None:
        """One fetch, with the lock held and the fetched partitions still owned."""
        raise NotImplementedError

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Finish with revoked partitions (the lock is held; the group waits for this)."""

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Take newly assigned partitions."""

    @Service.task
    async def _consume(self) -> None:
        await self._joining
        while not self.should_stop:
            timeout_ms, max_records = self.poll_limits()
            try:
                fetched = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
            except ConsumerStoppedError:
                return
            generation = self._generation
            async with self._lock:
                if self.should_stop:
                    return
                if generation != self._generation:
                    continue  # revoked in between: the new assignment fetches these again
                await self.handle(fetched)

    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            await self.on_revoked(revoked)
            self._generation += 1

    def _assign(self, assigned: set[TopicPartition]) -> None:
        self._joined = True
        self.on_assigned(assigned)


class _Rebalance(ConsumerRebalanceListener):
    """Hands a group's rebalance callbacks to its service.

    aiokafka awaits `on_partitions_revoked` before the group moves on: the place to finish a
    batch and commit while the partitions are still ours.
    """

    def __init__(self, service: GroupService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.service._revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.service._assign(set(assigned))
