"""OCSF alerts: every finding validated against OCSF's schema as the ``pydantic-ocsf`` package
ships it (models generated from OCSF's own schema files, the files included), strictly: the
models accept unknown attributes, so every nested model is walked and an attribute the schema
does not define fails, except the ``host`` profile's ``actor``, validated as an Actor object.

Two releases: 1.1.0, the one the finding declares, and 1.4.0. The package leaves the 1.1.0
base event's ``$include`` files (classification: ``class_uid``, ``type_uid``...; occurrence:
``time``...) unresolved, so those attributes are unknown to its 1.1.0 model; 1.4.0 is the first
release whose base event spells them out, and its model types and requires them. An attribute
the 1.1.0 model does not know passes there only if it is one of those (and so was checked by
the 1.4.0 pass)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

import pydantic
import pytest
from ocsf.v1_1_0 import events as events_1_1
from ocsf.v1_1_0 import objects as objects_1_1
from ocsf.v1_4_0 import events as events_1_4
from ocsf.v1_4_0 import objects as objects_1_4

from auditstream.detections.alert import Alert
from auditstream.stream.sinks.alert_facts import epoch_millis, exec_argv
from auditstream.stream.sinks.encoders import ocsf_encoder
from auditstream.stream.sinks.ocsf_alert import OCSF_VERSION, ocsf_finding
from tests.unit.siem_alerts import sample_alerts

MODELS: dict[str, tuple[type[pydantic.BaseModel], type[pydantic.BaseModel]]] = {
    "1.1.0": (events_1_1.DetectionFinding, objects_1_1.Actor),
    "1.4.0": (events_1_4.DetectionFinding, objects_1_4.Actor),
}
"""The Detection Finding class, and the Actor object the ``host`` profile's ``actor`` is."""
PROFILE_ATTRIBUTES = {"actor"}
"""Attributes a profile named in ``metadata.profiles`` adds (``host``)."""
FREE_FORM = {"unmapped"}
"""``object``-typed attributes: any content is valid."""


@cache
def schema(version: str = "1.1.0") -> dict[str, Any]:
    """OCSF's schema data, as shipped inside the package that generates the models."""
    name = f"v{version.replace('.', '_')}.json"
    loaded: dict[str, Any] = json.loads((resources.files("ocsf") / "schemas" / name).read_text())
    return loaded


@cache
def included_in_1_1() -> frozenset[str]:
    """The base event's attributes that 1.1.0 held in ``$include`` files: those 1.4.0's base
    event spells out and 1.1.0's does not."""
    newer, older = (schema(v)["events"]["base_event"]["attributes"] for v in ("1.4.0", "1.1.0"))
    return frozenset(newer) - frozenset(older)


def unknown_attributes(model: pydantic.BaseModel, path: str = "") -> Iterator[str]:
    """Paths of attributes no OCSF object defines, at any depth."""
    for name in model.model_extra or {}:
        if f"{path}{name}" not in PROFILE_ATTRIBUTES:
            yield f"{path}{name}"
    for name in type(model).model_fields:
        if f"{path}{name}" in FREE_FORM:
            continue
        for index, child in _children(getattr(model, name)):
            yield from unknown_attributes(child, f"{path}{name}{index}.")


def _children(value: object) -> Iterator[tuple[str, pydantic.BaseModel]]:
    if isinstance(value, pydantic.BaseModel):
        yield "", value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, pydantic.BaseModel):
                yield f"[{i}]", item


def ocsf_problems(finding: Mapping[str, Any]) -> list[str]:
    """Every way ``finding`` departs from an OCSF Detection Finding (1.1.0 and 1.4.0); empty if
    it conforms."""
    problems = _model_problems(finding, "1.4.0")
    problems += [
        p
        for p in _model_problems(finding, "1.1.0")
        if p.split(":")[0] not in included_in_1_1() or not p.endswith("not an OCSF attribute")
    ]
    if "actor" in finding and "host" not in finding["metadata"].get("profiles", []):
        problems.append("actor: the host profile is not declared")
    return sorted(set(problems)) + _caption_problems(finding)


def _model_problems(finding: Mapping[str, Any], version: str) -> list[str]:
    event_class, actor_class = MODELS[version]
    try:
        model = event_class.model_validate(finding)
        actor = actor_class.model_validate(finding.get("actor", {}))
    except pydantic.ValidationError as err:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
    problems = [f"{p}: not an OCSF attribute" for p in unknown_attributes(model)]
    problems += [f"actor.{p}: not an OCSF attribute" for p in unknown_attributes(actor)]
    return problems


def _caption_problems(finding: Mapping[str, Any]) -> list[str]:
    """Each ``*_id`` enum and its string sibling must agree, as the schema's enums say."""
    attributes = schema()["dictionary"]["attributes"]
    events = schema()["events"]
    siblings = {
        ("severity_id", "severity"): attributes["severity_id"]["enum"],
        ("status_id", "status"): events["finding"]["attributes"]["status_id"]["enum"],
        ("activity_id", "activity_name"): events["finding"]["attributes"]["activity_id"]["enum"],
    }
    problems = []
    for (uid, caption), enum in siblings.items():
        expected = enum.get(str(finding.get(uid)), {}).get("caption")
        if finding.get(caption) != expected:
            problems.append(f"{caption}: {finding.get(caption)!r} is not {expected!r}")
    analytic = finding["finding_info"].get("analytic", {})
    types = schema()["objects"]["analytic"]["attributes"]["type_id"]["enum"]
    if analytic and analytic.get("type") != types[str(analytic["type_id"])]["caption"]:
        problems.append(f"finding_info.analytic.type: {analytic.get('type')!r}")
    return problems


