"""The consumer and producer of a replica: created with our configuration and callbacks, the
start-up check that the broker answers and the output topics exist, the batch read and the
bounded group leave."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from auditstream.stream.errors import SettingsError, StartupError, TimedOut
from auditstream.stream.kafka.blocking import call_with_timeout
from auditstream.stream.kafka.config import consumer_config, producer_config
from auditstream.stream.logs import librdkafka_logger
from auditstream.stream.retrying import bounded
from auditstream.stream.settings_types import KafkaSettings

_log = structlog.get_logger("auditstream.service")
OnClientError = Callable[[KafkaError], None]
OnStatistics = Callable[[str], None]


def create_clients(
    kafka: KafkaSettings, on_error: OnClientError, on_stats: OnStatistics
) -> tuple[Consumer, Producer]:
    """Both clients, logging through structlog; ``on_stats`` only when statistics are on.

    librdkafka checks the properties here: one it refuses is a :class:`SettingsError`.
    """
    consumer_conf = {
        **consumer_config(kafka),
        "error_cb": on_error,
        "logger": librdkafka_logger("consumer"),
    }
    if kafka.stats_interval > 0:
        consumer_conf["stats_cb"] = on_stats
    producer_conf = {
        **producer_config(kafka),
        "error_cb": on_error,
        "logger": librdkafka_logger("producer"),
    }
    try:
        return Consumer(consumer_conf), Producer(producer_conf)
    except KafkaException as err:
        raise SettingsError(f"librdkafka refused the configuration: {err}") from err


def await_topics(
    consumer: Consumer,
    outputs: Sequence[str],
    *,
    bootstrap_servers: str,
    deadline: float,
    abort: threading.Event,
) -> None:
    """Wait (bounded, logged) until the broker answers and every output topic exists."""
    startup = max(deadline, 0.5)

    def check() -> None:
        topics = consumer.list_topics(timeout=min(5.0, startup)).topics
        missing = [t for t in outputs if t not in topics or topics[t].error is not None]
        if missing:
            raise StartupError(f"output topic(s) missing: {', '.join(missing)}")

    retrying = bounded(
        "await_topics",
        deadline=deadline,
        retriable=lambda err: isinstance(err, KafkaException | StartupError),
        abort=abort,
    )
    try:
        retrying(check)
    except KafkaException as err:
        raise StartupError(f"no broker answered at {bootstrap_servers}: {err}") from err


def next_batch(consumer: Consumer, size: int, timeout: float) -> list[Message]:
    """Up to ``size`` records without waiting for a batch to fill: what the consumer has queued
    already; if nothing, wait up to ``timeout`` for one record, then take what came with it.

    ``consume(size, timeout)`` alone returns only when ``size`` records are there or ``timeout``
    has passed, so below ``size / timeout`` records/s each one would wait up to ``timeout``.
    """
    batch = consumer.consume(num_messages=size, timeout=0)
    if not batch:
        batch = consumer.consume(num_messages=1, timeout=timeout)  # idle: blocks, no spinning
        if batch and size > 1:
            batch.extend(consumer.consume(num_messages=size - 1, timeout=0))
    return batch


def close_consumer(consumer: Consumer, timeout: float) -> None:
    """Leave the group, bounded: ``close()`` waits for the coordinator, which may be gone."""
    try:
        call_with_timeout("consumer_close", consumer.close, timeout)
    except (KafkaException, RuntimeError, TimedOut) as err:
        _log.warning("consumer_close_failed", error=str(err))
