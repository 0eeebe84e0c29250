"""Which value of an audit event a Sigma field name reads.

SigmaHQ's Kubernetes rules name fields of the raw ``audit.k8s.io/v1`` event
(``objectRef.resource``, ``responseStatus.code``) and a few short names. The short names resolve
as pySigma's Elasticsearch backend resolves them in its ``ecs_kubernetes`` pipeline
(pySigma-backend-elasticsearch, ``sigma/pipelines/elasticsearch/kubernetes.py``): to a
``kubernetes.audit.*`` field, which is the audit event's own path. A name already spelled with
``kubernetes.audit.`` reads the same path, so a rule written against ECS documents runs too.

Both input shapes reach the rules as the same audit object (an ECS document's
``kubernetes.audit``), so one resolution serves raw events and ECS documents alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final

SHORT_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "verb": "verb",
        "apiGroup": "objectRef.apiGroup",
        "resource": "objectRef.resource",
        "subresource": "objectRef.subresource",
        "namespace": "objectRef.namespace",
        "username": "user.username",
        "capabilities": "requestObject.spec.containers.securityContext.capabilities.add",
        "privileged": "responseObject.spec.containers.securityContext.privileged",
        "hostPath": "requestObject.spec.volumes.hostPath",
    }
)
"""The ``ecs_kubernetes`` field mapping, with its ``kubernetes.audit.`` prefix taken off."""

ECS_PREFIX: Final = "kubernetes.audit."


@lru_cache(maxsize=1024)
def audit_path(field: str) -> tuple[str, ...]:
    """The audit-event path a Sigma field name reads, as segments."""
    name = SHORT_NAMES.get(field, field.removeprefix(ECS_PREFIX))
    return tuple(name.split("."))


def field_values(audit: Mapping[str, Any], path: tuple[str, ...]) -> list[object]:
    """Every value at ``path``: arrays are entered at any depth (an array field matches by any
    element), and a key that itself contains dots (``authorization.k8s.io/decision``) is found
    as well as nested objects. A JSON ``null`` is kept: ``null`` and ``exists`` tell it apart
    from a missing field."""
    return list(_walk(audit, path, 0))


def _walk(node: object, path: tuple[str, ...], at: int) -> Iterator[object]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, path, at)
        return
    if at == len(path):
        yield node
        return
    if not isinstance(node, Mapping):
        return
    # Longest key first, then shorter ones: "a.b.c" may be a key "a.b" holding "c".
    for end in range(len(path), at, -1):
        key = path[at] if end == at + 1 else ".".join(path[at:end])
        if key in node:
            yield from _walk(node[key], path, end)
