"""The consumer and producer of a replica: created with our configuration and callbacks, the
start-up checks that the broker answers, that the output topics exist and how big a record each
accepts, the batch read and the bounded group leave.

Record sizes: librdkafka refuses at ``produce()`` a record (key, value, headers and framing)
larger than the producer's ``message.max.bytes``, and the broker refuses a record batch larger
than the topic's ``max.message.bytes`` (after compression; librdkafka sends a batch uncompressed
when compressing would grow it). :func:`record_size` is the producer's count, :func:`record_budget`
the largest record we produce under a limit, with room for the batch's own framing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import structlog
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # stubs re-export only from cimpl
    AdminClient,
    ConfigResource,
    ResourceType,
)

from auditstream.stream.errors import SettingsError, StartupError, TimedOut
from auditstream.stream.kafka.blocking import call_with_timeout
from auditstream.stream.kafka.config import consumer_config, producer_config
from auditstream.stream.logs import librdkafka_logger
from auditstream.stream.retrying import bounded
from auditstream.stream.settings_types import KafkaSettings

_log = structlog.get_logger("auditstream.service")
OnClientError = Callable[[KafkaError], None]
OnStatistics = Callable[[str], None]
Headers = Sequence[tuple[str, bytes | str | None]]

LIBRDKAFKA_MAX_MESSAGE_BYTES: Final = 1_000_000
"""librdkafka's default ``message.max.bytes`` (and ``batch.size``), which the service keeps
unless ``[producer]`` sets it."""
RECORD_FRAMING: Final = 1024
"""Bytes kept free under a limit for what :func:`record_size` does not count exactly: the record
batch header (61 bytes), the produce request's own header, varints at their widest."""
_RECORD_OVERHEAD: Final = 64  # a record's fixed fields at their widest (librdkafka counts ~40)
_HEADER_OVERHEAD: Final = 10  # the two length varints of one header


def record_size(key: bytes | str | None, value: bytes | str | None, headers: Headers) -> int:
    """The bytes librdkafka counts for one record against ``message.max.bytes`` (rounded up)."""
    size = _RECORD_OVERHEAD + _length(key) + _length(value)
    for name, data in headers:
        size += _HEADER_OVERHEAD + len(name.encode()) + _length(data)
    return size


def _length(data: bytes | str | None) -> int:
    return 0 if data is None else len(data.encode() if isinstance(data, str) else data)


def record_budget(limit: int) -> int:
    """The largest :func:`record_size` we produce where ``limit`` bytes are accepted."""
    return limit - RECORD_FRAMING


def create_clients(
    kafka: KafkaSettings,
    on_error: OnClientError,
    on_stats: OnStatistics,
    on_commit: Callable[[KafkaError | None, list[TopicPartition]], None] | None = None,
) -> tuple[Consumer, Producer]:
    """Both clients, logging through structlog; ``on_stats`` only when statistics are on;
    ``on_commit`` gets the answers to asynchronous commits (inside ``consume``).

    librdkafka checks the properties here: one it refuses is a :class:`SettingsError`.
    """
    consumer_conf = {
        **consumer_config(kafka),
        "error_cb": on_error,
        "logger": librdkafka_logger("consumer"),
    }
    if on_commit is not None:
        consumer_conf["on_commit"] = on_commit
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
            raise StartupError(
                f"output topic(s) missing: {', '.join(missing)}; create them with "
                "`auditstream topics create` and the same settings (see docs/topics.md)"
            )

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


def topic_limits(
    kafka: KafkaSettings,
    topics: Sequence[str],
    *,
    deadline: float,
    abort: threading.Event | None = None,
) -> Mapping[str, int] | None:
    """Each topic's ``max.message.bytes`` as the broker applies it (the topic's own value, or the
    broker's default), read with ``DescribeConfigs`` (bounded retries); ``None`` when the broker
    refuses to say (no ``DescribeConfigs`` permission): logged, and the caller decides."""
    conf: dict[str, Any] = {
        **kafka.common,
        "bootstrap.servers": kafka.bootstrap_servers,
        "logger": librdkafka_logger("admin"),
    }
    conf.pop("group.id", None)  # harmless in [kafka]; an admin client has no group
    admin = AdminClient(conf)
    resources = [ConfigResource(ResourceType.TOPIC, topic) for topic in topics]

    def describe() -> dict[str, int]:
        futures = admin.describe_configs(resources, request_timeout=min(10.0, deadline))
        return {
            resource.name: int(future.result()["max.message.bytes"].value)
            for resource, future in futures.items()
        }

    retrying = bounded("topic_limits", deadline=deadline, retriable=_retriable, abort=abort)
    try:
        return retrying(describe)
    except KafkaException as err:
        if _retriable(err):
            raise StartupError(f"cannot read the output topics' limits: {err}") from err
        _log.warning("topic_limits_unknown", topics=list(topics), error=str(err))
        return None


_TRANSIENT: Final = frozenset(
    {KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}
)


def _retriable(err: BaseException) -> bool:
    """Transport trouble is worth another try; a refusal (authorization) is an answer."""
    if not isinstance(err, KafkaException):
        return False
    error = err.args[0] if err.args else None
    if not isinstance(error, KafkaError):
        return True
    return bool(error.retriable()) or error.code() in _TRANSIENT


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
