"""Exactly-once primitives on the real broker: a batch's outputs and its input offsets commit
together or not at all, an abort rewinds the consumer, and a newer instance fences an older one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from auditstream.stream.errors import FatalClientError
from auditstream.stream.kafka.alert_log import AlertLog
from auditstream.stream.kafka.transactions import TransactionAborted, Transactions
from auditstream.stream.metrics import Metrics
from tests.conftest import CreateTopic

pytestmark = pytest.mark.integration


def _consumer(bootstrap: str, group: str, topic: str) -> Consumer:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "isolation.level": "read_committed",
    })  # fmt: skip
    consumer.subscribe([topic])
    return consumer


def _read_committed(bootstrap: str, topic: str, expect: int, timeout: float = 20) -> list[bytes]:
    reader = _consumer(bootstrap, f"reader-{uuid.uuid4().hex[:8]}", topic)
    values: list[bytes] = []
    try:
        for _ in range(int(timeout / 0.5)):
            for msg in reader.consume(100, 0.5):
                if msg.error() is None:
                    values.append(msg.value())
            if len(values) >= expect and expect:
                break
    finally:
        reader.close()
    return values


@pytest.fixture
def setup(bootstrap: str, create_topic: CreateTopic, group_id: str) -> Iterator[tuple[str, str]]:
    source, sink = create_topic(), create_topic()
    plain = Producer({"bootstrap.servers": bootstrap})
    for n in range(10):
        plain.produce(source, value=f"in-{n}".encode())
    plain.flush(10)
    yield source, sink


def _transactional(bootstrap: str, tid: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})


def _started(
    bootstrap: str, group_id: str, source: str
) -> tuple[Consumer, Producer, Transactions, list[bool]]:
    """A consumer on ``source``, a registered transactional producer, and the aborts seen."""
    consumer = _consumer(bootstrap, group_id, source)
    producer = _transactional(bootstrap, f"tx-{uuid.uuid4().hex[:8]}")
    aborted: list[bool] = []
    tx = Transactions(
        producer, consumer, Metrics(), timeout=10, on_abort=lambda: aborted.append(True)
    )
    tx.start()
    return consumer, producer, tx, aborted


def _batch(consumer: Consumer, count: int) -> list:
    batch: list = []
    for _ in range(40):
        batch += [m for m in consumer.consume(count - len(batch), 0.5) if m.error() is None]
        if len(batch) >= count:
            return batch
    raise AssertionError(f"only {len(batch)} of {count} records arrived")


def test_outputs_and_offsets_commit_together(
    bootstrap: str, setup: tuple[str, str], group_id: str
) -> None:
    source, sink = setup
    consumer, producer, tx, aborted = _started(bootstrap, group_id, source)
    batch = _batch(consumer, 10)
    tx.begin()
    for msg in batch:
        producer.produce(sink, value=b"out-" + msg.value())
    tx.commit(batch)
    assert sorted(_read_committed(bootstrap, sink, 10)) == sorted(
        b"out-" + m.value() for m in batch
    )
    committed = consumer.committed([TopicPartition(source, 0)], timeout=10)
    assert committed[0].offset == 10
    assert not aborted
    consumer.close()


def test_an_aborted_batch_is_invisible_and_the_consumer_rewinds(
    bootstrap: str, setup: tuple[str, str], group_id: str
) -> None:
    source, sink = setup
    consumer, producer, tx, aborted = _started(bootstrap, group_id, source)
    batch = _batch(consumer, 10)
    tx.begin()
    for msg in batch:
        producer.produce(sink, value=b"lost-" + msg.value())
    tx.abort(batch, "test")
    assert aborted == [True]
    again = _batch(consumer, 10)  # rewound: the same records come again
    assert [m.offset() for m in again] == [m.offset() for m in batch]
    tx.begin()
    producer.produce(sink, value=b"kept")
    tx.commit(again)
    assert _read_committed(bootstrap, sink, 1) == [b"kept"]  # nothing of the aborted one
    consumer.close()


def test_a_newer_instance_fences_the_older(
    bootstrap: str, setup: tuple[str, str], group_id: str
) -> None:
    source, sink = setup
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    consumer = _consumer(bootstrap, group_id, source)
    old = _transactional(bootstrap, tid)
    old_tx = Transactions(old, consumer, Metrics(), timeout=10, on_abort=lambda: None)
    old_tx.start()
    batch = _batch(consumer, 10)
    old_tx.begin()
    old.produce(sink, value=b"zombie")
    old.flush(10)
    new = _transactional(bootstrap, tid)
    Transactions(new, consumer, Metrics(), timeout=10, on_abort=lambda: None).start()
    with pytest.raises((FatalClientError, TransactionAborted)):
        old_tx.commit(batch)
    assert _read_committed(bootstrap, sink, 0, timeout=3) == []
    consumer.close()


def test_the_alert_log_reads_back_recent_committed_keys_only(
    bootstrap: str, create_topic: CreateTopic
) -> None:
    alerts = create_topic(partitions=2)
    plain = Producer({"bootstrap.servers": bootstrap})
    for n in range(5):
        plain.produce(alerts, key=f"plain-{n}".encode(), value=b"{}", partition=n % 2)
    plain.flush(10)
    producer = _transactional(bootstrap, f"tx-{uuid.uuid4().hex[:8]}")
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(alerts, key=b"aborted", value=b"{}")
    producer.abort_transaction(10)
    producer.begin_transaction()
    producer.produce(alerts, key=b"committed", value=b"{}")
    producer.commit_transaction(10)
    seen: list[str] = []
    config = {"bootstrap.servers": bootstrap, "isolation.level": "read_committed"}
    log = AlertLog(config, alerts, horizon=600, remember=seen.append)
    assert log.catch_up(10) == 6
    assert sorted(seen) == sorted([f"plain-{n}" for n in range(5)] + ["committed"])
    plain.produce(alerts, key=b"later", value=b"{}")
    plain.flush(10)
    assert log.catch_up(10) == 1 and seen[-1] == "later"  # only what is new
    assert log.catch_up(5) == 0
    log.close()
    later = AlertLog(
        config, alerts, horizon=600, remember=seen.append, clock=lambda: time.time() + 3600
    )
    assert later.catch_up(10) == 0  # an hour from now, none of them is within the horizon
    later.close()
