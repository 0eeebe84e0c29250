"""EQL sequence rules on the stream: one test per row of docs/eql-sequence-semantics.md.

Scenarios run through the production path: raw audit events (made by :func:`audit`) through
:class:`DetectionPipeline` with an in-process :class:`StatefulEngine`, against test rules in
``tests/fixtures/stateful/sequence_*.toml`` written in detection-rules' format. Matching rules are
also checked on the operator alone, against a batch matcher written after Elasticsearch's
``SequenceMatcher``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.alert import Alert, SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.engine import Detector
from auditstream.detections.eql import ast as a
from auditstream.detections.eql import parse_eql_statement
from auditstream.detections.eql.join_keys import key_reader
from auditstream.detections.errors import DetectionError, QuerySyntaxError
from auditstream.detections.event_view import EventView
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.document_rule import EqlRule
from auditstream.detections.ruleset.loader import load_rules
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.stateful import sequence
from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.engine import StatefulEngine
from auditstream.detections.stateful.event_time import format_time_ms
from auditstream.detections.stateful.in_process import InProcessState
from auditstream.detections.stateful.operator import State, StatefulHit
from auditstream.detections.stateful.rule import StatefulRule, selector_id
from auditstream.detections.stateful.sequence import (
    SequenceOperator,
    compile_eql_rule,
    join_keyer,
    sequence_span_ms,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stateful"
ROLE_RULE = FIXTURES / "sequence_role_then_workload.toml"
UNTIL_RULE = FIXTURES / "sequence_until_role_deleted.toml"
ACCOUNT_RULE = FIXTURES / "sequence_service_account_pod.toml"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "eql-sequence-semantics.md"
SECOND = 1_000
MINUTE = 60 * SECOND
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
LATENESS = 5 * MINUTE
DETECTED = datetime(2025, 2, 1, tzinfo=UTC)


# --- events and runs -----------------------------------------------------------------------------


def audit(
    n: int,
    at_ms: int,
    resource: str,
    verb: str,
    *,
    user: str = "alice",
    name: str | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    """A raw audit event: number ``n`` names it (its auditID), ``at_ms`` is its time;
    ``account`` makes it a pod that runs as that service account."""
    stamp = format_time_ms(at_ms)
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": f"00000000-0000-4000-8000-{n:012d}",
        "stage": "ResponseComplete",
        "requestURI": f"/apis/apps/v1/namespaces/default/{resource}",
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.1"],
        "objectRef": {"resource": resource, "namespace": "default", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestReceivedTimestamp": stamp,
        "stageTimestamp": stamp,
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    if name is not None:
        event["objectRef"]["name"] = name
    if account is not None:
        event["requestObject"] = {"kind": "Pod", "spec": {"serviceAccountName": account}}
    return event


def event_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}/ResponseComplete"


def role(n: int, at_ms: int, *, user: str = "alice", verb: str = "patch") -> dict[str, Any]:
    return audit(n, at_ms, "roles", verb, user=user)


def workload(n: int, at_ms: int, *, user: str = "alice") -> dict[str, Any]:
    return audit(n, at_ms, "deployments", "patch", user=user)


class Run:
    """One pipeline with its in-process state: what ``scan`` runs."""

    def __init__(self, *paths: Path, lateness_ms: int = LATENESS) -> None:
        loaded = load_rules(list(paths), builtin=False)
        assert loaded.problems == ()
        self.rules = [rule for rule in loaded.rules if isinstance(rule, StatefulRule)]
        assert len(self.rules) == len(paths)
        self.detector = Detector(self.rules)
        self.state = InProcessState(StatefulEngine(self.rules, allowed_lateness_ms=lateness_ms))
        self.pipeline = DetectionPipeline(
            self.detector, RecentAlerts(), state=self.state, clock=lambda: DETECTED
        )
        self.repeats = 0

    def send(self, *events: dict[str, Any]) -> list[Alert]:
        alerts: list[Alert] = []
        for event in events:
            found = self.pipeline.process_message(json.dumps(event).encode(), SourceRef("file"))
            self.repeats += found.repeats
            alerts.extend(found.alerts)
        return alerts

    @property
    def late(self) -> int:
        return self.state.partition.late


def events_of(alerts: Iterable[Alert]) -> list[tuple[str, ...]]:
    return [cast(tuple[str, ...], alert.fields["events"]) for alert in alerts]


def ids(*numbers: int) -> tuple[str, ...]:
    return tuple(event_id(n) for n in numbers)


# --- the operator alone --------------------------------------------------------------------------


def cand(stage: int, key: str, time_ms: int, name: str, *, warm: bool = False) -> Candidate:
    return Candidate("r", stage, (key,), time_ms, name, warm=warm)


def step_all(
    operator: SequenceOperator,
    candidates: Iterable[Candidate],
    states: dict[tuple[Any, ...], State] | None = None,
) -> list[StatefulHit]:
    """Step each candidate with its key's state, through JSON as the store keeps it."""
    states = {} if states is None else states
    hits: list[StatefulHit] = []
    for candidate in candidates:
        step = operator.step(states.get(candidate.key), candidate, alerting=not candidate.warm)
        hits.extend(step.hits)
        if step.state is None:
            states.pop(candidate.key, None)
        else:
            states[candidate.key] = orjson.loads(orjson.dumps(step.state))
    return hits


