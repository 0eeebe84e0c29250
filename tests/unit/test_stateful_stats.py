"""ES|QL ``STATS ... BY`` on the stream: a window of the rule's lookback per group, on event time.

Scenario tests run our own rules (``tests/fixtures/stateful/stats_*.toml``, modeled on Elastic's
six STATS rules that read Kubernetes audit logs) through the production pipeline with the
in-process state; unit tests pin each aggregate and each parsing rule; a property checks the
incremental window against a computation from scratch. ``docs/esql-stats-semantics.md`` names the
test behind each of its rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.alert import Alert, SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.errors import DetectionError, QuerySyntaxError
from auditstream.detections.esql import ast
from auditstream.detections.esql.aggregates import AGGREGATES
from auditstream.detections.esql.columns import doc_values_order
from auditstream.detections.esql.parser import parse_query
from auditstream.detections.esql.rule import EsqlRule
from auditstream.detections.esql.temporal import truncate_ms, truncator
from auditstream.detections.event.decode import events_from_json
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.languages import compile_rule
from auditstream.detections.ruleset.loader import load_rule_file
from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.engine import META, StatefulEngine
from auditstream.detections.stateful.event_time import format_time_ms, parse_time_ms
from auditstream.detections.stateful.in_process import InProcessState
from auditstream.detections.stateful.rule import StatefulRule, selector_id
from auditstream.detections.stateful.stats import (
    MAX_WINDOW_EVENTS,
    AggSpec,
    StatsOperator,
    parse_lookback,
)
from auditstream.detections.values import Value
from tests.unit.esql_harness import audit_event, value

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stateful"
BASE = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
MINUTE = 60_000
TABLE: dict[str, Any] = {
    "rule_id": "5a7e0000-57a7-4000-8000-0000000000ff",
    "name": "inline",
    "description": "",
    "severity": "low",
    "risk_score": 1,
    "language": "esql",
    "type": "esql",
}


# --- helpers -------------------------------------------------------------------------------------


def stamp(seconds: float) -> str:
    """The API server's form: microseconds, Z."""
    moment = BASE + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit(
    n: int,
    *,
    at: float,
    user: str | None = "mallory",
    resource: str = "secrets",
    name: str = "s",
    namespace: str = "prod",
    verb: str = "get",
    ips: Sequence[str] = ("203.0.113.9",),
    agent: str = "curl/8.5",
    decision: str | None = "allow",
    code: int | None = 200,
    uri: str | None = None,
    level: str = "Metadata",
    impersonated: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": f"00000000-0000-4000-8000-{n:012d}",
        "stage": "ResponseComplete",
        "requestURI": uri or f"/api/v1/namespaces/{namespace}/{resource}/{name}",
        "verb": verb,
        "sourceIPs": list(ips),
        "userAgent": agent,
        "objectRef": {"resource": resource, "namespace": namespace, "name": name},
        "requestReceivedTimestamp": stamp(at),
        "stageTimestamp": stamp(at),
    }
    if user is not None:
        event["user"] = {"username": user, "groups": ["system:authenticated"]}
    if impersonated is not None:
        event["impersonatedUser"] = {"username": impersonated}
    if decision is not None:
        event["annotations"] = {"authorization.k8s.io/decision": decision}
    if code is not None:
        event["responseStatus"] = {"code": code}
    return event


def fixture_rule(name: str) -> StatefulRule:
    rule = load_rule_file(FIXTURES / f"{name}.toml")
    assert isinstance(rule, StatefulRule)
    return rule


class Stream:
    """Our rules through the production pipeline with the in-process state (as ``scan`` runs)."""

    def __init__(self, *rules: StatefulRule, lateness_ms: int = MINUTE) -> None:
        self.engine = StatefulEngine(rules, allowed_lateness_ms=lateness_ms)
        self.state = InProcessState(self.engine)
        self.detector = Detector(list(rules))
        self.pipeline = self._pipeline()
        self.line = 0

    def _pipeline(self) -> DetectionPipeline:
        return DetectionPipeline(self.detector, RecentAlerts(10_000), state=self.state)

    def send(self, *events: Mapping[str, Any]) -> list[Alert]:
        found: list[Alert] = []
        for event in events:
            self.line += 1
            source = SourceRef("file", file="test.jsonl", line=self.line)
            found += self.pipeline.process_message(orjson.dumps(event), source).alerts
        return found

    def groups(self) -> list[Any]:
        """Every group's state in the store (the partition's own entries left out)."""
        store = self.state.partition.store
        return [orjson.loads(raw) for key, raw in store.items() if not key.startswith(META)]

    def restart_alert_window(self) -> None:
        """A replica restart: the alert window is empty, the state is kept (restored)."""
        self.pipeline = self._pipeline()


