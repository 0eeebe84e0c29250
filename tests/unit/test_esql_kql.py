"""ES|QL's ``KQL()``: a KQL query on the event's indexed document inside ``WHERE``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from auditstream.detections.elastic.mapping import elastic_source
from auditstream.detections.engine import Detector
from auditstream.detections.errors import DetectionError
from auditstream.detections.event.decode import decode_message
from auditstream.detections.ruleset.languages import compile_rule
from tests.unit.esql_harness import RULE_TABLE

QUERY = """FROM logs-kubernetes.audit_logs-*
| WHERE kubernetes.audit.objectRef.resource == "configmaps" AND
  KQL(\"\"\" event.action:(update or patch) and not user.name:system\\:node\\:* \"\"\")
| EVAL who = user.name, action = event.action
| KEEP who, action"""


def _detector(query: str) -> Detector:
    return Detector([compile_rule({**RULE_TABLE, "query": query}, "<test>")])


def _event(verb: str, user: str) -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": f"{verb}-{user}",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/kube-system/configmaps/coredns",
        "verb": verb,
        "user": {"username": user},
        "sourceIPs": ["198.51.100.7"],
        "objectRef": {"resource": "configmaps", "namespace": "kube-system", "name": "coredns"},
    }


def _hits(detector: Detector, document: dict[str, Any]) -> list[dict[str, Any]]:
    events = decode_message(json.dumps(document).encode()) or []
    return [dict(hit.fields) for event in events for hit in detector.detect(event)]


@pytest.mark.parametrize(
    ("verb", "user", "fires"),
    [
        ("patch", "mallory", True),
        ("update", "mallory", True),
        ("get", "mallory", False),
        ("patch", "system:node:worker-1", False),
    ],
)
def test_kql_in_where_reads_the_indexed_document_on_raw_and_ecs_input(
    verb: str, user: str, fires: bool
) -> None:
    detector = _detector(QUERY)
    raw = _event(verb, user)
    hits = _hits(detector, raw)
    assert bool(hits) is fires
    if fires:  # event.action and user.name exist for raw input: the integration derives them
        assert hits == [{"who": user, "action": verb}]
    (decoded,) = decode_message(json.dumps(raw).encode()) or []
    assert _hits(detector, elastic_source(decoded)) == hits


def test_a_rule_calling_kql_is_not_memoised_on_its_read_fields() -> None:
    """The memo keys on the fields a rule reads; KQL() reads the whole document."""
    detector = _detector(QUERY)
    assert _hits(detector, _event("patch", "mallory"))
    assert not _hits(detector, _event("patch", "system:node:a"))  # same ES|QL-read fields


def test_bad_kql_inside_esql_fails_at_load_with_the_kql_reason() -> None:
    with pytest.raises(DetectionError, match=r"KQL query: .*line 1, column"):
        compile_rule({**RULE_TABLE, "query": 'FROM logs-* | WHERE KQL("a:(b")'}, "<test>")
