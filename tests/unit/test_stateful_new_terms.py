"""Elastic's new_terms rules on the stream: one test per row of docs/new-terms-semantics.md.

Scenarios run through the production path: raw audit events (made by :func:`audit`) through
:class:`DetectionPipeline` with an in-process :class:`StatefulEngine`, against test rules in
``tests/fixtures/stateful/new_terms_*.toml`` written in detection-rules' format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.alert import Alert, SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.elastic.mapping import elastic_source
from auditstream.detections.engine import Detector
from auditstream.detections.errors import DetectionError
from auditstream.detections.event.decode import decode_message
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.engine import StatefulEngine
from auditstream.detections.stateful.event_time import format_time_ms
from auditstream.detections.stateful.in_process import InProcessState
from auditstream.detections.stateful.new_terms import (
    NewTermsOperator,
    compile_new_terms,
    parse_history_window,
    term_reader,
)
from auditstream.detections.stateful.rule import StatefulRule, selector_id
from auditstream.detections.stateful.store import MemoryStore

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stateful"
AGENT_RULE = FIXTURES / "new_terms_user_agent.toml"
SECRETS_RULE = FIXTURES / "new_terms_secret_readers.toml"
PODS_RULE = FIXTURES / "new_terms_pod_capabilities.toml"
FORBIDDEN_RULE = FIXTURES / "new_terms_forbidden_agent.toml"
SECOND = 1_000
MINUTE = 60 * SECOND
DAY = 86_400_000
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
LATENESS = 5 * MINUTE
CAPS = "kubernetes.audit.requestObject.spec.containers.securityContext.capabilities.add"
PRIVILEGED = "kubernetes.audit.requestObject.spec.containers.securityContext.privileged"
DETECTED = datetime(2025, 2, 1, tzinfo=UTC)


# --- events and runs -----------------------------------------------------------------------------


def audit(
    n: int,
    at_ms: int,
    *,
    agent: str | None = "curl/8.5.0",
    user: str = "alice",
    ips: Sequence[str] = ("10.0.0.1",),
    resource: str = "secrets",
    verb: str = "get",
    stage: str = "ResponseComplete",
    request_object: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A raw audit event: number ``n`` names it (its auditID), ``at_ms`` is its time."""
    stamp = format_time_ms(at_ms)
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": f"00000000-0000-4000-8000-{n:012d}",
        "stage": stage,
        "requestURI": f"/api/v1/namespaces/default/{resource}",
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": list(ips),
        "objectRef": {"resource": resource, "namespace": "default", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": stamp,
        "stageTimestamp": stamp,
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    if agent is not None:
        event["userAgent"] = agent
    if request_object is not None:
        event["requestObject"] = request_object
    return event


def pod(containers: Iterable[tuple[Sequence[str], bool]]) -> dict[str, Any]:
    """A pod whose containers each add capabilities and may be privileged."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "spec": {
            "containers": [
                {
                    "name": f"c{i}",
                    "image": "busybox:1.36",
                    "securityContext": {
                        "privileged": privileged,
                        "capabilities": {"add": list(add)},
                    },
                }
                for i, (add, privileged) in enumerate(containers)
            ]
        },
    }


def rules_of(*paths: Path) -> list[StatefulRule]:
    loaded = load_rules(list(paths), builtin=False)
    assert loaded.problems == ()
    found = [rule for rule in loaded.rules if isinstance(rule, StatefulRule)]
    assert len(found) == len(paths)
    return found


class Run:
    """One pipeline with its in-process state: what ``scan`` runs."""

    def __init__(self, *paths: Path, lateness_ms: int = LATENESS) -> None:
        self.rules = rules_of(*paths)
        self.detector = Detector(self.rules)
        self.state = InProcessState(StatefulEngine(self.rules, allowed_lateness_ms=lateness_ms))
        self.pipeline = DetectionPipeline(
            self.detector, RecentAlerts(), state=self.state, clock=lambda: DETECTED
        )
        self.repeats = 0

    def send(self, event: dict[str, Any]) -> list[Alert]:
        found = self.pipeline.process_message(json.dumps(event).encode(), SourceRef("file"))
        self.repeats += found.repeats
        return list(found.alerts)

    def warm(self, event: dict[str, Any]) -> list[Alert]:
        """History only, as ``auditstream state warm`` feeds it: candidates marked warm."""
        plain = DetectionPipeline(self.detector, RecentAlerts())
        found = plain.detect_message(json.dumps(event).encode(), SourceRef("file"))
        warm = [replace(candidate, warm=True) for candidate in found.candidates]
        return self.state.alerts(warm, DETECTED)

    @property
    def late(self) -> int:
        return self.state.partition.late


def terms(alerts: Iterable[Alert]) -> list[Any]:
    return [alert.fields["new_terms"] for alert in alerts]


def covered(run: Run, at_ms: int = T0) -> None:
    """Start the rule's history at ``at_ms`` with an event of an agent no test uses again."""
    assert run.send(audit(999_999, at_ms, agent="history-start/0")) == []


# --- loading -------------------------------------------------------------------------------------


def _table(**changes: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "rule_id": "r-nt",
        "name": "nt",
        "description": "d",
        "severity": "low",
        "risk_score": 21,
        "language": "kuery",
        "type": "new_terms",
        "index": ["logs-kubernetes.audit_logs-*"],
        "from": "now-6m",
        "query": 'kubernetes.audit.verb:"get"',
        "new_terms": {
            "field": "new_terms_fields",
            "value": ["user.name"],
            "history_window_start": [{"field": "history_window_start", "value": "now-7d"}],
        },
    }
    table.update(changes)
    return table


def _terms_table(fields: list[str], window: str = "now-7d") -> dict[str, Any]:
    return _table(
        new_terms={
            "field": "new_terms_fields",
            "value": fields,
            "history_window_start": [{"field": "history_window_start", "value": window}],
        }
    )


def test_a_new_terms_rule_compiles_to_a_kuery_selector_under_an_internal_id() -> None:
    rule = compile_new_terms(_table(), "inline")
    assert (rule.kind, rule.language, rule.key_names) == ("new_terms", "kuery", ("user.name",))
    assert rule.history_ms == 7 * DAY == rule.operator.retention_ms
    (selector,) = rule.selectors
    assert selector.rule.meta.rule_id == selector_id("r-nt", 0) == "r-nt#0"
    assert rule.meta.rule_id == "r-nt" and rule.meta.rule_type == "new_terms"
    assert rule.details == {"new_terms_fields": ["user.name"], "history_window_start": "now-7d"}


@pytest.mark.parametrize(
    ("text", "millis"),
    [("now-7d", 7 * DAY), ("now-10d", 10 * DAY), ("now-36h", 36 * 3_600_000),
     ("now-90m", 90 * MINUTE), ("now-2w", 14 * DAY), ("now-30s", 30 * SECOND)],
)  # fmt: skip
def test_history_windows_in_fixed_units_are_read(text: str, millis: int) -> None:
    assert parse_history_window(text) == millis


@pytest.mark.parametrize("text", ["now-1M", "now-1y", "now-7d/d", "2025-01-01", "now+7d", "now-0d"])
def test_history_windows_without_a_fixed_length_are_refused(text: str) -> None:
    with pytest.raises(DetectionError, match="history_window_start"):
        parse_history_window(text)


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        (_table(new_terms=None), r"\[rule.new_terms\] is missing"),
        (_terms_table(["user.name", "source.ip", "user.id", "event.action"]), "at most 3"),
        (_terms_table(["user.name", "user.name"]), "names a field twice"),
        (_terms_table([]), "list of field names"),
        (_terms_table(["user.name"], "now-5m"), "must be earlier than from now-6m"),
        (_terms_table(["kubernetes.audit.user.groups"]), "not aggregatable"),
        (_terms_table(["kubernetes.audit.no_such_field"]), "does not index it"),
        (_terms_table(["kubernetes.audit.stageTimestamp"]), "date terms"),
        (_terms_table(["kubernetes.audit.requestObject.spec.rules.verbs"]), "cannot be used"),
        (_table(language="eql"), "language eql is not supported for new_terms"),
        (_table(index=["logs-aws.cloudtrail-*"]), "do not cover Kubernetes audit logs"),
    ],
)
def test_what_elastic_would_refuse_or_never_alert_on_is_reported(
    table: dict[str, Any], reason: str
) -> None:
    with pytest.raises(DetectionError, match=reason):
        compile_new_terms(table, "inline")