def secret_reads(*spec: tuple[int, float, str]) -> list[dict[str, Any]]:
    return [audit(n, at=at, name=name) for n, at, name in spec]


# --- compile ---------------------------------------------------------------------------------------


def test_a_stats_rule_compiles_to_a_stateful_rule_with_an_esql_selector() -> None:
    rule = fixture_rule("stats_secret_burst")
    assert (rule.kind, rule.language) == ("stats", "esql")
    (selector,) = rule.selectors
    assert isinstance(selector.rule, EsqlRule)
    assert selector.rule.meta.rule_id == selector_id(rule.meta.rule_id, 0)
    assert rule.key_names == (
        "user.name",
        "kubernetes.audit.user.username",
        "source.ip",
        "user_agent.original",
    )
    assert rule.details["window_ms"] == 6 * MINUTE
    assert isinstance(rule.operator, StatsOperator)
    assert rule.operator.columns == (
        "user.name",
        "kubernetes.audit.user.username",
        "source.ip",
        "user_agent.original",
        "Esql.unique_credentials",
        "Esql.secrets_names",
        "Esql.namespaces",
        "Esql.outcome",
    )


def test_the_selector_hit_carries_every_value_the_stats_reads() -> None:
    rule = fixture_rule("stats_secret_burst")
    detector = Detector([rule])
    (event,) = events_from_json(audit(1, at=0, name="db-password"))
    hits, candidates = detector.detect_all(event)
    assert hits == []
    (candidate,) = candidates
    assert candidate.key == ("mallory", "mallory", "203.0.113.9", "curl/8.5")
    assert sorted(candidate.row.values(), key=str) == ["allow", "db-password", "prod"]
    assert candidate.event_id == "00000000-0000-4000-8000-000000000001/ResponseComplete"
    assert candidate.time_ms == parse_time_ms(stamp(0))


def test_lookback_is_the_from_field_and_defaults_to_kibanas_now_6m() -> None:
    assert parse_lookback("now-11m") == 11 * MINUTE
    assert parse_lookback("now-5d") == 5 * 24 * 60 * MINUTE
    assert parse_lookback(None) == 6 * MINUTE
    assert fixture_rule("stats_anonymous_enumeration").details["window"] == "now-6m"
    for bad in ("now-1M", "now-1y", "now-6m/m", "now", "now-0m"):
        with pytest.raises(DetectionError):
            parse_lookback(bad)


# --- thresholds and the window edge ----------------------------------------------------------------


def test_three_distinct_secrets_cross_the_threshold_once() -> None:
    stream = Stream(fixture_rule("stats_secret_burst"))
    assert stream.send(*secret_reads((1, 0, "a"), (2, 60, "b"))) == []
    (alert,) = stream.send(audit(3, at=120, name="c"))
    assert alert.fields["Esql.unique_credentials"] == 3
    assert alert.fields["Esql.secrets_names"] == ("a", "b", "c")
    assert alert.fields["Esql.namespaces"] == "prod"  # one value is a single value
    assert alert.fields["Esql.outcome"] == "allow"
    assert alert.fields["source.ip"] == "203.0.113.9"
    assert alert.event.audit_id == "00000000-0000-4000-8000-000000000003"
    assert alert.fields["events"] == tuple(
        f"00000000-0000-4000-8000-00000000000{n}/ResponseComplete" for n in (1, 2, 3)
    )
    # the same row is not alerted again while the condition holds
    assert stream.send(audit(4, at=150, name="d"), audit(5, at=160, name="a")) == []


def test_two_distinct_secrets_do_not_cross_it() -> None:
    stream = Stream(fixture_rule("stats_secret_burst"))
    reads = secret_reads((1, 0, "a"), (2, 10, "b"), (3, 20, "a"), (4, 30, "b"), (5, 40, "a"))
    assert stream.send(*reads) == []


def test_a_different_group_does_not_add_up() -> None:
    stream = Stream(fixture_rule("stats_secret_burst"))
    other = audit(3, at=20, name="c", agent="kubectl/1.31")  # user_agent.original is in the BY
    assert stream.send(*secret_reads((1, 0, "a"), (2, 10, "b")), other) == []


def test_an_event_exactly_one_lookback_before_is_inside_the_window() -> None:
    stream = Stream(fixture_rule("stats_secret_burst"))
    alerts = stream.send(*secret_reads((1, 0, "a"), (2, 180, "b"), (3, 360, "c")))
    assert [a.fields["Esql.unique_credentials"] for a in alerts] == [3]


def test_an_event_one_millisecond_older_is_outside_it() -> None:
    stream = Stream(fixture_rule("stats_secret_burst"))
    assert stream.send(*secret_reads((1, 0, "a"), (2, 180, "b"), (3, 360.001, "c"))) == []


