"""The alert record: one rule firing on one audit event, as ``schemas/alert.avsc`` states it.

The Avro schema is also the JSON form, so :meth:`Alert.to_record` builds plain nested dicts in the
schema's field order and :meth:`Alert.to_json` serialises that same dict.

Strings that an attacker can choose (request URI, user agent, user names, auditID, every string in
``fields``, the explanation's command) are capped at :data:`MAX_STRING_CHARS` characters and then
end with ``...[truncated N chars]``; lists an attacker can grow (``sourceIPs`` from
``X-Forwarded-For``, groups, multi-values) keep :data:`MAX_LIST_ITEMS` items and then one marker
string ``...[truncated N items]``. Lone UTF-16 surrogates (legal in JSON escapes, not in UTF-8)
become U+FFFD so that the record always encodes.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal

from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.envelope import Envelope
from auditstream.detections.rule_hit import Explanation
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.values import Scalar, Value

MAX_STRING_CHARS: Final = 8192
MAX_LIST_ITEMS: Final = 256
RULE_NAMESPACE_PREFIX: Final = "auditstream:rule:"
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_INT_MAX: Final = 2**31 - 1
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def cap(text: str, limit: int = MAX_STRING_CHARS) -> str:
    """Cap ``text`` at ``limit`` characters plus an explicit truncation marker."""
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[truncated {len(text) - limit} chars]"


def _cap_opt(text: object) -> str | None:
    return cap(text) if isinstance(text, str) else None


def _cap_list(items: Iterable[object]) -> tuple[str, ...]:
    strings = [cap(s) for s in items if isinstance(s, str)]
    if len(strings) <= MAX_LIST_ITEMS:
        return tuple(strings)
    dropped = len(strings) - MAX_LIST_ITEMS
    return (*strings[:MAX_LIST_ITEMS], f"...[truncated {dropped} items]")


def alert_id(rule_id: str, audit_id: str) -> str:
    """UUIDv5 of the auditID under the rule's namespace: stable across replicas and restarts.

    Rule ids are UUIDs in Elastic's rules and are the namespace as they are. Any other rule id
    (a native rule named by a slug) gets the namespace ``uuid5(NAMESPACE_URL,
    "auditstream:rule:" + rule_id)``, which is just as stable.
    """
    try:
        namespace = uuid.UUID(rule_id)
    except ValueError:
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, RULE_NAMESPACE_PREFIX + rule_id)
    # A JSON escape can smuggle a lone surrogate into auditID; UTF-8 (and uuid5) cannot hold it.
    return str(uuid.uuid5(namespace, _SURROGATE.sub("\ufffd", audit_id)))


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where the event was read: a Kafka record (topic, partition, offset) or a file line."""

    kind: Literal["kafka", "file"]
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    file: str | None = None
    line: int | None = None
    envelope: Envelope | None = None
    """The cloud record inside the message or line that carried the event (AKS, EKS, GKE)."""

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "file": self.file,
            "line": self.line,
            "envelope": None if self.envelope is None else _capped_envelope(self.envelope),
        }


def _capped_envelope(envelope: Envelope) -> dict[str, Any]:
    return {key: _cap_opt(value) for key, value in envelope.to_record().items()}


def _capped_explanation(explanation: Explanation | None) -> Explanation | None:
    if explanation is None:
        return None
    return Explanation(
        cap(explanation.indicator), cap(explanation.simple_command), _cap_opt(explanation.detail)
    )


