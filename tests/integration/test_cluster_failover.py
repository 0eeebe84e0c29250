"""No record the broker acknowledged is lost when the partition leader goes away mid-stream.

Three nodes, a topic with replication factor 3 and `min.insync.replicas=2`, and an idempotent
producer with `acks=all`: an acknowledged record is on at least two replicas, so killing the
leader (SIGKILL: no controlled shutdown, requests in flight) must not lose it, and the producer's
retries against the new leader must neither duplicate nor reorder records. The stream is
numbered, so loss, gaps, duplicates and reordering all show up as a mismatch against `range(n)`.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from devtools.jvm.kafka import KafkaCluster
from devtools.jvm.process import wait_until

if TYPE_CHECKING:
    from tests.conftest import CreateTopic

pytestmark = pytest.mark.integration

BEFORE_STOP = 300  # acknowledged records before the leader is stopped
AFTER_STOP = 300  # further acknowledged records required after it is gone


class NumberedProducer(threading.Thread):
    """Produces records 0, 1, 2, ... until told to stop, recording every delivery report.

    Delivery callbacks run inside `poll`/`flush` on this thread, so the lists need no lock; the
    test thread only reads their lengths while it runs.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name="numbered-producer", daemon=True)
        self.topic = topic
        self.config = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # A record that cannot be delivered in 45 s is reported as failed, within the test.
            "message.timeout.ms": 45_000,
        }
        self.sent = 0
        self.acked: list[int] = []
        self.failed: list[tuple[int, KafkaError]] = []
        self.unflushed = -1
        self._halt = threading.Event()

    def run(self) -> None:
        with Producer(self.config) as producer:
            while not self._halt.is_set():
                for _ in range(10):
                    producer.produce(
                        self.topic, key=str(self.sent), value=b"x" * 100, on_delivery=self._report
                    )
                    self.sent += 1
                producer.poll(0.01)
            self.unflushed = producer.flush(60)

    def _report(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.acked.append(key_of(msg))
        else:
            self.failed.append((key_of(msg), err))

    def finish(self) -> None:
        """Stop producing, wait for the last delivery reports; idempotent."""
        self._halt.set()
        self.join(timeout=90)
        assert not self.is_alive(), "the producer did not finish flushing in 90 s"

    def wait_for_acks(self, count: int, timeout: float) -> None:
        def enough() -> bool:
            assert self.is_alive(), "the producer thread died"
            return len(self.acked) >= count

        wait_until(enough, timeout=timeout, what=f"{count} acknowledged records")


def partition0(admin: AdminClient, topic: str) -> tuple[int, set[int]]:
    """Partition 0's leader and in-sync replicas; (-1, set()) while the broker asked has not
    learned of the topic yet (metadata reaches each broker on its own schedule)."""
    try:
        topics = admin.list_topics(topic=topic, timeout=10).topics
    except KafkaException:
        return -1, set()
    partition = topics[topic].partitions.get(0) if topic in topics else None
    return (-1, set()) if partition is None else (int(partition.leader), set(partition.isrs))


def in_sync_replicas(admin: AdminClient, topic: str) -> set[int]:
    return partition0(admin, topic)[1]


def leader(admin: AdminClient, topic: str) -> int:
    return partition0(admin, topic)[0]


def key_of(msg: Message) -> int:
    key = msg.key()
    assert isinstance(key, bytes), f"record without a key at offset {msg.offset()}"
    return int(key)


def read_all(bootstrap: str, topic: str, group_id: str, count: int) -> tuple[list[int], int]:
    """Every record of partition 0 from the beginning, and the partition's high watermark."""
    keys: list[int] = []
    config = {"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False}
    with Consumer(config) as consumer:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 60
        while len(keys) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                raise KafkaException(msg.error())
            keys.append(key_of(msg))
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    return keys, int(high)


def test_acknowledged_records_survive_killing_the_leader(
    kafka_cluster3: KafkaCluster, create_topic: CreateTopic, group_id: str
) -> None:
    cluster = kafka_cluster3
    topic = create_topic(1, 3, {"min.insync.replicas": "2"}, cluster=cluster)
    with AdminClient({"bootstrap.servers": cluster.bootstrap}) as admin:
        all_nodes = {cluster.node_id(i) for i in range(cluster.size)}
        wait_until(
            lambda: in_sync_replicas(admin, topic) == all_nodes,
            timeout=30,
            what="all three replicas in sync",
        )

        producer = NumberedProducer(cluster.bootstrap, topic)
        producer.start()
        try:
            producer.wait_for_acks(BEFORE_STOP, timeout=30)
            old_leader = leader(admin, topic)
            killed = cluster.index_of(old_leader)
            # SIGKILL: no controlled shutdown, in-flight requests die with the process.
            cluster.stop_node(killed, kill=True)
            acked_at_kill = len(producer.acked)

            # The stream goes on against a new leader, without the killed node.
            producer.wait_for_acks(acked_at_kill + AFTER_STOP, timeout=45)
        finally:
            producer.finish()
        assert leader(admin, topic) not in (-1, old_leader)

        assert producer.unflushed == 0
        assert producer.failed == []
        # Every record was acknowledged, in order, with no gap.
        assert producer.acked == list(range(producer.sent))

        # Read back from the two surviving replicas while the old leader is still down.
        keys, high_watermark = read_all(cluster.bootstrap, topic, group_id, producer.sent)
        assert keys == producer.acked
        assert high_watermark == producer.sent, "the log holds duplicates"

        # The killed node comes back on the same data and catches up into the ISR again.
        cluster.start_node(killed)
        wait_until(
            lambda: in_sync_replicas(admin, topic) == all_nodes,
            timeout=30,
            what=f"node {old_leader} back in sync",
        )