# --- which terms an event has --------------------------------------------------------------------


def _read(name: str, source: dict[str, Any]) -> tuple[str, ...]:
    return term_reader(name)(ElasticDocument(source))


def test_terms_are_the_indexed_values_deduplicated_in_doc_values_order() -> None:
    assert _read("user_agent.original", {"user_agent": {"original": ["b", "a", "b"]}}) == (
        "a",
        "b",
    )
    assert _read("user_agent.original", {"user_agent": {"original": "x" * 1025}}) == ()
    assert _read("user_agent.original", {"user_agent": {"original": 42}}) == ("42",)
    assert _read("user_agent.original", {}) == ()


def test_ip_terms_are_printed_as_elasticsearch_prints_an_ip_key() -> None:
    source = {"source": {"ip": ["::ffff:10.0.0.1", "10.0.0.1", "2001:DB8:0:0:0:0:0:1", "bad"]}}
    assert _read("source.ip", source) == ("10.0.0.1", "2001:db8::1")


def test_boolean_and_integer_terms_are_their_keyword_text() -> None:
    spec = {"kubernetes": {"audit": {"requestObject": {"spec": {"containers": [
        {"securityContext": {"privileged": True, "runAsUser": 0}},
        {"securityContext": {"privileged": "false", "runAsUser": "1000"}},
    ]}}}}}  # fmt: skip
    assert _read(PRIVILEGED, spec) == ("false", "true")
    runs_as = "kubernetes.audit.requestObject.spec.containers.securityContext.runAsUser"
    assert _read(runs_as, spec) == ("0", "1000")