def completed(hits: Iterable[StatefulHit]) -> list[tuple[str, ...]]:
    return [hit.events for hit in hits]


# --- syntax --------------------------------------------------------------------------------------


def test_sequence_grammar() -> None:
    query = parse_eql_statement(
        "sequence by user.name with maxspan=5m\n"
        '  [any where kubernetes.audit.verb == "create"] by a.b\n'
        "  [process where true] by `x.y/z` with runs=2\n"
        "until [any where true] by ?c"
    )
    assert isinstance(query, a.SequenceQuery)
    assert query.keys == (a.FieldRef("user.name"),)
    assert query.maxspan == a.MaxSpan(5, "m") and query.maxspan.millis == 5 * MINUTE
    first, second = query.terms
    assert first.query == a.EventQuery(
        None, a.Compare("==", a.FieldRef("kubernetes.audit.verb"), a.Literal("create"))
    )
    assert first.text == 'any where kubernetes.audit.verb == "create"'
    assert (first.keys, first.runs) == ((a.FieldRef("a.b"),), 1)
    assert (second.query.category, second.keys, second.runs) == (
        "process",
        (a.FieldRef("x.y/z"),),
        2,
    )
    assert query.stages == (first, second, second)
    assert query.until is not None and query.until.keys == (a.FieldRef("c", optional=True),)
    assert parse_eql_statement("sequence [any where true] [any where false]") == a.SequenceQuery(
        (),
        None,
        (
            a.SequenceTerm(a.EventQuery(None, a.Literal(True))),
            a.SequenceTerm(a.EventQuery(None, a.Literal(False))),
        ),
    )


@pytest.mark.parametrize(
    ("query", "message", "line", "column"),
    [
        ("sequence [any where true]", "minimum of 2 queries, found [1]", 1, 1),
        ("sequence [any where true] x", "expected '[', found 'x'", 1, 27),
        ("sequence with maxspan=5 [any where true] [any where true]", "No time unit", 1, 23),
        ("sequence with maxspan=5x [any where true] [any where true]",
         "Unrecognized time unit [x] in [5x], please specify one of [ms, s, m, h, d]", 1, 24),
        ("sequence with maxspan=1.5m [any where true] [any where true]",
         "Decimal time interval [1.5] not supported", 1, 23),
        ("sequence with maxspan=0s [any where true] [any where true]",
         "A positive maxspan value is required; found [0]", 1, 23),
        ("sequence with maxspan=5m by u [any where true] [any where true]",
         "Please specify sequence [by] before [with] not after", 1, 1),
        ("sequence [any where true] by a\n  [any where true] by b, c",
         "Inconsistent number of join keys specified; expected [1] but found [2]", 2, 23),
        ("sequence [any where true] by a [any where true] by b until [any where true]",
         "Inconsistent number of join keys specified; expected [1] but found [0]", 1, 60),
        ("sequence [any where true] by f(x) [any where true]", "join key must be a field", 1, 31),
        ("sequence [any where true] ![any where true]", "missing-event terms", 1, 27),
        ("sequence [any where true] [any where true] | head 1", "pipes are not supported", 1, 44),
        ("sequence [any where true] with runs=0", "runs must be an integer from 1 to 100", 1, 37),
        ("sequence [any where true] with runs=101", "runs must be an integer from 1", 1, 37),
        ("sequence [any where true] with rune=2", "Unrecognized option [rune]", 1, 32),
        ("sequence [any where true] [any where true] until [any where true] with runs=2",
         "with runs is not supported on the until term", 1, 67),
        ("join [any where true] [any where true]", "join queries", 1, 1),
        ("sample by x [any where true] [any where true]", "sample queries", 1, 1),
    ],
)  # fmt: skip
def test_sequence_syntax_errors_carry_positions(
    query: str, message: str, line: int, column: int
) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_eql_statement(query)
    assert message in info.value.reason
    assert (info.value.line, info.value.column) == (line, column)