def test_helm_release_secrets_and_loopback_callers_never_count() -> None:
    stream = Stream(fixture_rule("stats_secret_burst"))
    helm = audit(3, at=20, name="sh.helm.release.v1.x.v1")
    loopback = audit(4, at=30, name="d", ips=("127.0.0.1",))
    assert stream.send(*secret_reads((1, 0, "a"), (2, 10, "b")), helm, loopback) == []


# --- late and replayed events ----------------------------------------------------------------------


def test_a_late_event_within_the_lateness_completes_a_window() -> None:
    stream = Stream(fixture_rule("stats_secret_burst"), lateness_ms=MINUTE)
    assert stream.send(*secret_reads((1, 0, "a"), (2, 120, "b"))) == []
    (alert,) = stream.send(audit(3, at=90, name="c"))  # 30 s late
    assert alert.event.audit_id.endswith("000000000003")  # the late event made it true
    assert alert.fields["Esql.secrets_names"] == ("a", "c", "b")  # event-time order
    assert stream.state.partition.late == 0


def test_a_late_event_alerts_for_a_window_the_group_has_left() -> None:
    """a (0), b (60), then c (420) slides a out; d (90), late, belongs with a and b."""
    stream = Stream(fixture_rule("stats_secret_burst"), lateness_ms=10 * MINUTE)
    assert stream.send(*secret_reads((1, 0, "a"), (2, 60, "b"), (3, 420, "c"))) == []
    (alert,) = stream.send(audit(4, at=90, name="d"))
    assert alert.fields["Esql.secrets_names"] == ("a", "b", "d")


def test_an_event_later_than_the_lateness_is_counted_not_applied() -> None:
    stream = Stream(fixture_rule("stats_secret_burst"), lateness_ms=MINUTE)
    assert stream.send(*secret_reads((1, 0, "a"), (2, 200, "b"))) == []
    assert stream.send(audit(3, at=100, name="c")) == []  # 100 s late
    assert stream.state.partition.late == 1


def test_a_replayed_event_is_not_counted_twice() -> None:
    stream = Stream(fixture_rule("stats_secret_burst"))
    reads = secret_reads((1, 0, "a"), (2, 10, "b"))
    stream.send(*reads)
    stream.restart_alert_window()
    assert stream.send(*reads) == []  # a and b again: still two secrets
    (state,) = stream.groups()
    assert [entry[0][-20:] for entry in state["ev"]] == [
        "001/ResponseComplete",
        "002/ResponseComplete",
    ]


def test_a_replayed_trigger_gives_the_same_alert_id() -> None:
    stream = Stream(fixture_rule("stats_secret_burst"))
    reads = secret_reads((1, 0, "a"), (2, 10, "b"), (3, 20, "c"))
    (first,) = stream.send(*reads)
    assert stream.send(reads[2]) == []  # the window of recent alerts knows it: a repeat
    stream.restart_alert_window()
    (again,) = stream.send(reads[2])
    assert again.alert_id == first.alert_id
    assert again.fields == first.fields


# --- groups --------------------------------------------------------------------------------------


def _probes(start: int, ips: Sequence[str], *, at: float = 0) -> list[dict[str, Any]]:
    """Six anonymous requests to six URIs over four resources, one of them refused."""
    shape = [
        ("pods", "allow", 200),
        ("secrets", "forbid", 403),
        ("nodes", None, 404),
        ("configmaps", None, 200),
        ("pods", None, 401),
        ("services", None, 500),
    ]
    return [
        audit(
            start + i,
            at=at + i,
            user="system:anonymous",
            resource=resource,
            name=f"n{i}",
            decision=decision,
            code=code,
            ips=ips,
            level="Request",
        )
        for i, (resource, decision, code) in enumerate(shape)
    ]


def test_case_and_sum_count_each_outcome_as_the_anonymous_rule_does() -> None:
    stream = Stream(fixture_rule("stats_anonymous_enumeration"))
    alerts = stream.send(*_probes(1, ("198.51.100.4",)))
    (alert,) = alerts
    fields = alert.fields
    assert fields["Esql.document_count"] == 6
    assert fields["Esql.authz_allow_count"] == 1
    assert fields["Esql.authz_forbid_count"] == 1
    assert fields["Esql.status_fail_count"] == 1  # 401 without a decision
    assert fields["Esql.success_count"] == 1  # 200 without a decision
    assert fields["Esql.not_found_count"] == 1
    assert fields["Esql.uri_count_distinct"] == 6
    assert fields["Esql.resource_count_distinct"] == 5
    assert fields["Esql.outcome_values"] == (
        "authz_allow",
        "authz_forbid",
        "not_found",
        "success",
        "authn_authz_failed",
        "other_error",
    )
    assert fields["kubernetes.audit.sourceIPs"] == "198.51.100.4"
    assert alert.event.audit_id.endswith("000000000006")  # the sixth URI made it true