def test_a_lone_surrogate_becomes_the_replacement_character_as_lucene_stores_it() -> None:
    assert _read("user.name", {"user": {"name": "a\ud800b"}}) == ("a\ufffdb",)


# --- scenarios -----------------------------------------------------------------------------------


def test_a_new_term_alerts_once_and_is_known_afterwards() -> None:
    run = Run(AGENT_RULE)
    covered(run)
    (alert,) = run.send(audit(1, T0 + 8 * DAY, agent="evil/1.0"))
    assert alert.rule.rule_id == "6f1c2a40-5b7e-4c1d-9a35-0e8f7d6c5b41"
    assert alert.fields["new_terms"] == ("evil/1.0",)
    assert alert.fields["events"] == ("00000000-0000-4000-8000-000000000001/ResponseComplete",)
    assert alert.event.audit_id == "00000000-0000-4000-8000-000000000001"
    assert run.send(audit(2, T0 + 8 * DAY + MINUTE, agent="evil/1.0")) == []
    assert run.repeats == 0  # known: no hit at all, not a suppressed repeat


def test_a_term_seen_within_the_window_is_known() -> None:
    run = Run(AGENT_RULE)
    covered(run)
    assert run.send(audit(1, T0 + 1 * DAY, agent="kubectl/v1.30")) == []  # learning still
    assert run.send(audit(2, T0 + 8 * DAY, agent="kubectl/v1.30")) == []  # seen 7 days before
    assert run.send(audit(3, T0 + 14 * DAY, agent="kubectl/v1.30")) == []  # seen 6 days before


def test_a_term_last_seen_longer_ago_than_the_window_is_new_again() -> None:
    run = Run(AGENT_RULE)
    covered(run)
    assert run.send(audit(1, T0 + 1 * DAY, agent="helm/3")) == []
    # last seen exactly 7 days before: inside the window (its range is gte)
    assert run.send(audit(2, T0 + 8 * DAY, agent="helm/3")) == []
    # last seen 7 days and 1 ms before: outside it, so new again (Elastic alerts again too)
    (alert,) = run.send(audit(3, T0 + 15 * DAY + 1, agent="helm/3"))
    assert alert.fields["new_terms"] == ("helm/3",)
    assert run.send(audit(4, T0 + 15 * DAY + 2, agent="helm/3")) == []