def _table(query: str, **changes: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "rule_id": "r-seq",
        "name": "seq",
        "description": "d",
        "severity": "low",
        "risk_score": 21,
        "language": "eql",
        "type": "eql",
        "index": ["logs-kubernetes.audit_logs-*"],
        "query": query,
    }
    table.update(changes)
    return table


ROLES = 'any where kubernetes.audit.objectRef.resource == "roles"'
DEPLOYMENTS = 'any where kubernetes.audit.objectRef.resource == "deployments"'


def test_runs_repeat_a_term() -> None:
    rule = compile_eql_rule(
        _table(f"sequence by user.name with maxspan=5m [{ROLES}] with runs=2 [{DEPLOYMENTS}]"),
        "inline",
    )
    assert isinstance(rule, StatefulRule) and rule.details["stages"] == 3
    assert [s.rule.query.query for s in rule.selectors] == [ROLES, ROLES, DEPLOYMENTS]
    operator = cast(SequenceOperator, rule.operator)
    # one role event fills one stage only: it never follows itself
    one = [cand(0, "u", T0, "r1"), cand(1, "u", T0, "r1"), cand(2, "u", T0 + 1, "d1")]
    assert step_all(operator, one) == []
    two = [cand(s, "u", T0 + i, f"r{i}") for i in (1, 2) for s in (0, 1)]
    assert completed(step_all(operator, [*two, cand(2, "u", T0 + 3, "d")])) == [("r1", "r2", "d")]


def test_a_sequence_rule_compiles_to_one_eql_selector_per_stage() -> None:
    rule = compile_eql_rule(
        _table(
            f"sequence by user.name with maxspan=5m [{ROLES}] by kubernetes.audit.objectRef.name "
            f"[{DEPLOYMENTS}] by kubernetes.audit.objectRef.namespace "
            f"until [{ROLES}] by kubernetes.audit.verb"
        ),
        "inline",
    )
    assert isinstance(rule, StatefulRule)
    assert (rule.kind, rule.language) == ("sequence", "eql")
    assert rule.key_names == ("user.name", "kubernetes.audit.objectRef.name")
    assert [s.rule.meta.rule_id for s in rule.selectors] == [
        selector_id("r-seq", i) for i in range(3)
    ]
    assert [s.stage for s in rule.selectors] == [0, 1, 2]
    assert all(isinstance(s.rule, EqlRule) for s in rule.selectors)
    assert rule.details == {"stages": 2, "maxspan": "5m", "span_ms": 5 * MINUTE, "until": True}
    assert rule.operator.retention_ms == 5 * MINUTE
    assert rule.meta.rule_id == "r-seq" and rule.history_ms == 0


def test_a_single_event_eql_rule_is_still_a_document_rule() -> None:
    rule = compile_eql_rule(_table(ROLES), "inline")
    assert isinstance(rule, EqlRule) and rule.query.query == ROLES
    assert rule.matches(
        ElasticDocument({"kubernetes": {"audit": {"objectRef": {"resource": "roles"}}}})
    )


# --- which rules run -----------------------------------------------------------------------------


def test_category_stages_are_refused_naming_the_index() -> None:
    d4c = _table(
        "sequence with maxspan=1s\n"
        '  [process where process.name == "curl"] by orchestrator.resource.name\n'
        "  [any where true] by orchestrator.resource.name",
        index=["logs-cloud_defend.process*", "logs-kubernetes.audit_logs-*"],
    )
    with pytest.raises(DetectionError) as info:
        compile_eql_rule(d4c, "inline")
    reason = str(info.value)
    assert "sequence stage 1 is 'process where ...'" in reason
    assert 'event.category "process"' in reason
    assert "logs-cloud_defend.process*, which auditstream does not read" in reason
    assert "never complete" in reason and "(line 2, column 3)" in reason
    second = _table(f"sequence with maxspan=1m [{ROLES}] [file where true]")
    with pytest.raises(DetectionError, match=r"sequence stage 2 is 'file where \.\.\.'"):
        compile_eql_rule(second, "inline")
    until = _table(
        f"sequence by user.name with maxspan=1m [{ROLES}] [{DEPLOYMENTS}] until [file where true]"
    )
    assert isinstance(compile_eql_rule(until, "inline"), StatefulRule)
    elsewhere = _table(f"sequence [{ROLES}] [{DEPLOYMENTS}]", index=["logs-cloud_defend.*"])
    with pytest.raises(DetectionError, match="do not cover Kubernetes audit logs"):
        compile_eql_rule(elsewhere, "inline")


