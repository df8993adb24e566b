"""Customer states of the partitions a worker owns: in memory, backed by a compacted changelog.

Partition p of the changelog holds the states of the customers whose events live in partition
p of the inputs. A worker that is given partition p reads that changelog partition up to its
end before it applies any event of p. A partition it owned before and still holds in memory
is caught up from where it left off (nobody else writes p while this worker owns it), so a
rebalance that gives a worker back its own partitions costs almost nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition


@dataclass
class Recovery:
    partitions: int = 0
    records: int = 0
    incremental: int = 0  # partitions caught up from a known offset instead of from scratch


class StateStore:
    def __init__(self, changelog_topic: str) -> None:
        self.topic = changelog_topic
        self.tables: dict[int, dict[bytes, bytes]] = {}
        self._next_offset: dict[int, int] = {}  # changelog offset up to which a table is current

    def table(self, partition: int) -> dict[bytes, bytes]:
        return self.tables[partition]

    def __len__(self) -> int:
        return sum(len(table) for table in self.tables.values())

    def written(self, last_offsets: dict[tuple[str, int], int]) -> None:
        """Note the offsets of this worker's own changelog records (all already in memory)."""
        for (topic, partition), offset in last_offsets.items():
            if topic == self.topic:
                self._next_offset[partition] = offset + 1

    def keep_only(self, partitions: Iterable[int]) -> None:
        keep = set(partitions)
        for partition in [p for p in self.tables if p not in keep]:
            del self.tables[partition]
            self._next_offset.pop(partition, None)

    async def recover(self, reader: AIOKafkaConsumer, partitions: Iterable[int]) -> Recovery:
        """Read each partition's changelog up to its current end."""
        tps = [TopicPartition(self.topic, p) for p in sorted(set(partitions))]
        result = Recovery(partitions=len(tps))
        if not tps:
            return result
        reader.assign(tps)
        ends = await reader.end_offsets(tps)
        starts = await reader.beginning_offsets(tps)
        todo: dict[TopicPartition, int] = {}
        for tp in tps:
            start = self._next_offset.get(tp.partition)
            if start is None or tp.partition not in self.tables or not starts[tp] <= start <= ends[tp]:
                self.tables[tp.partition] = {}
                start = starts[tp]
            else:
                result.incremental += 1
            reader.seek(tp, start)
            self._next_offset[tp.partition] = start
            if start < ends[tp]:
                todo[tp] = ends[tp]
        while todo:
            fetched = await reader.getmany(*todo, timeout_ms=1000)
            for tp, records in fetched.items():
                table = self.tables[tp.partition]
                for record in records:
                    if record.value is None:
                        table.pop(record.key, None)
                    else:
                        table[record.key] = record.value
                result.records += len(records)
            for tp in list(todo):
                position = await reader.position(tp)
                self._next_offset[tp.partition] = position
                if position >= todo[tp]:
                    del todo[tp]
        reader.unsubscribe()
        return result