def test_no_alert_while_the_history_does_not_cover_the_window() -> None:
    run = Run(AGENT_RULE)
    covered(run)
    assert run.send(audit(1, T0 + 7 * DAY - 1, agent="first/1")) == []  # learnt silently
    assert run.state.partition.history_from_ms(run.rules[0].meta.rule_id) == T0
    assert terms(run.send(audit(2, T0 + 7 * DAY, agent="second/1"))) == [("second/1",)]
    assert run.send(audit(3, T0 + 7 * DAY + 1, agent="first/1")) == []  # learnt: known


def test_warm_candidates_build_history_and_never_alert() -> None:
    run = Run(AGENT_RULE)
    assert run.warm(audit(1, T0, agent="known/1")) == []
    assert run.warm(audit(2, T0 + 25 * DAY, agent="known/1")) == []
    assert run.warm(audit(3, T0 + 30 * DAY, agent="warm-only/1")) == []  # covered, still silent
    assert run.send(audit(4, T0 + 31 * DAY, agent="known/1")) == []  # seen 6 days before
    assert run.send(audit(5, T0 + 31 * DAY, agent="warm-only/1")) == []  # seen a day before
    assert terms(run.send(audit(6, T0 + 31 * DAY, agent="fresh/1"))) == [("fresh/1",)]
    assert run.state.partition.history_from_ms(run.rules[0].meta.rule_id) == T0


def test_an_event_warmed_and_then_read_live_does_not_alert() -> None:
    run = Run(AGENT_RULE)
    covered(run)
    event = audit(1, T0 + 8 * DAY, agent="overlap/1")
    assert run.warm(event) == []  # the warm files and the topic overlap: the same event twice
    assert run.send(event) == []  # its first sighting did not alert, so its replay does not


def test_a_replayed_event_gives_the_same_alert_id() -> None:
    run = Run(AGENT_RULE)
    covered(run)
    event = audit(1, T0 + 8 * DAY, agent="evil/1.0")
    (first,) = run.send(event)
    store = run.state.partition.store
    assert isinstance(store, MemoryStore)
    before = dict(store.data)
    assert run.send(event) == [] and run.repeats == 1  # the window suppresses the repeat
    assert store.data == before  # the replay left the state as it was
    run.pipeline.forget_alerts()  # a restart: the window is empty, the state is not
    (again,) = run.send(event)
    assert again.alert_id == first.alert_id
    assert again.fields == first.fields


def test_a_late_event_is_counted_and_not_applied() -> None:
    run = Run(AGENT_RULE, lateness_ms=LATENESS)
    covered(run)
    assert len(run.send(audit(1, T0 + 8 * DAY, agent="on-time/1"))) == 1
    assert run.send(audit(2, T0 + 8 * DAY - LATENESS - 1, agent="late/1")) == []
    assert run.late == 1
    # within the lateness it is applied (a term is new at its own event time)
    assert terms(run.send(audit(3, T0 + 8 * DAY - LATENESS, agent="late/1"))) == [("late/1",)]
    assert run.late == 1
    # not applied above: had it been, late/1 would be known and number 3 silent


def test_an_event_late_for_a_known_term_does_not_alert_again() -> None:
    run = Run(AGENT_RULE, lateness_ms=LATENESS)
    covered(run)
    assert len(run.send(audit(1, T0 + 8 * DAY, agent="twice/1"))) == 1
    assert run.send(audit(2, T0 + 8 * DAY - MINUTE, agent="twice/1")) == []
    # the late event does not move "last seen" back: a window after the newest sighting the
    # term is still known (it would be new had the late event's time replaced it)
    assert run.send(audit(3, T0 + 15 * DAY, agent="twice/1")) == []