class _View:
    def __init__(self, source: dict[str, Any]) -> None:
        self.elastic = ElasticDocument(source)


def test_join_key_values() -> None:
    def read(name: str, source: dict[str, Any], optional: bool = False) -> tuple[Any, ...]:
        return key_reader(a.FieldRef(name, optional))(ElasticDocument(source))

    assert read("user.name", {"user": {"name": "alice"}}) == ("alice",)
    assert read("user.name", {}) == ()  # a non-optional key must not be null: no candidate
    assert read("user.name", {}, optional=True) == (None,)
    assert read("related.user", {"related": {"user": ["b", "a", "b"]}}) == ("b", "a")
    assert read("user.name", {"user": {"name": True}}) == ("true",)  # keyword text
    assert read("source.ip", {"source": {"ip": "::ffff:10.0.0.1"}}) == ("10.0.0.1",)
    status = {"kubernetes": {"audit": {"responseStatus": {"code": "403"}}}}
    assert read("kubernetes.audit.responseStatus.code", status) == (403,)  # a number
    assert read("user.name", {"user": {"name": "x" * 2000}}) == ()  # ignore_above: not indexed
    unmapped = "kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name"
    with pytest.raises(DetectionError, match="not indexed by the audit data stream"):
        key_reader(a.FieldRef(unmapped))
    assert read(unmapped, {}, optional=True) == (None,)
    for name, why in [("kubernetes.audit.user.groups", "text"), ("@timestamp", "date")]:
        with pytest.raises(DetectionError, match=why):
            key_reader(a.FieldRef(name))
    keyer = join_keyer(
        [key_reader(a.FieldRef("related.user")), key_reader(a.FieldRef("source.ip"))]
    )
    view = cast(EventView, _View({"related": {"user": ["a", "b"]}, "source": {"ip": "10.0.0.1"}}))
    hit = cast(RuleHit, None)
    assert [key for key, _row in keyer(view, hit)] == [("a", "10.0.0.1"), ("b", "10.0.0.1")]
    assert keyer(cast(EventView, _View({"related": {"user": "a"}})), hit) == []


# --- matching through the pipeline ---------------------------------------------------------------


def test_completed_within_maxspan_alerts_once_with_both_events() -> None:
    run = Run(ROLE_RULE)
    assert run.send(role(1, T0)) == []
    (alert,) = run.send(workload(2, T0 + 3 * MINUTE))
    assert alert.fields["events"] == ids(1, 2)
    assert alert.fields["user.name"] == "alice"
    assert alert.rule.rule_id == "6f1c2a40-93de-4b7e-8a15-2c7d9e0b5a31"
    assert (alert.event.audit_id, alert.event.verb) == (ids(2)[0].split("/")[0], "patch")
    assert run.send(workload(3, T0 + 4 * MINUTE)) == []  # the partial is consumed


def test_maxspan_is_inclusive() -> None:
    run = Run(ROLE_RULE)
    assert run.send(role(1, T0)) == []
    assert events_of(run.send(workload(2, T0 + 5 * MINUTE))) == [ids(1, 2)]
    run = Run(ROLE_RULE)
    assert run.send(role(1, T0), workload(2, T0 + 5 * MINUTE + 1)) == []


def test_second_event_after_maxspan_never_completes() -> None:
    run = Run(ROLE_RULE)
    assert run.send(role(1, T0), workload(2, T0 + 6 * MINUTE)) == []
    assert run.send(workload(3, T0 + 7 * MINUTE)) == []  # the expired partial was consumed


def test_wrong_order_never_completes() -> None:
    run = Run(ROLE_RULE)
    assert run.send(workload(1, T0), role(2, T0 + MINUTE)) == []
    assert events_of(run.send(workload(3, T0 + 2 * MINUTE))) == [ids(2, 3)]


def test_different_join_keys_never_meet() -> None:
    run = Run(ROLE_RULE)
    assert run.send(role(1, T0, user="alice"), workload(2, T0 + MINUTE, user="bob")) == []
    assert events_of(run.send(workload(3, T0 + 2 * MINUTE, user="alice"))) == [ids(1, 3)]


