"""One Kafka record in, its outputs out: alerts and dead letters, each tied to the offset.

The order matters: detect and serialise first, then register the message with the offset
tracker together with how many outputs it has, then produce them, and only then record the
alerts' ids in the repeat window (an id recorded for an alert that never left would suppress the
exec's later stages for good). Every output's delivery callback acknowledges the tracker; a
message with no output is committable once its batch is handled (after its predecessors).

Input never raises out of here: what the pipeline or the serializer refuses becomes a dead
letter with its reason (one event of several that a rule cannot evaluate: that event alone,
``auditstream.dlq.entry`` naming its place). Infrastructure never becomes a dead letter: a
:class:`~auditstream.stream.errors.StreamError`, or a transport failure met while detecting or
serialising (a registry call that cannot connect), raises out of the batch with the message's
offset held, and the replica exits 4 to read it again after its restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Final

import structlog
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, Message

from auditstream.detections.alert import Alert, SourceRef
from auditstream.detections.errors import MalformedEvent
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.stream.errors import DataError, InfrastructureError, StreamError
from auditstream.stream.kafka.delivery import Header
from auditstream.stream.kafka.offset_tracker import OffsetTracker, Partition, Ticket
from auditstream.stream.metrics import Metrics
from auditstream.stream.sinks.alert_sink import AlertSink
from auditstream.stream.sinks.dead_letters import DeadLetter, DeadLetterSink
from auditstream.stream.state.stage import BadCandidate, StatefulStage

_log = structlog.get_logger("auditstream.processor")
OnError = Callable[[KafkaError], None]
_TRANSPORT_MODULES: Final = (
    "httpx", "httpcore", "requests", "urllib3", "confluent_kafka.schema_registry",
)  # fmt: skip
"""Where the exceptions of a registry or HTTP call come from (``httpx2`` is ``httpx...``)."""


class MessageProcessor:
    """Handles the batches of the service loop; all its bookkeeping is per batch, kept in a
    :class:`_Batch` that lives as long as the batch (this object holds no per-message state).

    Counters are summed locally and added once per batch; a message without output costs the
    tracker nothing until the end of the batch (or until an output of its partition follows),
    when the run of them is recorded in one :meth:`OffsetTracker.settle`. Nothing is bound to the
    logging context per message: the few lines about a message (alert, dead letter, defect) name
    its topic, partition and offset themselves.
    """

    def __init__(
        self,
        pipeline: DetectionPipeline,
        tracker: OffsetTracker,
        alerts: AlertSink,
        dead_letters: DeadLetterSink,
        metrics: Metrics,
        stage: StatefulStage | None = None,
    ) -> None:
        self.pipeline = pipeline.deferring()  # ids are recorded here, once alerts are handed on
        self.stage = stage
        """The stateful rules' hops (``None`` when no stateful rule is loaded)."""
        self._tracker = tracker
        self._alerts = alerts
        self._dead_letters = dead_letters
        self._metrics = metrics

    def handle(self, msg: Message) -> None:
        """One record: a batch of one."""
        self.handle_batch((msg,), _no_errors)

    def handle_batch(self, messages: Sequence[Message], on_error: OnError) -> None:
        """Process records of assigned partitions (others belong to another member now);
        ``on_error`` gets the consumer errors among them (it may raise: the batch stops there,
        with what came before it recorded)."""
        tracker = self._tracker
        batch = _Batch()
        settled = batch.settled
        try:
            for msg in messages:
                error = msg.error()
                if error is not None:
                    on_error(error)
                    continue
                partition = (str(msg.topic()), msg.partition() or 0)
                if not tracker.assigned(partition):
                    continue
                offset = msg.offset() or 0
                batch.messages += 1
                batch.current = msg
                stage = self.stage
                if stage is not None and partition[0] == stage.repartition:
                    if not self._apply_candidate(stage, msg, partition, offset, batch):
                        settled[partition] = offset
                elif not self._detect(msg, partition, offset, batch):
                    settled[partition] = offset
        finally:
            for partition, offset in settled.items():
                tracker.settle(partition, offset)
            batch.add_to(self._metrics)

    def _detect(
        self,
        msg: Message,
        partition: Partition,
        offset: int,
        batch: _Batch,
    ) -> bool:
        """Detect and produce; False when the message has no output (the caller settles it)."""
        settled = batch.settled
        try:
            value = msg.value()
            found = self.pipeline.process_message(b"" if value is None else value, batch.source)
            alerts = found.alerts
            encoded = [(a, self._alerts.encode(a)) for a in alerts] if alerts else None
        except (MalformedEvent, DataError) as err:  # the dead-letter families of both packages
            self._dead_letter(msg, partition, offset, settled, err.reason, err, err.detail)
            return True
        except StreamError:
            raise  # infrastructure: the offset is held, the replica stops loudly
        except Exception as err:  # a bug met by this input must not stop the stream
            if _is_transport_failure(err):
                raise InfrastructureError(f"{type(err).__name__}: {err}") from err
            _log.exception(
                "processing_failed", topic=partition[0], partition=partition[1], offset=offset
            )
            detail = f"{type(err).__name__}: {err}"
            self._dead_letter(msg, partition, offset, settled, "internal_error", err, detail)
            return True
        batch.events += found.events
        batch.exec_requests += found.exec_requests
        batch.repeats += found.repeats
        for reason in found.skipped:
            batch.skipped[reason] = batch.skipped.get(reason, 0) + 1
        candidates = found.candidates
        if not encoded and not found.set_aside and not candidates:
            return False
        outputs = len(encoded or ()) + len(found.set_aside) + len(candidates)
        ticket = self._open(partition, offset, outputs, settled)
        if candidates:
            if self.stage is None:
                raise InfrastructureError("stateful candidates without a repartition topic")
            self.stage.send_candidates(candidates, partial(OffsetTracker.ack, ticket))
            self._metrics.candidates.inc(len(candidates))
        kafka_ts = _kafka_timestamp(msg)
        for alert, value in encoded or ():
            self._alerts.send(alert, value, partial(self._alert_acked, ticket, alert, kafka_ts))
        if alerts:
            self.pipeline.remember(alerts)  # on their way: later stages are repeats from now on
        for entry in found.set_aside:
            error = entry.error
            letter = _letter(msg, partition, offset, error.reason, error, error.detail)
            letter = replace(letter, value=entry.raw, entry=entry.index)
            self._dead_letters.send(letter, partial(self._dead_letter_acked, ticket, letter))
        return True

    def _apply_candidate(
        self, stage: StatefulStage, msg: Message, partition: Partition, offset: int, batch: _Batch
    ) -> bool:
        """Hop 2: one repartition record into its store; False when it has no output."""
        settled = batch.settled
        try:
            value = msg.value()
            alerts, changes, _late = stage.apply(partition[1], b"" if value is None else value)
            seen = self.pipeline.window.seen
            fresh = [alert for alert in alerts if not seen(alert.alert_id)]
            batch.repeats += len(alerts) - len(fresh)
            encoded = [(a, self._alerts.encode(a)) for a in fresh]
        except BadCandidate as err:  # bytes no candidate wrote: kept for a person, never lost
            detail = f"not a candidate record: {err}"
            self._dead_letter(msg, partition, offset, settled, "bad_candidate", err, detail)
            return True
        except (MalformedEvent, DataError) as err:
            self._dead_letter(msg, partition, offset, settled, err.reason, err, err.detail)
            return True
        except StreamError:
            raise  # infrastructure: the offset is held, the replica stops loudly
        except Exception as err:  # a defect met by this candidate must not stop the group
            if _is_transport_failure(err):
                raise InfrastructureError(f"{type(err).__name__}: {err}") from err
            _log.exception(
                "stateful_step_failed", topic=partition[0], partition=partition[1], offset=offset
            )
            detail = f"{type(err).__name__}: {err}"
            self._dead_letter(msg, partition, offset, settled, "internal_error", err, detail)
            return True
        if not encoded and not changes:
            return False
        ticket = self._open(partition, offset, len(encoded) + len(changes), settled)
        kafka_ts = _kafka_timestamp(msg)
        for alert, encoded_value in encoded:
            self._alerts.send(
                alert, encoded_value, partial(self._alert_acked, ticket, alert, kafka_ts)
            )
        if fresh:
            self.pipeline.remember(fresh)
        if changes:
            stage.send_changes(partition[1], changes, partial(OffsetTracker.ack, ticket))
        return True

    def _dead_letter(
        self,
        msg: Message,
        partition: Partition,
        offset: int,
        settled: dict[Partition, int],
        reason: str,
        err: Exception,
        detail: str,
    ) -> None:
        letter = _letter(msg, partition, offset, reason, err, detail)
        ticket = self._open(partition, offset, 1, settled)
        self._dead_letters.send(letter, partial(self._dead_letter_acked, ticket, letter))

    def _open(
        self, partition: Partition, offset: int, outputs: int, settled: dict[Partition, int]
    ) -> Ticket:
        """Register a message with outputs, after the output-less run that precedes it."""
        before = settled.pop(partition, None)
        if before is not None:
            self._tracker.settle(partition, before)
        return self._tracker.open(partition, offset, outputs)

    def _alert_acked(self, ticket: Ticket, alert: Alert, kafka_ts: float | None) -> None:
        now = time.time()
        rule = alert.rule
        self._metrics.alerts.labels(rule.rule_id, rule.name).inc()
        if kafka_ts is not None:
            self._metrics.latency.labels("kafka").observe(max(now - kafka_ts, 0.0))
        audit_ts = _audit_timestamp(alert.event.timestamp)
        if audit_ts is not None and audit_ts <= now:
            self._metrics.latency.labels("audit").observe(now - audit_ts)
        source = alert.source
        _log.info(
            "alert_emitted", alert_id=alert.alert_id, rule_id=rule.rule_id, rule=rule.name,
            severity=rule.severity, audit_id=alert.event.audit_id, topic=source.topic,
            partition=source.partition, offset=source.offset,
        )  # fmt: skip
        OffsetTracker.ack(ticket)

    def _dead_letter_acked(self, ticket: Ticket, letter: DeadLetter) -> None:
        self._metrics.dead_letters.labels(letter.reason).inc()
        _log.warning(
            "dead_lettered", reason=letter.reason, error_class=letter.error_class,
            detail=letter.detail[:200], topic=letter.topic, partition=letter.partition,
            offset=letter.offset,
        )  # fmt: skip
        OffsetTracker.ack(ticket)


