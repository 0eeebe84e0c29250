"""Sigma correlation rules on the stream: one test per row of docs/sigma-correlation-semantics.md.

Scenarios run through the production path: raw audit events (made by :func:`audit`) through
:class:`DetectionPipeline` with an in-process :class:`StatefulEngine`, against our own
correlation rules in ``tests/fixtures/stateful/correlation_*.yml`` (modeled on SigmaHQ's
Kubernetes audit rules) or written inline. The operator's properties are checked against a
brute-force reading of the condition at every millisecond.
"""

from __future__ import annotations

import itertools
import json
import textwrap
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.alert import Alert, SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.detections.sigma import load_sigma_text
from auditstream.detections.sigma.correlation import RULE_TYPE
from auditstream.detections.sigma.rule import SigmaRule
from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.correlation import (
    VALUES_COLUMN,
    CorrelationKind,
    CorrelationOperator,
)
from auditstream.detections.stateful.engine import StatefulEngine
from auditstream.detections.stateful.event_time import format_time_ms
from auditstream.detections.stateful.in_process import InProcessState
from auditstream.detections.stateful.operator import State, StatefulHit
from auditstream.detections.stateful.rule import StatefulRule, selector_id

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stateful"
SECRET_READS = FIXTURES / "correlation_secret_reads.yml"
DISTINCT_SECRETS = FIXTURES / "correlation_distinct_secrets.yml"
THEN_EXEC = FIXTURES / "correlation_binding_then_exec.yml"
AND_EXEC = FIXTURES / "correlation_binding_and_exec.yml"
GRANTED = FIXTURES / "correlation_granted_then_exec.yml"
GENERATE = FIXTURES / "correlation_generate.yml"
SECOND = 1_000
MINUTE = 60 * SECOND
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
LATENESS = 10 * MINUTE
DETECTED = datetime(2025, 2, 1, tzinfo=UTC)
RBAC = "rbac.authorization.k8s.io"


# --- events and runs -----------------------------------------------------------------------------