def test_terms_join_on_their_own_fields() -> None:
    run = Run(ACCOUNT_RULE)
    account = audit(1, T0, "serviceaccounts", "create", name="builder")
    assert run.send(account) == []
    assert run.send(audit(2, T0 + SECOND, "pods", "create", account="other")) == []
    assert run.send(audit(3, T0 + SECOND, "pods", "create", user="bob", account="builder")) == []
    (alert,) = run.send(audit(4, T0 + MINUTE, "pods", "create", account="builder"))
    assert alert.fields["events"] == ids(1, 4)
    assert dict(alert.fields) == {
        "user.name": "alice",
        "kubernetes.audit.objectRef.name": "builder",
        "events": ids(1, 4),
    }


def test_equal_timestamps_follow_arrival_order() -> None:
    run = Run(ROLE_RULE)
    assert events_of(run.send(role(1, T0), workload(2, T0))) == [ids(1, 2)]
    run = Run(ROLE_RULE)
    assert run.send(workload(1, T0), role(2, T0)) == []


def test_the_newest_partial_pairs_and_pairs_once() -> None:
    run = Run(ROLE_RULE)
    assert run.send(role(1, T0), role(2, T0 + MINUTE)) == []
    assert events_of(run.send(workload(3, T0 + 2 * MINUTE))) == [ids(2, 3)]
    assert run.send(workload(4, T0 + 3 * MINUTE)) == []  # role 1 went with role 2


def test_state_machine_of_the_syntax_reference() -> None:
    """The worked example of "How sequence queries handle matches" (EQL syntax reference):
    attrib, bash, cat by user.name over eleven events."""
    operator = SequenceOperator(3, 10**9)
    stage = {"attrib": 0, "bash": 1, "cat": 2}
    data = [("root", "attrib"), ("root", "attrib"), ("elkbee", "bash"), ("root", "bash"),
            ("root", "bash"), ("elkbee", "attrib"), ("root", "attrib"), ("elkbee", "bash"),
            ("root", "cat"), ("elkbee", "cat"), ("root", "cat")]  # fmt: skip
    candidates = [cand(stage[p], user, T0 + i, str(i)) for i, (user, p) in enumerate(data, 1)]
    states: dict[tuple[Any, ...], State] = {}
    assert completed(step_all(operator, candidates, states)) == [("2", "4", "9"), ("6", "8", "10")]
    assert [p[0][2] for p in states[("root",)]["p"]["0"]] == ["7"]  # [7] remains in state A
    assert not states[("elkbee",)].get("p")


def test_until_cancels_only_between_the_events() -> None:
    deleted = audit(5, T0 + MINUTE, "roles", "delete")
    run = Run(UNTIL_RULE)
    assert run.send(role(1, T0), deleted, workload(2, T0 + 2 * MINUTE)) == []
    assert run.send(workload(3, T0 + 3 * MINUTE)) == []  # the cancelled partial was consumed
    run = Run(UNTIL_RULE)  # after the last event: still a match
    assert len(run.send(role(1, T0), workload(2, T0 + 30 * SECOND), deleted)) == 1
    run = Run(UNTIL_RULE)  # before the first event: nothing to cancel
    early = audit(5, T0 - MINUTE, "roles", "delete")
    assert events_of(run.send(early, role(1, T0), workload(2, T0 + MINUTE))) == [ids(1, 2)]
    run = Run(UNTIL_RULE)  # another key's until changes nothing
    other = audit(6, T0 + MINUTE, "roles", "delete", user="bob")
    assert len(run.send(role(1, T0), other, workload(2, T0 + 2 * MINUTE))) == 1
    operator = SequenceOperator(2, 10**9, until=True)  # at the partial's own ordinal: cancels
    same = [cand(0, "k", T0, "e"), cand(2, "k", T0, "e"), cand(1, "k", T0 + 1, "f")]
    assert step_all(operator, same) == []


def test_span_is_maxspan_bounded_by_the_lookback() -> None:
    def meta(lookback: str | None) -> RuleMeta:
        return RuleMeta("r", "r", "", "low", 21, (), (), (), "eql", lookback=lookback)

    five = a.MaxSpan(5, "m")
    assert sequence_span_ms(meta("now-6m"), five) == 5 * MINUTE
    assert sequence_span_ms(meta("now-2m"), five) == 2 * MINUTE
    assert sequence_span_ms(meta(None), a.MaxSpan(1, "h")) == 6 * MINUTE  # Kibana's now-6m
    assert sequence_span_ms(meta("now-1h"), None) == 60 * MINUTE
    assert sequence_span_ms(meta(None), None) == 6 * MINUTE
    assert sequence_span_ms(meta("now-1M"), five) == 5 * MINUTE
    with pytest.raises(DetectionError, match="without maxspan is bounded by the rule's from"):
        sequence_span_ms(meta("now-1M"), None)
    rule = compile_eql_rule(
        _table(f"sequence by user.name [{ROLES}] [{DEPLOYMENTS}]", **{"from": "now-10m"}), "x"
    )
    assert isinstance(rule, StatefulRule) and rule.details["span_ms"] == 10 * MINUTE