def test_without_a_refusal_the_anonymous_rule_stays_quiet() -> None:
    stream = Stream(fixture_rule("stats_anonymous_enumeration"))
    quiet = [audit(n, at=n, user=None, resource=f"r{n % 5}", name=f"n{n}") for n in range(8)]
    assert stream.send(*quiet) == []


def test_a_multi_valued_by_puts_the_event_in_a_group_per_value() -> None:
    stream = Stream(fixture_rule("stats_anonymous_enumeration"))
    alerts = stream.send(*_probes(1, ("198.51.100.4", "10.0.0.8")))
    assert sorted(str(a.fields["kubernetes.audit.sourceIPs"]) for a in alerts) == [
        "10.0.0.8",
        "198.51.100.4",
    ]
    assert {a.fields["Esql.source_ips_values"] for a in alerts} == {("198.51.100.4", "10.0.0.8")}
    assert len({a.alert_id for a in alerts}) == 2


def test_several_multi_valued_by_columns_give_every_combination_once() -> None:
    rule = compile_rule(
        {
            **TABLE,
            "query": "FROM logs-kubernetes.audit_logs-* | STATS n = COUNT(*), "
            "ips = VALUES(kubernetes.audit.sourceIPs) "
            "BY kubernetes.audit.sourceIPs, kubernetes.audit.user.groups",
        },
        "<test>",
    )
    assert isinstance(rule, StatefulRule)
    event = audit(1, at=0, ips=("192.0.2.1", "192.0.2.2", "192.0.2.1"))
    event["user"]["groups"] = ["devs", "ops"]
    (decoded,) = events_from_json(event)
    _, candidates = Detector([rule]).detect_all(decoded)
    assert [c.key for c in candidates] == [
        ("192.0.2.1", "devs"),
        ("192.0.2.1", "ops"),
        ("192.0.2.2", "devs"),
        ("192.0.2.2", "ops"),
    ]
    assert {c.row["0"] for c in candidates} == {("192.0.2.1", "192.0.2.2", "192.0.2.1")}


def test_a_field_reaches_an_aggregate_in_its_doc_values_order() -> None:
    """``source.ip`` (ip: sorted by address bytes, deduplicated) against ``sourceIPs`` (text:
    read from _source, as given)."""
    rule = compile_rule(
        {
            **TABLE,
            "query": "FROM logs-kubernetes.audit_logs-* | STATS ips = VALUES(source.ip), "
            "n_ip = COUNT(source.ip), raw = VALUES(kubernetes.audit.sourceIPs), "
            "n_raw = COUNT(kubernetes.audit.sourceIPs)",
        },
        "<test>",
    )
    assert isinstance(rule, StatefulRule) and isinstance(rule.operator, StatsOperator)
    (decoded,) = events_from_json(audit(1, at=0, ips=("10.0.0.9", "10.0.0.10", "10.0.0.9")))
    ((_, (candidate,)),) = [Detector([rule]).detect_all(decoded)]
    events = [
        [
            candidate.event_id,
            candidate.time_ms,
            [candidate.row[str(i)] for i in range(rule.operator.inputs)],
        ]
    ]
    assert rule.operator.result(events, (), candidate.time_ms) == {
        "ips": ("10.0.0.9", "10.0.0.10"),
        "n_ip": 2,
        "raw": ("10.0.0.9", "10.0.0.10"),
        "n_raw": 3,
    }


def test_doc_values_order_by_mapping_type() -> None:
    keyword, long, text = (doc_values_order(k) for k in ("keyword", "long", "text"))
    assert keyword is not None and long is not None and text is None
    assert keyword(("b", "a", "b")) == ("a", "b")
    assert keyword(("z", "z")) == "z"
    assert long((3, 1, 3)) == (1, 3, 3)
    assert keyword("single") == "single"


def test_a_null_by_value_is_a_group_of_its_own() -> None:
    stream = Stream(fixture_rule("stats_first_seen"))
    agent = "system:serviceaccount:agent:controller"
    (alert,) = stream.send(audit(1, at=0, user=agent, impersonated=None))
    assert alert.fields["kubernetes.audit.impersonatedUser.username"] is None
    (other,) = stream.send(audit(2, at=10, user=agent, impersonated="bob"))
    assert other.fields["kubernetes.audit.impersonatedUser.username"] == "bob"
    assert other.fields["Esql.event_count"] == 1


