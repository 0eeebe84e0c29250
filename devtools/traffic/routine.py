"""The everyday traffic of a cluster's audit log, for background noise around the exec requests.

Leader-election lease renewals, controllers reading and watching, kubelets patching pod status,
kubectl applies and event writes: each as one ``ResponseComplete`` event of a realistic size
(roughly 1 to 3 KB: service-account users carry ``extra``, writes carry request and response
objects). Secrets are only ever logged at ``Metadata`` level, as real audit policies do.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

NAMESPACES: Final = ("default", "payments", "web", "monitoring", "kube-system")
NODES: Final = ("worker-1", "worker-2", "worker-3")
API_SERVER_IP: Final = "192.0.2.10"
KUBECTL_USER: Final[Mapping[str, Any]] = {
    "username": "alice@example.com",
    "groups": ["platform-admins", "system:authenticated"],
}


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, as ``metav1.MicroTime`` is written."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def service_account_user(
    namespace: str, name: str, rng: random.Random | None = None
) -> dict[str, Any]:
    """A bound service-account token's user, with the ``extra`` the API server adds."""
    rng = rng or random.Random(f"{namespace}/{name}")
    pod = f"{name}-{rng.randrange(16**5):05x}"
    return {
        "username": f"system:serviceaccount:{namespace}:{name}",
        "uid": _uuid(rng),
        "groups": [
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        ],
        "extra": {
            "authentication.kubernetes.io/credential-id": [f"JTI={_uuid(rng)}"],
            "authentication.kubernetes.io/node-name": [rng.choice(NODES)],
            "authentication.kubernetes.io/node-uid": [_uuid(rng)],
            "authentication.kubernetes.io/pod-name": [pod],
            "authentication.kubernetes.io/pod-uid": [_uuid(rng)],
        },
    }


def _event(
    rng: random.Random,
    at: datetime,
    *,
    level: str,
    uri: str,
    verb: str,
    user: dict[str, Any],
    user_agent: str,
    object_ref: dict[str, Any],
    code: int,
    source_ip: str = API_SERVER_IP,
) -> dict[str, Any]:
    done = at + timedelta(microseconds=rng.randint(800, 25_000))
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": _uuid(rng),
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": verb,
        "user": user,
        "sourceIPs": [source_ip],
        "userAgent": user_agent,
        "objectRef": object_ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": format_time(at),
        "stageTimestamp": format_time(done),
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": _reason(user),
        },
    }


def _reason(user: dict[str, Any]) -> str:
    name = str(user["username"])
    if name.startswith("system:node:"):
        return ""
    role = name.removeprefix("system:").split(":")[-1]
    return f'RBAC: allowed by ClusterRoleBinding "system:{role}" of ClusterRole "system:{role}"'


def _controller(name: str) -> dict[str, Any]:
    return {"username": f"system:{name}", "groups": ["system:authenticated"]}


def _node(node: str) -> dict[str, Any]:
    return {"username": f"system:node:{node}", "groups": ["system:nodes", "system:authenticated"]}


def _lease_update(rng: random.Random, at: datetime) -> dict[str, Any]:
    holder = rng.choice(("kube-controller-manager", "kube-scheduler"))
    lease = {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {
            "name": holder,
            "namespace": "kube-system",
            "uid": _uuid(rng),
            "resourceVersion": str(rng.randint(10**6, 10**7)),
            "creationTimestamp": "2024-11-02T08:14:51Z",
        },
        "spec": {
            "holderIdentity": f"control-plane-1_{_uuid(rng)}",
            "leaseDurationSeconds": 15,
            "acquireTime": "2024-11-02T08:15:07.102331Z",
            "renewTime": format_time(at),
            "leaseTransitions": rng.randint(1, 9),
        },
    }
    event = _event(
        rng,
        at,
        level="RequestResponse",
        uri=f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{holder}?timeout=5s",
        verb="update",
        user=_controller(holder),
        user_agent=f"{holder}/v1.31.2 (linux/amd64) kubernetes/5864a46/leader-election",
        object_ref={
            "resource": "leases",
            "namespace": "kube-system",
            "name": holder,
            "apiGroup": "coordination.k8s.io",
            "apiVersion": "v1",
        },
        code=200,
    )
    return _with_objects(event, lease, lease)


def _read(rng: random.Random, at: datetime) -> dict[str, Any]:
    resource = rng.choice(("pods", "configmaps", "secrets", "deployments", "events"))
    namespace = rng.choice(NAMESPACES)
    verb = rng.choice(("get", "list", "watch"))
    group = "/apis/apps/v1" if resource == "deployments" else "/api/v1"
    base = f"{group}/namespaces/{namespace}/{resource}"
    ref: dict[str, Any] = {"resource": resource, "namespace": namespace, "apiVersion": "v1"}
    if resource == "deployments":
        ref["apiGroup"] = "apps"
    code = 200
    if verb == "get":
        name = f"{rng.choice(('api', 'web', 'worker', 'cache'))}-{rng.randrange(16**4):04x}"
        uri, ref["name"] = f"{base}/{name}", name
        code = rng.choice((200, 200, 200, 404))
    elif verb == "list":
        uri = f"{base}?limit=500&resourceVersion=0"
    else:
        uri = f"{base}?allowWatchBookmarks=true&resourceVersion={rng.randint(10**6, 10**7)}"
        uri += "&timeout=8m12s&timeoutSeconds=492&watch=true"
    sa = rng.choice((("monitoring", "prometheus"), ("kube-system", "coredns"), ("web", "operator")))
    return _event(
        rng,
        at,
        level="Metadata",
        uri=uri,
        verb=verb,
        user=service_account_user(*sa),
        user_agent=f"{sa[1]}/v2.54.1 (linux/amd64) kubernetes/$Format",
        object_ref=ref,
        code=code,
        source_ip=f"192.0.2.{rng.randint(20, 60)}",
    )


