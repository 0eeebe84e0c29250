"""Alerts on the alert topic: keyed by ``alert_id``, with headers, in a chosen format.

The key is the alert id (UUIDv5 of rule id and auditID), so a downstream consumer deduplicates
on it and a compacted topic keeps one record per alert, whichever replica or restart sent it.
Headers: ``auditstream.rule_id`` and ``content-type`` (``application/vnd.auditstream.alert+avro``
for the Confluent framing of ``schemas/alert.avsc``, ``application/json`` otherwise: see
:mod:`auditstream.stream.sinks.encoders`). ``on_written`` is the broker's acknowledgement.

An alert is always produced, however big its event: strings an attacker chooses are capped when
the alert is built (:mod:`auditstream.detections.alert`), yet a rule's multi-valued fields can
still add up to megabytes, more than the producer's ``message.max.bytes`` or the topic's
``max.message.bytes`` accept. Such an alert is shrunk before it is produced (:func:`shrink`):
its variable parts (field values, the event's strings and lists, the explanation, the cloud
envelope) are capped harder, step by step, each cut marked as at build time
(``...[truncated N chars]``, ``...[truncated N items]``), until the record fits; its id, rule,
times and source stay whole. A shrunk alert carries two more headers:

``auditstream.alert.truncated``       ``true``
``auditstream.alert.original_bytes``  the size of its full encoding (decimal)

Only an alert that does not fit even at the last step (an auditID of thousands of characters
under a tiny limit) is refused (:class:`AlertEncodingError`), and its message dead-lettered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass, replace
from types import MappingProxyType
from typing import Any, Final, TypeVar

from auditstream.detections.alert import Alert, cap
from auditstream.stream.kafka.clients import (
    LIBRDKAFKA_MAX_MESSAGE_BYTES,
    record_budget,
    record_size,
)
from auditstream.stream.kafka.delivery import Delivery, Header
from auditstream.stream.sinks.alert_sink import AlertEncodingError, OnWritten
from auditstream.stream.sinks.encoders import Encoder

RULE_ID_HEADER: Final = "auditstream.rule_id"
CONTENT_TYPE_HEADER: Final = "content-type"
TRUNCATED_HEADER: Final = "auditstream.alert.truncated"
ORIGINAL_BYTES_HEADER: Final = "auditstream.alert.original_bytes"
SHRINK_STEPS: Final = ((1024, 32), (128, 8), (16, 2))
"""(characters per string, items per list) of each attempt, until the alert fits."""
_KEPT: Final = frozenset({"audit_id", "provider"})
"""Strings :func:`shrink` leaves whole: what names the event and the envelope's kind."""
_Record = TypeVar("_Record")


class ShrunkValue(bytes):
    """The encoding of an alert that had to shrink to fit, with the size of its full one."""

    original_bytes: int

    def __new__(cls, data: bytes, original_bytes: int) -> ShrunkValue:
        value = super().__new__(cls, data)
        value.original_bytes = original_bytes
        return value


class KafkaAlertSink:
    """Produce alerts through :class:`auditstream.stream.kafka.delivery.Delivery`, each at most
    ``max_record_bytes`` (what the start-up check found the producer and the topic accept; by
    default what librdkafka's default ``message.max.bytes`` does)."""

    def __init__(
        self,
        delivery: Delivery,
        topic: str,
        encoder: Encoder,
        *,
        max_record_bytes: int = record_budget(LIBRDKAFKA_MAX_MESSAGE_BYTES),
    ) -> None:
        self._delivery = delivery
        self.topic = topic
        self._encoder = encoder
        self._content_type = encoder.content_type.encode()
        self.max_record_bytes = max_record_bytes

    def encode(self, alert: Alert) -> bytes:
        """The alert's encoding, shrunk (a :class:`ShrunkValue`) if it would not fit."""
        value = self._encoder.encode(alert)
        if self._fits(alert, value):
            return value
        for chars, items in SHRINK_STEPS:
            smaller = ShrunkValue(self._encoder.encode(shrink(alert, chars, items)), len(value))
            if self._fits(alert, smaller):
                return smaller
        raise AlertEncodingError(
            f"the alert takes {len(smaller)} bytes even shrunk ({len(value)} whole); "
            f"records to {self.topic} are limited to {self.max_record_bytes}"
        )

    def send(self, alert: Alert, value: bytes, on_written: OnWritten) -> None:
        self._delivery.produce(
            self.topic,
            key=alert.alert_id,
            value=value,
            headers=self._headers(alert, value),
            on_acked=on_written,
        )

    def _headers(self, alert: Alert, value: bytes) -> list[Header]:
        headers: list[Header] = [
            (RULE_ID_HEADER, alert.rule.rule_id.encode()),
            (CONTENT_TYPE_HEADER, self._content_type),
        ]
        if isinstance(value, ShrunkValue):
            headers.append((TRUNCATED_HEADER, b"true"))
            headers.append((ORIGINAL_BYTES_HEADER, str(value.original_bytes).encode()))
        return headers

    def _fits(self, alert: Alert, value: bytes) -> bool:
        size = record_size(alert.alert_id, value, self._headers(alert, value))
        return size <= self.max_record_bytes


def shrink(alert: Alert, chars: int, items: int) -> Alert:
    """``alert`` with every string of its event, fields, explanation and envelope capped at
    ``chars`` characters and every list at ``items`` items (plus a marker); the auditID, the
    rule, the times and where the event was read stay as they are."""
    source = alert.source
    envelope = source.envelope
    return replace(
        alert,
        event=_shrunk(alert.event, chars, items),
        fields=_shrunk(alert.fields, chars, items),
        explanation=_shrunk(alert.explanation, chars, items),
        source=source
        if envelope is None
        else replace(source, envelope=_shrunk(envelope, chars, items)),
    )


def _shrunk(value: _Record, chars: int, items: int) -> _Record:
    """Strings capped, tuples cut, mappings and dataclasses (nested records) done field by field."""
    out: Any = value
    if isinstance(value, str):
        out = cap(value, chars)
    elif isinstance(value, tuple):
        out = tuple(_shrunk(item, chars, items) for item in value[:items])
        if len(value) > items:
            out = (*out, f"...[truncated {len(value) - items} items]")
    elif isinstance(value, Mapping):
        out = MappingProxyType({k: _shrunk(v, chars, items) for k, v in value.items()})
    elif is_dataclass(value) and not isinstance(value, type):
        out = replace(
            value,
            **{
                f.name: _shrunk(getattr(value, f.name), chars, items)
                for f in fields(value)
                if f.name not in _KEPT
            },
        )
    return out  # type: ignore[no-any-return]  # same type: each branch rebuilds its own kind
