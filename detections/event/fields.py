"""Field names of the rule languages resolved, once at load, into getters over any event shape."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.field_path import (
    MISSING,
    FieldPath,
    ecs_key,
    lookup_annotation,
    to_value,
)
from auditstream.detections.values import Value

AUDIT_FIELD_PREFIX: Final = "kubernetes.audit."

Getter = Callable[[AuditEvent], Value]

RAW_DERIVED_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "@timestamp": ("stageTimestamp", "requestReceivedTimestamp"),
    "source.ip": ("sourceIPs",),
    "user_agent.original": ("userAgent",),
    "user.name": ("user.username",),
}
"""ECS columns that raw (non-ECS) input derives from the audit event, first present path wins.
``source.ip`` takes the first of ``sourceIPs`` (the client, before any proxies), as Elastic's
integration does. Every other non-``kubernetes.audit`` column is null for raw input."""


def compile_field(name: str) -> Getter:
    """Resolve an ES|QL column name once, at rule load, into a getter for any event shape.

    ``kubernetes.audit.<path>`` walks ``event.audit`` (``annotations.<key>`` accepts both the
    ECS spelling ``authorization_k8s_io/decision`` and the raw ``authorization.k8s.io/decision``);
    any other name walks the ECS ``document``, or, for raw input, one of
    :data:`RAW_DERIVED_FIELDS`. Metadata columns (``_id``, ``_index``, ...) are the engine's.
    """
    if name.startswith(AUDIT_FIELD_PREFIX):
        return _audit_getter(name[len(AUDIT_FIELD_PREFIX) :])
    document_path = FieldPath(name)
    derived = tuple(FieldPath(p) for p in RAW_DERIVED_FIELDS.get(name, ()))
    first_only = name == "source.ip"

    def get(event: AuditEvent) -> Value:
        if event.document is not None:
            return to_value(document_path.lookup(event.document))
        for path in derived:
            raw = path.lookup(event.audit)
            if raw is not MISSING and raw is not None:
                if first_only and isinstance(raw, list):
                    return to_value(raw[:1])
                return to_value(raw)
        return None

    return get


def _audit_getter(path: str) -> Getter:
    head, dot, key = path.partition(".")
    if head == "annotations" and dot:
        key_ecs = ecs_key(key)

        def get_annotation(event: AuditEvent) -> Value:
            return to_value(lookup_annotation(event.audit.get("annotations"), key, key_ecs))

        return get_annotation
    field = FieldPath(path)

    def get(event: AuditEvent) -> Value:
        return to_value(field.lookup(event.audit))

    return get