def test_date_trunc_in_the_by_keeps_minutes_apart() -> None:
    stream = Stream(fixture_rule("stats_setup_recon"))
    reads = [
        audit(1, at=50, resource="pods", verb="list"),
        audit(2, at=55, resource="nodes", verb="list"),
        audit(3, at=65, resource="roles", verb="list"),  # the next minute: another group
    ]
    assert stream.send(*reads) == []
    (alert,) = stream.send(audit(4, at=70, resource="pods"), audit(5, at=80, resource="nodes"))
    assert alert.fields["Esql.time_interval"] == "2025-01-15T10:01:00.000Z"
    assert alert.fields["Esql.enumerated_resources"] == ("roles", "pods", "nodes")
    assert alert.fields["user.name"] == "mallory"


def test_the_multi_vendor_rule_loads_but_kubernetes_alone_never_meets_two_vendors() -> None:
    rule = fixture_rule("stats_multi_vendor")
    assert rule.meta.index == ("logs-aws.cloudtrail-*", "logs-kubernetes.audit_logs-*")
    stream = Stream(rule)
    reads = [audit(n, at=n, name=f"s{n}") for n in range(10)]
    assert stream.send(*reads) == []
    (state,) = stream.groups()
    assert len(state["ev"]) == 10


# --- NOW() and the run of a condition -------------------------------------------------------------


def test_now_is_the_event_time_so_first_seen_alerts_once_then_ages_out() -> None:
    stream = Stream(fixture_rule("stats_first_seen"))
    agent = "system:serviceaccount:agent:controller"
    (first,) = stream.send(audit(1, at=0, user=agent, impersonated="bob", verb="list"))
    assert first.fields["Esql.timestamp_first_seen"] == "2025-01-15T10:00:00.000Z"
    assert first.fields["Esql.timestamp_last_seen"] == "2025-01-15T10:00:00.000Z"
    assert stream.send(audit(2, at=300, user=agent, impersonated="bob")) == []  # same run
    assert stream.send(audit(3, at=600, user=agent, impersonated="bob")) == []  # 10 min: old
    later = 5 * 24 * 3600 + 700  # the first events have left the 5-day window
    (again,) = stream.send(audit(4, at=later, user=agent, impersonated="bob"))
    assert again.fields["Esql.event_count"] == 1
    assert again.alert_id != first.alert_id


def test_a_condition_that_turns_false_then_true_again_alerts_again() -> None:
    stream = Stream(fixture_rule("stats_secret_burst"))
    (first,) = stream.send(*secret_reads((1, 0, "a"), (2, 10, "b"), (3, 20, "c")))
    assert stream.send(audit(4, at=400, name="d")) == []  # a, b, c left: one secret, reset
    (second,) = stream.send(*secret_reads((5, 410, "e"), (6, 420, "f")))
    assert second.fields["Esql.secrets_names"] == ("d", "e", "f")
    assert second.alert_id != first.alert_id


def test_warm_history_builds_the_run_without_alerting() -> None:
    rule = fixture_rule("stats_secret_burst")
    stream = Stream(rule)
    stream.state.warming = True
    assert stream.send(*secret_reads((1, 0, "a"), (2, 10, "b"), (3, 20, "c"))) == []
    stream.state.warming = False
    assert stream.send(audit(4, at=30, name="d")) == []  # the run was under way already


# --- the operator on its own ------------------------------------------------------------------------


def _count_operator(window_ms: int = 10_000, threshold: int = 2) -> StatsOperator:
    rule = compile_rule(
        {
            **TABLE,
            "from": f"now-{window_ms // 1000}s",
            "query": "FROM logs-kubernetes.audit_logs-* | STATS n = COUNT(*), "
            "names = VALUES(kubernetes.audit.objectRef.name) BY kubernetes.audit.verb "
            f"| WHERE n >= {threshold}",
        },
        "<test>",
    )
    assert isinstance(rule, StatefulRule) and isinstance(rule.operator, StatsOperator)
    return rule.operator


def _candidate(event: str, time_ms: int, name: str | None = None) -> Candidate:
    return Candidate("r", 0, ("get",), time_ms, event, {"0": name})


def _run(operator: StatsOperator, candidates: Sequence[Candidate]) -> tuple[Any, list[Any]]:
    state: Any = None
    hits: list[Any] = []
    for candidate in candidates:
        step = operator.step(state, candidate, alerting=True)
        state = orjson.loads(orjson.dumps(step.state))  # as the store keeps it
        hits += step.hits
    return state, hits


def test_stepping_a_held_event_again_leaves_the_state_and_gives_the_same_hits() -> None:
    operator = _count_operator()
    state, hits = _run(operator, [_candidate("a", 0, "x"), _candidate("b", 1, "y")])
    (hit,) = hits
    for replay in (_candidate("a", 0, "x"), _candidate("b", 1, "y")):
        step = operator.step(state, replay, alerting=True)
        assert step.state == state
        expected = (hit.basis,) if replay.event_id == "b" else ()
        assert tuple(h.basis for h in step.hits) == expected
    (again,) = operator.step(state, _candidate("b", 1, "y"), alerting=True).hits
    assert (again.fields, again.events) == (hit.fields, hit.events)