def test_a_multi_field_rule_keys_on_the_combination_one_alert_per_new_one() -> None:
    run = Run(SECRETS_RULE)
    covered(run)
    at = T0 + 6 * DAY
    alerts = run.send(audit(1, at, ips=("10.0.0.1", "10.0.0.2"), user="bob", agent="curl/8"))
    assert terms(alerts) == [("10.0.0.1", "bob", "curl/8"), ("10.0.0.2", "bob", "curl/8")]
    assert len({alert.alert_id for alert in alerts}) == 2
    assert {alert.event.audit_id for alert in alerts} == {"00000000-0000-4000-8000-000000000001"}
    assert run.send(audit(2, at + 1, ips=("10.0.0.1",), user="bob", agent="curl/8")) == []
    assert terms(run.send(audit(3, at + 2, ips=("10.0.0.1", "10.0.0.3"), user="bob",
                                agent="curl/8"))) == [("10.0.0.3", "bob", "curl/8")]  # fmt: skip
    assert terms(run.send(audit(4, at + 3, user="carol", agent="curl/8"))) == [
        ("10.0.0.1", "carol", "curl/8")
    ]


def test_an_event_without_one_of_the_fields_is_in_no_combination() -> None:
    run = Run(SECRETS_RULE)
    covered(run)
    assert run.send(audit(1, T0 + 6 * DAY, agent=None)) == []
    assert run.send(audit(2, T0 + 6 * DAY, ips=())) == []
    assert run.state.partition.keys_per_rule() == {
        "0b7d3e92-8c14-4f6a-b2d5-61a9e0c4f873": 1  # only the history-start event's key
    }


def test_several_multi_valued_fields_give_their_cartesian_product() -> None:
    run = Run(PODS_RULE)
    created = pod([(["NET_ADMIN", "SYS_TIME"], True), (["NET_ADMIN"], False)])
    baseline = audit(
        1, T0, resource="pods", verb="create", request_object=pod([(["CHOWN"], False)])
    )
    assert run.send(baseline) == []
    alerts = run.send(
        audit(2, T0 + 10 * DAY, ips=("10.0.0.9", "10.0.0.1"), resource="pods", verb="create",
              request_object=created)
    )  # fmt: skip
    assert sorted(terms(alerts)) == sorted(
        (ip, cap, privileged)
        for ip in ("10.0.0.1", "10.0.0.9")
        for cap in ("NET_ADMIN", "SYS_TIME")
        for privileged in ("false", "true")
    )
    assert len(alerts) == 8 == len({alert.alert_id for alert in alerts})


def test_raw_and_ecs_input_give_the_same_alerts() -> None:
    events = [
        audit(1, T0, agent="base/1"),
        audit(2, T0 + DAY, ips=("10.0.0.1", "::ffff:10.0.0.2"), agent="a/1"),
        audit(3, T0 + 6 * DAY, ips=("10.0.0.2",), agent="a/1"),
        audit(4, T0 + 6 * DAY, ips=("10.0.0.4",), user="dave", agent="b/2"),
        audit(5, T0 + 12 * DAY, ips=("10.0.0.1",), agent="a/1"),
    ]
    raw, ecs = Run(AGENT_RULE, SECRETS_RULE), Run(AGENT_RULE, SECRETS_RULE)
    raw_alerts = [alert for event in events for alert in raw.send(event)]
    ecs_alerts = [alert for event in events for alert in ecs.send(_as_ecs(event))]
    assert raw_alerts, "the scenario must alert at all"
    assert [(a.alert_id, a.rule.rule_id, a.fields) for a in raw_alerts] == [
        (a.alert_id, a.rule.rule_id, a.fields) for a in ecs_alerts
    ]


def _forbidden(n: int, at_ms: int, agent: str) -> dict[str, Any]:
    event = audit(n, at_ms, agent=agent)
    event["annotations"] = {"authorization.k8s.io/decision": "forbid"}
    return event


@pytest.mark.parametrize("as_ecs", [False, True])
def test_a_query_on_the_decision_annotation_selects_its_events(as_ecs: bool) -> None:
    run = Run(FORBIDDEN_RULE)
    shape = _as_ecs if as_ecs else dict
    assert run.send(shape(_forbidden(1, T0, "base/1"))) == []
    assert terms(run.send(shape(_forbidden(2, T0 + 7 * DAY, "new/1")))) == [("new/1",)]


