"""Realistic synthetic Kubernetes audit events, for ``python -m devtools.traffic``, benchmarks and
tests.

Exec requests come out as the API server logs them: one ``audit.k8s.io/v1`` Event per stage
(``RequestReceived``, ``ResponseStarted``, ``ResponseComplete``) sharing one ``auditID``, with the
``requestURI`` spelled the way the chosen client spells it (see :mod:`devtools.traffic.exec_uris`).
Field order follows the API server's struct order, timestamps are RFC 3339 with microseconds, and
the ``authorization.k8s.io`` annotations appear from ``ResponseStarted`` on (the API server writes
``RequestReceived`` before it authorises).

Transport decides the verb: kubectl >= 1.30, the JavaScript and Python clients and the Rancher
shell speak WebSocket (HTTP ``GET`` → verb ``get``); SPDY, kubectl's fallback and older kubectl,
is a ``POST`` (verb ``create``). Both upgrades answer ``101 Switching Protocols``.

Every builder takes an injectable :class:`random.Random` and a start time; with both fixed the
output is byte-for-byte reproducible.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from devtools.traffic.exec_uris import Client, Subresource, exec_request_uri
from devtools.traffic.routine import (
    KUBECTL_USER,
    format_time,
    routine_audit_event,
    service_account_user,
)

__all__ = [
    "CLIENT_PROFILES",
    "EXEC_STAGES",
    "Client",
    "ClientProfile",
    "as_aks_record",
    "as_cloudwatch",
    "as_ecs",
    "as_event_hubs",
    "as_event_list",
    "as_gke_entry",
    "as_wrapped",
    "exec_audit_events",
    "exec_request_uri",
    "go_json",
    "routine_audit_event",
]

Transport = Literal["websocket", "spdy"]
EcsLayout = Literal["nested", "flattened", "mixed"]
EXEC_STAGES: Final = ("RequestReceived", "ResponseStarted", "ResponseComplete")
AUDIT_API_VERSION: Final = "audit.k8s.io/v1"
_GO_ESCAPES: Final = (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"))
_SEPARATORS: Final = (",", ":")
BROWSER_UA: Final = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@dataclass(frozen=True, slots=True)
class ClientProfile:
    """Who typically drives a client, from where, and what it sends as User-Agent.

    ``user_agent`` is ``""`` where the client sends none: the ``ws`` library under
    ``@kubernetes/client-node`` and ``websocket-client`` under the Python client add no
    User-Agent header, and the audit event then has no ``userAgent`` at all.
    """

    user: Mapping[str, Any]
    impersonated_user: Mapping[str, Any] | None
    user_agent: str
    source_ip: str
    transport: Transport


CLIENT_PROFILES: Final[Mapping[Client, ClientProfile]] = {
    "kubectl": ClientProfile(
        user=KUBECTL_USER,
        impersonated_user=None,
        user_agent="kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
        source_ip="203.0.113.10",
        transport="websocket",
    ),
    "javascript": ClientProfile(
        user=service_account_user("ops", "runbook-runner"),
        impersonated_user=None,
        user_agent="",
        source_ip="198.51.100.23",
        transport="websocket",
    ),
    "rancher": ClientProfile(
        user=service_account_user("cattle-impersonation-system", "cattle-impersonation-u-7xk2p"),
        impersonated_user={
            "username": "u-7xk2p",
            "groups": ["system:authenticated", "system:cattle:authenticated"],
        },
        user_agent=BROWSER_UA,
        source_ip="192.0.2.40",
        transport="websocket",
    ),
    "python": ClientProfile(
        user=service_account_user("ci", "pipeline-bot"),
        impersonated_user=None,
        user_agent="",
        source_ip="198.51.100.77",
        transport="websocket",
    ),
    "raw": ClientProfile(
        user={"username": "mallory", "groups": ["system:authenticated"]},
        impersonated_user=None,
        user_agent="curl/8.5.0",
        source_ip="203.0.113.66",
        transport="spdy",
    ),
}


def exec_audit_events(
    *,
    command: Sequence[str],
    client: Client = "kubectl",
    namespace: str = "default",
    pod: str = "web-6f7d8b9c5d-4kx2p",
    container: str | None = "web",
    user: Mapping[str, Any] | None = None,
    audit_id: str | None = None,
    stages: Sequence[str] = EXEC_STAGES,
    rng: random.Random | None = None,
    start: datetime | None = None,
    stdin: bool = False,
    stdout: bool = True,
    stderr: bool = True,
    tty: bool = False,
    subresource: Subresource = "exec",
    node: str = "worker-1",
    raw_query: str | None = None,
    transport: Transport | None = None,
    source_ip: str | None = None,
    user_agent: str | None = None,
    decision: Literal["allow", "forbid"] = "allow",
    level: Literal["Metadata", "Request"] = "Metadata",
) -> list[dict[str, Any]]:
    """The audit events of one exec (or attach, or kubelet-proxy exec) request, one per stage.

    ``user``, ``source_ip``, ``user_agent`` and ``transport`` default to the client's profile
    (:data:`CLIENT_PROFILES`); ``user_agent=""`` omits the field. A forbidden request never
    upgrades: it has no ``ResponseStarted`` stage and answers 403.
    """
    rng = rng or random.Random()
    profile = CLIENT_PROFILES[client]
    uri = exec_request_uri(
        namespace=namespace,
        pod=pod,
        command=command,
        container=container,
        client=client,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        tty=tty,
        subresource=subresource,
        node=node,
        raw_query=raw_query,
    )
    common: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": AUDIT_API_VERSION,
        "level": level,
        "auditID": audit_id or str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "stage": "",
        "requestURI": uri,
        "verb": "get" if (transport or profile.transport) == "websocket" else "create",
        "user": dict(user or profile.user),
    }
    if user is None and profile.impersonated_user is not None:
        common["impersonatedUser"] = dict(profile.impersonated_user)
    common["sourceIPs"] = [source_ip or profile.source_ip]
    agent = profile.user_agent if user_agent is None else user_agent
    if agent:
        common["userAgent"] = agent
    common["objectRef"] = _exec_object_ref(subresource, namespace, pod, node)
    times = _stage_times(rng, start or datetime.now(UTC), tty or stdin)
    if decision == "forbid":
        stages = [s for s in stages if s != "ResponseStarted"]
    return [_stage_event(common, stage, times, decision) for stage in stages]


def _exec_object_ref(subresource: str, namespace: str, pod: str, node: str) -> dict[str, Any]:
    if subresource == "proxy":
        return {"resource": "nodes", "name": node, "apiVersion": "v1", "subresource": "proxy"}
    return {
        "resource": "pods",
        "namespace": namespace,
        "name": pod,
        "apiVersion": "v1",
        "subresource": subresource,
    }


def _stage_times(rng: random.Random, start: datetime, interactive: bool) -> dict[str, datetime]:
    """Received, upgraded a few ms later, complete when the command (or session) ends."""
    started = start + timedelta(microseconds=rng.randint(2_000, 40_000))
    session = rng.uniform(30.0, 900.0) if interactive else rng.uniform(0.05, 4.0)
    return {
        "RequestReceived": start,
        "ResponseStarted": started,
        "ResponseComplete": started + timedelta(seconds=session),
        "Panic": started,
    }


def _stage_event(
    common: Mapping[str, Any], stage: str, times: Mapping[str, datetime], decision: str
) -> dict[str, Any]:
    event = {**copy.deepcopy(common), "stage": stage}
    if stage != "RequestReceived":
        event["responseStatus"] = _response_status(decision)
    event["requestReceivedTimestamp"] = format_time(times["RequestReceived"])
    event["stageTimestamp"] = format_time(times.get(stage, times["RequestReceived"]))
    if stage != "RequestReceived":
        event["annotations"] = _authz_annotations(decision, common)
    return event


def _response_status(decision: str) -> dict[str, Any]:
    if decision == "allow":
        return {"metadata": {}, "code": 101}
    return {"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403}


def _authz_annotations(decision: str, common: Mapping[str, Any]) -> dict[str, str]:
    if decision != "allow":
        return {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}
    username = str(common["user"].get("username", ""))
    binding = "cluster-admins" if not username.startswith("system:serviceaccount:") else "exec"
    reason = f'RBAC: allowed by ClusterRoleBinding "{binding}" of ClusterRole "cluster-admin"'
    return {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": reason}


# --------------------------------------------------------------------------- input shapes


def as_event_list(
    events: Sequence[Mapping[str, Any]], *, strip_type_meta: bool = True
) -> dict[str, Any]:
    """An ``EventList`` as the webhook backend posts it; its items carry no kind/apiVersion."""
    items = [
        {k: v for k, v in e.items() if not (strip_type_meta and k in ("kind", "apiVersion"))}
        for e in events
    ]
    return {"kind": "EventList", "apiVersion": AUDIT_API_VERSION, "metadata": {}, "items": items}


def as_ecs(event: Mapping[str, Any], *, layout: EcsLayout = "nested") -> dict[str, Any]:
    """The event as Elastic Agent's ``kubernetes.audit_logs`` integration indexes it.

    Annotation keys get ``_`` for ``.``; ``source.ip``, ``user_agent.original``, ``user.name`` and
    ``@timestamp`` are copied out of the event. ``layout`` chooses how ``kubernetes.audit`` is
    spelled: nested objects, flattened dotted keys, or alternating keys of both.
    """
    audit = dict(event)
    annotations = audit.get("annotations")
    if isinstance(annotations, Mapping):
        audit["annotations"] = {k.replace(".", "_"): v for k, v in annotations.items()}
    doc: dict[str, Any] = {"@timestamp": event.get("stageTimestamp")}
    doc.update(_ecs_context(event))
    if layout == "nested":
        doc["kubernetes"] = {"audit": audit}
    elif layout == "flattened":
        doc.update(_flatten(audit, "kubernetes.audit"))
    else:
        nested = {k: v for i, (k, v) in enumerate(audit.items()) if i % 2 == 0}
        flat = {k: v for i, (k, v) in enumerate(audit.items()) if i % 2 == 1}
        doc["kubernetes"] = {"audit": nested}
        doc.update(_flatten(flat, "kubernetes.audit"))
    return doc


def _ecs_context(event: Mapping[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {
        "data_stream": {"type": "logs", "dataset": "kubernetes.audit_logs", "namespace": "default"},
        "ecs": {"version": "8.11.0"},
        "event": {
            "kind": "event",
            "module": "kubernetes",
            "dataset": "kubernetes.audit_logs",
            "ingested": event.get("stageTimestamp"),
        },
        "orchestrator": {"type": "kubernetes"},
    }
    ips = event.get("sourceIPs")
    if isinstance(ips, list) and ips:
        context["source"] = {"ip": ips[0]}
    if "userAgent" in event:
        context["user_agent"] = {"original": event["userAgent"]}
    user = event.get("user")
    if isinstance(user, Mapping) and "username" in user:
        context["user"] = {"name": user["username"]}
    return context


def _flatten(obj: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Dotted keys for every leaf; an object with a dotted key of its own (other than an
    annotation, label or extra map) stays a nested leaf, since flattening it would be lossy."""
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        path = f"{prefix}.{key}"
        opaque = key in ("annotations", "labels", "extra")
        if isinstance(value, Mapping) and value and (opaque or not any("." in k for k in value)):
            if opaque:
                flat.update({f"{path}.{k}": v for k, v in value.items()})
            else:
                flat.update(_flatten(value, path))
        else:
            flat[path] = value
    return flat


