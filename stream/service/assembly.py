"""The parts of a replica's data path, built once its clients exist: the detection pipeline, the
message processor with its sinks, and the checkpoint that commits what they finished.

Before the sinks are built, :func:`output_limits` checks the sizes the outputs accept: every
record batch the producer may send (at most ``min(message.max.bytes, batch.size)`` bytes) must
fit each output topic's ``max.message.bytes``, or the broker would refuse a batch of ordinary
alerts or dead letters and the replica would stop on it; and the largest record must leave room
for an alert's fixed parts and a dead letter's headers. Either failing is a settings error at
start-up, naming the remedy. The sinks then keep every record under the smaller of the two limits
(dead letters are cut, alerts shrunk: see :mod:`auditstream.stream.sinks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import structlog
from confluent_kafka import Consumer

from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.languages import LoadedRule
from auditstream.detections.stateful.engine import StatefulEngine
from auditstream.detections.stateful.rule import StatefulRule
from auditstream.stream.errors import SettingsError
from auditstream.stream.kafka.checkpoint import Checkpoint
from auditstream.stream.kafka.clients import (
    LIBRDKAFKA_MAX_MESSAGE_BYTES,
    RECORD_FRAMING,
    record_budget,
    topic_limits,
)
from auditstream.stream.kafka.config import GROUP_ONLY, consumer_config, producer_config
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.kafka.offset_tracker import OffsetTracker
from auditstream.stream.metrics import Metrics
from auditstream.stream.processor import MessageProcessor
from auditstream.stream.settings_types import Settings
from auditstream.stream.sinks.dead_letters import DeadLetterSink
from auditstream.stream.sinks.encoders import Encoder
from auditstream.stream.sinks.kafka_alerts import KafkaAlertSink
from auditstream.stream.state.restore import ChangelogReader
from auditstream.stream.state.stage import StatefulStage
from auditstream.stream.state.tasks import StateTasks

MIN_RECORD_BYTES: Final = 16 * 1024
"""The smallest record limit we accept: an alert's rule metadata and a dead letter's headers
(its detail alone may take 1 KiB) must fit, with room left for what they carry."""
_log = structlog.get_logger("auditstream.service")


@dataclass(frozen=True, slots=True)
class DataPath:
    """What the loop drives: messages through ``processor``, offsets through ``checkpoint``."""

    processor: MessageProcessor
    checkpoint: Checkpoint
    pipeline: DetectionPipeline
    stage: StatefulStage | None = None
    """The stateful rules' hops and stores (``None``: no stateful rule is loaded)."""


@dataclass(frozen=True, slots=True)
class OutputLimits:
    """The largest record (as :func:`~auditstream.stream.kafka.clients.record_size` counts it)
    that each output takes."""

    alerts: int
    dead_letters: int


def output_limits(settings: Settings) -> OutputLimits:
    """Read the output topics' limits from the broker and check them against the producer's."""
    topics = settings.topics
    limits = topic_limits(
        settings.kafka,
        (topics.alerts, topics.dead_letters),
        deadline=settings.runtime.startup_timeout,
    )
    producer = producer_config(settings.kafka)
    max_bytes = int(str(producer.get("message.max.bytes", LIBRDKAFKA_MAX_MESSAGE_BYTES)))
    batch = int(str(producer.get("batch.size", LIBRDKAFKA_MAX_MESSAGE_BYTES)))
    known = limits or {}
    alerts = check_limits(max_bytes, batch, topics.alerts, known.get(topics.alerts))
    dead_letters = check_limits(
        max_bytes, batch, topics.dead_letters, known.get(topics.dead_letters)
    )
    _log.info(
        "output_limits", message_max_bytes=max_bytes, batch_size=batch, topics=dict(known),
        alert_record_bytes=alerts, dead_letter_record_bytes=dead_letters,
    )  # fmt: skip
    return OutputLimits(alerts, dead_letters)