def test_expire_drops_what_no_window_can_hold_and_then_the_group() -> None:
    operator = _count_operator(window_ms=10_000)
    state, _ = _run(operator, [_candidate("a", 0), _candidate("b", 5_000), _candidate("c", 9_000)])
    assert operator.expire(state, 10_000) == state  # cutoff 0: all still held
    kept = operator.expire(state, 15_001)
    assert kept is not None and [e[0] for e in kept["ev"]] == ["c"]
    assert kept["al"] == []  # the alert's event (b) is gone: nothing left to replay
    assert operator.expire(state, 19_001) is None


def test_retention_is_the_window() -> None:
    assert _count_operator(window_ms=30_000).retention_ms == 30_000


def test_a_late_event_during_a_run_that_has_alerted_gives_nothing() -> None:
    operator = _count_operator(window_ms=10_000)
    _, hits = _run(operator, [_candidate("a", 0), _candidate("b", 2_000), _candidate("c", 1_000)])
    assert [h.trigger.event_id for h in hits] == ["b"]


def test_after_the_window_empties_a_new_run_starts() -> None:
    operator = _count_operator(window_ms=10_000)
    _, hits = _run(
        operator,
        [
            _candidate("a", 0),
            _candidate("b", 1_000),  # alert
            _candidate("c", 20_000),  # a and b gone: one event, false
            _candidate("d", 21_000),  # true again: a new run
        ],
    )
    assert [h.trigger.event_id for h in hits] == ["b", "d"]


# --- aggregates (unit) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows", "expected"),
    [
        ("COUNT", [1, None, ("a", "b", "a")], 4),  # values, multi-values each, nulls skipped
        ("COUNT", [None, None], 0),
        ("COUNT_DISTINCT", [("a", "b"), "a", None, "c"], 3),
        ("COUNT_DISTINCT", [True, 1, 1.0], 2),  # a boolean is not the number 1
        ("COUNT_DISTINCT", [], 0),
        ("VALUES", ["b", ("a", "b"), "c", None], ("b", "a", "c")),  # first met first
        ("VALUES", ["x", "x"], "x"),
        ("VALUES", [None], None),
        ("MIN", ["b", ("a", "c")], "a"),
        ("MAX", [3, (10, -1), None], 10),
        ("MIN", [None], None),
        ("MAX", [False, True], True),
        ("SUM", [1, (2, 3), None], 6),
        ("SUM", [1, 0.5], 1.5),
        ("SUM", [None], None),
        ("SUM", [2**62, 2**62], None),  # long overflow: null, as Math.addExact's warning
        ("SUM", [2**62, -(2**62)], 0),
    ],
)
def test_aggregate_values(name: str, rows: list[Value], expected: Value) -> None:
    assert AGGREGATES[name].fold(rows) == expected


def test_the_docs_list_exactly_the_aggregates_of_the_table() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "esql-stats-semantics.md").read_text()
    line = doc.split("\n- Aggregates: ", 1)[1].split(". ", 1)[0]
    assert set(re.findall(r"`([A-Z_]+)`", line)) == set(AGGREGATES)


def test_an_aggregate_where_filters_its_rows_only() -> None:
    operator = _where_operator()
    events = [["a", 0, [True, "get"]], ["b", 1, [False, "list"]], ["c", 2, [None, None]]]
    assert operator.result(events, (), 2) == {"reads": 1, "all": 2}


def _where_operator() -> StatsOperator:
    rule = compile_rule(
        {
            **TABLE,
            "query": "FROM logs-kubernetes.audit_logs-* | STATS reads = COUNT(*) "
            'WHERE kubernetes.audit.verb == "get", all = COUNT(kubernetes.audit.verb)',
        },
        "<test>",
    )
    assert isinstance(rule, StatefulRule) and isinstance(rule.operator, StatsOperator)
    (reads, everything) = rule.operator.aggregates
    assert (reads.input, reads.condition, everything.input) == (None, 0, 1)
    return rule.operator


def test_columns_the_rightmost_wins_and_a_by_hides_an_aggregate_of_its_name() -> None:
    rule = compile_rule(
        {
            **TABLE,
            "query": "FROM logs-kubernetes.audit_logs-* | STATS a = COUNT(*), b = COUNT(*), "
            "a = MAX(kubernetes.audit.verb), kubernetes.audit.verb = COUNT(*) "
            "BY kubernetes.audit.verb",
        },
        "<test>",
    )
    assert isinstance(rule, StatefulRule)
    assert rule.operator.columns == ("b", "a", "kubernetes.audit.verb")  # type: ignore[attr-defined]


