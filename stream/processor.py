"""One Kafka record in, its outputs out: alerts or one dead letter, each tied to the offset.

The order matters: detect and serialise first, then register the message with the offset
tracker together with how many outputs it has, then produce them. Every output's delivery
callback acknowledges the tracker; a message with no output is committable at once (after its
predecessors). Input never raises out of here: what the pipeline or the serializer refuses
becomes a dead letter with its reason.
"""

from __future__ import annotations

import time
from datetime import datetime
from functools import partial

import structlog
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from detections.alert import Alert, SourceRef
from detections.errors import MalformedEvent
from stream.alert_sink import AlertEncodingError, AlertSink
from stream.dead_letters import DeadLetter, DeadLetterSink
from stream.delivery import Header
from stream.metrics import Metrics
from stream.offset_tracker import OffsetTracker, Ticket
from stream.pipeline import DetectionPipeline

_log = structlog.get_logger("auditstream.processor")


class MessageProcessor:
    def __init__(
        self,
        pipeline: DetectionPipeline,
        tracker: OffsetTracker,
        alerts: AlertSink,
        dead_letters: DeadLetterSink,
        metrics: Metrics,
    ) -> None:
        self.pipeline = pipeline
        self._tracker = tracker
        self._alerts = alerts
        self._dead_letters = dead_letters
        self._metrics = metrics

    def handle(self, msg: Message) -> None:
        """Process one record of an assigned partition (others belong to another member now)."""
        topic, partition, offset = str(msg.topic()), msg.partition() or 0, msg.offset() or 0
        if not self._tracker.assigned((topic, partition)):
            return
        self._metrics.messages.inc()
        with structlog.contextvars.bound_contextvars(
            topic=topic, partition=partition, offset=offset
        ):
            self._detect(msg, SourceRef("kafka", topic=topic, partition=partition, offset=offset))

    def _detect(self, msg: Message, source: SourceRef) -> None:
        try:
            found = self.pipeline.process_message(msg.value() or b"", source)
            encoded = [(alert, self._alerts.encode(alert)) for alert in found.alerts]
        except MalformedEvent as err:
            self._dead_letter(msg, source, err.reason, err, err.detail)
            return
        except AlertEncodingError as err:
            self._dead_letter(msg, source, "alert_encoding", err, str(err))
            return
        except Exception as err:  # a bug met by this input must not stop the stream
            _log.exception("processing_failed")
            self._dead_letter(msg, source, "internal_error", err, f"{type(err).__name__}: {err}")
            return
        self._metrics.events.inc(found.events)
        self._metrics.exec_requests.inc(found.exec_requests)
        self._metrics.repeats.inc(found.repeats)
        ticket = self._open(source, len(encoded))
        kafka_ts = _kafka_timestamp(msg)
        for alert, value in encoded:
            self._alerts.send(alert, value, partial(self._alert_acked, ticket, alert, kafka_ts))

    def _dead_letter(
        self, msg: Message, source: SourceRef, reason: str, err: Exception, detail: str
    ) -> None:
        letter = DeadLetter(
            topic=str(source.topic),
            partition=int(source.partition or 0),
            offset=int(source.offset or 0),
            key=msg.key(),
            value=msg.value(),
            headers=_headers(msg),
            reason=reason,
            error_class=type(err).__name__,
            detail=detail,
        )
        ticket = self._open(source, 1)
        self._dead_letters.send(letter, partial(self._dead_letter_acked, ticket, letter))

    def _open(self, source: SourceRef, outputs: int) -> Ticket:
        partition = (str(source.topic), int(source.partition or 0))
        return self._tracker.open(partition, int(source.offset or 0), outputs)

    def _alert_acked(
        self, ticket: Ticket, alert: Alert, kafka_ts: float | None, _: Message
    ) -> None:
        now = time.time()
        rule = alert.rule
        self._metrics.alerts.labels(rule.id, rule.name).inc()
        if kafka_ts is not None:
            self._metrics.latency.labels("kafka").observe(max(now - kafka_ts, 0.0))
        audit_ts = _audit_timestamp(alert.event.timestamp)
        if audit_ts is not None and audit_ts <= now:
            self._metrics.latency.labels("audit").observe(now - audit_ts)
        source = alert.source
        _log.info(
            "alert_emitted", alert_id=alert.alert_id, rule_id=rule.id, rule=rule.name,
            severity=rule.severity, audit_id=alert.event.audit_id, topic=source.topic,
            partition=source.partition, offset=source.offset,
        )  # fmt: skip
        OffsetTracker.ack(ticket)

    def _dead_letter_acked(self, ticket: Ticket, letter: DeadLetter, _: Message) -> None:
        self._metrics.dead_letters.labels(letter.reason).inc()
        _log.warning(
            "dead_lettered", reason=letter.reason, error_class=letter.error_class,
            detail=letter.detail[:200], topic=letter.topic, partition=letter.partition,
            offset=letter.offset,
        )  # fmt: skip
        OffsetTracker.ack(ticket)


def _headers(msg: Message) -> list[Header]:
    headers = msg.headers() or []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def _kafka_timestamp(msg: Message) -> float | None:
    kind, millis = msg.timestamp()
    return None if kind == TIMESTAMP_NOT_AVAILABLE else millis / 1000.0


def _audit_timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