def as_wrapped(obj: object, key: Literal["log", "message"] = "log") -> dict[str, Any]:
    """A shipper's record around the JSON text: fluent-bit (``log``) or filebeat (``message``)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    when = _first_timestamp(obj)
    if key == "log":
        return {"log": text, "stream": "stdout", "time": when}
    return {
        "@timestamp": when,
        "message": text,
        "input": {"type": "filestream"},
        "log": {"file": {"path": "/var/log/kubernetes/audit/audit.log"}, "offset": 0},
        "agent": {"type": "filebeat", "version": "8.15.3"},
    }


def _first_timestamp(obj: object) -> str | None:
    if isinstance(obj, list):
        return _first_timestamp(obj[0]) if obj else None
    if not isinstance(obj, Mapping):
        return None
    for key in ("stageTimestamp", "@timestamp"):
        if isinstance(obj.get(key), str):
            return str(obj[key])
    items = obj.get("items")
    return _first_timestamp(items) if isinstance(items, list) else None


def go_json(obj: object) -> bytes:
    """JSON as the API server's audit backend writes it: compact, HTML characters escaped.

    ``&``, ``<`` and ``>`` can only occur inside strings in JSON text, so a textual replace
    escapes exactly the characters Go's ``encoding/json`` escapes (plus U+2028/9, which
    ``json.dumps`` with ``ensure_ascii=False`` leaves as they are: Go escapes them too).
    """
    text = json.dumps(obj, separators=_SEPARATORS, ensure_ascii=False)
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


# --------------------------------------------------------------------------- cloud envelopes
#
# Managed clusters do not hand out the API server's log: each cloud ships it in its own record,
# and that record is what reaches Kafka. The builders below write each platform's documented
# schema around one event, so the generator exercises the decoder's envelope paths at realistic
# sizes. Everything is a function of the event: no randomness, same event, same bytes.

AKS_RESOURCE_ID: Final = (
    "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG-PROD/PROVIDERS/"
    "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/PROD-AKS"
)
AKS_API_SERVER_POD: Final = "kube-apiserver-6d5c8d9f7b-x2x9q"
EKS_CLUSTER: Final = "prod-eks"
EKS_ACCOUNT: Final = "111122223333"
EKS_LOG_STREAM: Final = "kube-apiserver-audit-8c5f1b2e3d4a5f60718293a4b5c6d7e8"
GKE_PROJECT: Final = "prod-project"
GKE_CLUSTER: Final = "prod-gke"
GKE_LOCATION: Final = "europe-west1"
GKE_READ_VERBS: Final = frozenset(("get", "list", "watch"))
"""Verbs GKE logs as Data Access (``cloudaudit.googleapis.com/data_access``); the rest are Admin
Activity."""


def as_aks_record(
    event: Mapping[str, Any],
    *,
    category: Literal["kube-audit", "kube-audit-admin"] = "kube-audit",
    resource_id: str = AKS_RESOURCE_ID,
) -> dict[str, Any]:
    """The event as AKS diagnostic settings export it: one Azure Monitor resource-log record.

    AKS runs the API server for you; its audit log leaves the cluster only through a diagnostic
    setting, category ``kube-audit`` (or ``kube-audit-admin``, which drops get/list). The API
    server's log line rides, as JSON text written by Go, in ``properties.log``; ``properties.pod``
    names the API server replica that wrote it, and ``resourceId`` the managed cluster (upper
    case, as Azure writes it). ``time`` is the event's ``stageTimestamp``.
    """
    return {
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "category": category,
        "ccpNamespace": "66f3a5e1c2b4d80001a7b9c3",
        "resourceId": resource_id,
        "properties": {
            "log": go_json(event).decode(),
            "stream": "stdout",
            "pod": AKS_API_SERVER_POD,
            "containerID": "3f1e0c9b7a2d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3",
        },
        "time": event.get("stageTimestamp"),
    }


def as_event_hubs(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Azure Monitor records as a diagnostic setting streams them to Event Hubs: one event body
    ``{"records": [...]}`` per batch (the Kafka endpoint of Event Hubs, or a connector, delivers
    that body as one Kafka message). A batch gathers unrelated writes, so the decoder sets a bad
    record aside alone rather than the whole message."""
    return {"records": [dict(r) for r in records]}


