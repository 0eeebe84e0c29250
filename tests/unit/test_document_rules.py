"""Rules that query the Elastic document (EQL; KQL likewise) load from detection-rules TOML
files, fire on raw events exactly as on the document Elastic's integration indexes, and are
reported, never run, when they cannot run per event."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.elastic.mapping import elastic_source
from auditstream.detections.engine import Detector
from auditstream.detections.event.decode import decode_message
from auditstream.detections.pipeline import ROUTINE, DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules

RULE = """
[metadata]
creation_date = "2026/12/04"

[rule]
author = ["auditstream tests"]
description = "Events deleted, as a test rule."
index = ["logs-kubernetes.audit_logs-*"]
language = "{language}"
name = "Test {language} rule"
risk_score = 47
rule_id = "{rule_id}"
severity = "medium"
type = "{type}"
from = "now-6m"
interval = "5m"
query = '''
{query}
'''
"""

EQL_DELETE = (
    'any where data_stream.dataset == "kubernetes.audit_logs" and '
    'kubernetes.audit.verb == "delete" and kubernetes.audit.objectRef.resource == "events" '
    'and kubernetes.audit.stage == "ResponseComplete"'
)


def _write(folder: Path, name: str, **fields: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(RULE.format(**fields), encoding="utf-8")
    return path


def _event(verb: str = "delete", resource: str = "events", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"a-{verb}-{resource}",
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/default/{resource}",
        "verb": verb,
        "user": {"username": "mallory", "groups": ["system:authenticated"]},
        "sourceIPs": ["198.51.100.7"],
        "userAgent": "kubectl/v1.31.0",
        "objectRef": {"resource": resource, "namespace": "default", "apiVersion": "v1"},
        "annotations": {"authorization.k8s.io/decision": "allow"},
        **extra,
    }


def _fired(detector: Detector, document: dict[str, Any]) -> set[str]:
    events = decode_message(json.dumps(document).encode())
    assert events is not None
    return {hit.rule.rule_id for event in events for hit in detector.detect(event)}


@pytest.fixture
def eql_detector(tmp_path: Path) -> Detector:
    _write(tmp_path, "eql", language="eql", type="eql", rule_id="r-eql", query=EQL_DELETE)
    rules = load_rules([tmp_path], builtin=False)
    assert rules.problems == ()
    return Detector(rules.rules)


@pytest.mark.parametrize(
    ("event", "fires"),
    [
        (_event(), True),
        (_event(verb="get"), False),
        (_event(resource="Events"), False),  # == is case-sensitive
        (_event(stage="ResponseStarted"), False),
    ],
)
def test_eql_rule_fires_on_raw_events_as_on_the_indexed_document(
    eql_detector: Detector, event: dict[str, Any], fires: bool
) -> None:
    (decoded,) = decode_message(json.dumps(event).encode()) or []
    document = elastic_source(decoded)
    assert _fired(eql_detector, event) == ({"r-eql"} if fires else set())
    assert _fired(eql_detector, document) == _fired(eql_detector, event)


def test_index_and_shortcuts_change_no_verdict(tmp_path: Path) -> None:
    _write(tmp_path, "eql", language="eql", type="eql", rule_id="r-eql", query=EQL_DELETE)
    rules = load_rules([tmp_path], builtin=True).rules
    fast, slow = Detector(rules), Detector(rules, gate=False)
    for event in (_event(), _event(verb="get"), _event(resource="pods"), _event(verb="list")):
        assert _fired(fast, event) == _fired(slow, event)


KQL_DECISION = (
    'kubernetes.audit.annotations.authorization_k8s_io/decision:"forbid" and '
    'kubernetes.audit.verb:"get"'
)
EQL_DECISION = (
    'any where `kubernetes.audit.annotations.authorization_k8s_io/decision` == "allow" and '
    'kubernetes.audit.verb == "delete"'
)


def test_rules_on_the_decision_annotation_are_candidates_in_either_spelling(
    tmp_path: Path,
) -> None:
    """The rule index reads annotations in the integration's spelling (``.`` -> ``_`` in the
    key): a rule requiring a decision value was never a candidate before (found by a new-terms
    test: two of Elastic's rules on ``forbid`` never fired with the shortcuts on)."""
    _write(tmp_path, "kql", language="kuery", type="query", rule_id="r-kql", query=KQL_DECISION)
    _write(tmp_path, "eql", language="eql", type="eql", rule_id="r-eql", query=EQL_DECISION)
    rules = load_rules([tmp_path], builtin=False).rules
    fast, slow = Detector(rules), Detector(rules, gate=False)
    forbidden = _event(verb="get", annotations={"authorization.k8s.io/decision": "forbid"})
    for event, expected in ((forbidden, {"r-kql"}), (_event(), {"r-eql"})):
        (decoded,) = decode_message(json.dumps(event).encode()) or []
        for shape in (event, elastic_source(decoded)):
            assert _fired(fast, shape) == _fired(slow, shape) == expected


def test_rules_that_cannot_run_per_event_are_reported(tmp_path: Path) -> None:
    _write(tmp_path, "new_terms", language="kuery", type="new_terms", rule_id="r1",
           query="event.action:get")  # fmt: skip
    _write(tmp_path, "sequence", language="eql", type="eql", rule_id="r2",
           query='sequence by user.name [process where true] [any where true]')  # fmt: skip
    wrong_index = RULE.format(language="eql", type="eql", rule_id="r3", query=EQL_DELETE)
    (tmp_path / "other_index.toml").write_text(
        wrong_index.replace('["logs-kubernetes.audit_logs-*"]', '["logs-aws.cloudtrail-*"]')
    )
    rules = load_rules([tmp_path], builtin=False)
    assert rules.rules == ()
    reasons = {Path(p.path).stem: p.reason for p in rules.problems}
    assert reasons["new_terms"].startswith("[rule.new_terms] is missing")  # runs, given its fields
    assert "sequence stage 1 is 'process where ...'" in reasons["sequence"]  # no audit event
    assert "line 1, column 23" in reasons["sequence"]
    assert "do not cover Kubernetes audit logs" in reasons["other_index"]


def test_eql_hit_carries_the_fields_it_read_and_the_rule_metadata(eql_detector: Detector) -> None:
    (event,) = decode_message(json.dumps(_event()).encode()) or []
    (hit,) = eql_detector.detect(event)
    assert hit.fields["kubernetes.audit.verb"] == "delete"
    assert hit.rule.language == "eql" and hit.rule.index == ("logs-kubernetes.audit_logs-*",)
    assert (hit.rule.lookback, hit.rule.interval) == ("now-6m", "5m")


KQL_SECRETS = (
    'event.action:(get or list) and kubernetes.audit.objectRef.resource:"secrets" '
    "and not user.name:system\\:kube-controller-manager"
)
EQL_WATCH = (
    'any where data_stream.dataset == "kubernetes.audit_logs" and '
    'kubernetes.audit.verb == "watch" and kubernetes.audit.objectRef.resource in ("secrets")'
)
ESQL_KQL = (
    "FROM logs-kubernetes.audit_logs-*\n"
    '| WHERE kubernetes.audit.objectRef.resource IN ("pods", "configmaps") AND '
    'kubernetes.audit.verb IN ("patch", "get") AND KQL("""user.name:*""")\n'
    "| EVAL who = user.name | KEEP who"
)


def test_every_shortcut_keeps_the_verdicts_on_generated_traffic(tmp_path: Path) -> None:
    """KQL, EQL and ES|QL-with-KQL() rules beside the shipped ones, on generated traffic in
    every input shape: the rule index and the gates change no outcome, and they do skip work."""
    from tests.unit.test_fast_path import _clock, _outcome, _shaped  # noqa: PLC0415

    _write(tmp_path, "kql", language="kuery", type="query", rule_id="r-kql", query=KQL_SECRETS)
    _write(tmp_path, "eql", language="eql", type="eql", rule_id="r-eql", query=EQL_WATCH)
    _write(tmp_path, "esql", language="esql", type="esql", rule_id="r-esql", query=ESQL_KQL)
    loaded = load_rules([tmp_path], builtin=True)
    assert loaded.problems == ()
    fast, slow = Detector(loaded.rules), Detector(loaded.rules, gate=False)
    assert fast.gate.on and not slow.gate.on
    fired: set[str] = set()
    routine = 0
    quick = DetectionPipeline(fast, RecentAlerts(100_000), clock=_clock)
    full = DetectionPipeline(slow, RecentAlerts(100_000), clock=_clock)
    for data in _shaped(5, 2500, 0.02):
        outcome = _outcome(quick, data)
        assert outcome == _outcome(full, data), data
        if outcome[0] == "ok":
            fired |= {json.loads(a)["rule"]["id"] for a in outcome[1][2]}
        routine += quick.process_message(data, SourceRef("file")) is ROUTINE
    assert {"r-kql", "r-eql", "r-esql"} <= fired
    assert routine > 500  # the routine fast path still turns events away


def test_raw_events_and_their_indexed_documents_get_the_same_verdicts(tmp_path: Path) -> None:
    """Every rule language, on generated raw events and on the documents Elastic's integration
    would index for them (sent as ECS input): the same rules fire with the same fields."""
    from devtools.traffic.stream import records  # noqa: PLC0415

    _write(tmp_path, "kql", language="kuery", type="query", rule_id="r-kql", query=KQL_SECRETS)
    _write(tmp_path, "eql", language="eql", type="eql", rule_id="r-eql", query=EQL_WATCH)
    _write(tmp_path, "esql", language="esql", type="esql", rule_id="r-esql", query=ESQL_KQL)
    detector = Detector(load_rules([tmp_path], builtin=True).rules)
    compared = fired = 0
    for record in records(random.Random(11), 1500, exec_share=0.05, shapes=("event",)):
        (event,) = decode_message(record.value) or []
        as_raw = [(h.rule.rule_id, dict(h.fields)) for h in detector.detect(event)]
        (indexed,) = decode_message(json.dumps(elastic_source(event)).encode()) or []
        as_ecs = [(h.rule.rule_id, dict(h.fields)) for h in detector.detect(indexed)]
        assert as_raw == as_ecs, record.value[:300]
        compared += 1
        fired += bool(as_raw)
    assert compared == 1500 and fired > 50