@dataclass(frozen=True, slots=True)
class UserRef:
    """A Kubernetes user (``user`` or ``impersonatedUser`` of the audit event)."""

    username: str | None
    groups: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, user: object) -> UserRef | None:
        if not isinstance(user, Mapping):
            return None
        groups = user.get("groups")
        return cls(
            _cap_opt(user.get("username")), _cap_list(groups if isinstance(groups, list) else ())
        )

    def to_record(self) -> dict[str, Any]:
        return {"username": self.username, "groups": list(self.groups)}


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The object the request addressed; ``container`` comes from the normalised exec request."""

    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    container: str | None = None
    subresource: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "namespace": self.namespace,
            "name": self.name,
            "container": self.container,
            "subresource": self.subresource,
        }


@dataclass(frozen=True, slots=True)
class EventRef:
    """What the alert says about the audit event it fired on."""

    audit_id: str
    stage: str | None
    verb: str | None
    timestamp: str | None
    user: UserRef
    impersonated_user: UserRef | None
    source_ips: tuple[str, ...]
    user_agent: str | None
    object_ref: ObjectRef
    request_uri: str | None
    decision: str | None
    response_code: int | None

    @classmethod
    def from_event(cls, event: AuditEvent, container: str | None) -> EventRef:
        audit = event.audit
        ref = event.object_ref
        code = event.response_code
        ips = audit.get("sourceIPs")
        return cls(
            audit_id=cap(event.audit_id),
            stage=_cap_opt(audit.get("stage")),
            verb=_cap_opt(audit.get("verb")),
            timestamp=_cap_opt(event.timestamp),
            user=UserRef.from_json(audit.get("user")) or UserRef(None),
            impersonated_user=UserRef.from_json(audit.get("impersonatedUser")),
            source_ips=_cap_list(ips if isinstance(ips, list) else ()),
            user_agent=_cap_opt(event.user_agent),
            object_ref=ObjectRef(
                resource=_cap_opt(ref.get("resource")),
                namespace=_cap_opt(ref.get("namespace")),
                name=_cap_opt(ref.get("name")),
                container=_cap_opt(container),
                subresource=_cap_opt(ref.get("subresource")),
            ),
            request_uri=_cap_opt(audit.get("requestURI")),
            decision=_cap_opt(event.decision),
            response_code=code if code is not None and -_INT_MAX - 1 <= code <= _INT_MAX else None,
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "audit_id": self.audit_id,
            "stage": self.stage,
            "verb": self.verb,
            "timestamp": self.timestamp,
            "user": self.user.to_record(),
            "impersonated_user": (
                self.impersonated_user.to_record() if self.impersonated_user else None
            ),
            "source_ips": list(self.source_ips),
            "user_agent": self.user_agent,
            "object_ref": self.object_ref.to_record(),
            "request_uri": self.request_uri,
            "decision": self.decision,
            "response_code": self.response_code,
        }


@dataclass(frozen=True, slots=True)
class Alert:
    """One detection. Build it with :func:`build_alert`, which applies every cap on the way in."""

    alert_id: str
    rule: RuleMeta
    event: EventRef
    detected_at: str
    source: SourceRef
    fields: Mapping[str, Value] = field(default_factory=lambda: MappingProxyType({}))
    explanation: Explanation | None = None
    elastic_parity: bool | None = None

    def to_record(self) -> dict[str, Any]:
        """The dict that ``schemas/alert.avsc`` describes, in its field order."""
        return {
            "alert_id": self.alert_id,
            "rule": self.rule.to_record(),
            "event": self.event.to_record(),
            "fields": {
                name: list(value) if isinstance(value, tuple) else value
                for name, value in self.fields.items()
            },
            "explanation": self.explanation.to_record() if self.explanation else None,
            "elastic_parity": self.elastic_parity,
            "detected_at": self.detected_at,
            "source": self.source.to_record(),
        }

    def to_json(self) -> str:
        """Compact JSON of :meth:`to_record`, UTF-8 text as is (``ensure_ascii=False``)."""
        return json.dumps(
            self.to_record(), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )


def _capped_value(value: Value) -> Value:
    if isinstance(value, tuple):
        capped = (_capped_scalar(v) for v in value[:MAX_LIST_ITEMS])
        items: list[Scalar] = [v for v in capped if v is not None]
        if len(value) > MAX_LIST_ITEMS:
            items.append(f"...[truncated {len(value) - MAX_LIST_ITEMS} items]")
        return tuple(items)
    return _capped_scalar(value)


def _capped_scalar(value: Scalar | None) -> Scalar | None:
    """One ES|QL value as Avro takes it: capped strings, 64-bit longs, finite doubles.

    An integer beyond 64 bits (JSON allows it) becomes its decimal string; a NaN or infinite
    double becomes null, which is what ES|QL gives for them.
    """
    if isinstance(value, str):
        return cap(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if _LONG_MIN <= value <= _LONG_MAX else str(value)
    return value if math.isfinite(value) else None


def rfc3339_utc(moment: datetime) -> str:
    """``2025-01-15T10:00:00.123456Z``; a naive datetime is a programming error."""
    if moment.tzinfo is None:
        raise ValueError("detected_at must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_alert(
    *,
    rule: RuleMeta,
    event: AuditEvent,
    fields: Mapping[str, Value],
    source: SourceRef,
    detected_at: datetime,
    container: str | None = None,
    explanation: Explanation | None = None,
    elastic_parity: bool | None = None,
    alert_basis: str | None = None,
) -> Alert:
    """Assemble an alert; ``container`` is the exec request's (first) container parameter.

    ``alert_basis`` replaces the auditID in the alert id for alerts that stand for several
    events (a stateful rule's hit: its basis names them).
    """
    return Alert(
        alert_id=alert_id(rule.rule_id, event.audit_id if alert_basis is None else alert_basis),
        rule=rule,
        event=EventRef.from_event(event, container),
        detected_at=rfc3339_utc(detected_at),
        source=source,
        fields=MappingProxyType({name: _capped_value(v) for name, v in fields.items()}),
        explanation=_capped_explanation(explanation),
        elastic_parity=elastic_parity,
    )
