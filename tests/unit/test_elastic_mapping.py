"""Raw audit events in, the document Elastic's Kubernetes integration indexes out.

One test (or parametrised group) per ingest-pipeline processor, named in docs/elastic-mapping.md.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.elastic.fields import dynamic_type, field_type, is_indexed
from auditstream.detections.elastic.mapping import elastic_source, is_inet_address
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.decode import events_from_json

Event = dict[str, Any]


def _audit(**overrides: Any) -> Event:
    event: Event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "a1",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods/web",
        "verb": "get",
        "user": {"username": "alice", "uid": "u-1", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.7"],
        "userAgent": "kubectl/v1.30.0",
        "objectRef": {"resource": "pods", "namespace": "default", "name": "web"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2025-01-15T10:00:00.000001Z",
        "stageTimestamp": "2025-01-15T10:00:00.000200Z",
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    event.update(overrides)
    return event


def _source(**overrides: Any) -> dict[str, Any]:
    return elastic_source(AuditEvent(_audit(**overrides), None, "event"))


# --- processors, in pipeline order ------------------------------------------------------------


def test_remove_metadata_of_request_and_response_objects() -> None:
    meta = {"name": "web", "labels": {"app": "x"}}
    doc = _source(
        requestObject={"kind": "Pod", "metadata": meta, "spec": {"hostPID": True}},
        responseObject={"kind": "Pod", "metadata": meta},
    )
    audit = doc["kubernetes"]["audit"]
    assert audit["requestObject"] == {"kind": "Pod", "spec": {"hostPID": True}}
    assert audit["responseObject"] == {"kind": "Pod"}


def test_remove_metadata_ignores_a_non_object() -> None:
    doc = _source(requestObject="opaque")
    assert doc["kubernetes"]["audit"]["requestObject"] == "opaque"
    assert doc["event"]["kind"] == "event"


def test_set_event_kind_and_action_from_verb() -> None:
    doc = _source(verb="create")
    assert doc["event"]["kind"] == "event"
    assert doc["event"]["action"] == "create"


def test_set_event_action_skips_an_empty_verb() -> None:
    doc = _source(verb="")
    assert "action" not in doc["event"]
    assert "verb" not in doc["kubernetes"]["audit"]  # "" dropped by the last script


@pytest.mark.parametrize(
    ("decision", "outcome"), [("allow", "success"), ("forbid", "failure"), ("maybe", None)]
)
def test_annotations_respelled_and_outcome(decision: str, outcome: str | None) -> None:
    doc = _source(
        annotations={
            "authorization.k8s.io/decision": decision,
            "pod-security.kubernetes.io/enforce-policy": "privileged:latest",
        }
    )
    assert doc["kubernetes"]["audit"]["annotations"] == {
        "authorization_k8s_io/decision": decision,
        "pod-security_kubernetes_io/enforce-policy": "privileged:latest",
    }
    assert doc["event"].get("outcome") == outcome


def test_annotations_that_are_not_an_object_fail_the_pipeline() -> None:
    doc = _source(annotations="oops")
    assert doc["event"]["kind"] == "pipeline_error"
    assert doc["tags"] == ["preserve_original_event"]
    assert doc["error"]["message"][0].startswith("Processor 'script' failed with message")
    assert "user" not in doc  # processors after the failure did not run


def test_user_and_user_agent_copied() -> None:
    doc = _source()
    assert doc["user"] == {"name": "alice", "id": "u-1"}
    assert doc["user_agent"] == {"original": "kubectl/v1.30.0"}


def test_user_that_is_not_an_object_fails_the_condition() -> None:
    doc = _source(user="alice")
    assert doc["event"]["kind"] == "pipeline_error"


def test_convert_source_ips_to_source_ip_and_client_ip() -> None:
    doc = _source(sourceIPs=["10.0.0.7", "fe80::1%eth0", "::ffff:1.2.3.4"])
    expected = ["10.0.0.7", "fe80::1%eth0", "::ffff:1.2.3.4"]
    assert doc["source"]["ip"] == expected
    assert doc["client"]["ip"] == expected
    assert doc["related"]["ip"] == expected
    assert doc["kubernetes"]["audit"]["sourceIPs"] == expected


@pytest.mark.parametrize(
    "ips",
    [
        ["10.0.0.7", "not-an-ip"],
        ["10.0.0.7", "010.0.0.7"],
        ["10.0.0.7", 7],
        ["10.0.0.7", None],
    ],
)
def test_convert_fails_whole_on_one_invalid_ip(ips: list[Any]) -> None:
    """One bad element fails the convert; ignore_failure leaves no source.ip at all."""
    doc = _source(sourceIPs=ips)
    assert "source" not in doc
    assert "client" not in doc
    assert "ip" not in doc.get("related", {})
    assert doc["event"]["kind"] == "event"  # ignored, not a pipeline error


def test_convert_of_a_single_string_has_no_related_ip() -> None:
    doc = _source(sourceIPs="10.0.0.7")
    assert doc["source"]["ip"] == "10.0.0.7"
    assert doc["client"]["ip"] == "10.0.0.7"
    assert "ip" not in doc["related"]


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("1.2.3.4", True),
        ("255.255.255.255", True),
        ("256.1.1.1", False),
        ("01.2.3.4", False),
        ("0.0.0.0", True),
        ("1.2.3", False),
        ("1.2.3.4.5", False),
        ("1.2.3.", False),
        ("1234", False),
        ("::", True),
        ("::1", True),
        ("1::", True),
        ("2001:db8::8a2e:370:7334", True),
        ("1:2:3:4:5:6:7:8", True),
        ("1:2:3:4:5:6:7:8:9", False),
        ("1:2:3:4:5:6:7", False),
        ("1::2::3", False),
        (":::1", False),
        (":1::", False),
        ("1:2:3:4:5:6:1.2.3.4", True),
        ("::ffff:256.1.1.1", False),
        ("1.2.3.4:80", False),
        ("fe80::1%eth0", True),
        ("fe80::1%", False),
        ("10000::", False),
        ("00001::", True),  # no digit limit in ES's parser, only the value
        ("1.2.3.4%x", True),
        ("１.2.3.4", False),
        ("", False),
    ],
)
def test_is_inet_address(text: str, valid: bool) -> None:
    assert is_inet_address(text) is valid


def test_orchestrator_fields() -> None:
    doc = _source()
    assert doc["orchestrator"] == {
        "type": "kubernetes",
        "api_version": "audit.k8s.io/v1",
        "namespace": "default",
        "resource": {"type": "pods", "name": "web"},
    }


def test_gke_rename_onto_an_existing_field_fails_the_pipeline() -> None:
    doc = _source(insertId="x")
    assert doc["event"]["kind"] == "pipeline_error"
    assert "field [kubernetes.audit.auditID] already exists" in doc["error"]["message"][0]


def test_gke_rename_of_labels_to_annotations() -> None:
    audit = _audit(labels={"authorization.k8s.io/decision": "forbid"})
    del audit["annotations"]
    doc = elastic_source(AuditEvent(audit, None, "event"))
    assert doc["kubernetes"]["audit"]["annotations"] == {"authorization_k8s_io/decision": "forbid"}
    assert doc["event"]["outcome"] == "failure"


def test_related_user_uid_then_username_without_duplicates() -> None:
    doc = _source(user={"username": "same", "uid": "same"})
    assert doc["related"]["user"] == ["same"]


def test_drop_empty_values_recursively() -> None:
    doc = _source(
        requestObject={"spec": {"securityContext": {}, "volumes": [{"type": ""}], "x": [None]}},
        annotations={"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    )
    audit = doc["kubernetes"]["audit"]
    assert "requestObject" not in audit
    assert audit["annotations"] == {"authorization_k8s_io/decision": "allow"}
    assert audit["responseStatus"] == {"code": 200}  # empty metadata dropped


def test_agent_fields_and_constant_keywords() -> None:
    doc = _source()
    assert doc["data_stream"] == {
        "type": "logs",
        "dataset": "kubernetes.audit_logs",
        "namespace": "default",
    }
    assert doc["event"]["dataset"] == "kubernetes.audit_logs"
    assert "module" not in doc["event"]
    assert doc["@timestamp"] == "2025-01-15T10:00:00.000200Z"


# --- fixtures after the integration's pipeline tests ------------------------------------------

# Follows packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline/test-audit.log (first
# line) and test-audit.log-expected.json (first document): an excerpt of its values, with the
# orchestrator.* fields the pipeline at 8e8a63a8 adds (as in test-kube-audit.log-expected.json).
PIPELINE_TEST_INPUT: Event = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "abcde12345",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods",
    "verb": "get",
    "user": {
        "username": "system:serviceaccounts:default:default",
        "uid": "12345678",
        "groups": ["system:authenticated"],
    },
    "sourceIPs": ["67.43.156.1"],
    "userAgent": "kubectl/v1.26.1",
    "objectRef": {
        "resource": "pods",
        "namespace": "default",
        "name": "my-pod",
        "apiGroup": "",
        "apiVersion": "v1",
    },
    "responseStatus": {"metadata": {}, "code": 200},
    "requestReceivedTimestamp": "2025-03-04T06:22:18.819232Z",
    "stageTimestamp": "2025-03-04T06:22:18.822532Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}


def test_pipeline_test_fixture_test_audit_log() -> None:
    doc = elastic_source(AuditEvent(PIPELINE_TEST_INPUT, None, "event"))
    audit = doc["kubernetes"]["audit"]
    assert audit["annotations"] == {"authorization_k8s_io/decision": "allow"}
    assert audit["objectRef"] == {
        "apiVersion": "v1",
        "name": "my-pod",
        "namespace": "default",
        "resource": "pods",
    }
    assert audit["responseStatus"] == {"code": 200}
    assert doc["event"] == {
        "action": "get",
        "dataset": "kubernetes.audit_logs",
        "kind": "event",
        "outcome": "success",
    }
    assert doc["client"] == {"ip": ["67.43.156.1"]}
    assert doc["source"] == {"ip": ["67.43.156.1"]}
    assert doc["related"] == {
        "ip": ["67.43.156.1"],
        "user": ["12345678", "system:serviceaccounts:default:default"],
    }
    assert doc["user"] == {"id": "12345678", "name": "system:serviceaccounts:default:default"}
    assert doc["user_agent"] == {"original": "kubectl/v1.26.1"}
    assert doc["orchestrator"] == {
        "api_version": "audit.k8s.io/v1",
        "namespace": "default",
        "resource": {"name": "my-pod", "type": "pods"},
        "type": "kubernetes",
    }


# Follows the request body of sample_event.json (a daemon-set pod create): requestObject
# keeps its spec; the typed leaves are what rules query.
def test_sample_event_request_object_values() -> None:
    audit = _audit(
        verb="create",
        requestObject={
            "kind": "Pod",
            "metadata": {"generateName": "elastic-agent-"},
            "spec": {
                "hostNetwork": True,
                "volumes": [{"name": "proc", "hostPath": {"path": "/proc", "type": ""}}],
                "containers": [
                    {
                        "image": "docker.elastic.co/beats/elastic-agent:8.2.3",
                        "securityContext": {"runAsUser": 0},
                        "volumeMounts": [{"mountPath": "/hostfs/proc", "readOnly": True}],
                    }
                ],
            },
        },
    )
    doc = ElasticDocument(elastic_source(AuditEvent(audit, None, "event")))
    spec = "kubernetes.audit.requestObject.spec"
    assert doc.values(f"{spec}.hostNetwork") == (True,)
    assert doc.values(f"{spec}.containers.securityContext.runAsUser") == (0,)
    assert doc.values(f"{spec}.volumes.hostPath.path") == ("/proc",)
    assert doc.values(f"{spec}.containers.volumeMounts") == ("/hostfs/proc", "true")
    assert doc.values(f"{spec}.containers.volumeMounts.readOnly") == ("true",)
    assert doc.values("kubernetes.audit.requestObject.metadata.generateName") == ()


# --- ECS input ---------------------------------------------------------------------------------

ECS_DOC: Event = {
    "@timestamp": "2022-08-31T08:09:57.520Z",
    "data_stream": {"namespace": "default", "type": "logs", "dataset": "kubernetes.audit_logs"},
    "event": {"dataset": "kubernetes.audit_logs", "kind": "event", "action": "get"},
    "kubernetes": {
        "node": {"name": "kind-control-plane"},
        "audit": {
            "auditID": "bcacfeaa",
            "stage": "ResponseComplete",
            "verb": "get",
            "requestURI": "/readyz",
            "annotations": {"authorization_k8s_io/decision": "allow"},
            "sourceIPs": ["172.18.0.2"],
            "responseStatus": {"metadata": {}, "code": 200},
        },
    },
    "source": {"ip": ["172.18.0.2"]},
}


def test_ecs_input_passes_through_equal() -> None:
    (event,) = events_from_json(copy.deepcopy(ECS_DOC))
    assert event.audit["annotations"] == {"authorization.k8s.io/decision": "allow"}
    assert elastic_source(event) == ECS_DOC


def test_ecs_flattened_input_rebuilds_nested() -> None:
    flat = {k: v for k, v in ECS_DOC.items() if k != "kubernetes"}
    flat["kubernetes.node.name"] = "kind-control-plane"
    flat.update({f"kubernetes.audit.{k}": v for k, v in ECS_DOC["kubernetes"]["audit"].items()})
    (event,) = events_from_json(flat)
    doc = ElasticDocument(elastic_source(event))
    assert doc.values("kubernetes.audit.annotations.authorization_k8s_io/decision") == ("allow",)
    assert doc.values("kubernetes.node.name") == ("kind-control-plane",)


# --- properties --------------------------------------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
_annotation_key = st.from_regex(r"[a-z]{1,5}(_[a-z]{1,5}){0,2}/[a-z_-]{1,8}", fullmatch=True)


@st.composite
def _raw_events(draw: st.DrawFn) -> Event:
    event = _audit()
    for key in draw(st.lists(st.sampled_from(sorted(event)), max_size=4)):
        event[key] = draw(_json)
    event.update(draw(st.dictionaries(st.sampled_from(["requestObject", "extra"]), _json)))
    return event


@settings(max_examples=200, deadline=None)
@given(_raw_events())
def test_mapping_never_mutates_its_input(audit: Event) -> None:
    before = copy.deepcopy(audit)
    elastic_source(AuditEvent(audit, None, "event"))
    assert audit == before


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(_annotation_key, st.text(max_size=5), max_size=3),
    st.dictionaries(st.sampled_from(["level", "userAgent", "requestObject"]), _json, max_size=2),
)
def test_ecs_round_trip(annotations: dict[str, str], extra: Event) -> None:
    doc = copy.deepcopy(ECS_DOC)
    doc["kubernetes"]["audit"].update(extra)
    doc["kubernetes"]["audit"]["annotations"] = annotations
    (event,) = events_from_json(copy.deepcopy(doc))
    before = copy.deepcopy(event.document)
    assert elastic_source(event) == doc
    assert event.document == before


# --- field types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("source.ip", "ip"),
        ("user.name", "keyword"),
        ("user_agent.original", "keyword"),
        ("event.dataset", "constant_keyword"),
        ("kubernetes.audit.sourceIPs", "text"),
        ("kubernetes.audit.user.groups", "text"),
        ("kubernetes.audit.annotations.authorization_k8s_io/decision", "keyword"),
        ("kubernetes.audit.annotations.authorization_k8s_io/reason", "text"),
        ("kubernetes.audit.requestObject.spec.containers.securityContext.privileged", "boolean"),
        ("kubernetes.audit.requestObject.spec.volumes.hostPath", "flattened"),
        ("kubernetes.audit.requestObject.spec.volumes.hostPath.path", "flattened"),
        ("kubernetes.audit.requestObject.rules", "nested"),
        ("kubernetes.audit.requestObject.spec.containers.command", None),
        ("kubernetes.audit.annotations.pod-security_kubernetes_io/enforce", None),
    ],
)
def test_field_type(name: str, expected: str | None) -> None:
    assert field_type(name) == expected


def test_unmapped_fields_are_not_indexed_except_under_nested_rules() -> None:
    assert not is_indexed("kubernetes.audit.requestObject.spec.containers.command")
    assert not is_indexed("event.original")
    assert dynamic_type("kubernetes.audit.requestObject.spec.containers.command", "sh") is None
    assert dynamic_type("kubernetes.audit.requestObject.rules.verbs", "create") == "keyword"
    assert is_indexed("kubernetes.audit.requestObject.rules.verbs")