def as_cloudwatch(
    events: Sequence[Mapping[str, Any]],
    *,
    compress: bool = True,
    cluster: str = EKS_CLUSTER,
    account: str = EKS_ACCOUNT,
    log_stream: str = EKS_LOG_STREAM,
) -> bytes:
    """The events as an EKS control-plane log reaches Kafka: a CloudWatch Logs subscription's
    ``DATA_MESSAGE`` of log group ``/aws/eks/<cluster>/cluster``, stream
    ``kube-apiserver-audit-...``, one log event per audit line (``message``: the line as the API
    server writes it).

    Returns bytes, not a dict: a subscription to Kinesis (and Firehose without decompression)
    delivers the payload gzip-compressed, and that is what a Kinesis-to-Kafka bridge forwards
    (``compress=False`` gives the plain JSON). The gzip header's mtime is 0, so the bytes are a
    function of the events. A log event's ``timestamp`` is the event's ``stageTimestamp`` in
    epoch milliseconds and its ``id`` 56 digits, as CloudWatch writes them.
    """
    log_events = []
    for event in events:
        millis = _epoch_millis(event.get("stageTimestamp"))
        digest = hashlib.sha256(str(event.get("auditID", "")).encode()).digest()
        serial = int.from_bytes(digest[:16], "big") % 10**40
        log_events.append(
            {"id": f"{millis:016d}{serial:040d}", "timestamp": millis,
             "message": go_json(event).decode()}
        )  # fmt: skip
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": account,
        "logGroup": f"/aws/eks/{cluster}/cluster",
        "logStream": log_stream,
        "subscriptionFilters": ["eks-audit-to-kinesis"],
        "logEvents": log_events,
    }
    data = json.dumps(payload, separators=_SEPARATORS, ensure_ascii=False).encode()
    return gzip.compress(data, mtime=0) if compress else data


