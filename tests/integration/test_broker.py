"""The real broker keeps a consumer group's committed offset, and a new member resumes there.

This is the foundation of at-least-once delivery: auto-commit is off, offsets are committed
synchronously after the work, and the test checks the offset the *broker* holds for the group
(through the AdminClient, i.e. what a restarted replica would see), not only what was consumed.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.integration

N = 40


def produce(bootstrap: str, topic: str, ids: range) -> None:
    """Produce `event-<i>` for every id, and fail unless the broker acknowledged all of them."""
    errors: list[KafkaError] = []
    acked: list[int] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            acked.append(int(key_of(msg)))
        else:
            errors.append(err)

    with Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"}
    ) as producer:
        for i in ids:
            producer.produce(topic, key=str(i), value=f"event-{i}", on_delivery=on_delivery)
            producer.poll(0)
        assert producer.flush(30) == 0, "messages still queued after 30 s"
    assert errors == []
    assert acked == list(ids)


def group_consumer(bootstrap: str, group_id: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def consume(consumer: Consumer, count: int, timeout: float = 30.0) -> list[Message]:
    """Poll until exactly `count` records arrived (bounded by `timeout`)."""
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(messages) < count:
        assert time.monotonic() < deadline, f"only {len(messages)} of {count} records arrived"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            raise KafkaException(msg.error())
        messages.append(msg)
    return messages


def broker_committed_offset(bootstrap: str, group_id: str, topic: str) -> int:
    """The group's committed offset for partition 0 as the group coordinator reports it."""
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        request = ConsumerGroupTopicPartitions(group_id, [TopicPartition(topic, 0)])
        result = admin.list_consumer_group_offsets([request])[group_id].result(timeout=30)
    (partition,) = result.topic_partitions
    assert partition.error is None
    return int(partition.offset)


def key_of(msg: Message) -> bytes:
    key = msg.key()
    assert isinstance(key, bytes), f"record without a key at offset {msg.offset()}"
    return key


def values(messages: list[Message]) -> list[str]:
    decoded = []
    for msg in messages:
        value = msg.value()
        assert isinstance(value, bytes), f"record without a value at offset {msg.offset()}"
        decoded.append(value.decode())
    return decoded


def test_sync_commit_is_the_group_offset_and_a_new_member_resumes_there(
    bootstrap: str, topic: str, group_id: str
) -> None:
    produce(bootstrap, topic, range(N))

    with group_consumer(bootstrap, group_id) as first:
        first.subscribe([topic])
        consumed = consume(first, N)
        assert values(consumed) == [f"event-{i}" for i in range(N)]
        committed = first.commit(asynchronous=False)
        assert [(tp.topic, tp.partition, tp.offset, tp.error) for tp in committed] == [
            (topic, 0, N, None)
        ]
        (position,) = first.committed([TopicPartition(topic, 0)], timeout=10)
        assert position.offset == N

    assert broker_committed_offset(bootstrap, group_id, topic) == N

    # Records written while the group had no member are read by the next one, from offset N on.
    produce(bootstrap, topic, range(N, N + 10))
    with group_consumer(bootstrap, group_id) as second:
        second.subscribe([topic])
        resumed = consume(second, 10)
    assert [msg.offset() for msg in resumed] == list(range(N, N + 10))
    assert values(resumed) == [f"event-{i}" for i in range(N, N + 10)]


def test_a_new_member_resumes_at_a_commit_taken_mid_stream(
    bootstrap: str, topic: str, group_id: str
) -> None:
    produce(bootstrap, topic, range(N))
    done = 15

    with group_consumer(bootstrap, group_id) as first:
        first.subscribe([topic])
        consumed = consume(first, done)
        # Committing a message commits its offset + 1: the next record to process.
        first.commit(message=consumed[-1], asynchronous=False)

    assert broker_committed_offset(bootstrap, group_id, topic) == done

    with group_consumer(bootstrap, group_id) as second:
        second.subscribe([topic])
        resumed = consume(second, N - done)
    assert [msg.offset() for msg in resumed] == list(range(done, N))
    assert values(resumed) == [f"event-{i}" for i in range(done, N)]
