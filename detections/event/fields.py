"""Field names of the rule languages resolved, once at load, into getters over any event shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from auditstream.detections.elastic.mapping import elastic_document
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.field_path import (
    FieldPath,
    ecs_key,
    lookup_annotation,
    to_value,
)
from auditstream.detections.values import Value

AUDIT_FIELD_PREFIX: Final = "kubernetes.audit."

Getter = Callable[[AuditEvent], Value]


def compile_field(name: str) -> Getter:
    """Resolve an ES|QL column name once, at rule load, into a getter for any event shape.

    ``kubernetes.audit.<path>`` walks ``event.audit`` (``annotations.<key>`` accepts both the
    ECS spelling ``authorization_k8s_io/decision`` and the raw ``authorization.k8s.io/decision``).
    Any other name walks the ECS ``document``, or, for raw input, the document Elastic's
    integration would have indexed (``elastic.mapping.elastic_document``: ``event.action``,
    ``user.name``, every member of ``sourceIPs`` as ``source.ip``, the data stream's constant
    fields). Metadata columns (``_id``, ``_index``, ...) are the engine's.
    """
    if name.startswith(AUDIT_FIELD_PREFIX):
        return _audit_getter(name[len(AUDIT_FIELD_PREFIX) :])
    path = FieldPath(name)

    def get(event: AuditEvent) -> Value:
        if event.document is not None:
            return to_value(path.lookup(event.document))
        return to_value(path.lookup(elastic_document(event).source))

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