def _epoch_millis(stamp: object) -> int:
    if not isinstance(stamp, str):
        return 0
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def as_gke_entry(
    event: Mapping[str, Any],
    *,
    project: str = GKE_PROJECT,
    cluster: str = GKE_CLUSTER,
    location: str = GKE_LOCATION,
) -> dict[str, Any]:
    """The request of a ``ResponseComplete`` event as GKE's Cloud Audit Logs record it: one
    ``LogEntry`` whose ``protoPayload`` is a ``google.cloud.audit.AuditLog`` of ``k8s.io``.

    GKE logs one entry per request, not one per stage, so only the ``ResponseComplete`` stage
    makes one (any other stage raises :class:`ValueError`). The entry has no ``requestURI``: the
    request is spelled in ``methodName`` (``io.k8s.<group or core>.<version>.<resource>
    [.<subresource>].<verb>``) and ``resourceName`` (``<group or core>/<version>/[namespaces/
    <ns>/]<resource>[/<name>[/<subresource>]]``), so an exec's command (its query string) is
    lost: exec-command rules cannot fire on GKE input, rules on verb and objectRef can.

    ``insertId`` is the auditID, ``principalEmail`` the user, ``callerIp`` the first source IP,
    ``labels`` the annotations, ``timestamp``/``receiveTimestamp`` the stage/received times (the
    fields Elastic's integration maps back to those event fields). ``status.code`` is a
    ``google.rpc`` code, not HTTP: 0 (OK) for a success, including an exec's ``101`` upgrade;
    7 (PERMISSION_DENIED) for 403, 16 (UNAUTHENTICATED) for 401, 2 (UNKNOWN) otherwise. Request
    and response objects, where the event has them, become ``request``/``response``.
    """
    if event.get("stage") != "ResponseComplete":
        raise ValueError(f"GKE logs a request once, at ResponseComplete, not {event.get('stage')}")
    verb = str(event.get("verb", ""))
    ref = event.get("objectRef")
    method, resource_name = _gke_names(verb, ref, str(event.get("requestURI", "")))
    user = event.get("user")
    username = user.get("username") if isinstance(user, Mapping) else None
    payload: dict[str, Any] = {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": username or ""},
        "authorizationInfo": [
            {
                "granted": _annotation(event, "authorization.k8s.io/decision") == "allow",
                "permission": method,
                "resource": resource_name,
            }
        ],
        "methodName": method,
        "requestMetadata": _gke_request_metadata(event),
        "resourceName": resource_name,
        "serviceName": "k8s.io",
    }
    status = event.get("responseStatus")
    if isinstance(status, Mapping) and isinstance(status.get("code"), int):
        payload["status"] = {"code": _rpc_code(status["code"])}
    if isinstance(event.get("requestObject"), Mapping):
        payload["request"] = event["requestObject"]
    if isinstance(event.get("responseObject"), Mapping):
        payload["response"] = event["responseObject"]
    log = "data_access" if verb in GKE_READ_VERBS else "activity"
    entry: dict[str, Any] = {
        "insertId": event.get("auditID"),
        "logName": f"projects/{project}/logs/cloudaudit.googleapis.com%2F{log}",
        "operation": {"id": event.get("auditID"), "producer": "k8s.io", "first": True,
                      "last": True},
        "protoPayload": payload,
        "receiveTimestamp": event.get("requestReceivedTimestamp"),
        "resource": {
            "type": "k8s_cluster",
            "labels": {"cluster_name": cluster, "location": location, "project_id": project},
        },
        "severity": "INFO" if log == "data_access" else "NOTICE",
        "timestamp": event.get("stageTimestamp"),
    }  # fmt: skip
    annotations = event.get("annotations")
    if isinstance(annotations, Mapping):
        entry["labels"] = dict(annotations)
    return entry