# --- streaming against Elasticsearch's batch matcher ---------------------------------------------

Event = tuple[int, str, list[int], str]
"""(time, key, stages it passes in the order its candidates come, id)."""


def batch_matcher(
    events: Sequence[Event], stages: int, span: int, until: bool
) -> list[tuple[str, ...]]:
    """Elasticsearch's sequence matching over events already indexed (after
    ``SequenceMatcher.match``): stage 0's hits all tracked first, then each later stage's hits in
    ordinal order take the newest partial before them (``trimBefore``); maxspan and until as
    ``match``. Ordinals are (time, index), the index standing for ``_shard_doc``."""
    hits: dict[int, list[tuple[tuple[int, int], str, str]]] = defaultdict(list)
    for index, (time, key, passed, name) in enumerate(events):
        for s in passed:
            hits[s].append(((time, index), key, name))
    markers: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for ordinal, key, _name in hits[stages] if until else []:
        markers[key].append(ordinal)
    groups: dict[tuple[int, str], list[list[tuple[tuple[int, int], str]]]] = defaultdict(list)
    done: list[tuple[str, ...]] = []
    for s in range(stages):
        for ordinal, key, name in sorted(hits[s]):
            if s == 0:
                groups[(0, key)].append([(ordinal, name)])
                continue
            group = groups[(s - 1, key)]
            before = [i for i, partial in enumerate(group) if partial[-1][0] < ordinal]
            if not before:
                continue
            partial = group[before[-1]]
            del group[: before[-1] + 1]
            if ordinal[0] - partial[0][0][0] > span:
                continue
            if any(partial[-1][0] <= u < ordinal for u in markers[key]):
                continue
            longer = [*partial, (ordinal, name)]
            if s == stages - 1:
                done.append(tuple(n for _o, n in longer))
            else:
                groups[(s, key)].append(longer)
    return sorted(done)


