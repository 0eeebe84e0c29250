"""With Avro alerts, one more invariant: every alert on the topic decodes as downstream decodes it.

An Avro alert is only as good as the schema id in its frame: after the registry restarts (in
memory: empty), alerts from replicas that registered before it name an id the registry may no
longer know, or know as another schema. So after the run each alert is decoded the Confluent way,
its schema fetched by id from the registry as it is now, and its ``alert_id`` compared with the
record's key.
"""

from __future__ import annotations

import io
import json
import struct
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Final

import fastavro

from devtools.soak.kafka_io import Record

__all__ = ["undecodable_alerts"]

_FRAME: Final = struct.Struct(">bI")
MAGIC_BYTE: Final = 0


def undecodable_alerts(records: Sequence[Record], registry_url: str) -> list[str]:
    """One line per alert record that does not decode (key and why)."""
    schemas: dict[int, Any] = {}
    problems: list[str] = []
    for record in records:
        key = (record.key or b"").decode(errors="replace")
        try:
            decoded = _decode(record.value or b"", registry_url, schemas)
        except (ValueError, KeyError, EOFError, OSError) as err:
            problems.append(f"{key}: {type(err).__name__}: {err}")
            continue
        if decoded.get("alert_id") != key:
            problems.append(f"{key}: decodes to alert_id {decoded.get('alert_id')!r}")
    return problems


def _decode(value: bytes, registry_url: str, schemas: dict[int, Any]) -> dict[str, Any]:
    if len(value) < _FRAME.size:
        raise ValueError("shorter than the Confluent frame")
    magic, schema_id = _FRAME.unpack_from(value)
    if magic != MAGIC_BYTE:
        raise ValueError(f"magic byte {magic}")
    if schema_id not in schemas:
        schemas[schema_id] = _fetch_schema(registry_url, schema_id)
    decoded = fastavro.schemaless_reader(io.BytesIO(value[_FRAME.size :]), schemas[schema_id])
    if not isinstance(decoded, dict):
        raise ValueError("not a record")
    return decoded


def _fetch_schema(registry_url: str, schema_id: int) -> Any:
    """The parsed schema with this id, as the registry knows it now."""
    try:
        with urllib.request.urlopen(f"{registry_url}/schemas/ids/{schema_id}", timeout=10) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as err:
        raise KeyError(f"schema id {schema_id}: registry answered {err.code}") from err
    return fastavro.parse_schema(json.loads(body["schema"]))