def _pod_status_patch(rng: random.Random, at: datetime) -> dict[str, Any]:
    node, namespace = rng.choice(NODES), rng.choice(NAMESPACES)
    pod = f"web-6f7d8b9c5d-{rng.randrange(16**5):05x}"
    patch = {
        "metadata": {"uid": _uuid(rng)},
        "status": {
            "$setElementOrder/conditions": [{"type": t} for t in ("Initialized", "Ready")],
            "conditions": [{"lastProbeTime": None, "status": "True", "type": "Ready"}],
            "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0}],
        },
    }
    event = _event(
        rng,
        at,
        level="Request",
        uri=f"/api/v1/namespaces/{namespace}/pods/{pod}/status",
        verb="patch",
        user=_node(node),
        user_agent="kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46",
        object_ref={
            "resource": "pods",
            "namespace": namespace,
            "name": pod,
            "apiVersion": "v1",
            "subresource": "status",
        },
        code=200,
        source_ip=f"192.0.2.{rng.randint(100, 103)}",
    )
    return _with_objects(event, patch, None)


def _deployment_apply(rng: random.Random, at: datetime) -> dict[str, Any]:
    namespace, name = rng.choice(NAMESPACES[:4]), rng.choice(("api", "web", "worker"))
    image = f"registry.example.com/{name}:1.{rng.randint(0, 40)}.{rng.randint(0, 9)}"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop"}
    patch = {"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}}
    deployment = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": _uuid(rng),
            "resourceVersion": str(rng.randint(10**6, 10**7)),
            "generation": rng.randint(2, 90),
            "labels": labels,
            "annotations": {"deployment.kubernetes.io/revision": str(rng.randint(2, 90))},
        },
        "spec": {
            "replicas": rng.choice((2, 3, 4)),
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": image,
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        }
                    ],
                    "serviceAccountName": name,
                },
            },
            "strategy": {"type": "RollingUpdate"},
        },
        "status": {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3},
    }
    event = _event(
        rng,
        at,
        level="RequestResponse",
        uri=f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        "?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
        verb="patch",
        user=copy.deepcopy(dict(KUBECTL_USER)),
        user_agent="kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
        object_ref={
            "resource": "deployments",
            "namespace": namespace,
            "name": name,
            "apiGroup": "apps",
            "apiVersion": "v1",
        },
        code=200,
        source_ip="203.0.113.10",
    )
    return _with_objects(event, patch, deployment)


def _event_create(rng: random.Random, at: datetime) -> dict[str, Any]:
    namespace = rng.choice(NAMESPACES)
    pod = f"worker-{rng.randrange(16**5):05x}"
    reason = rng.choice(("Pulled", "Created", "Started", "Scheduled", "BackOff"))
    record = {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": f"{pod}.{rng.randrange(16**12):012x}", "namespace": namespace},
        "involvedObject": {"kind": "Pod", "namespace": namespace, "name": pod, "apiVersion": "v1"},
        "reason": reason,
        "message": f"{reason} container worker",
        "source": {"component": "kubelet", "host": rng.choice(NODES)},
        "firstTimestamp": format_time(at)[:19] + "Z",
        "count": 1,
        "type": "Warning" if reason == "BackOff" else "Normal",
    }
    node = rng.choice(NODES)
    event = _event(
        rng,
        at,
        level="Request",
        uri=f"/api/v1/namespaces/{namespace}/events",
        verb="create",
        user=_node(node),
        user_agent="kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46",
        object_ref={"resource": "events", "namespace": namespace, "apiVersion": "v1"},
        code=201,
        source_ip=f"192.0.2.{100 + NODES.index(node)}",
    )
    return _with_objects(event, record, None)


def _with_objects(
    event: dict[str, Any], request: dict[str, Any] | None, response: dict[str, Any] | None
) -> dict[str, Any]:
    """Insert request/response objects where the API server writes them (before timestamps)."""
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key == "requestReceivedTimestamp":
            if request is not None:
                out["requestObject"] = request
            if response is not None:
                out["responseObject"] = response
        out[key] = value
    return out


_KINDS: Final[tuple[tuple[Callable[[random.Random, datetime], dict[str, Any]], int], ...]] = (
    (_lease_update, 30),
    (_read, 45),
    (_pod_status_patch, 10),
    (_deployment_apply, 5),
    (_event_create, 10),
)


def routine_audit_event(rng: random.Random, at: datetime | None = None) -> dict[str, Any]:
    """One everyday audit event, drawn with the weights a busy small cluster shows."""
    build = rng.choices([b for b, _ in _KINDS], weights=[w for _, w in _KINDS])[0]
    return build(rng, at or datetime.now(UTC))