def streams(
    max_stages: int = 3, *, in_order: bool = True
) -> st.SearchStrategy[tuple[int, int, bool, list[Event]]]:
    """Random candidates of two keys; ``in_order``: arriving in event-time order, else in any
    order (late events)."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[int, int, bool, list[Event]]:
        stages = draw(st.integers(2, max_stages))
        until = draw(st.booleans())
        span = draw(st.sampled_from([0, 2, 5, 1000]))
        every = list(range(stages + (1 if until else 0)))
        raw = draw(
            st.lists(
                st.tuples(
                    st.sampled_from([0, 0, 1, 2, 3]),
                    st.sampled_from(["a", "b"]),
                    st.lists(st.sampled_from(every), unique=True, max_size=3),
                ),
                max_size=25,
            )
        )
        time, events = T0, []
        for i, (gap, key, passed) in enumerate(raw):
            time += gap
            events.append((time, key, passed, f"e{i}"))
        if not in_order:
            events = draw(st.permutations(events))
        return stages, span, until, events

    return build()


def candidates_of(events: Iterable[Event]) -> list[Candidate]:
    return [cand(s, key, time, name) for time, key, passed, name in events for s in passed]


@settings(max_examples=400, deadline=None)
@given(streams())
def test_in_order_streams_match_the_batch_matcher(case: tuple[int, int, bool, list[Event]]) -> None:
    stages, span, until, events = case
    operator = SequenceOperator(stages, span, until=until)
    found = step_all(operator, candidates_of(events))
    assert sorted(completed(found)) == batch_matcher(events, stages, span, until)
    assert len({hit.basis for hit in found}) == len(found)


@settings(max_examples=300, deadline=None)
@given(streams(in_order=False))
def test_out_of_order_alerts_are_still_sequences(case: tuple[int, int, bool, list[Event]]) -> None:
    """Whatever the arrival order, an alert names one event per stage, of one key, in
    event-time order, the first and last at most the span apart."""
    stages, span, _until, events = case
    by_name = {name: (time, key, passed) for time, key, passed, name in events}
    for hit in step_all(SequenceOperator(stages, span), candidates_of(events)):
        found = [by_name[name] for name in hit.events]
        assert len(found) == stages == len(set(hit.events))
        assert all(s in passed for s, (_t, _k, passed) in enumerate(found))
        assert len({key for _t, key, _p in found}) == 1
        times = [time for time, _k, _p in found]
        assert times == sorted(times) and times[-1] - times[0] <= span


# --- time, replays and state ---------------------------------------------------------------------


def test_late_events_within_the_lateness_still_pair() -> None:
    run = Run(ROLE_RULE)
    assert run.send(role(1, T0), role(9, T0 + 8 * MINUTE, user="bob")) == []  # watermark T0+3m
    assert events_of(run.send(workload(2, T0 + 4 * MINUTE))) == [ids(1, 2)]
    assert run.late == 0
    run = Run(ROLE_RULE)
    assert run.send(role(1, T0), role(9, T0 + 8 * MINUTE, user="bob")) == []
    assert run.send(workload(2, T0 + 2 * MINUTE)) == []  # older than the watermark: late
    assert run.late == 1


def test_an_event_that_arrives_first_waits_for_the_late_one() -> None:
    run = Run(ROLE_RULE)
    assert run.send(workload(2, T0 + 2 * MINUTE)) == []
    (alert,) = run.send(role(1, T0 + MINUTE))
    assert alert.fields["events"] == ids(1, 2)  # in event-time order
    assert alert.event.audit_id == ids(1)[0].split("/")[0]  # the event that completed it
    operator = SequenceOperator(3, 10**9)  # a chain: the late first event completes two stages
    late = [cand(2, "k", T0 + 3, "c"), cand(1, "k", T0 + 2, "b"), cand(0, "k", T0 + 1, "a")]
    assert completed(step_all(operator, late)) == [("a", "b", "c")]


def test_an_event_older_than_a_consumed_partial_is_dropped() -> None:
    run = Run(ROLE_RULE)
    assert events_of(run.send(role(2, T0 + 2 * MINUTE), workload(3, T0 + 3 * MINUTE))) == [
        ids(2, 3)
    ]
    # Elasticsearch would have dropped role 1 (older than role 2) when workload 3 took role 2
    assert run.send(role(1, T0 + MINUTE), workload(4, T0 + 4 * MINUTE)) == []


def test_replayed_events_give_the_same_alert_once() -> None:
    run = Run(ROLE_RULE)
    (first,) = run.send(role(1, T0), workload(2, T0 + MINUTE))
    assert run.send(role(1, T0), workload(2, T0 + MINUTE)) == []
    assert run.repeats == 1  # the replayed completion gave the same alert id: a repeat
    restarted = DetectionPipeline(run.detector, RecentAlerts(), state=run.state)
    found = restarted.process_message(  # state kept, recent alerts forgotten: the same alert
        json.dumps(workload(2, T0 + MINUTE)).encode(), SourceRef("file")
    )
    (again,) = found.alerts
    assert again.alert_id == first.alert_id and again.fields == first.fields
    assert run.send(workload(3, T0 + 2 * MINUTE)) == []  # the replay consumed nothing new
    operator = SequenceOperator(2, 10**9)
    states: dict[tuple[Any, ...], State] = {}
    step_all(operator, [cand(0, "k", T0, "a")], states)
    before = orjson.dumps(states[("k",)])
    assert step_all(operator, [cand(0, "k", T0, "a")], states) == []
    assert orjson.dumps(states[("k",)]) == before  # a replay leaves the state as it was
    (hit,) = step_all(operator, [cand(1, "k", T0 + 1, "b")], states)
    (replayed,) = step_all(operator, [cand(1, "k", T0 + 1, "b")], states)
    assert replayed.basis == hit.basis == '["a","b"]' and replayed.events == ("a", "b")


@settings(max_examples=300, deadline=None)
@given(st.one_of(streams(), streams(in_order=False)))
def test_replaying_every_candidate_changes_nothing(
    case: tuple[int, int, bool, list[Event]],
) -> None:
    stages, span, until, events = case
    operator = SequenceOperator(stages, span, until=until)
    once: dict[tuple[Any, ...], State] = {}
    hits = step_all(operator, candidates_of(events), once)
    twice: dict[tuple[Any, ...], State] = {}
    doubled = [c for c in candidates_of(events) for c in (c, c)]
    assert [h.basis for h in step_all(operator, doubled, twice)] == [
        h.basis for h in hits for _ in (1, 2)
    ]
    assert twice == once
    again = step_all(operator, candidates_of(events), twice)  # the whole stream once more
    assert sorted(h.basis for h in again) == sorted(h.basis for h in hits)
    assert twice == once


def test_warm_candidates_complete_silently() -> None:
    operator = SequenceOperator(2, 10**9)
    states: dict[tuple[Any, ...], State] = {}
    history = [cand(0, "k", T0, "a", warm=True), cand(1, "k", T0 + 1, "b", warm=True)]
    assert step_all(operator, history, states) == []
    assert step_all(operator, [cand(1, "k", T0 + 1, "b")], states) == []  # replay: still silent
    assert step_all(operator, [cand(1, "k", T0 + 2, "c")], states) == []  # "a" was consumed


def test_expiry_drops_what_the_watermark_has_passed() -> None:
    operator = SequenceOperator(2, 5 * MINUTE, until=True)
    states: dict[tuple[Any, ...], State] = {}
    step_all(operator, [cand(0, "k", T0, "a"), cand(2, "k", T0 + MINUTE, "u")], states)
    step_all(operator, [cand(1, "k", T0 + 2 * MINUTE, "w")], states)  # takes "a": cancelled
    step_all(operator, [cand(0, "k", T0 + 3 * MINUTE, "b")], states)
    state = states[("k",)]
    assert [p[0][2] for p in state["p"]["0"]] == ["b"]
    assert state["f"] == {"0": [T0, 1]} and state["u"] == [[T0 + MINUTE, 2]]
    assert operator.expire(state, T0) == state  # nothing passed yet
    kept = operator.expire(state, T0 + 2 * MINUTE)
    assert kept is not None and set(kept["seen"]) == {"w", "b"}
    assert "f" not in kept and kept["u"] == state["u"]  # the floor is passed, the until not
    kept = operator.expire(state, T0 + 6 * MINUTE + 1)  # cut = T0 + 1m + 1: the until goes
    assert kept == {"n": 4, "p": {"0": state["p"]["0"]}}
    assert operator.expire(state, T0 + 8 * MINUTE) is not None  # b's span: inclusive
    assert operator.expire(state, T0 + 8 * MINUTE + 1) is None
    waiting = step_all_state(operator, [cand(1, "k", T0 + 2 * MINUTE, "x")])
    assert waiting["w"]["1"][0][2] == "x"
    assert operator.expire(waiting, T0 + 2 * MINUTE) == waiting
    assert operator.expire(waiting, T0 + 2 * MINUTE + 1) is None


def step_all_state(operator: SequenceOperator, candidates: Iterable[Candidate]) -> State:
    states: dict[tuple[Any, ...], State] = {}
    step_all(operator, candidates, states)
    (state,) = states.values()
    return state


def test_expiry_through_the_engine_deletes_finished_keys() -> None:
    run = Run(ROLE_RULE)
    assert events_of(run.send(role(1, T0), workload(2, T0 + MINUTE))) == [ids(1, 2)]
    run.send(role(3, T0 + 20 * MINUTE, user="bob"))  # moves the watermark past alice's events
    keys = [key for key, _value in run.state.partition.store.items() if b"alice" in key]
    assert len(keys) == 1
    run.state.partition.sweep()
    assert [key for key, _value in run.state.partition.store.items() if b"alice" in key] == []
    assert any(b"bob" in key for key, _value in run.state.partition.store.items())


def test_state_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sequence, "MAX_PENDING", 3)
    monkeypatch.setattr(sequence, "MAX_SEEN", 5)
    operator = SequenceOperator(2, 10**9)
    state = step_all_state(operator, [cand(0, "k", T0 + i, f"a{i}") for i in range(8)])
    assert [p[0][2] for p in state["p"]["0"]] == ["a5", "a6", "a7"]
    assert sorted(state["seen"]) == ["a3", "a4", "a5", "a6", "a7"]
    waiting = step_all_state(operator, [cand(1, "k", T0 + i, f"b{i}") for i in range(8)])
    assert [w[2] for w in waiting["w"]["1"]] == ["b5", "b6", "b7"]


# --- the docs and the tests agree ----------------------------------------------------------------


def test_every_test_the_docs_name_exists() -> None:
    named = set(re.findall(r"`(test_\w+)`", DOCS.read_text(encoding="utf-8")))
    assert named and named <= set(globals())
    assert {"test_in_order_streams_match_the_batch_matcher", "test_join_key_values"} <= named


def test_fixture_rules_load_as_sequences() -> None:
    loaded = load_rules([ROLE_RULE, UNTIL_RULE, ACCOUNT_RULE], builtin=False)
    assert loaded.problems == ()
    mine = [r for r in loaded.rules if isinstance(r, StatefulRule) and r.kind == "sequence"]
    assert [r.details["span_ms"] for r in mine] == [5 * MINUTE, 10 * MINUTE, 2 * MINUTE]