def audit(
    n: int,
    at_ms: int,
    *,
    user: str = "alice",
    verb: str = "get",
    resource: str = "secrets",
    name: str | None = None,
    subresource: str | None = None,
    api_group: str | None = None,
    namespace: str | None = "default",
    stage: str = "ResponseComplete",
    groups: Sequence[str] = ("system:authenticated",),
    request_object: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A raw audit event: number ``n`` names it (its auditID), ``at_ms`` is its time."""
    stamp = format_time_ms(at_ms)
    ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
    for key, value in (
        ("namespace", namespace),
        ("name", name),
        ("subresource", subresource),
        ("apiGroup", api_group),
    ):
        if value is not None:
            ref[key] = value
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": f"00000000-0000-4000-8000-{n:012d}",
        "stage": stage,
        "requestURI": f"/api/v1/namespaces/default/{resource}",
        "verb": verb,
        "user": {"username": user, "groups": list(groups)},
        "sourceIPs": ["10.0.0.1"],
        "userAgent": "kubectl/v1.30.2",
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": stamp,
        "stageTimestamp": stamp,
    }
    if request_object is not None:
        event["requestObject"] = request_object
    return event


def event_id(n: int, stage: str = "ResponseComplete") -> str:
    return f"00000000-0000-4000-8000-{n:012d}/{stage}"


def binding(n: int, at_ms: int, user: str = "alice", **more: Any) -> dict[str, Any]:
    return audit(
        n, at_ms, user=user, verb="create", resource="rolebindings", api_group=RBAC, **more
    )


def pod_exec(n: int, at_ms: int, user: str = "alice") -> dict[str, Any]:
    return audit(n, at_ms, user=user, verb="create", resource="pods", subresource="exec")


class Run:
    """One pipeline with its in-process state: what ``scan`` runs."""

    def __init__(self, rules: Sequence[Any], *, lateness_ms: int = LATENESS) -> None:
        self.rules = list(rules)
        stateful = [rule for rule in self.rules if isinstance(rule, StatefulRule)]
        self.state = InProcessState(StatefulEngine(stateful, allowed_lateness_ms=lateness_ms))
        self.pipeline = DetectionPipeline(
            Detector(self.rules), RecentAlerts(), state=self.state, clock=lambda: DETECTED
        )
        self.repeats = 0

    @classmethod
    def of(cls, *paths: Path, lateness_ms: int = LATENESS) -> Run:
        loaded = load_rules(list(paths), builtin=False)
        assert loaded.problems == ()
        return cls(loaded.rules, lateness_ms=lateness_ms)

    @classmethod
    def inline(cls, text: str, lateness_ms: int = LATENESS) -> Run:
        loaded = load_sigma_text(text, "inline.yml")
        assert loaded.problems == ()
        return cls(loaded.rules, lateness_ms=lateness_ms)

    def send(self, event: dict[str, Any]) -> list[Alert]:
        found = self.pipeline.process_message(json.dumps(event).encode(), SourceRef("file"))
        self.repeats += found.repeats
        return list(found.alerts)

    def send_all(self, events: Sequence[dict[str, Any]]) -> list[Alert]:
        return [alert for event in events for alert in self.send(event)]


def names(alerts: Sequence[Alert]) -> list[str]:
    return [alert.rule.name for alert in alerts]


def rule_doc(
    name: str, selection: str, logsource: str = "product: kubernetes\n    service: audit"
) -> str:
    """A Sigma rule document named ``name`` whose ``selection`` block is given (YAML lines)."""
    body = textwrap.indent(textwrap.dedent(selection).strip("\n"), " " * 8)
    return (
        f"title: Rule {name}\n"
        f"id: {uuid.uuid5(uuid.NAMESPACE_URL, name)}\n"
        f"name: {name}\n"
        "status: test\n"
        f"logsource:\n    {logsource}\n"
        f"detection:\n    selection:\n{body}\n    condition: selection\n"
    )


def correlation_doc(correlation: str, title: str = "Correlation", **header: str) -> str:
    """A correlation document (its ``correlation:`` block given as YAML lines)."""
    head = {"title": title, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, title)), "status": "test"}
    head.update(header)
    lines = "".join(f"{key}: {value}\n" for key, value in head.items())
    body = textwrap.indent(textwrap.dedent(correlation).strip("\n"), "    ")
    return f"{lines}correlation:\n{body}\nlevel: high\n"


def docs(*documents: str) -> str:
    return "---\n".join(documents)


SECRET_GET = rule_doc("secret_get", "verb: get\nobjectRef.resource: secrets")
SECRETS_ANY = rule_doc("secrets_any", "objectRef.resource: secrets")


def refusal(text: str) -> tuple[str | None, str]:
    loaded = load_sigma_text(text, "inline.yml")
    assert not [r for r in loaded.rules if isinstance(r, StatefulRule)]
    (problem,) = loaded.problems
    return problem.rule_name, problem.reason


# --- loading -------------------------------------------------------------------------------------


def test_a_correlation_compiles_to_sigma_selectors_under_internal_ids() -> None:
    loaded = load_rules([SECRET_READS], builtin=False)
    assert loaded.problems == ()
    (rule,) = loaded.rules
    assert isinstance(rule, StatefulRule)
    assert (rule.kind, rule.language, rule.key_names) == (
        "correlation",
        "sigma",
        ("user.username",),
    )
    assert rule.meta.rule_id == "6f4b9a2e-0c1d-4e57-9b3a-5d2f8e7c1a02"
    assert (rule.meta.rule_type, rule.meta.severity, rule.meta.risk_score) == (
        RULE_TYPE,
        "high",
        73,
    )
    assert rule.meta.tags == ("attack.credential-access", "attack.t1552.007")
    (selector,) = rule.selectors
    assert isinstance(selector.rule, SigmaRule)
    assert selector.rule.meta.rule_id == selector_id(rule.meta.rule_id, 0)
    operator = rule.operator
    assert isinstance(operator, CorrelationOperator)
    assert (operator.kind, operator.threshold, operator.timespan_ms) == (
        CorrelationKind.EVENT_COUNT,
        5,
        10 * MINUTE,
    )
    assert operator.retention_ms == 10 * MINUTE
    assert rule.details == {
        "type": "event_count",
        "timespan": "10m",
        "rules": ["k8s_secret_read"],
        "group_by": ["user.username"],
        "condition": {"gte": 5},
    }


def test_referenced_rules_do_not_alert_on_their_own_by_default() -> None:
    loaded = load_rules([SECRET_READS], builtin=False)
    assert [rule.meta.name for rule in loaded.rules] == [
        "Kubernetes Secrets Read In Bulk By One User"
    ]
    run = Run(loaded.rules)
    assert run.send(audit(1, T0)) == []  # the base rule matches: no alert of its own


def test_generate_true_keeps_the_referenced_rule_alerting() -> None:
    run = Run.of(GENERATE)
    deletes = [audit(i, T0 + i * SECOND, verb="delete", resource="pods") for i in range(3)]
    assert names(run.send(deletes[0])) == ["Kubernetes Pod Deleted"]
    assert names(run.send(deletes[1])) == ["Kubernetes Pod Deleted"]  # gt: 2, two is not enough
    assert names(run.send(deletes[2])) == [
        "Kubernetes Pod Deleted",
        "Kubernetes Pods Deleted In Bulk",
    ]


def test_references_resolve_across_files_of_one_load(tmp_path: Path) -> None:
    (tmp_path / "a_base.yml").write_text(SECRET_GET)
    by_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "secret_get"))
    (tmp_path / "b_by_name.yml").write_text(
        correlation_doc(
            "type: event_count\nrules: [secret_get]\ngroup-by: [user.username]\n"
            "timespan: 1m\ncondition: {gte: 2}",
            title="By name",
        )
    )
    (tmp_path / "c_by_id.yml").write_text(
        correlation_doc(
            f"type: event_count\nrules: ['{by_id}']\ngroup-by: [user.username]\n"
            "timespan: 1m\ncondition: {gte: 3}",
            title="By id",
        )
    )
    loaded = load_rules([tmp_path], builtin=False)
    assert loaded.problems == ()
    assert sorted(rule.meta.name for rule in loaded.rules) == ["By id", "By name"]  # base silenced
    run = Run(loaded.rules)
    assert run.send(audit(1, T0)) == []
    assert names(run.send(audit(2, T0 + SECOND))) == ["By name"]
    assert names(run.send(audit(3, T0 + 2 * SECOND))) == ["By id"]


def test_a_rule_referenced_without_generate_is_silenced_even_if_another_says_generate() -> None:
    keep = _c(
        "type: event_count\ngenerate: true\nrules: [secret_get]\ntimespan: 1m\ncondition: {gte: 2}",
        title="Generates",
    )
    text = docs(SECRET_GET, keep, correlation_doc(
        "type: event_count\nrules: [secret_get]\ntimespan: 1m\ncondition: {gte: 3}", title="Silent"
    ))  # fmt: skip
    loaded = load_sigma_text(text, "inline.yml")
    assert loaded.problems == ()
    assert [rule.meta.name for rule in loaded.rules] == ["Generates", "Silent"]


def test_a_correlation_finds_the_rules_of_its_own_file_first() -> None:
    loaded = load_rules([THEN_EXEC, AND_EXEC], builtin=False)
    assert loaded.problems == ()
    ordered, any_order = loaded.rules
    assert isinstance(ordered, StatefulRule) and isinstance(any_order, StatefulRule)
    assert "(any order)" not in ordered.selectors[0].rule.meta.name
    assert "(any order)" in any_order.selectors[0].rule.meta.name


def test_a_name_defined_in_two_other_files_is_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(SECRET_GET)
    (tmp_path / "b.yml").write_text(SECRET_GET.replace("Rule secret_get", "Again"))
    (tmp_path / "c.yml").write_text(
        correlation_doc(
            "type: event_count\nrules: [secret_get]\ntimespan: 1m\ncondition: {gte: 2}",
            title="Ambiguous",
        )
    )
    loaded = load_rules([tmp_path / "c.yml", tmp_path / "a.yml", tmp_path / "b.yml"], builtin=False)
    problem = next(p for p in loaded.problems if p.rule_name == "Ambiguous")
    assert "'secret_get' is defined in 2 other files" in problem.reason


TITLE = "Under test"


def _c(body: str, *rules: str, title: str = TITLE) -> str:
    return docs(*rules, correlation_doc(body, title=title))


_COUNT = "type: event_count\nrules: [secret_get]\ngroup-by: [user.username]\ntimespan: 5m\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_c(_COUNT + "condition: {lt: 5}", SECRET_GET), "condition lt: 5 is decided only when a window closes"),
        (_c(_COUNT + "condition: {lte: 5}", SECRET_GET), "condition lte: 5 is decided only"),
        (_c(_COUNT + "condition: {eq: 5}", SECRET_GET), "condition eq: 5 is decided only"),
        (_c(_COUNT + "condition: {neq: 5}", SECRET_GET), "condition neq: 5 is decided only"),
        (_c(_COUNT.replace("event_count", "value_sum") + "condition: {gt: 5, field: x}", SECRET_GET),
         "correlation type value_sum is not supported"),
        (_c(_COUNT.replace("event_count", "value_avg") + "condition: {gt: 5, field: x}", SECRET_GET),
         "correlation type value_avg is not supported"),
        (_c(_COUNT.replace("event_count", "value_percentile") + "condition: {gt: 5, field: x}",
            SECRET_GET), "correlation type value_percentile is not supported"),
        (_c("type: temporal\ngroup-by: [user.username]\ntimespan: 5m\n"
            "condition: secret_get and not secrets_any", SECRET_GET, SECRETS_ANY),
         "an extended condition"),
        (_c(_COUNT.replace("event_count", "value_count") + "condition: {gte: 2, field: [a, b]}",
            SECRET_GET), "value_count over several fields"),
        (_c("type: temporal\nrules: [secret_get, secrets_any]\ntimespan: 5m\ncondition: {gte: 3}",
            SECRET_GET, SECRETS_ANY), "can never be true: the correlation references 2"),
        (_c("type: temporal_ordered\nrules: [secret_get, secrets_any]\ntimespan: 5m\n"
            "condition: {gte: 1}", SECRET_GET, SECRETS_ANY), "an ordered correlation of part"),
        (_c(_COUNT + "condition: {gte: 2}",
            rule_doc("secret_get", "verb: get", logsource="product: windows")),
         "referenced rule 'secret_get': logsource (product: windows) is not Kubernetes audit"),
        (_c(_COUNT + "condition: {gte: 2}"), "referenced rule 'secret_get' is not found"),
        (_c("type: temporal\nrules: [secret_get, secrets_any]\ntimespan: 5m\n"
            "aliases: {who: {other: user.username}}\ngroup-by: [who]", SECRET_GET, SECRETS_ANY,
            rule_doc("other", "verb: get")), "alias 'who' names rule 'other', which the correlation"),
    ],
)  # fmt: skip
def test_what_cannot_run_is_a_load_error_naming_the_rule_and_construct(
    text: str, reason: str
) -> None:
    loaded = load_sigma_text(text, "inline.yml")
    assert not [r for r in loaded.rules if isinstance(r, StatefulRule)]
    refused = [p for p in loaded.problems if p.rule_name == TITLE]
    assert len(refused) == 1 and reason in refused[0].reason, loaded.problems


def test_a_range_condition_is_refused_by_pysigma_for_the_whole_file() -> None:
    text = SECRET_READS.read_text().replace("gte: 5", "gt: 1\n        lte: 5")
    loaded = load_sigma_text(text, "inline.yml")
    assert loaded.rules == ()
    (problem,) = loaded.problems
    assert "must have exactly one condition item" in problem.reason


def test_chained_correlations_are_refused() -> None:
    inner = correlation_doc(
        "type: event_count\nrules: [secret_get]\ngroup-by: [user.username]\n"
        "timespan: 5m\ncondition: {gte: 2}",
        title="Inner",
        name="inner",
    )
    outer = _c("type: temporal_ordered\nrules: [inner, secrets_any]\ngroup-by: [user.username]\n"
               "timespan: 5m", SECRET_GET, SECRETS_ANY, inner)  # fmt: skip
    name, reason = refusal(outer)
    assert name == TITLE
    assert "referenced rule 'inner' is itself a correlation: chained" in reason


def test_a_correlation_without_an_id_or_with_pysigma_errors_is_refused() -> None:
    no_id = correlation_doc(
        "type: event_count\nrules: [secret_get]\ntimespan: 5m\ncondition: {gte: 2}", title="NoId"
    )
    no_id = "\n".join(line for line in no_id.splitlines() if not line.startswith("id:")) + "\n"
    assert "no id" in refusal(docs(SECRET_GET, no_id))[1]
    no_span = _c("type: event_count\nrules: [secret_get]\ncondition: {gte: 2}", SECRET_GET)
    assert "invalid Sigma rule" in refusal(no_span)[1]
    assert "without timespan" in refusal(no_span)[1]


@pytest.mark.parametrize(
    ("span", "millis"),
    [("30s", 30 * SECOND), ("5m", 5 * MINUTE), ("2h", 120 * MINUTE), ("1d", 1440 * MINUTE),
     ("1w", 7 * 1440 * MINUTE)],
)  # fmt: skip
def test_timespans_are_read_as_pysigma_reads_them(span: str, millis: int) -> None:
    text = _c(f"type: event_count\nrules: [secret_get]\ntimespan: {span}\ncondition: {{gte: 2}}",
              SECRET_GET)  # fmt: skip
    (rule,) = load_sigma_text(text, "inline.yml").rules
    assert isinstance(rule, StatefulRule) and rule.operator.retention_ms == millis


# --- event_count ---------------------------------------------------------------------------------


def test_event_count_threshold_not_crossed_then_crossed() -> None:
    run = Run.of(SECRET_READS)
    assert run.send_all([audit(i, T0 + i * MINUTE) for i in range(4)]) == []
    (alert,) = run.send(audit(4, T0 + 4 * MINUTE, verb="list"))
    assert alert.rule.name == "Kubernetes Secrets Read In Bulk By One User"
    assert alert.event.audit_id == "00000000-0000-4000-8000-000000000004"
    assert dict(alert.fields) == {
        "user.username": "alice",
        "event_count": 5,
        "events": tuple(event_id(i) for i in range(5)),
    }


def test_gt_needs_more_than_the_count() -> None:
    text = _c(
        "type: event_count\nrules: [secret_get]\ntimespan: 5m\ncondition: {gt: 2}", SECRET_GET
    )
    run = Run.inline(text)
    assert run.send_all([audit(i, T0 + i * SECOND) for i in range(2)]) == []
    assert names(run.send(audit(2, T0 + 2 * SECOND))) == [TITLE]


def test_the_window_edge_is_inclusive() -> None:
    times = [0, 1, 2, 3, 10 * MINUTE]
    edge = Run.of(SECRET_READS)
    assert len(edge.send_all([audit(i, T0 + t) for i, t in enumerate(times)])) == 1
    times[-1] += 1
    beyond = Run.of(SECRET_READS)
    assert beyond.send_all([audit(i, T0 + t) for i, t in enumerate(times)]) == []


def test_the_window_slides_on_event_time_rather_than_fixed_bins() -> None:
    run = Run.of(SECRET_READS)
    start = T0 + 7 * MINUTE  # 00:07 to 00:11 straddles the 00:10 boundary of a 10m bin
    assert len(run.send_all([audit(i, start + i * MINUTE) for i in range(5)])) == 1


def test_one_alert_per_episode_and_another_once_the_condition_was_false() -> None:
    run = Run.of(SECRET_READS)
    first = run.send_all([audit(i, T0 + i * MINUTE) for i in range(7)])
    assert len(first) == 1  # the 6th and 7th reads grow the same episode
    later = T0 + 30 * MINUTE  # every earlier read is out of the window: the condition was false
    assert run.send_all([audit(10 + i, later + i * MINUTE) for i in range(4)]) == []
    (second,) = run.send(audit(14, later + 4 * MINUTE))
    assert second.alert_id != first[0].alert_id
    assert second.fields["events"] == tuple(event_id(10 + i) for i in range(5))


def test_a_condition_kept_true_by_a_steady_stream_alerts_once() -> None:
    run = Run.of(SECRET_READS)
    alerts = run.send_all([audit(i, T0 + i * 2 * MINUTE) for i in range(30)])  # 5 per 10 min
    assert len(alerts) == 1


def test_replayed_events_are_not_counted_twice() -> None:
    run = Run.of(SECRET_READS)
    for _ in range(5):
        assert run.send(audit(1, T0)) == []
    assert run.send_all([audit(i, T0 + i * SECOND) for i in range(2, 5)]) == []  # 4 events
    (alert,) = run.send(audit(5, T0 + 5 * SECOND))
    assert run.send(audit(5, T0 + 5 * SECOND)) == []  # the trigger replayed: the same alert id
    assert run.repeats == 1
    assert alert.fields["event_count"] == 5


def test_group_by_separates_users() -> None:
    run = Run.of(SECRET_READS)
    events = [audit(i, T0 + i * SECOND, user="alice" if i % 2 else "bob") for i in range(8)]
    assert run.send_all(events) == []  # four each
    (alert,) = run.send(audit(8, T0 + 8 * SECOND, user="bob"))
    assert alert.fields["user.username"] == "bob"
    assert alert.fields["events"] == tuple(event_id(i) for i in (0, 2, 4, 6, 8))


def test_an_event_without_a_group_by_value_is_in_no_group() -> None:
    run = Run.of(GENERATE)  # group-by objectRef.namespace
    cluster_wide = [
        audit(i, T0 + i * SECOND, verb="delete", resource="pods", namespace=None) for i in range(4)
    ]
    assert names(run.send_all(cluster_wide)) == ["Kubernetes Pod Deleted"] * 4


def test_a_multi_valued_group_by_field_gives_one_group_per_value() -> None:
    text = _c(
        "type: event_count\nrules: [secret_get]\ngroup-by: [user.groups]\ntimespan: 5m\n"
        "condition: {gte: 2}",
        SECRET_GET,
    )
    run = Run.inline(text)
    assert run.send(audit(1, T0, groups=["dev", "ops"])) == []
    alerts = run.send(audit(2, T0 + SECOND, groups=["ops", "dev", "ops"]))
    assert sorted(alert.fields["user.groups"] for alert in alerts) == ["dev", "ops"]  # type: ignore[type-var]


def test_without_group_by_every_event_is_in_one_group() -> None:
    text = _c(
        "type: event_count\nrules: [secret_get]\ntimespan: 5m\ncondition: {gte: 2}", SECRET_GET
    )
    run = Run.inline(text)
    assert run.send(audit(1, T0, user="alice")) == []
    (alert,) = run.send(audit(2, T0 + SECOND, user="bob"))
    assert dict(alert.fields) == {"event_count": 2, "events": (event_id(1), event_id(2))}


def test_an_event_matching_two_referenced_rules_counts_once() -> None:
    text = _c(
        "type: event_count\nrules: [secret_get, secrets_any]\ngroup-by: [user.username]\n"
        "timespan: 5m\ncondition: {gte: 2}",
        SECRET_GET,
        SECRETS_ANY,
    )
    run = Run.inline(text)
    assert run.send(audit(1, T0)) == []  # both rules match it: still one event
    (alert,) = run.send(audit(2, T0 + SECOND, verb="list"))
    assert alert.fields["event_count"] == 2


def test_each_audit_stage_is_an_event() -> None:
    run = Run.of(SECRET_READS)
    stages = ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"]
    assert run.send_all([audit(1, T0, stage=s) for s in stages]) == []
    (alert,) = run.send(audit(2, T0 + SECOND))
    assert alert.fields["events"] == (*(event_id(1, s) for s in stages), event_id(2))


# --- value_count ---------------------------------------------------------------------------------


def test_value_count_counts_distinct_values_of_the_field() -> None:
    run = Run.of(DISTINCT_SECRETS)
    same = [audit(i, T0 + i * SECOND, name="db-password") for i in range(5)]
    assert run.send_all(same) == []
    assert run.send(audit(10, T0 + 10 * SECOND)) == []  # no objectRef.name: no value
    assert run.send(audit(11, T0 + 11 * SECOND, name="DB-PASSWORD")) == []  # values keep case
    (alert,) = run.send(audit(12, T0 + 12 * SECOND, name="api-token"))
    assert alert.fields["value_count"] == 3
    assert alert.fields["user.username"] == "alice"
    assert len(alert.fields["events"]) == 8  # type: ignore[arg-type]


# --- temporal and temporal_ordered ---------------------------------------------------------------


def test_temporal_matches_in_any_order_temporal_ordered_only_in_order() -> None:
    run = Run.of(THEN_EXEC, AND_EXEC)
    assert run.send(pod_exec(1, T0)) == []
    assert names(run.send(binding(2, T0 + MINUTE))) == [
        "Kubernetes Role Binding And Pod Exec By One User"
    ]
    ordered = Run.of(THEN_EXEC, AND_EXEC)
    assert ordered.send(binding(1, T0)) == []
    alerts = ordered.send(pod_exec(2, T0 + MINUTE))
    assert sorted(names(alerts)) == [
        "Kubernetes Role Binding And Pod Exec By One User",
        "Kubernetes Role Binding Then Pod Exec By One User",
    ]
    assert all(alert.fields["event_type_count"] == 2 for alert in alerts)


def test_temporal_rules_further_apart_than_the_timespan_do_not_match() -> None:
    run = Run.of(THEN_EXEC, AND_EXEC)
    assert run.send(binding(1, T0)) == []
    assert run.send(pod_exec(2, T0 + 5 * MINUTE + 1)) == []
    assert len(run.send(pod_exec(3, T0 + 5 * MINUTE))) == 2  # late by 1 ms: exactly 5 min apart


def test_temporal_ordered_events_of_one_instant_are_ordered_by_arrival() -> None:
    first = Run.of(THEN_EXEC)
    assert first.send(binding(1, T0)) == []
    assert len(first.send(pod_exec(2, T0))) == 1
    second = Run.of(THEN_EXEC)
    assert second.send(pod_exec(1, T0)) == []
    assert second.send(binding(2, T0)) == []


def test_one_event_matching_two_rules_fills_both_for_temporal_but_one_place_when_ordered() -> None:
    rules = (SECRET_GET, SECRETS_ANY)
    body = "rules: [secret_get, secrets_any]\ngroup-by: [user.username]\ntimespan: 5m"
    assert names(Run.inline(_c("type: temporal\n" + body, *rules)).send(audit(1, T0))) == [TITLE]
    ordered = Run.inline(_c("type: temporal_ordered\n" + body, *rules))
    assert ordered.send(audit(1, T0)) == []
    assert names(ordered.send(audit(2, T0 + SECOND))) == [TITLE]  # a second event: in order


def test_temporal_with_a_count_below_the_number_of_rules_needs_that_many() -> None:
    third = rule_doc("pods_any", "objectRef.resource: pods")
    text = _c(
        "type: temporal\nrules: [secret_get, secrets_any, pods_any]\ntimespan: 5m\n"
        "condition: {gte: 2}",
        SECRET_GET,
        SECRETS_ANY,
        third,
    )
    run = Run.inline(text)
    assert run.send(audit(1, T0, verb="delete", resource="pods")) == []
    (alert,) = run.send(audit(2, T0 + SECOND, verb="delete"))  # secrets_any: two rules
    assert alert.fields["event_type_count"] == 2


def test_temporal_eq_the_number_of_rules_is_every_rule() -> None:
    body = "rules: [secret_get, secrets_any]\ntimespan: 5m\ncondition: {eq: 2}"
    (rule,) = load_sigma_text(_c("type: temporal\n" + body, SECRET_GET, SECRETS_ANY), "x").rules
    assert isinstance(rule, StatefulRule) and isinstance(rule.operator, CorrelationOperator)
    assert rule.operator.threshold == 2


def test_aliases_group_events_by_different_fields() -> None:
    run = Run.of(GRANTED)
    subjects = {"subjects": [{"kind": "User", "name": "mallory"}, {"kind": "User", "name": "eve"}]}
    assert (
        run.send(audit(1, T0, verb="create", resource="rolebindings", request_object=subjects))
        == []
    )
    assert run.send(pod_exec(2, T0 + MINUTE, user="alice")) == []  # granted nothing
    (alert,) = run.send(pod_exec(3, T0 + 2 * MINUTE, user="eve"))
    assert alert.fields["grantee"] == "eve"
    assert alert.fields["events"] == (event_id(1), event_id(3))


def test_an_alias_applies_to_the_rules_it_maps_whether_listed_by_name_or_id() -> None:
    pods = rule_doc("pods_any", "objectRef.resource: pods")
    by_id = uuid.uuid5(uuid.NAMESPACE_URL, "pods_any")
    text = _c(
        f"type: temporal\nrules: [secret_get, '{by_id}']\ntimespan: 5m\n"
        "aliases: {who: {pods_any: user.username}}\ngroup-by: [who]",
        SECRET_GET,
        pods,
    )
    for who, alerted in ((None, 0), ("bob", 1)):
        run = Run.inline(text)
        assert run.send(audit(1, T0, verb="delete", resource="pods", user="bob")) == []
        event = audit(2, T0 + SECOND, user="carol")
        if who is not None:
            event["who"] = who  # secret_get is not mapped: it reads the alias name as a field
        alerts = run.send(event)
        assert len(alerts) == alerted
        assert all(alert.fields["who"] == "bob" for alert in alerts)


# --- event time: lateness, expiry ----------------------------------------------------------------


def test_a_late_event_within_the_allowed_lateness_counts_and_can_alert() -> None:
    run = Run.of(SECRET_READS, lateness_ms=LATENESS)
    assert run.send_all([audit(i, T0 + (5 + i) * MINUTE) for i in range(4)]) == []
    (alert,) = run.send(audit(9, T0))  # 8 minutes late, within 10: the window 00:00-00:08 has 5
    assert alert.fields["events"] == (event_id(9), *(event_id(i) for i in range(4)))
    strict = Run.of(SECRET_READS, lateness_ms=MINUTE)
    assert strict.send_all([audit(i, T0 + (5 + i) * MINUTE) for i in range(4)]) == []
    assert strict.send(audit(9, T0)) == []  # later than the watermark: not applied
    assert strict.state.partition.late == 1


def test_an_episode_across_expiry_sweeps_does_not_alert_again() -> None:
    run = Run.of(SECRET_READS, lateness_ms=0)
    alerts = []
    for i in range(40):
        alerts += run.send(audit(i, T0 + i * 2 * MINUTE))
        run.state.partition.sweep()
    assert len(alerts) == 1
    (raw,) = [v for k, v in run.state.partition.store.items() if not k.startswith(b"\x01")]
    kept = json.loads(raw)["ev"]
    assert len(kept) == 6  # 00:68 .. 00:78: the events of the last window only


# --- the operator: replay, expiry, against a reference ------------------------------------------


def cand(
    n: int, at: int, stage: int = 0, key: tuple[Any, ...] = ("k",), values: Sequence[str] = ()
) -> Candidate:
    row = {VALUES_COLUMN: tuple(values)} if values else {}
    return Candidate("corr", stage, key, at, f"e{n}", row=row)


def op(
    kind: CorrelationKind, threshold: int, span: int = 10, stages: int = 1
) -> CorrelationOperator:
    return CorrelationOperator(kind, span, threshold, stages, key_names=("who",))


def test_a_replayed_candidate_gives_the_same_hits_and_leaves_the_state_unchanged() -> None:
    operator = op(CorrelationKind.EVENT_COUNT, 2)
    state = operator.step(None, cand(1, 0), alerting=True).state
    step = operator.step(state, cand(2, 5), alerting=True)
    (hit,) = step.hits
    assert dict(hit.fields) == {"who": "k", "event_count": 2}
    again = operator.step(step.state, cand(2, 5), alerting=True)
    assert again.state == step.state
    assert again.hits == step.hits
    assert operator.step(again.state, cand(1, 0), alerting=True).hits == ()


def test_expire_drops_events_older_than_the_watermark_less_the_timespan() -> None:
    operator = op(CorrelationKind.EVENT_COUNT, 9)
    state: State | None = None
    for n, at in enumerate((0, 5, 10, 20)):
        state = operator.step(state, cand(n, at), alerting=True).state
    assert state is not None
    kept = operator.expire(state, 15)
    assert kept is not None and [e[0] for e in kept["ev"]] == [5, 10, 20]
    assert operator.expire(state, 31) is None


def test_warm_candidates_mark_an_episode_without_alerting() -> None:
    operator = op(CorrelationKind.EVENT_COUNT, 2)
    state = operator.step(None, cand(1, 0), alerting=False).state
    step = operator.step(state, cand(2, 1), alerting=False)
    assert step.hits == ()
    assert operator.step(step.state, cand(3, 2), alerting=True).hits == ()  # the same episode


_KINDS = st.sampled_from(list(CorrelationKind))


def _reference(
    kind: CorrelationKind, threshold: int, span: int, stages: int, events: Sequence[Candidate]
) -> list[int]:
    """The instants where the condition holds, by brute force over every millisecond."""
    by_id: dict[str, list[Any]] = {}
    for arrival, c in enumerate(events):
        found = by_id.setdefault(c.event_id, [c.time_ms, arrival, set(), set()])
        found[2].add(c.stage)
        found[3].update(c.row.get(VALUES_COLUMN) or ())
    times = [entry[0] for entry in by_id.values()]
    true = []
    for t in range(min(times), max(times) + span + 2):
        window = sorted(
            (e for e in by_id.values() if t - span <= e[0] <= t), key=lambda e: (e[0], e[1])
        )
        if kind is CorrelationKind.EVENT_COUNT:
            holds = len(window) >= threshold
        elif kind is CorrelationKind.VALUE_COUNT:
            holds = len(set().union(*(e[3] for e in window))) >= threshold
        elif kind is CorrelationKind.TEMPORAL:
            holds = len(set().union(*(e[2] for e in window))) >= threshold
        else:
            holds = any(
                all(stage in e[2] for stage, e in zip(range(stages), chosen, strict=True))
                for chosen in itertools.combinations(window, stages)
            )
        if holds:
            true.append(t)
    return true


def _runs(instants: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for t in instants:
        if runs and t == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[CorrelationOperator, list[Candidate]]:
    kind = draw(_KINDS)
    stages = draw(st.integers(1, 3)) if kind is not CorrelationKind.EVENT_COUNT else 1
    threshold = stages if kind is CorrelationKind.TEMPORAL_ORDERED else draw(st.integers(1, 3))
    if kind is CorrelationKind.TEMPORAL:
        threshold = min(threshold, stages)
    span = draw(st.integers(1, 12))
    count = draw(st.integers(1, 9))
    events = []
    for n in range(count):
        at = draw(st.integers(0, 30))
        for stage in sorted(draw(st.sets(st.integers(0, stages - 1), min_size=1))):
            values = draw(st.lists(st.sampled_from("abcd"), max_size=2))
            events.append(cand(n, at, stage, values=values))
    return CorrelationOperator(kind, span, threshold, stages, ("who",)), events


def _feed(
    operator: CorrelationOperator, events: Sequence[Candidate]
) -> tuple[State | None, list[StatefulHit]]:
    state: State | None = None
    hits: list[StatefulHit] = []
    for c in events:
        step = operator.step(state, c, alerting=True)
        state, hits = step.state, hits + list(step.hits)
    return state, hits


@settings(max_examples=400, deadline=None)
@given(_scenario())
def test_in_time_order_one_alert_per_run_of_the_condition(
    scenario: tuple[CorrelationOperator, list[Candidate]],
) -> None:
    operator, events = scenario
    events = sorted(events, key=lambda c: c.time_ms)  # stable: candidates of one event together
    reference = _runs(
        _reference(operator.kind, operator.threshold, operator.timespan_ms, operator.stages, events)
    )
    _state, hits = _feed(operator, events)
    assert len(hits) == len(reference)
    assert [h.trigger.time_ms for h in hits] == [first for first, _last in reference]


@settings(max_examples=300, deadline=None)
@given(_scenario(), st.randoms(use_true_random=False))
def test_in_any_order_every_run_is_alerted_and_replays_change_nothing(
    scenario: tuple[CorrelationOperator, list[Candidate]], rng: Any
) -> None:
    operator, events = scenario
    rng.shuffle(events)
    reference = _runs(
        _reference(operator.kind, operator.threshold, operator.timespan_ms, operator.stages, events)
    )
    state, hits = _feed(operator, events)
    assert state is not None
    assert len(reference) <= len(hits)
    assert all(any(a <= mark <= b for mark in state["pt"]) for a, b in reference)
    assert len({h.basis for h in hits}) == len(hits)
    for c in events:  # every candidate again: the same hits it gave, the state as it was
        again = operator.step(state, c, alerting=True)
        assert again.state == state
        assert {h.basis for h in again.hits} <= {h.basis for h in hits}


@settings(max_examples=300, deadline=None)
@given(_scenario(), st.randoms(use_true_random=False), st.integers(0, 8))
def test_expiry_at_the_watermark_changes_no_alert(
    scenario: tuple[CorrelationOperator, list[Candidate]], rng: Any, lateness: int
) -> None:
    """As the engine runs it: candidates older than the watermark (the newest time less the
    lateness) are late and skipped; the others are applied, with or without an expiry at the
    watermark after each. The alerts must be the same."""
    operator, events = scenario
    rng.shuffle(events)
    accepted, newest = [], None
    for c in events:
        if newest is None or c.time_ms >= newest - lateness:
            accepted.append(c)
            newest = c.time_ms if newest is None else max(newest, c.time_ms)
    _state, plain = _feed(operator, accepted)
    state: State | None = None
    swept: list[StatefulHit] = []
    newest = None
    for c in accepted:
        step = operator.step(state, c, alerting=True)
        swept += step.hits
        newest = c.time_ms if newest is None else max(newest, c.time_ms)
        state = operator.expire(step.state, newest - lateness) if step.state is not None else None
    assert [h.basis for h in swept] == [h.basis for h in plain]