def test_unnamed_columns_are_named_by_their_text() -> None:
    (stats,) = parse_query(
        "FROM logs-* | STATS COUNT(*), COUNT_DISTINCT(user.name, 100) BY DATE_TRUNC(1 hour, @timestamp)"
    ).commands
    assert isinstance(stats, ast.Stats)
    assert [a.name for a in stats.aggregates] == ["COUNT(*)", "COUNT_DISTINCT(user.name, 100)"]
    assert stats.aggregates[0].call == ast.Call("COUNT", ())
    assert [name for name, _ in stats.groups] == ["DATE_TRUNC(1 hour, @timestamp)"]


def test_dates_are_compared_as_times_and_printed_as_esql_prints_them() -> None:
    rule = compile_rule(
        {
            **TABLE,
            "from": "now-1h",
            "query": "FROM logs-kubernetes.audit_logs-* | STATS first = MIN(@timestamp), "
            "last = MAX(@timestamp), seen = VALUES(@timestamp) | WHERE last >= NOW() - 1 minute",
        },
        "<test>",
    )
    assert isinstance(rule, StatefulRule) and isinstance(rule.operator, StatsOperator)
    # +01:00 is earlier than the Z time although it sorts after it as text
    early, late = parse_time_ms("2025-01-15T10:30:00.5+01:00"), parse_time_ms(stamp(0))
    assert early is not None and late is not None
    events = [["a", early, [late]], ["b", late, [early]]]  # values out of time order on purpose
    assert rule.operator.result(events, (), late) == {
        "first": "2025-01-15T09:30:00.500Z",
        "last": "2025-01-15T10:00:00.000Z",
        "seen": ("2025-01-15T10:00:00.000Z", "2025-01-15T09:30:00.500Z"),
    }
    assert rule.operator.result(events, (), late + 60_001) is None  # NOW() - 1 minute > last


def test_date_trunc_rounds_like_elasticsearch() -> None:
    at = parse_time_ms("2025-01-15T10:37:42.123Z")  # a Wednesday
    assert at is not None

    def trunc(amount: int, unit: str) -> str:
        return format_time_ms(truncate_ms(at, truncator(ast.TimeSpan(amount, unit))))

    assert trunc(1, "MINUTE") == "2025-01-15T10:37:00.000Z"
    assert trunc(15, "MINUTES") == "2025-01-15T10:30:00.000Z"
    assert trunc(1, "DAY") == "2025-01-15T00:00:00.000Z"
    assert trunc(1, "WEEK") == "2025-01-13T00:00:00.000Z"  # Monday
    assert trunc(7, "DAYS") == "2025-01-13T00:00:00.000Z"
    assert trunc(168, "HOURS") == "2025-01-09T00:00:00.000Z"  # since the epoch (a Thursday)


def test_date_trunc_and_date_arithmetic_per_event_keep_a_date_as_text() -> None:
    """Per event a date is the text the document holds; both give ES|QL's printed form."""
    event = audit_event(stageTimestamp="2025-01-15T10:37:42.123456Z")
    assert value("DATE_TRUNC(1 minute, @timestamp)", event) == "2025-01-15T10:37:00.000Z"
    assert value("@timestamp - 90 seconds", event) == "2025-01-15T10:36:12.123Z"
    assert value("1 hour + @timestamp", event) == "2025-01-15T11:37:42.123Z"
    assert value("DATE_TRUNC(1 hour, kubernetes.audit.verb)", event) is None  # not a date
    assert value("DATE_TRUNC(1 hour, kubernetes.audit.sourceIPs)", event) is None


