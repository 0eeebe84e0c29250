"""The end of a clean stop: failures reported while the replica flushed and closed for the last
time still make it exit 4. Real clients on a closed port (no broker): a fatal client error and a
delivery error that arrives during the final close cannot be had from a broker on demand, so
they reach the service through the same callbacks librdkafka calls."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError

from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.errors import DeliveryError, FatalClientError
from auditstream.stream.kafka.checkpoint import Checkpoint
from auditstream.stream.kafka.clients import create_clients
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.kafka.offset_tracker import OffsetTracker
from auditstream.stream.service import Service
from auditstream.stream.settings import load_settings
from devtools.jvm.process import free_ports


def service(**extra: str) -> Service:
    (port,) = free_ports(1)  # nothing listens there
    env = {
        "AUDITSTREAM_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "AUDITSTREAM_INPUT_TOPICS": "audit",
        "AUDITSTREAM_ALERT_TOPIC": "alerts",
        "AUDITSTREAM_DEAD_LETTER_TOPIC": "dlq",
        "AUDITSTREAM_HTTP_PORT": "0",
        "AUDITSTREAM_SHUTDOWN_TIMEOUT": "2",
        "AUDITSTREAM_KAFKA__LOG_LEVEL": "0",
        **{f"AUDITSTREAM_{key.upper()}": value for key, value in extra.items()},
    }
    return Service(load_settings(None, env), load_rules([]).rules)


def stop_cleanly(replica: Service) -> Delivery:
    """The service's own shutdown on its own clients, then the final check; returns the
    delivery (for what the test produced through it)."""
    events = replica._events
    consumer, producer = create_clients(
        replica.settings.kafka, events.on_error, events.on_stats, events.on_commit
    )
    delivery = Delivery(producer, metrics=replica.metrics)
    checkpoint = Checkpoint(
        consumer, delivery, OffsetTracker(), replica.metrics,
        interval=5.0, revoke_timeout=1.0, forget_alerts=lambda: None,
    )  # fmt: skip
    replica._shutdown(consumer, delivery, checkpoint)  # flushes, commits nothing, closes
    return delivery


def test_a_fatal_client_error_during_the_final_close_is_a_failure() -> None:
    replica = service()
    # librdkafka's error callback, as during the last flush or the group leave
    replica._events.on_error(KafkaError(KafkaError._FATAL, "fenced", fatal=True))
    delivery = stop_cleanly(replica)
    with pytest.raises(FatalClientError, match="fenced"):
        replica._raise_late_failures(delivery)


def test_a_delivery_error_reported_during_the_final_close_is_a_failure() -> None:
    replica = service(producer__message_timeout_ms="200", shutdown_timeout="0.5")
    delivery = stop_cleanly(replica)  # nothing in flight yet: a clean stop
    delivery.produce("alerts", key=None, value=b"x", headers=(), on_acked=lambda: None)
    time.sleep(1.0)  # it times out while nobody serves the producer (the group leave)
    with pytest.raises(DeliveryError, match="_MSG_TIMED_OUT"):
        replica._raise_late_failures(delivery)


def test_a_clean_stop_stays_clean() -> None:
    replica = service()
    replica._raise_late_failures(stop_cleanly(replica))