class _Batch:
    """The state of one batch: its counters (added to the metrics once), the output-less run of
    each partition not yet recorded, and the message being handled, whose :class:`SourceRef`
    :meth:`source` builds only when the pipeline asks (for an alert: most messages have none)."""

    __slots__ = (
        "current", "events", "exec_requests", "messages", "repeats", "settled", "skipped", "source",
    )  # fmt: skip

    def __init__(self) -> None:
        self.messages = self.events = self.exec_requests = self.repeats = 0
        self.skipped: dict[str, int] = {}  # reason -> entries skipped on purpose
        self.settled: dict[Partition, int] = {}  # partition -> last output-less offset
        self.current: Message | None = None
        self.source = self._source  # one bound method per batch, not one per message

    def _source(self) -> SourceRef:
        msg = self.current
        assert msg is not None, "asked for the source outside a message"
        topic, partition, offset = str(msg.topic()), msg.partition() or 0, msg.offset() or 0
        return SourceRef("kafka", topic=topic, partition=partition, offset=offset)

    def add_to(self, metrics: Metrics) -> None:
        for counter, value in (
            (metrics.messages, self.messages),
            (metrics.events, self.events),
            (metrics.exec_requests, self.exec_requests),
            (metrics.repeats, self.repeats),
        ):
            if value:
                counter.inc(value)
        for reason, count in self.skipped.items():
            metrics.skipped_entries.labels(reason).inc(count)


def _letter(
    msg: Message, partition: Partition, offset: int, reason: str, err: Exception, detail: str
) -> DeadLetter:
    return DeadLetter(
        topic=partition[0],
        partition=partition[1],
        offset=offset,
        key=msg.key(),
        value=msg.value(),
        headers=_headers(msg),
        reason=reason,
        error_class=type(err).__name__,
        detail=detail,
    )


def _is_transport_failure(err: Exception) -> bool:
    """A connection, HTTP client, registry or Kafka client failure: not the input's fault, so
    never a dead letter (the record would be lost for an outage)."""
    if isinstance(err, OSError | KafkaException):  # ConnectionError, TimeoutError are OSErrors
        return True
    return type(err).__module__.startswith(_TRANSPORT_MODULES)


def _no_errors(error: KafkaError) -> None:
    raise AssertionError(f"not a record: {error}")


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
