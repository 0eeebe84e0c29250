"""ECS alerts: every field name and value type checked against ECS's own generated field list
(``ecs_flat`` of the ECS release the document declares, and of the newest release), the
Kubernetes audit fields against the ``kubernetes.audit_logs`` integration's mapping, and what
Elastic Security's External Alerts rule reads."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest

from auditstream.detections.alert import Alert
from auditstream.detections.elastic.fields import field_type
from auditstream.stream.sinks.alert_facts import exec_argv
from auditstream.stream.sinks.ecs_alert import ECS_VERSION, SEVERITY_SCORE, ecs_document
from auditstream.stream.sinks.encoders import ecs_encoder
from devtools.ecs_fields import DEFAULT_VERSION, ecs_flat
from tests.unit.siem_alerts import sample_alerts

EcsTable = Mapping[str, Mapping[str, Any]]
ECS_RELEASES = (DEFAULT_VERSION, "9.4.0")
"""The npm ``@elastic/ecs`` versions checked: the declared ECS 8.11 and the newest, 9.4."""
CUSTOM = "auditstream"
_STRINGS = {"keyword", "constant_keyword", "wildcard", "match_only_text", "text"}
_NUMBERS = {"float", "scaled_float", "half_float", "double"}
_INTEGERS = {"long", "integer", "short", "byte", "unsigned_long"}


def flatten(document: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, leaf value) pairs; a list is a leaf (ES arrays), the custom namespace is
    one leaf (its schema is ours, see :func:`test_custom_fields_stay_in_their_namespace`)."""
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name != CUSTOM:
            yield from flatten(value, f"{name}.")
        else:
            yield name, value


def type_errors(name: str, value: Any, es_type: str) -> list[str]:
    """Why ``value`` cannot be indexed as ``es_type`` (an array is checked item by item)."""
    items = value if isinstance(value, list) else [value]
    return [f"{name}: {item!r} is not {es_type}" for item in items if not _fits(item, es_type)]


def _fits(value: Any, es_type: str) -> bool:
    if es_type in _STRINGS:
        return isinstance(value, str)
    if es_type in _INTEGERS:
        return isinstance(value, int) and not isinstance(value, bool)
    if es_type in _NUMBERS:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if es_type == "boolean":
        return isinstance(value, bool)
    if es_type == "date":
        return isinstance(value, str) and _is_date(value)
    if es_type == "ip":
        return isinstance(value, str) and _is_ip(value)
    return False  # object, nested, flattened: never a leaf here


def _is_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def ecs_problems(document: Mapping[str, Any], ecs: EcsTable) -> list[str]:
    """Every way ``document`` departs from ECS (names, types, arrays, allowed values) and from
    the integration's ``kubernetes.audit`` mapping; empty when it conforms."""
    problems: list[str] = []
    for name, value in flatten(document):
        if name == CUSTOM:
            continue
        if name.startswith("kubernetes.audit."):
            mapped = field_type(name)
            if mapped is None:
                problems.append(f"{name}: not mapped by the kubernetes.audit_logs integration")
            else:
                problems += type_errors(name, value, mapped)
            continue
        field = ecs.get(name)
        if field is None:
            problems.append(f"{name}: not an ECS field")
            continue
        problems += type_errors(name, value, field["type"])
        if isinstance(value, list) and "array" not in field.get("normalize", []):
            problems.append(f"{name}: an array where ECS expects one value")
        problems += _allowed_value_errors(name, value, field)
    problems += _expected_type_errors(document, ecs)
    problems += [f"{name}: required by ECS" for name in _required(ecs) if name not in
                 dict(flatten(document))]  # fmt: skip
    return problems


def _allowed_value_errors(name: str, value: Any, field: Mapping[str, Any]) -> list[str]:
    allowed = {v["name"] for v in field.get("allowed_values", [])}
    items = value if isinstance(value, list) else [value]
    return [
        f"{name}: {v!r} not in {sorted(allowed)}" for v in items if allowed and v not in allowed
    ]


def _expected_type_errors(document: Mapping[str, Any], ecs: EcsTable) -> list[str]:
    """``event.type`` values must be among those ECS expects for each ``event.category``."""
    event = document.get("event", {})
    categories = {v["name"]: v for v in ecs["event.category"]["allowed_values"]}
    problems = []
    for category in event.get("category", []):
        expected = set(categories.get(category, {}).get("expected_event_types", []))
        problems += [
            f"event.type {kind!r} unexpected for category {category!r}"
            for kind in event.get("type", [])
            if kind not in expected
        ]
    return problems


def _required(ecs: EcsTable) -> list[str]:
    return [name for name, field in ecs.items() if field.get("required")]


@pytest.fixture(scope="module", params=ECS_RELEASES)
def ecs(request: pytest.FixtureRequest) -> EcsTable:
    return ecs_flat(request.param)


@pytest.mark.parametrize("alert", sample_alerts(), ids=lambda a: a.rule.name[:40])
def test_every_field_is_ecs_or_the_integrations_with_its_type(alert: Alert, ecs: EcsTable) -> None:
    document = ecs_document(alert)
    assert ecs_problems(document, ecs) == []


