"""A GKE Cloud Audit Logs entry, read as the audit event its fields describe.

GKE writes one ``LogEntry`` per API request (to Cloud Logging, and through a Pub/Sub sink into
Kafka), its ``protoPayload`` a ``google.cloud.audit.AuditLog`` of service ``k8s.io``. It carries
no ``requestURI`` and no ``verb``; their parts are spelled in ``methodName``
(``io.k8s.core.v1.pods.exec.create``) and ``resourceName`` (``core/v1/namespaces/default/pods/
web/exec``).

Where Elastic's Kubernetes integration maps a field, this mapping is the integration's (its
ingest pipeline fills only fields the entry lacks): ``insertId`` -> ``auditID``,
``receiveTimestamp`` -> ``requestReceivedTimestamp``, ``timestamp`` -> ``stageTimestamp``,
``protoPayload.status.code`` -> ``responseStatus.code`` (a ``google.rpc`` code: 0 is OK, 7 is
PERMISSION_DENIED, not an HTTP status), ``labels`` -> ``annotations`` (the authorization
decision). The rest is auditstream's reading of the entry, so that the rules find the request
where they look for it: ``verb`` (the last part of ``methodName``), ``objectRef`` and
``requestURI`` (from ``resourceName``), ``user.username`` (``principalEmail``), ``sourceIPs``
(``callerIp``), ``userAgent``, ``requestObject``/``responseObject`` (``request``/``response``).
The exec command is not in the entry's request (GKE may put it in the label
``command.gke.io/command``, kept among the annotations), so rules that read the command from
``requestURI`` cannot fire on GKE input; docs/sources.md lists which can.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from auditstream.detections.event.envelope import Envelope

AUDIT_LOG_TYPE: Final = "type.googleapis.com/google.cloud.audit.AuditLog"
KUBERNETES_SERVICE: Final = "k8s.io"


def is_gke_entry(obj: Mapping[str, Any]) -> bool:
    """A Cloud Logging entry with an audit payload (of any service)."""
    payload = obj.get("protoPayload")
    return isinstance(payload, Mapping) and payload.get("@type") == AUDIT_LOG_TYPE


def gke_audit_event(entry: Mapping[str, Any]) -> tuple[dict[str, Any], Envelope] | str:
    """The audit event and envelope of a ``k8s.io`` entry; for another service's entry, the
    reason it is skipped (a Pub/Sub sink may carry every audited service of a project)."""
    payload: Mapping[str, Any] = entry["protoPayload"]
    if payload.get("serviceName") != KUBERNETES_SERVICE:
        return "gcp_service"
    method = _text(payload.get("methodName")) or ""
    resource_name = _text(payload.get("resourceName")) or ""
    metadata = _mapping(payload.get("requestMetadata"))
    authentication = _mapping(payload.get("authenticationInfo"))
    status = _mapping(payload.get("status"))
    request_uri, object_ref = _request_of(resource_name)
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse" if "response" in payload else "Metadata",
        "auditID": _text(entry.get("insertId")) or "",
        "stage": "ResponseComplete",
        "requestURI": request_uri,
        "verb": method.rsplit(".", 1)[-1],
        "user": {"username": _text(authentication.get("principalEmail")) or ""},
    }
    caller = _text(metadata.get("callerIp"))
    if caller:
        event["sourceIPs"] = [caller]
    agent = _text(metadata.get("callerSuppliedUserAgent"))
    if agent:
        event["userAgent"] = agent
    if object_ref:
        event["objectRef"] = object_ref
    if isinstance(status.get("code"), int):
        event["responseStatus"] = {"code": status["code"]}
    for source, target in (("request", "requestObject"), ("response", "responseObject")):
        if isinstance(payload.get(source), Mapping):
            event[target] = payload[source]
    for source, target in (
        ("receiveTimestamp", "requestReceivedTimestamp"),
        ("timestamp", "stageTimestamp"),
    ):
        if _text(entry.get(source)):
            event[target] = entry[source]
    labels = entry.get("labels")
    if isinstance(labels, Mapping):
        event["annotations"] = dict(labels)
    resource = _mapping(_mapping(entry.get("resource")).get("labels"))
    envelope = Envelope(
        provider="gke",
        cluster=_text(resource.get("cluster_name")),
        resource_id=_text(resource.get("project_id")),
        log_group=_text(entry.get("logName")),
    )
    return event, envelope


def _request_of(resource_name: str) -> tuple[str, dict[str, str]]:
    """``requestURI`` and ``objectRef`` of a resource name: ``<group>/<version>/[namespaces/
    <ns>/]<resource>[/<name>[/<subresource>]]``, ``core`` being the core group. A name of
    another form is a non-resource URL (``readyz``)."""
    parts = [p for p in resource_name.split("/") if p]
    if len(parts) < 3 or not parts[1].startswith("v"):
        return "/" + resource_name.lstrip("/"), {}
    group, version, rest = parts[0], parts[1], parts[2:]
    ref: dict[str, str] = {"apiVersion": version}
    if group != "core":
        ref["apiGroup"] = group
    if len(rest) >= 3 and rest[0] == "namespaces":
        ref["namespace"] = rest[1]
        rest = rest[2:]
    for key, value in zip(("resource", "name", "subresource"), rest, strict=False):
        ref[key] = value
    prefix = f"/api/{version}" if group == "core" else f"/apis/{group}/{version}"
    return prefix + "/" + "/".join(parts[2:]), ref


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