def _gke_names(verb: str, ref: object, request_uri: str) -> tuple[str, str]:
    """``methodName`` and ``resourceName`` of a request; a request with no ``objectRef`` is a
    non-resource URL (``/healthz``), named by its path."""
    if not isinstance(ref, Mapping) or not ref.get("resource"):
        path = urlsplit(request_uri).path.strip("/")
        return f"io.k8s.{verb}", path
    group = str(ref.get("apiGroup") or "core")
    version = str(ref.get("apiVersion") or "v1")
    resource = str(ref["resource"])
    subresource = ref.get("subresource")
    parts = [group, version]
    if ref.get("namespace"):
        parts += ["namespaces", str(ref["namespace"])]
    parts.append(resource)
    if ref.get("name"):
        parts.append(str(ref["name"]))
        if subresource:
            parts.append(str(subresource))
    method = ".".join(["io.k8s", group, version, resource, *([subresource] if subresource else [])])
    return f"{method}.{verb}", "/".join(parts)


def _gke_request_metadata(event: Mapping[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    ips = event.get("sourceIPs")
    if isinstance(ips, list) and ips:
        metadata["callerIp"] = ips[0]
    if event.get("userAgent"):
        metadata["callerSuppliedUserAgent"] = event["userAgent"]
    return metadata


def _annotation(event: Mapping[str, Any], key: str) -> object:
    annotations = event.get("annotations")
    return annotations.get(key) if isinstance(annotations, Mapping) else None


def _rpc_code(http: int) -> int:
    if 200 <= http < 300 or http == 101:  # an exec, attach or port-forward upgrade succeeded
        return 0
    return {403: 7, 401: 16}.get(http, 2)
