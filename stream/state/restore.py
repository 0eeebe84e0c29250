"""Reading a store back from its changelog partition, as far as the changelog's end.

A group-less consumer assigned to the one partition reads from the store's checkpoint (or the
partition's start) to the high watermark it found on arrival: nobody else writes that partition
while this replica owns the matching repartition partition, so the end does not move.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition

from auditstream.stream.errors import InfrastructureError
from auditstream.stream.state.stores import RocksStore


@dataclass(frozen=True, slots=True)
class Restored:
    records: int
    seconds: float
    next_offset: int
    full: bool
    """True when the store was rebuilt from the partition's start (no usable checkpoint)."""


class ChangelogReader:
    def __init__(self, config: Mapping[str, object], topic: str, *, timeout: float) -> None:
        self.topic = topic
        self.timeout = timeout
        self._consumer = Consumer({
            **config,
            "group.id": f"auditstream-restore-{uuid.uuid4().hex}",  # never joined: assign()
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
        })  # fmt: skip

    def end(self, partition: int) -> int:
        _low, high = self._consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), timeout=self.timeout
        )
        return int(high)

    def restore(self, partition: int, store: RocksStore, start: int | None) -> Restored:
        """Apply the changelog from ``start`` (``None``: the beginning) up to its end."""
        started = time.monotonic()
        low, high = self._consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), timeout=self.timeout
        )
        position = max(int(low), start if start is not None else 0)
        records = 0
        if position < high:
            self._consumer.assign([TopicPartition(self.topic, partition, position)])
            deadline = time.monotonic() + max(self.timeout, 60.0) * 10
            while position < high:
                if time.monotonic() > deadline:
                    raise InfrastructureError(
                        f"restoring {self.topic}[{partition}] stalled at offset {position} "
                        f"of {high}"
                    )
                for msg in self._consumer.consume(10_000, 0.5):
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            position = max(position, msg.offset() or 0)
                            high = min(high, position)  # compacted or marker tail: the end
                            continue
                        raise InfrastructureError(
                            f"restoring {self.topic}[{partition}]: {error.name()}"
                        )
                    key = msg.key()
                    value = msg.value()
                    if key is not None:
                        if value is None:
                            store.delete(key)
                        else:
                            store.put(key, value)
                        records += 1
                    position = (msg.offset() or 0) + 1
            self._consumer.unassign()
        return Restored(records, time.monotonic() - started, int(high), start is None)

    def close(self) -> None:
        self._consumer.close()