def _as_ecs(event: dict[str, Any]) -> dict[str, Any]:
    (decoded,) = decode_message(json.dumps(event).encode()) or []
    return elastic_source(decoded)


def test_expiry_drops_terms_the_window_has_passed() -> None:
    operator = NewTermsOperator(7 * DAY)
    state = {"first": "e/ResponseComplete", "first_ms": T0, "last_ms": T0 + DAY, "alerted": True}
    assert operator.expire(state, T0 + 8 * DAY) == state  # last seen exactly a window ago
    assert operator.expire(state, T0 + 8 * DAY + 1) is None


def test_the_partition_sweep_expires_by_event_time() -> None:
    run = Run(AGENT_RULE, lateness_ms=0)
    covered(run)
    run.send(audit(1, T0 + DAY, agent="old/1"))
    run.send(audit(2, T0 + 8 * DAY, agent="new/1"))
    rule_id = run.rules[0].meta.rule_id
    partition = run.state.partition
    assert partition.keys_per_rule() == {rule_id: 3}
    partition.sweep()
    assert partition.keys_per_rule() == {rule_id: 2}  # history-start (T0) has passed; old/1 not
    run.send(audit(3, T0 + 8 * DAY + 1, agent="new/1"))
    partition.sweep()
    assert partition.keys_per_rule() == {rule_id: 1}  # old/1, last seen at T0 + 1 day, now has
    assert run.send(audit(4, T0 + 8 * DAY + 2, agent="old/1")) != []  # and is new again


# --- replay safety, as a property ----------------------------------------------------------------

_PROPERTY_RULE = compile_new_terms(_table(), "inline")


def _candidate(n: int, key: str, time_ms: int, warm: bool) -> Candidate:
    return Candidate(
        rule_id="r-nt",
        stage=0,
        key=(key,),
        time_ms=time_ms,
        event_id=f"event-{n}/ResponseComplete",
        audit={"auditID": f"event-{n}", "stage": "ResponseComplete"},
        warm=warm,
    )


_steps = st.lists(
    st.tuples(
        st.sampled_from("abcde"),
        st.integers(min_value=-2 * DAY, max_value=4 * DAY),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps=_steps, lateness=st.sampled_from([0, MINUTE, DAY]))
def test_replaying_everything_never_gives_an_alert_id_the_first_pass_did_not(
    steps: list[tuple[str, int, bool]], lateness: int
) -> None:
    state = InProcessState(StatefulEngine([_PROPERTY_RULE], allowed_lateness_ms=lateness))
    clock = T0
    candidates = []
    for n, (key, delta, warm) in enumerate(steps):
        clock += delta
        candidates.append(_candidate(n, key, clock, warm and n % 3 == 0))
    first = {alert.alert_id for alert in state.alerts(candidates, DETECTED)}
    second = {alert.alert_id for alert in state.alerts(candidates, DETECTED)}
    assert second <= first


@settings(max_examples=150, deadline=None)
@given(steps=_steps)
def test_stepping_with_the_first_event_again_gives_the_same_hits_and_state(
    steps: list[tuple[str, int, bool]],
) -> None:
    operator = NewTermsOperator(DAY)
    states: dict[str, Any] = {}
    clock = T0
    for n, (key, delta, alerting) in enumerate(steps):
        clock += delta
        candidate = _candidate(n, key, clock, False)
        before = states.get(key)
        step = operator.step(before, candidate, alerting=alerting)
        assert step.state is not None
        if before is not None and step.state["first"] == before["first"]:
            assert step.state["last_ms"] >= before["last_ms"]  # last seen never moves back
        states[key] = step.state
        if step.state["first"] == candidate.event_id:
            again = operator.step(step.state, candidate, alerting=alerting)
            assert again.state == step.state
            assert [h.basis for h in again.hits] == [h.basis for h in step.hits]


def test_every_test_the_semantics_doc_names_exists() -> None:
    doc = (Path(__file__).parent.parent.parent / "docs" / "new-terms-semantics.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ") and "`test_" in line]
    assert len(rows) >= 20
    for row in rows:
        named = [part.strip("` ") for part in row.split("|")[-2].split(",")]
        assert named and all(name in globals() for name in named), row