@pytest.mark.parametrize("alert", sample_alerts(), ids=lambda a: a.rule.name[:40])
def test_every_finding_is_an_ocsf_detection_finding(alert: Alert) -> None:
    assert ocsf_problems(ocsf_finding(alert)) == []


def test_the_validator_catches_unknown_attributes_at_any_depth() -> None:
    finding = ocsf_finding(sample_alerts()[0])
    finding["finding_info"]["titel"] = "typo"
    finding["resources"][0]["namspace"] = "typo"
    finding["actor"]["user"]["nick"] = "typo"
    assert ocsf_problems(finding) == [
        "actor.user.nick: not an OCSF attribute",
        "finding_info.titel: not an OCSF attribute",
        "resources[0].namspace: not an OCSF attribute",
    ]


def test_the_validator_catches_wrong_types_enums_captions_and_missing_attributes() -> None:
    finding = ocsf_finding(sample_alerts()[0])
    finding["severity"] = "Critical"  # severity_id says High
    problems = ocsf_problems(finding)
    assert "severity: 'Critical' is not 'High'" in problems
    assert any("Inconsistent severity_id=4 and severity='Critical'" in p for p in problems)
    finding = ocsf_finding(sample_alerts()[0])
    finding["severity_id"] = 9
    finding["time"] = "yesterday"
    del finding["finding_info"]["uid"]
    del finding["metadata"]["product"]
    located = {p.split(":")[0] for p in ocsf_problems(finding)}
    assert {"severity_id", "time", "finding_info.uid", "metadata.product"} <= located


def test_class_category_and_type_as_the_schema_numbers_them() -> None:
    detection = schema()["events"]["detection_finding"]
    category = schema()["categories_meta"]["attributes"][detection["category"]]
    finding = ocsf_finding(sample_alerts()[0])
    assert finding["class_uid"] == category["uid"] * 1000 + detection["uid"] == 2004
    assert finding["category_uid"] == category["uid"] == 2
    assert finding["type_uid"] == finding["class_uid"] * 100 + finding["activity_id"] == 200401
    assert finding["activity_name"] == "Create"
    assert finding["metadata"]["version"] == OCSF_VERSION == schema()["version"]
    assert "host" in schema()["events"]["finding"]["profiles"]  # actor is a finding's in 1.1.0


@pytest.mark.parametrize("alert", sample_alerts(), ids=lambda a: a.rule.name[:40])
def test_the_finding_says_what_the_alert_says(alert: Alert) -> None:
    finding = ocsf_finding(alert)
    info = finding["finding_info"]
    assert info["uid"] == finding["metadata"]["uid"] == alert.alert_id
    assert info["analytic"]["uid"] == alert.rule.rule_id
    assert info["title"] == alert.rule.name
    assert finding["time"] == info["created_time"] == epoch_millis(alert.detected_at)
    assert finding["start_time"] == epoch_millis(alert.event.timestamp)
    assert (
        finding["severity_id"]
        == {"low": 2, "medium": 3, "high": 4, "critical": 5}[alert.rule.severity]
    )
    attacks = info.get("attacks", [])
    techniques = [t.id for th in alert.rule.threat for t in th.techniques]
    assert sorted({a["technique"]["uid"] for a in attacks}) == sorted(set(techniques))
    subs = [s.id for th in alert.rule.threat for t in th.techniques for s in t.subtechniques]
    assert [a["sub_technique"]["uid"] for a in attacks if "sub_technique" in a] == subs
    evidence = finding["evidences"][0]
    assert evidence["process"]["cmd_line"]
    assert evidence["data"]["argv"] == list(exec_argv(alert))
    assert evidence["data"]["request_uri"] == alert.event.request_uri
    assert evidence["api"]["request"]["uid"] == alert.event.audit_id
    assert finding["actor"]["user"]["name"] == alert.event.user.username
    [pod] = finding["resources"]
    assert (pod.get("type"), pod.get("name"), pod.get("namespace")) == (
        alert.event.object_ref.resource,
        alert.event.object_ref.name,
        alert.event.object_ref.namespace,
    )


def test_times_are_milliseconds() -> None:
    alert = sample_alerts()[0]
    assert alert.detected_at == "2025-01-15T10:07:03.250000Z"
    assert ocsf_finding(alert)["time"] == 1_736_935_623_250


def test_encoder_writes_one_json_line() -> None:
    encoder = ocsf_encoder()
    alert = sample_alerts()[-1]
    data = encoder.encode(alert)
    assert b"\n" not in data
    assert json.loads(data) == ocsf_finding(alert)
    assert encoder.content_type == "application/vnd.auditstream.alert.ocsf+json"
