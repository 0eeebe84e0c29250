"""Another member of a consumer group, for tests that need partitions taken from a replica."""

from __future__ import annotations

import threading

from confluent_kafka import Consumer, TopicPartition


class Joiner:
    """A plain consumer that joins the group (cooperative, like the service) and polls on its own
    thread until stopped; ``assignments`` records every assignment callback it got."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group,
            "partition.assignment.strategy": "cooperative-sticky", "enable.auto.commit": False,
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
        })  # fmt: skip
        self.assignments: list[list[int]] = []
        self._consumer.subscribe([topic], on_assign=self._assigned)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="joiner", daemon=True)
        self._thread.start()

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assignments.append(sorted(p.partition for p in partitions))

    def _run(self) -> None:
        while not self._halt.is_set():
            self._consumer.poll(0.2)
        self._consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(30)
