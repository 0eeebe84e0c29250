"""Every input shape decodes to the same AuditEvent; ES|QL names resolve the same on each."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.errors import MalformedEvent
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.decode import decode_message, events_from_json
from auditstream.detections.event.fields import compile_field
from devtools.traffic.exec_uris import CLIENTS, Client
from devtools.traffic.synthetic import as_ecs, as_event_list, as_wrapped, exec_audit_events

START = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
Event = dict[str, Any]

ONE_EVENT_SHAPES: dict[str, tuple[str, Callable[[Event], object]]] = {
    "raw": ("event", lambda e: e),
    "event_list": ("event_list", lambda e: as_event_list([e])),
    "array": ("array", lambda e: [e]),
    "ecs_nested": ("ecs", as_ecs),
    "ecs_flattened": ("ecs", lambda e: as_ecs(e, layout="flattened")),
    "ecs_mixed": ("ecs", lambda e: as_ecs(e, layout="mixed")),
    "wrapped_log": ("wrapped", lambda e: as_wrapped(e, "log")),
    "wrapped_message": ("wrapped", lambda e: as_wrapped(e, "message")),
    "wrapped_ecs": ("wrapped", lambda e: as_wrapped(as_ecs(e, layout="flattened"))),
    "wrapped_array": ("wrapped", lambda e: as_wrapped([e], "message")),
    "array_of_wrapped": ("array", lambda e: [as_wrapped(e)]),
    "array_of_ecs": ("array", lambda e: [as_ecs(e)]),
}

FIELDS = (
    "kubernetes.audit.auditID",
    "kubernetes.audit.stage",
    "kubernetes.audit.verb",
    "kubernetes.audit.requestURI",
    "kubernetes.audit.objectRef.subresource",
    "kubernetes.audit.objectRef.name",
    "kubernetes.audit.user.username",
    "kubernetes.audit.user.groups",
    "kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name",
    "kubernetes.audit.impersonatedUser.username",
    "kubernetes.audit.sourceIPs",
    "kubernetes.audit.userAgent",
    "kubernetes.audit.responseStatus.code",
    "kubernetes.audit.annotations.authorization.k8s.io/decision",
    "kubernetes.audit.annotations.authorization_k8s_io/decision",
    "kubernetes.audit.annotations.authorization_k8s_io/reason",
    "@timestamp",
    "source.ip",
    "user_agent.original",
    "user.name",
    "kubernetes.audit.nope",
)
GETTERS = {name: compile_field(name) for name in FIELDS}


def _exec_event(client: Client = "rancher", stage: int = 1) -> Event:
    events = exec_audit_events(
        command=["sh", "-c", "id"], client=client, rng=random.Random(5), start=START
    )
    return events[stage]


def _decode(obj: object) -> Sequence[AuditEvent]:
    return decode_message(json.dumps(obj).encode())


def _typed(event: AuditEvent) -> tuple[object, ...]:
    return (
        event.audit_id,
        event.stage,
        event.verb,
        event.request_uri,
        event.subresource,
        event.resource,
        event.namespace,
        event.name,
        event.username,
        event.user_agent,
        event.source_ips,
        event.timestamp,
        event.decision,
        event.response_code,
    )


@pytest.mark.parametrize("shape_name", sorted(ONE_EVENT_SHAPES))
def test_every_shape_decodes_to_the_same_event(shape_name: str) -> None:
    original = _exec_event()
    expected_shape, build = ONE_EVENT_SHAPES[shape_name]
    [event] = _decode(build(original))
    assert event.shape == expected_shape
    assert event.audit == original
    [raw] = _decode(original)
    assert _typed(event) == _typed(raw)
    assert {n: g(event) for n, g in GETTERS.items()} == {n: g(raw) for n, g in GETTERS.items()}


def test_typed_properties_of_a_raw_exec_event() -> None:
    [event] = _decode(_exec_event())
    assert event.shape == "event" and event.document is None
    assert (event.stage, event.verb, event.subresource) == ("ResponseStarted", "get", "exec")
    assert event.decision == "allow" and event.response_code == 101
    assert event.source_ips == ("192.0.2.40",)


def test_ecs_document_keeps_everything_outside_kubernetes_audit() -> None:
    doc = as_ecs(_exec_event())
    doc["kubernetes"]["pod"] = {"name": "shipper"}
    [event] = _decode(doc)
    assert event.document is not None
    assert event.document["kubernetes"] == {"pod": {"name": "shipper"}}
    assert event.document["event"]["dataset"] == "kubernetes.audit_logs"
    assert "annotations" in event.audit
    assert "authorization.k8s.io/decision" in event.audit["annotations"]
    assert compile_field("event.dataset")(event) == "kubernetes.audit_logs"


def test_event_list_decodes_all_items_and_restores_type_meta() -> None:
    events = exec_audit_events(command=["ls"], rng=random.Random(2), start=START)
    decoded = _decode(as_event_list(events))
    assert [e.audit for e in decoded] == events
    assert {e.shape for e in decoded} == {"event_list"}


def test_empty_event_list_and_empty_array_give_no_events() -> None:
    assert list(_decode({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []})) == []
    assert list(_decode([])) == []


# --------------------------------------------------------------------------- compile_field


def _raw_event(**overrides: Any) -> AuditEvent:
    audit: Event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": "a-1",
        "stage": "ResponseComplete",
        "verb": "create",
        "requestURI": "/api/v1/namespaces/d/pods/p/exec?command=id",
        "user": {"username": "bob", "groups": ["system:authenticated"]},
        "sourceIPs": ["203.0.113.1", "198.51.100.2"],
    }
    audit.update(overrides)
    return AuditEvent(audit, None, "event")


def test_nested_flattened_and_mixed_paths_resolve_alike() -> None:
    getter = compile_field("kubernetes.audit.objectRef.subresource")
    nested = _raw_event(objectRef={"subresource": "exec"})
    flat = AuditEvent({**nested.audit, "objectRef": {}, "objectRef.subresource": "exec"}, None, "x")
    assert getter(nested) == getter(flat) == "exec"


def test_multi_value_single_value_and_nulls() -> None:
    event = _raw_event(
        one=["x"], many=["a", "b"], empty=[], null=None, obj={"k": 1}, mixed=[1, None, [2, "z"]]
    )

    def get(name: str) -> object:
        return compile_field(f"kubernetes.audit.{name}")(event)

    assert get("sourceIPs") == ("203.0.113.1", "198.51.100.2")
    assert get("one") == "x"
    assert get("many") == ("a", "b")
    assert get("empty") is None
    assert get("null") is None
    assert get("obj") is None
    assert get("missing") is None
    assert get("user.username.deeper") is None
    assert get("mixed") == (1, 2, "z")


def test_annotation_keys_resolve_in_both_spellings_on_both_inputs() -> None:
    raw = _raw_event(annotations={"authorization.k8s.io/decision": "forbid"})
    ecs = _raw_event(annotations={"authorization_k8s_io/decision": "forbid"})
    for name in (
        "kubernetes.audit.annotations.authorization.k8s.io/decision",
        "kubernetes.audit.annotations.authorization_k8s_io/decision",
    ):
        assert compile_field(name)(raw) == "forbid"
        assert compile_field(name)(ecs) == "forbid"


def test_annotation_name_with_dots_after_the_slash_survives_the_ecs_spelling() -> None:
    doc = {
        "kubernetes.audit.auditID": "a",
        "kubernetes.audit.stage": "ResponseComplete",
        "kubernetes.audit.verb": "get",
        "kubernetes.audit.requestURI": "/",
        "kubernetes.audit.annotations.example_com/some_name_v1_2": "yes",
    }
    [event] = events_from_json(doc)
    assert event.audit["annotations"] == {"example.com/some_name_v1_2": "yes"}
    for key in ("example.com/some_name_v1_2", "example_com/some_name_v1_2"):
        assert compile_field(f"kubernetes.audit.annotations.{key}")(event) == "yes"


def test_raw_input_derives_documented_ecs_fields() -> None:
    """Raw input reads ECS columns from the document Elastic's integration would index (see
    docs/elastic-mapping.md): its convert processor turns every member of sourceIPs into
    source.ip, so a proxied request is a multi-value, as ES|QL sees it."""
    event = _raw_event(stageTimestamp="2025-01-01T00:00:00.000001Z", userAgent="kubectl/v1.31.2")
    assert compile_field("@timestamp")(event) == "2025-01-01T00:00:00.000001Z"
    assert compile_field("source.ip")(event) == ("203.0.113.1", "198.51.100.2")
    assert compile_field("user_agent.original")(event) == "kubectl/v1.31.2"
    assert compile_field("user.name")(event) == "bob"
    assert compile_field("event.action")(event) == event.audit["verb"]
    assert compile_field("event.dataset")(event) == "kubernetes.audit_logs"
    fallback = _raw_event(requestReceivedTimestamp="2025-01-01T00:00:00.000000Z")
    assert compile_field("@timestamp")(fallback) == "2025-01-01T00:00:00.000000Z"


def test_ecs_input_reads_ecs_columns_from_the_document_only() -> None:
    doc = {"kubernetes": {"audit": _raw_event().audit}, "source": {"ip": "192.0.2.99"}}
    [event] = events_from_json(doc)
    assert compile_field("source.ip")(event) == "192.0.2.99"
    assert compile_field("user.name")(event) is None  # not in the document: null, as in ES


def test_input_is_not_mutated_by_ecs_decoding() -> None:
    doc = as_ecs(_exec_event(), layout="mixed")
    snapshot = json.dumps(doc, sort_keys=True)
    events_from_json(doc)
    assert json.dumps(doc, sort_keys=True) == snapshot


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe{}", "not_utf8"),
        (b"{not json", "not_json"),
        (b'{"a": NaN}', "not_json"),
        (b"", "not_json"),
        (b'"a string"', "unknown_shape"),
        (b"42", "unknown_shape"),
        (b'{"kind": "Status"}', "unknown_shape"),
        (b'{"auditID": "x", "stage": "ResponseComplete", "verb": "get"}', "unknown_shape"),
        (b'{"auditID": "", "stage": "s", "verb": "v", "requestURI": "/"}', "unknown_shape"),
        (b'{"auditID": 1, "stage": "s", "verb": "v", "requestURI": "/"}', "unknown_shape"),
        (b'{"kind": "Pod", "auditID": "a", "stage": "s", "verb": "v", "requestURI": "/"}', None),
        (b'{"kind": "EventList", "items": {}}', "unknown_shape"),
        (b'{"kind": "EventList", "items": [{"auditID": "a"}]}', "unknown_shape"),
        (b"[[]]", "unknown_shape"),
        (b'{"log": "{not json"}', "unknown_shape"),
        (b'{"log": "plain text line"}', "unknown_shape"),
        (b'{"log": "{\\"log\\": \\"{}\\"}"}', "unknown_shape"),
    ],
)
def test_malformed_input_has_a_stable_reason(data: bytes, reason: str | None) -> None:
    with pytest.raises(MalformedEvent) as caught:
        decode_message(data)
    assert caught.value.reason == (reason or "unknown_shape")
    assert caught.value.detail


def test_oversized_is_checked_before_parsing() -> None:
    with pytest.raises(MalformedEvent) as caught:
        decode_message(b"x" * 101, max_bytes=100)
    assert caught.value.reason == "oversized"


def test_one_bad_item_makes_the_whole_message_a_dead_letter() -> None:
    good = _exec_event()
    with pytest.raises(MalformedEvent):
        _decode([good, {"kind": "Status"}])


def test_utf8_bom_is_tolerated() -> None:
    assert len(decode_message(b"\xef\xbb\xbf" + json.dumps(_exec_event()).encode())) == 1


# --------------------------------------------------------------------------- round trip

commands = st.lists(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(
    command=commands,
    client=st.sampled_from([c for c in CLIENTS if c != "raw"]),
    container=st.one_of(st.none(), st.sampled_from(["app", "sidecar-1"])),
    tty=st.booleans(),
    decision=st.sampled_from(["allow", "forbid"]),
    seed=st.integers(0, 2**32),
    shape=st.sampled_from(sorted(ONE_EVENT_SHAPES)),
)
def test_synthetic_events_round_trip_through_every_shape(
    command: list[str],
    client: str,
    container: str | None,
    tty: bool,
    decision: str,
    seed: int,
    shape: str,
) -> None:
    events = exec_audit_events(
        command=command,
        client=client,  # type: ignore[arg-type]
        container=container,
        tty=tty,
        decision=decision,  # type: ignore[arg-type]
        rng=random.Random(seed),
        start=START,
    )
    _, build = ONE_EVENT_SHAPES[shape]
    for original in events:
        [decoded] = _decode(build(original))
        [raw] = _decode(original)
        assert decoded.audit == original
        assert _typed(decoded) == _typed(raw)
        assert {n: g(decoded) for n, g in GETTERS.items()} == {
            n: g(raw) for n, g in GETTERS.items()
        }
