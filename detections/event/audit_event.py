"""One audit event as auditstream reads it, whatever shape carried it (see
:mod:`auditstream.detections.event.decode` for the shapes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from auditstream.detections.event.envelope import Envelope
from auditstream.detections.event.field_path import FieldPath, ecs_key, lookup_annotation

DECISION_ANNOTATION: Final = "authorization.k8s.io/decision"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit event as read, whatever shape carried it. Treat both mappings as read-only."""

    audit: Mapping[str, Any]
    """The audit.k8s.io/v1 Event object with the API server's key names."""
    document: Mapping[str, Any] | None
    """The enclosing ECS document minus ``kubernetes.audit``; ``None`` for raw input."""
    shape: str
    """The outermost shape of the message: event, event_list, array, ecs or wrapped."""
    envelope: Envelope | None = None
    """The cloud record that carried the event (AKS, EKS, GKE), if any: where it came from."""
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Representations computed from this event on first use (the Elastic document), kept so
    that every rule that reads one computes it once. Never part of the event's identity."""

    @property
    def audit_id(self) -> str:
        return str(self.audit["auditID"])

    @property
    def stage(self) -> str:
        return str(self.audit["stage"])

    @property
    def verb(self) -> str:
        return str(self.audit["verb"])

    @property
    def request_uri(self) -> str:
        return str(self.audit["requestURI"])

    @property
    def object_ref(self) -> Mapping[str, Any]:
        ref = self.audit.get("objectRef")
        return ref if type(ref) is dict or isinstance(ref, Mapping) else _NO_OBJECT_REF

    @property
    def resource(self) -> str | None:
        return _str_or_none(self.object_ref.get("resource"))

    @property
    def subresource(self) -> str | None:
        return subresource_of(self.audit)

    @property
    def namespace(self) -> str | None:
        return _str_or_none(self.object_ref.get("namespace"))

    @property
    def name(self) -> str | None:
        return _str_or_none(self.object_ref.get("name"))

    @property
    def username(self) -> str | None:
        user = self.audit.get("user")
        return _str_or_none(user.get("username")) if isinstance(user, Mapping) else None

    @property
    def user_agent(self) -> str | None:
        return _str_or_none(self.audit.get("userAgent"))

    @property
    def source_ips(self) -> tuple[str, ...]:
        ips = self.audit.get("sourceIPs")
        return tuple(ip for ip in ips if isinstance(ip, str)) if isinstance(ips, list) else ()

    @property
    def timestamp(self) -> str | None:
        """stageTimestamp, else requestReceivedTimestamp, else the document's @timestamp."""
        for key in ("stageTimestamp", "requestReceivedTimestamp"):
            value = self.audit.get(key)
            if isinstance(value, str):
                return value
        if self.document is not None:
            value = _DOC_TIMESTAMP.lookup(self.document)
            if isinstance(value, str):
                return value
        return None

    @property
    def decision(self) -> str | None:
        """The ``authorization.k8s.io/decision`` annotation (allow or forbid)."""
        found = lookup_annotation(
            self.audit.get("annotations"), DECISION_ANNOTATION, ecs_key(DECISION_ANNOTATION)
        )
        return found if isinstance(found, str) else None

    @property
    def response_code(self) -> int | None:
        status = self.audit.get("responseStatus")
        code = status.get("code") if isinstance(status, Mapping) else None
        return code if isinstance(code, int) and not isinstance(code, bool) else None


_DOC_TIMESTAMP: Final = FieldPath("@timestamp")
_NO_OBJECT_REF: Final[Mapping[str, Any]] = MappingProxyType({})


def subresource_of(audit: Mapping[str, Any]) -> str | None:
    """``objectRef.subresource`` of an audit object when it is a string (what native rules and
    the exec counters go by; ES|QL reads the field its own way)."""
    ref = audit.get("objectRef")
    if type(ref) is dict or isinstance(ref, Mapping):
        return _str_or_none(ref.get("subresource"))
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
