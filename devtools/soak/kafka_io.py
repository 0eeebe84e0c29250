"""The soak's own view of the cluster: topics, leaders, in-sync replicas, offsets, and reading a
topic back the way a downstream consumer would (``read_committed``).

Thin functions over confluent-kafka; every one bounded in time, because the cluster they talk to
is the one the soak is breaking.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # stubs re-export only from cimpl
    AdminClient,
    NewTopic,
)

from devtools.jvm.process import wait_until

__all__ = [
    "NO_OFFSET",
    "Record",
    "committed",
    "create_topics",
    "end_offsets",
    "fully_in_sync",
    "leaders",
    "read_topic",
    "under_replicated",
]

NO_OFFSET: Final = -1001
"""What the coordinator answers for a partition the group never committed."""
_QUIET: Final = 0
"""librdkafka ``log_level`` for the soak's clients: refused connections are the point here."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record read back: what the checker needs of it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": _QUIET})


def create_topics(admin: AdminClient, topics: Mapping[str, tuple[int, Mapping[str, str]]]) -> None:
    """Create each topic (partitions, config) with replication factor 3; wait for leaders."""
    new = [NewTopic(name, parts, 3, config=dict(conf)) for name, (parts, conf) in topics.items()]
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result(timeout=60)
    wait_until(
        lambda: all(len(leaders(admin, name)) == parts for name, (parts, _) in topics.items()),
        timeout=60,
        what=f"leaders for every partition of {', '.join(topics)}",
    )


def leaders(admin: AdminClient, topic: str) -> dict[int, int]:
    """Partition -> leader's node id, for the partitions that have a leader now."""
    try:
        metadata = admin.list_topics(topic=topic, timeout=5).topics[topic]
    except KafkaException:
        return {}
    return {p.id: p.leader for p in metadata.partitions.values() if p.leader >= 0}


def fully_in_sync(admin: AdminClient, topics: Sequence[str], nodes: int) -> bool:
    """True when every partition of ``topics`` has all ``nodes`` replicas in sync."""
    return under_replicated(admin, topics, nodes) == 0


def under_replicated(admin: AdminClient, topics: Sequence[str], nodes: int) -> int:
    """Partitions of ``topics`` with fewer than ``nodes`` replicas in sync (-1: no answer).

    After a broker is killed this shows that the fault was real (the ISRs shrank)."""
    try:
        metadata = admin.list_topics(timeout=5).topics
    except KafkaException:
        return -1
    if any(topic not in metadata for topic in topics):
        return -1
    return sum(
        1 for topic in topics for p in metadata[topic].partitions.values() if len(p.isrs) < nodes
    )


def _consumer(bootstrap: str, group: str, **extra: object) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "log_level": _QUIET,
            **extra,
        }
    )


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's high watermark now."""
    consumer = _consumer(bootstrap, "soak-ends")
    try:
        return {
            p: int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in range(partitions)
        }
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets as its coordinator holds them; {} while it cannot say
    (the coordinator is moving: a broker was just killed)."""
    consumer = _consumer(bootstrap, group)
    try:
        answer = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
    except KafkaException:
        return {}
    else:
        return {tp.partition: tp.offset for tp in answer}
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, partitions: int, *, timeout: float) -> list[Record]:
    """Every record a ``read_committed`` consumer sees, from the beginning to the end as of now.

    The end is reached when each partition reports EOF (at the last stable offset: records of
    aborted transactions and transaction markers are skipped, as downstream would skip them).
    """
    consumer = _consumer(
        bootstrap,
        f"soak-reader-{uuid.uuid4().hex[:8]}",
        **{"isolation.level": "read_committed", "enable.partition.eof": True},
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        pending = set(range(partitions))
        found: list[Record] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {sorted(pending)} not at the end")
            for msg in consumer.consume(1000, 0.5):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition() or 0)
                        continue
                    raise KafkaException(error)
                found.append(
                    Record(
                        msg.partition() or 0,
                        msg.offset() or 0,
                        msg.key(),
                        msg.value(),
                        _headers(msg.headers()),
                    )
                )
        return found
    finally:
        consumer.close()


def _headers(
    headers: Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None,
) -> tuple[tuple[str, bytes], ...]:
    """Headers as (name, bytes) pairs (a consumer gives a list; the stubs allow a dict too)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or []
    return tuple((name, _bytes(value)) for name, value in pairs)


def _bytes(value: str | bytes | None) -> bytes:
    if isinstance(value, bytes):
        return value
    return (value or "").encode()
