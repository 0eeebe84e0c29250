"""The parts of a replica's data path, built once its clients exist: the detection pipeline, the
message processor with its sinks, and the checkpoint that commits what they finished."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer

from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.languages import LoadedRule
from auditstream.stream.kafka.checkpoint import Checkpoint
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.kafka.offset_tracker import OffsetTracker
from auditstream.stream.metrics import Metrics
from auditstream.stream.processor import MessageProcessor
from auditstream.stream.settings_types import Settings
from auditstream.stream.sinks.dead_letters import DeadLetterSink
from auditstream.stream.sinks.encoders import Encoder
from auditstream.stream.sinks.kafka_alerts import KafkaAlertSink


@dataclass(frozen=True, slots=True)
class DataPath:
    """What the loop drives: messages through ``processor``, offsets through ``checkpoint``."""

    processor: MessageProcessor
    checkpoint: Checkpoint


def assemble(
    settings: Settings,
    rules: Sequence[LoadedRule],
    *,
    consumer: Consumer,
    delivery: Delivery,
    tracker: OffsetTracker,
    metrics: Metrics,
    encoder: Encoder,
) -> DataPath:
    """One pipeline shared by the processor (which detects) and the checkpoint (which may ask it
    to forget its alert window when partitions are given up with output in flight)."""
    pipeline = DetectionPipeline(
        Detector(rules),
        RecentAlerts(settings.alerts.window),
        max_message_bytes=settings.runtime.max_message_bytes,
    )
    topics = settings.topics
    processor = MessageProcessor(
        pipeline,
        tracker,
        KafkaAlertSink(delivery, topics.alerts, encoder),
        DeadLetterSink(delivery, topics.dead_letters),
        metrics,
    )
    checkpoint = Checkpoint(
        consumer,
        delivery,
        tracker,
        metrics,
        interval=settings.runtime.commit_interval,
        revoke_timeout=settings.runtime.revoke_timeout,
        forget_alerts=pipeline.forget_alerts,
    )
    return DataPath(processor, checkpoint)
