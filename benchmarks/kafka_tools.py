"""Small AdminClient helpers: topics, end offsets, and watching a consumer group's progress.

Every contender is measured from outside the same way: the group's committed offsets reaching
the end of the topic is "done", every partition assigned to the expected number of members is
"ready". That needs nothing from the contender but a commit, so our service, the naive port and
Quix Streams are timed by one yardstick.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # stubs omit NewTopic
    AdminClient,
    NewTopic,
)

TIMEOUT = 10.0


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    """Create fresh topics (the broker refuses auto-creation) and wait until they exist."""
    client = admin(bootstrap)  # keep the handle alive until the futures resolve
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names],
        operation_timeout=TIMEOUT,
    )
    for future in futures.values():
        future.result(timeout=TIMEOUT)


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """High watermark per partition: the offset one past the last message."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "benchmarks-watermarks"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


@dataclass
class GroupProgress:
    members_assigned: int  # members that own at least one partition
    partitions_assigned: int
    committed: dict[int, int]  # partition -> committed offset (absent: none yet)


class GroupWatcher:
    """Polls one group's assignment and committed offsets for one topic."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self._admin = admin(bootstrap)
        self.group = group
        self.topic = topic

    def committed(self) -> dict[int, int]:
        request = [ConsumerGroupTopicPartitions(self.group)]
        answer = self._admin.list_consumer_group_offsets(request)[self.group].result(TIMEOUT)
        return {
            tp.partition: tp.offset
            for tp in answer.topic_partitions or []
            if tp.topic == self.topic and tp.offset >= 0
        }

    def assignment(self) -> tuple[int, int]:
        """(members owning partitions of the topic, partitions of the topic owned)."""
        description = self._admin.describe_consumer_groups([self.group])[self.group]
        group = description.result(TIMEOUT)
        members = partitions = 0
        for member in group.members:
            owned = [
                tp
                for tp in (member.assignment.topic_partitions if member.assignment else [])
                if tp.topic == self.topic
            ]
            members += bool(owned)
            partitions += len(owned)
        return members, partitions

    def progress(self) -> GroupProgress:
        members, partitions = self.assignment()
        return GroupProgress(members, partitions, self.committed())


def reached(committed: dict[int, int], end: dict[int, int]) -> bool:
    return all(committed.get(p, -1) >= offset for p, offset in end.items() if offset > 0)


def count_messages(bootstrap: str, topic: str, partitions: int) -> int:
    return sum(end_offsets(bootstrap, topic, partitions).values())


def wait_for(predicate: object, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(interval)
    return False
