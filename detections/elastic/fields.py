"""How the ``logs-kubernetes.audit_logs-*`` data stream maps the fields rules read.

Sources (elastic/integrations, ``packages/kubernetes/data_stream/audit_logs/``): ``fields/
fields.yml`` at a6f7f6f8 (the ``kubernetes.audit.*`` declarations; its generated table in
``docs/audit-logs.md`` agrees), ``fields/ecs.yml`` at 2ad6a0d6 and ``fields/base-fields.yml``
(fields taken from ECS), ``fields/agent.yml``, and ``manifest.yml``, whose index template sets
``mappings.dynamic: false``. docs/elastic-mapping.md gives file and line for each decision.

Unmapped fields: with ``dynamic: false`` Elasticsearch adds no field to the mapping, so an
undeclared field (``kubernetes.audit.requestObject.spec.containers.command``, an annotation other
than the two declared, ``kubernetes.audit.user.extra.*``) stays in ``_source`` but is not indexed:
no query can match it, ``field:*`` included. Dynamic templates (``ecs@mappings``'s
``all_strings_to_keywords``) only apply where dynamic mapping is on, which here is only inside
the two ``nested`` ``rules`` objects (``dynamic: true``). See :func:`dynamic_type`.

``requestObject`` and ``responseObject`` are *not* ``flattened``: they are plain objects whose
declared leaves are typed (``securityContext.privileged`` is ``boolean``). Only four subtrees are
``flattened`` (:data:`FLATTENED`): every leaf under them is indexed as a keyword (``true`` as
``"true"``, ``1`` as ``"1"``), queried as ``root.key.path``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

_AUDIT: Final = "kubernetes.audit"
_REQ: Final = f"{_AUDIT}.requestObject"
_RESP: Final = f"{_AUDIT}.responseObject"

DYNAMIC_MAPPING: Final = False
"""``manifest.yml``: ``elasticsearch.index_template.mappings.dynamic: false``."""

IGNORE_ABOVE: Final = 1024
"""``keyword`` values longer than this are kept in ``_source`` but not indexed (ECS fields
declare it; Fleet gives keyword fields from ``fields.yml`` the same default)."""

FLATTENED: Final = (
    f"{_REQ}.spec.volumes.hostPath",
    f"{_REQ}.spec.containers.volumeMounts",
    f"{_RESP}.spec.volumes.hostPath",
    f"{_RESP}.spec.containers.volumeMounts",
)
"""Subtrees mapped ``flattened``: the root and every key under it answer ``flattened``."""

NESTED: Final = (f"{_REQ}.rules", f"{_RESP}.rules")
"""``nested`` objects with ``dynamic: true``: their leaves are mapped dynamically and can only
be matched with a nested query (KQL ``rules:{ verbs: create }``); a plain query on
``...rules.verbs`` matches nothing."""

_AUDIT_TYPES: Final[dict[str, str]] = {
    f"{_AUDIT}.apiVersion": "keyword",
    f"{_AUDIT}.kind": "keyword",
    f"{_AUDIT}.level": "keyword",
    f"{_AUDIT}.auditID": "keyword",
    f"{_AUDIT}.stage": "keyword",
    f"{_AUDIT}.requestURI": "keyword",
    f"{_AUDIT}.verb": "keyword",
    f"{_AUDIT}.user.groups": "text",
    f"{_AUDIT}.user.username": "keyword",
    f"{_AUDIT}.user.uid": "keyword",
    f"{_AUDIT}.impersonatedUser.groups": "text",
    f"{_AUDIT}.impersonatedUser.username": "keyword",
    f"{_AUDIT}.impersonatedUser.uid": "keyword",
    f"{_AUDIT}.sourceIPs": "text",
    f"{_AUDIT}.userAgent": "keyword",
    f"{_AUDIT}.objectRef.resource": "keyword",
    f"{_AUDIT}.objectRef.namespace": "keyword",
    f"{_AUDIT}.objectRef.name": "keyword",
    f"{_AUDIT}.objectRef.uid": "keyword",
    f"{_AUDIT}.objectRef.apiGroup": "keyword",
    f"{_AUDIT}.objectRef.apiVersion": "keyword",
    f"{_AUDIT}.objectRef.resourceVersion": "keyword",
    f"{_AUDIT}.objectRef.subresource": "keyword",
    f"{_AUDIT}.responseStatus.code": "integer",
    f"{_AUDIT}.responseStatus.status": "keyword",
    f"{_AUDIT}.responseStatus.message": "text",
    f"{_AUDIT}.responseStatus.reason": "keyword",
    f"{_REQ}.spec.type": "keyword",
    f"{_REQ}.spec.serviceAccountName": "keyword",
    f"{_REQ}.spec.restartPolicy": "keyword",
    f"{_REQ}.spec.hostNetwork": "boolean",
    f"{_REQ}.spec.hostIPC": "boolean",
    f"{_REQ}.spec.hostPID": "boolean",
    f"{_REQ}.spec.securityContext.runAsUser": "integer",
    f"{_REQ}.spec.securityContext.runAsGroup": "integer",
    f"{_REQ}.spec.securityContext.runAsNonRoot": "boolean",
    f"{_REQ}.spec.containers.image": "text",
    f"{_REQ}.spec.containers.securityContext.privileged": "boolean",
    f"{_REQ}.spec.containers.securityContext.allowPrivilegeEscalation": "boolean",
    f"{_REQ}.spec.containers.securityContext.runAsUser": "integer",
    f"{_REQ}.spec.containers.securityContext.runAsGroup": "integer",
    f"{_REQ}.spec.containers.securityContext.runAsNonRoot": "boolean",
    f"{_REQ}.spec.containers.securityContext.procMount": "keyword",
    f"{_REQ}.spec.containers.securityContext.capabilities.add": "keyword",
    f"{_RESP}.spec.hostNetwork": "boolean",
    f"{_RESP}.spec.hostIPC": "boolean",
    f"{_RESP}.spec.hostPID": "boolean",
    f"{_RESP}.spec.restartPolicy": "keyword",
    f"{_RESP}.spec.containers.securityContext.privileged": "boolean",
    f"{_RESP}.spec.containers.securityContext.allowPrivilegeEscalation": "boolean",
    f"{_RESP}.spec.containers.securityContext.runAsUser": "integer",
    f"{_RESP}.roleRef.kind": "keyword",
    f"{_AUDIT}.requestReceivedTimestamp": "date",
    f"{_AUDIT}.stageTimestamp": "date",
    f"{_AUDIT}.annotations.authorization_k8s_io/decision": "keyword",
    f"{_AUDIT}.annotations.authorization_k8s_io/reason": "text",
}

_ECS_TYPES: Final[dict[str, str]] = {
    "@timestamp": "date",
    "data_stream.type": "constant_keyword",
    "data_stream.dataset": "constant_keyword",
    "data_stream.namespace": "constant_keyword",
    "event.dataset": "constant_keyword",
    "event.kind": "keyword",
    "event.action": "keyword",
    "event.outcome": "keyword",
    "event.ingested": "date",
    "event.original": "keyword",  # ECS: index false, doc_values false: never matches
    "ecs.version": "keyword",
    "error.message": "match_only_text",
    "message": "match_only_text",
    "tags": "keyword",
    "user.id": "keyword",
    "user.name": "keyword",
    "user.name.text": "match_only_text",
    "user_agent.original": "keyword",
    "user_agent.original.text": "match_only_text",
    "source.ip": "ip",
    "client.ip": "ip",
    "related.ip": "ip",
    "related.user": "keyword",
    "orchestrator.api_version": "keyword",
    "orchestrator.cluster.id": "keyword",
    "orchestrator.cluster.name": "keyword",
    "orchestrator.namespace": "keyword",
    "orchestrator.resource.name": "keyword",
    "orchestrator.resource.type": "keyword",
    "orchestrator.type": "keyword",
    "agent.ephemeral_id": "keyword",
    "agent.id": "keyword",
    "agent.name": "keyword",
    "agent.type": "keyword",
    "agent.version": "keyword",
    "cloud.provider": "keyword",
    "host.name": "keyword",
    "host.hostname": "keyword",
    "host.ip": "ip",
    "input.type": "keyword",
    "log.offset": "long",
    "log.file.path": "keyword",
}

FIELD_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **_AUDIT_TYPES,
        **_ECS_TYPES,
        **dict.fromkeys(FLATTENED, "flattened"),
        **dict.fromkeys(NESTED, "nested"),
    }
)
"""Every field the data stream maps explicitly, by its dotted name."""

NOT_INDEXED: Final = frozenset({"event.original"})
"""Mapped, but with ``index: false`` (ECS): present in ``_source``, never matched by a query."""


def flattened_root(name: str) -> str | None:
    """The :data:`FLATTENED` field ``name`` is or lies under, else ``None``."""
    for root in FLATTENED:
        if name == root or name.startswith(root + "."):
            return root
    return None


def nested_root(name: str) -> str | None:
    """The :data:`NESTED` object ``name`` lies under (or is), else ``None``."""
    for root in NESTED:
        if name == root or name.startswith(root + "."):
            return root
    return None


def field_type(name: str) -> str | None:
    """The Elasticsearch mapping type of ``name`` in the integration's data stream.

    ``"flattened"`` for a flattened root and any key under it; ``None`` when the field is not
    mapped. Because the data stream has ``dynamic: false``, an unmapped field is *not indexed*
    (nothing matches it) except under a :data:`NESTED` object; see :func:`dynamic_type`.
    """
    found = FIELD_TYPES.get(name)
    if found is None and flattened_root(name) is not None:
        return "flattened"
    return found


def dynamic_type(name: str, value: object) -> str | None:
    """The type Elasticsearch gives an unmapped field ``name`` first seen holding ``value``;
    ``None`` when it is not mapped (and so not indexed) at all.

    Only under a :data:`NESTED` ``rules`` object is dynamic mapping on; there the stack's
    ``ecs@mappings`` templates apply first (``*.name`` -> keyword with a ``.text``
    match_only_text sub-field, ``*.ip``/``*_ip`` strings -> ip, ``*_timestamp`` -> date, ...) and
    any other string becomes ``keyword`` (``all_strings_to_keywords``, ignore_above 1024);
    JSON numbers become ``long``/``float`` and booleans ``boolean`` (ES dynamic field mapping).
    In a plain index without these templates a string would be ``text`` with a ``.keyword``
    sub-field; that default never applies to this data stream.
    """
    if name in FIELD_TYPES or nested_root(name) is None or name in NESTED:
        return None
    last = name.rsplit(".", 1)[-1]
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "float"
    if not isinstance(value, str):
        return None
    if last == "ip" or last.endswith("_ip"):
        return "ip"
    if last.endswith("_timestamp") or last in ("timestamp", "created", "ingested"):
        return "date"
    return "keyword"


def is_indexed(name: str) -> bool:
    """Whether a query on ``name`` can ever match: mapped (or under a flattened or nested root)
    and not ``index: false``."""
    if name in NOT_INDEXED:
        return False
    return field_type(name) is not None or nested_root(name) is not None
