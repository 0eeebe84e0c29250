"""The alert schema evolves compatibly: every released ``schemas/alert.avsc``, then the current
one, registered in order on the real registry under a transitive compatibility level, and a
breaking change refused.

``avro_history/`` keeps the earlier versions as they were committed (file names are the
commits): 3595c07 (the first), 1925970 (rule type, index, from, interval added) and bfd99de
(rule status and false positives added); the current file added ``source.envelope``. A fresh
clone may be shallow, so the files are kept rather than read from git.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from auditstream.stream.sinks.encoders import alert_schema
from devtools.jvm.registry import SchemaRegistry
from tests.unit.siem_alerts import sample_alerts

pytestmark = pytest.mark.integration

HISTORY = Path(__file__).parent / "avro_history"
RELEASED = ("3595c07", "1925970", "bfd99de")
LEVELS = ("BACKWARD", "BACKWARD_TRANSITIVE", "FULL_TRANSITIVE")


def _released(commit: str) -> str:
    return (HISTORY / f"alert-{commit}.avsc").read_text("utf-8")


def _breaking() -> str:
    """The current schema plus a field without a default: a new reader cannot read old data."""
    schema = json.loads(alert_schema())
    schema["fields"].append({"name": "tenant", "type": "string"})
    return json.dumps(schema)


@pytest.mark.parametrize("level", LEVELS)
def test_history_registers_in_order_and_a_breaking_change_is_refused(
    level: str, schema_registry: SchemaRegistry
) -> None:
    client = SchemaRegistryClient({"url": schema_registry.url})
    subject = f"alerts-{uuid.uuid4().hex[:8]}-value"
    answer: dict[str, Any] = client.set_compatibility(subject, level)
    assert answer["compatibility"] == level
    ids = [
        client.register_schema(subject, Schema(text, "AVRO"))
        for text in (*map(_released, RELEASED), alert_schema())
    ]
    assert len(set(ids)) == 4, ids  # four distinct schemas, each accepted
    assert client.get_versions(subject) == [1, 2, 3, 4]
    assert client.get_compatibility(subject) == level

    breaking = Schema(_breaking(), "AVRO")
    assert client.test_compatibility(subject, breaking) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, breaking)
    assert refused.value.http_status_code == 409
    assert client.get_versions(subject) == [1, 2, 3, 4]  # nothing registered


@pytest.mark.parametrize("commit", RELEASED)
def test_alerts_written_by_any_release_read_with_the_current_schema(commit: str) -> None:
    """Schema resolution both ways on real alerts, which is what the registry's check promises:
    a current reader fills what an old writer lacked with the defaults, an old reader skips
    what it does not know."""
    current_json = json.loads(alert_schema())
    old_json = json.loads(_released(commit))
    current, old = fastavro.parse_schema(current_json), fastavro.parse_schema(old_json)
    defaults = _rule_defaults(current_json)
    added = set(defaults) - set(_rule_defaults(old_json, all_fields=True))
    assert added or commit == RELEASED[-1]
    for alert in sample_alerts():
        record = alert.to_record()
        read_new = _read(_write(record, old), old, current)
        assert read_new["alert_id"] == alert.alert_id
        assert read_new["source"]["envelope"] is None  # no release before had it
        for name in added:
            assert read_new["rule"][name] == defaults[name]
        read_old = _read(_write(record, current), current, old)
        assert read_old["rule"]["id"] == alert.rule.rule_id
        assert read_old["event"] == read_new["event"] == record["event"]
        assert "envelope" not in read_old["source"]


def _rule_defaults(schema: dict[str, Any], *, all_fields: bool = False) -> dict[str, Any]:
    """The ``rule`` record's fields that have a default (every field with ``all_fields``)."""
    [rule] = [f for f in schema["fields"] if f["name"] == "rule"]
    return {
        f["name"]: f.get("default") for f in rule["type"]["fields"] if all_fields or "default" in f
    }


def _write(record: dict[str, Any], schema: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()


def _read(data: bytes, writer: Any, reader: Any) -> dict[str, Any]:
    decoded = fastavro.schemaless_reader(io.BytesIO(data), writer, reader)
    assert isinstance(decoded, dict)
    return decoded