def check_limits(max_bytes: int, batch: int, topic: str, topic_max: int | None) -> int:
    """The record budget for ``topic`` under the producer's ``message.max.bytes`` and
    ``batch.size`` and the topic's ``max.message.bytes`` (``None``: unknown, the producer's
    limit alone); raises :class:`SettingsError` for a combination that cannot work."""
    source = "[producer] message.max.bytes"
    if topic_max is not None and min(max_bytes, batch) > topic_max:
        raise SettingsError(
            f"the producer may send record batches of up to {min(max_bytes, batch)} bytes "
            f"(message.max.bytes={max_bytes}, batch.size={batch}) but topic {topic} accepts at "
            f"most {topic_max} (its max.message.bytes): the broker would refuse them; set "
            f"[producer] message.max.bytes (or batch.size) to at most {topic_max}, or raise the "
            "topic's max.message.bytes",
            source,
        )
    limit = max_bytes if topic_max is None else min(max_bytes, topic_max)
    budget = record_budget(limit)
    if budget < MIN_RECORD_BYTES:
        raise SettingsError(
            f"records of at most {limit} bytes (message.max.bytes={max_bytes}, topic {topic}: "
            f"max.message.bytes={topic_max}) leave no room for an alert or a dead letter; "
            f"auditstream needs at least {MIN_RECORD_BYTES + RECORD_FRAMING} bytes",
            source,
        )
    return budget


def assemble(
    settings: Settings,
    rules: Sequence[LoadedRule],
    *,
    consumer: Consumer,
    delivery: Delivery,
    tracker: OffsetTracker,
    metrics: Metrics,
    encoder: Encoder,
    limits: OutputLimits | None = None,
) -> DataPath:
    """One pipeline shared by the processor (which detects) and the checkpoint (which may ask it
    to forget its alert window when partitions are given up with output in flight).

    ``limits`` defaults to :func:`output_limits`, read from the broker now."""
    if limits is None:
        limits = output_limits(settings)
    pipeline = DetectionPipeline(
        Detector(rules),
        RecentAlerts(settings.alerts.window),
        max_message_bytes=settings.runtime.max_message_bytes,
    )
    topics = settings.topics
    stage = stateful_stage(settings, rules, delivery=delivery, metrics=metrics)
    processor = MessageProcessor(
        pipeline,
        tracker,
        KafkaAlertSink(delivery, topics.alerts, encoder, max_record_bytes=limits.alerts),
        DeadLetterSink(delivery, topics.dead_letters, max_record_bytes=limits.dead_letters),
        metrics,
        stage,
    )
    checkpoint = Checkpoint(
        consumer,
        delivery,
        tracker,
        metrics,
        interval=settings.runtime.commit_interval,
        revoke_timeout=settings.runtime.revoke_timeout,
        forget_alerts=pipeline.forget_alerts,
        transactional=settings.kafka.delivery == "exactly-once",
    )
    return DataPath(processor, checkpoint, pipeline, stage)


def stateful_stage(
    settings: Settings, rules: Sequence[LoadedRule], *, delivery: Delivery, metrics: Metrics
) -> StatefulStage | None:
    """The stores and hops of the loaded stateful rules, or ``None`` when there are none."""
    stateful = [rule for rule in rules if isinstance(rule, StatefulRule)]
    if not stateful:
        return None
    if settings.kafka.delivery == "exactly-once":
        raise SettingsError(
            "stateful rules run at-least-once only for now (their stores are not rolled back "
            "with an aborted transaction); remove them or use delivery = at-least-once",
            "delivery",
        )
    topics = settings.topics
    engine = StatefulEngine(
        stateful, allowed_lateness_ms=int(settings.state.allowed_lateness * 1000)
    )
    reader_config = {
        key: value
        for key, value in consumer_config(settings.kafka).items()
        if key not in GROUP_ONLY
    }
    reader = ChangelogReader(
        reader_config, topics.changelog, timeout=settings.runtime.revoke_timeout
    )
    tasks = StateTasks(
        engine, folder=settings.state.folder / settings.kafka.group_id, reader=reader,
        metrics=metrics,
    )  # fmt: skip
    return StatefulStage(
        tasks, delivery, repartition=topics.repartition, changelog=topics.changelog
    )