# --- what is refused, at load, with a position ------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("FROM logs-* | WHERE COUNT(*) > 1", "aggregate function COUNT is only allowed in STATS"),
        ("FROM logs-* | STATS n = COUNT(*) + 1", "STATS takes aggregate functions"),
        ("FROM logs-* | STATS n = COUNT(MAX(a))", "aggregate function MAX is only allowed"),
        ("FROM logs-* | STATS", "STATS needs an aggregate or a BY"),
        ("FROM logs-* | STATS n = AVG(a)", "unknown function AVG"),
    ],
)
def test_parse_errors(query: str, message: str) -> None:
    with pytest.raises(QuerySyntaxError, match=message) as caught:
        parse_query(query)
    assert caught.value.line is not None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("| STATS n = COUNT(*) | STATS m = COUNT(*)", "a second STATS is not supported"),
        ("| WHERE @timestamp > NOW() - 1 hour", r"NOW\(\) is supported after STATS only"),
        ("| STATS n = COUNT(*) | WHERE n > NOW() - 1 month", "months, quarters and years"),
        ("| STATS n = COUNT(*) | WHERE n + 1 > 2", "only between a date and a time span"),
        ("| EVAL x = DATE_TRUNC(1 month, @timestamp) | STATS COUNT(*) BY x", "months"),
        ("| STATS n = SUM(@timestamp)", "SUM of a date is not supported"),
        ("| STATS n = MIN(source.ip)", "MIN of an ip field is not supported"),
        ("| STATS n = COUNT_DISTINCT(user.name, x)", "constant whole number"),
        ("| STATS n = COUNT(*) | WHERE user.name == 1", r"Unknown column \[user.name\]"),
        ('| STATS n = COUNT(*) | WHERE KQL("a:b")', "KQL"),
        ("| STATS n = COUNT(*) BY 5 minutes", "a time span is supported only"),
    ],
)
def test_compile_errors(query: str, message: str) -> None:
    table = {**TABLE, "query": "FROM logs-kubernetes.audit_logs-* " + query}
    with pytest.raises(DetectionError, match=message):
        compile_rule(table, "<test>")


# --- the window, incrementally vs from scratch -----------------------------------------------------

_NAMES = st.sampled_from(["a", "b", "c", None])
_EVENTS = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 60_000), _NAMES), min_size=1, max_size=40
)


def _operator_for_property() -> StatsOperator:
    spec = [
        AggSpec("rows", AGGREGATES["COUNT"].fold, None),
        AggSpec("count", AGGREGATES["COUNT"].fold, 0),
        AggSpec("distinct", AGGREGATES["COUNT_DISTINCT"].fold, 0),
        AggSpec("values", AGGREGATES["VALUES"].fold, 0),
        AggSpec("min", AGGREGATES["MIN"].fold, 0),
        AggSpec("max", AGGREGATES["MAX"].fold, 0),
    ]
    columns = ("rows", "count", "distinct", "values", "min", "max")
    return StatsOperator(20_000, 1, tuple(spec), (), (), columns)


def _from_scratch(held: Mapping[str, tuple[int, str | None]], now: int) -> dict[str, Value]:
    inside = sorted(
        ((t, event, name) for event, (t, name) in held.items() if now - 20_000 <= t <= now)
    )
    names = [name for _, _, name in inside if name is not None]
    distinct = list(dict.fromkeys(names))
    return {
        "rows": len(inside),
        "count": len(names),
        "distinct": len(distinct),
        "values": None if not distinct else distinct[0] if len(distinct) == 1 else tuple(distinct),
        "min": min(names, default=None),
        "max": max(names, default=None),
    }


@settings(max_examples=200, deadline=None)
@given(_EVENTS, st.integers(0, 30_000))
def test_the_incremental_window_equals_a_computation_from_scratch(
    events: list[tuple[int, int, str | None]], lateness: int
) -> None:
    """Replays (repeated ids) and late events, applied in arrival order through the engine's
    lateness rule and expiry: at every step the state's window equals the window computed from
    every accepted event, and nothing a future window may need has been dropped."""
    operator = _operator_for_property()
    state: Any = None
    accepted: dict[str, tuple[int, str | None]] = {}
    newest = -(2**62)
    for n, generated_ms, generated_name in events:
        event_id = f"e{n}"
        # a replay carries the same event as the first time
        time_ms, name = accepted.get(event_id, (generated_ms, generated_name))
        if time_ms < newest - lateness:
            continue  # the engine counts it late and never applies it
        newest = max(newest, time_ms)
        candidate = Candidate("r", 0, (), time_ms, event_id, {"0": name})
        step = operator.step(state, candidate, alerting=True)
        assert step.state is not None
        if event_id in accepted:  # a replay of an event still held changes nothing
            assert step.state == state
        state = orjson.loads(orjson.dumps(step.state))
        accepted.setdefault(event_id, (time_ms, name))
        kept = operator.expire(state, newest - lateness)
        assert kept is not None
        state = kept
        for now in (time_ms, newest):
            assert operator.result(state["ev"], (), now) == _from_scratch(accepted, now)


def test_a_group_holds_at_most_its_newest_max_window_events() -> None:
    operator = _count_operator(window_ms=3_600_000, threshold=10_000_000)
    count = MAX_WINDOW_EVENTS + 50
    state, _ = _run(operator, [_candidate(f"e{n:05d}", n) for n in range(count)])
    held = [entry[0] for entry in state["ev"]]
    assert len(held) == MAX_WINDOW_EVENTS
    assert held[0] == f"e{count - MAX_WINDOW_EVENTS:05d}" and held[-1] == f"e{count - 1:05d}"
    older = operator.step(state, _candidate("old", 10), alerting=True)  # older than all held
    assert older.state == state and older.hits == ()