def test_the_validator_catches_a_wrong_name_type_array_and_value(ecs: EcsTable) -> None:
    document = ecs_document(sample_alerts()[0])
    document["rule"]["identifier"] = "x"
    document["event"]["severity"] = "high"
    document["user"]["name"] = ["a", "b"]
    document["event"]["kind"] = "finding"
    document["source"]["ip"] = "not-an-ip"
    document["kubernetes"]["audit"]["objectRef"]["uid2"] = "x"
    document["kubernetes"]["audit"]["responseStatus"] = {"code": "101"}
    del document["@timestamp"]
    assert sorted(ecs_problems(document, ecs)) == sorted([
        "rule.identifier: not an ECS field",
        "event.severity: 'high' is not long",
        "user.name: an array where ECS expects one value",
        "event.kind: 'finding' not in " + str(sorted(
            v["name"] for v in ecs["event.kind"]["allowed_values"])),
        "source.ip: 'not-an-ip' is not ip",
        "kubernetes.audit.objectRef.uid2: not mapped by the kubernetes.audit_logs integration",
        "kubernetes.audit.responseStatus.code: '101' is not integer",
        "@timestamp: required by ECS",
    ])  # fmt: skip


def test_alert_not_signal_as_ecs_reserves_signal_for_kibana(ecs: EcsTable) -> None:
    kinds = {v["name"]: v["description"] for v in ecs["event.kind"]["allowed_values"]}
    assert "must not populate" in kinds["signal"]  # reserved for Kibana's own alerts
    assert "externally to the Elastic Stack" in kinds["alert"]
    assert {ecs_document(a)["event"]["kind"] for a in sample_alerts()} == {"alert"}


def test_declared_ecs_version_is_the_one_validated() -> None:
    assert DEFAULT_VERSION.rsplit(".", 1)[0] == ECS_VERSION.rsplit(".", 1)[0]
    assert {ecs_document(a)["ecs"]["version"] for a in sample_alerts()} == {ECS_VERSION}


@pytest.mark.parametrize("alert", sample_alerts(), ids=lambda a: a.rule.name[:40])
def test_what_the_external_alerts_rule_reads(alert: Alert) -> None:
    """detection-rules' External Alerts: ``event.kind:alert and not event.module:(endgame or
    endpoint or cloud_defend)`` over ``logs-*``; severity from ``event.severity`` 21/47/73/99,
    risk from ``event.risk_score``, the alert's name from ``message``."""
    document = ecs_document(alert)
    event = document["event"]
    assert event["kind"] == "alert"
    assert event["module"] not in ("endgame", "endpoint", "cloud_defend")
    assert event["severity"] == SEVERITY_SCORE[alert.rule.severity]
    assert event["severity"] in (21, 47, 73, 99)
    assert event["risk_score"] == alert.rule.risk_score
    assert document["message"] == alert.rule.name
    assert document["@timestamp"] == alert.detected_at


@pytest.mark.parametrize("alert", sample_alerts(), ids=lambda a: a.rule.name[:40])
def test_the_alert_is_all_there(alert: Alert) -> None:
    document = ecs_document(alert)
    argv = exec_argv(alert)
    assert argv  # every sample alert is an exec
    assert document["process"]["args"] == list(argv)
    assert document["process"]["args_count"] == len(argv)
    assert document["rule"]["id"] == alert.rule.rule_id
    assert document["event"]["id"] == document[CUSTOM]["alert_id"] == alert.alert_id
    audit = document["kubernetes"]["audit"]
    assert audit["auditID"] == alert.event.audit_id
    assert audit["requestURI"] == alert.event.request_uri
    assert document["user"]["name"] == alert.event.user.username
    assert document[CUSTOM]["fields"] == json.loads(alert.to_json())["fields"]
    tactics = [t.tactic_id for t in alert.rule.threat]
    assert document.get("threat", {}).get("tactic", {}).get("id", []) == tactics
    subs = [s.id for t in alert.rule.threat for tech in t.techniques for s in tech.subtechniques]
    assert document.get("threat", {}).get("technique", {}).get("subtechnique", {}).get(
        "id", []) == subs  # fmt: skip


def test_corners_impersonation_addresses_and_cloud() -> None:
    [alert] = [a for a in sample_alerts() if a.event.impersonated_user and a.source.envelope][:1]
    document = ecs_document(alert)
    assert document["user"]["effective"]["name"] == "system:admin"
    assert document["source"]["ip"] == "192.0.2.44"  # the first address, the client's
    assert document["related"]["ip"] == ["192.0.2.44", "10.0.0.9"]  # "not-an-ip" left out
    assert document["kubernetes"]["audit"]["sourceIPs"][-1] == "not-an-ip"  # kept as logged
    assert document["cloud"]["provider"] == "aws"
    assert document["orchestrator"]["cluster"]["name"] == "prod-eu"
    assert document[CUSTOM]["source"]["envelope"]["resource_id"] == "123456789012"


def test_custom_fields_stay_in_their_namespace(ecs: EcsTable) -> None:
    """ECS's advice: custom fields under a name ECS does not use and will not."""
    assert not [name for name in ecs if name.split(".")[0] in (CUSTOM, "kubernetes")]
    for alert in sample_alerts():
        assert set(ecs_document(alert)) - {CUSTOM, "kubernetes"} <= {n.split(".")[0] for n in ecs}


def test_encoder_writes_one_json_line() -> None:
    encoder = ecs_encoder()
    alert = sample_alerts()[0]
    data = encoder.encode(alert)
    assert b"\n" not in data
    assert json.loads(data) == ecs_document(alert)
    assert encoder.content_type == "application/vnd.auditstream.alert.ecs+json"
