"""Run one ES|QL query on one audit event: the smallest end-to-end path for golden tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditstream.detections.engine import Detector
from auditstream.detections.event.decode import events_from_json
from auditstream.detections.ruleset.languages import compile_rule
from auditstream.detections.values import Value

RULE_TABLE: dict[str, Any] = {
    "rule_id": "00000000-0000-4000-8000-000000000001",
    "name": "golden",
    "description": "",
    "severity": "low",
    "risk_score": 1,
    "language": "esql",
    "type": "esql",
}


def audit_event(
    request_uri: str = "/api/v1/namespaces/d/pods/p/exec?command=ls", **extra: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "7e0c3b0e-2d8c-4a53-9d0b-3f7b1f9b6a11",
        "stage": "ResponseStarted",
        "requestURI": request_uri,
        "verb": "create",
        "user": {"username": "alice", "groups": ["system:authenticated", "devs"]},
        "sourceIPs": ["192.0.2.7"],
        "objectRef": {"resource": "pods", "namespace": "d", "name": "p", "subresource": "exec"},
    }
    event.update(extra)
    return event


def run(query: str, event: Mapping[str, Any] | None = None) -> dict[str, Value] | None:
    """The rule's output columns if it fires, else None."""
    rule = compile_rule({**RULE_TABLE, "query": query}, "<test>")
    (decoded,) = events_from_json(dict(event or audit_event()))
    hits = Detector([rule]).detect(decoded)
    assert len(hits) <= 1
    return dict(hits[0].fields) if hits else None


def value(expression: str, event: Mapping[str, Any] | None = None) -> Value:
    """Evaluate one expression on an event, as EVAL computes it."""
    fields = run(f"FROM logs-kubernetes.audit_logs-* | EVAL v = {expression}", event)
    assert fields is not None
    return fields["v"]


def where(condition: str, event: Mapping[str, Any] | None = None) -> bool:
    """Whether WHERE keeps the event."""
    return run(f"FROM logs-kubernetes.audit_logs-* | WHERE {condition}", event) is not None
