"""The producer side of a stop and of failures, with a real librdkafka producer and no broker (a
closed port): its queue fills and its records time out exactly as with a broker that is away."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.errors import DeliveryError
from auditstream.stream.kafka.delivery import Delivery, ProduceAbandoned
from auditstream.stream.kafka.offset_tracker import OffsetTracker
from auditstream.stream.metrics import Metrics
from auditstream.stream.processor import MessageProcessor
from auditstream.stream.sinks.dead_letters import DeadLetterSink
from auditstream.stream.sinks.encoders import json_encoder
from auditstream.stream.sinks.kafka_alerts import KafkaAlertSink
from devtools.jvm.process import free_ports
from tests.unit.test_processor import BENIGN, MALICIOUS, P, message


def producer_without_broker(**config: object) -> Producer:
    (port,) = free_ports(1)  # nothing listens there
    return Producer({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0, **config})


@pytest.fixture
def full_queue() -> Iterator[Producer]:
    """A producer whose queue (one record) is full and stays full."""
    producer = producer_without_broker(**{"queue.buffering.max.messages": 1})
    producer.produce("alerts", value=b"already queued")
    with pytest.raises(BufferError):
        producer.produce("alerts", value=b"no room")
    yield producer
    producer.purge()
    producer.flush(0)


def test_a_stop_ends_the_wait_for_room_and_that_message_never_commits(
    full_queue: Producer,
) -> None:
    stop = threading.Event()
    delivery = Delivery(full_queue, stop=stop, queue_full_timeout=30.0)
    tracker = OffsetTracker()
    tracker.assign([P])
    pipeline = DetectionPipeline(Detector(load_rules([]).rules), RecentAlerts(100))
    sinks = KafkaAlertSink(delivery, "alerts", json_encoder()), DeadLetterSink(delivery, "dlq")
    processor = MessageProcessor(pipeline, tracker, *sinks, Metrics())
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(ProduceAbandoned):
        processor.handle_batch([message(0, BENIGN), message(1, MALICIOUS)], pytest.fail)
    assert time.monotonic() - started < 2.0  # not the 30 s the queue may stay full
    delivery.poll(0)
    # Offset 0 had no output: done. Offset 1's alerts were not all produced: never committable.
    assert tracker.committable(P) == 1
    assert tracker.pending(P) > 0


def test_without_a_stop_the_wait_stays_bounded(full_queue: Producer) -> None:
    delivery = Delivery(full_queue, queue_full_timeout=0.5)
    with pytest.raises(Exception, match="stayed full"):
        delivery.produce("alerts", key=None, value=b"x", headers=(), on_acked=lambda: None)


def test_every_failed_delivery_is_counted() -> None:
    metrics = Metrics()
    delivery = Delivery(producer_without_broker(**{"message.timeout.ms": 100}), metrics=metrics)
    for _ in range(3):
        delivery.produce("alerts", key=None, value=b"x", headers=(), on_acked=lambda: None)
    assert delivery.flush(10) == 0
    assert metrics.registry.get_sample_value("auditstream_delivery_errors_total") == 3
    with pytest.raises(DeliveryError, match="_MSG_TIMED_OUT"):
        delivery.raise_delivery_errors()
