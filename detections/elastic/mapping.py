"""The ``_source`` Elastic's Kubernetes integration indexes for one audit event.

Elastic rules (KQL, EQL, ES|QL) for Kubernetes read documents of the data stream
``logs-kubernetes.audit_logs-*``, not the raw ``audit.k8s.io/v1`` event. :func:`elastic_source`
rebuilds that document so that a rule fires on a raw event exactly as on the document the
integration would have indexed for it.

Raw input goes through what Elastic Agent and the ingest pipeline do, processor by processor, in
the pipeline's order (``packages/kubernetes/data_stream/audit_logs/elasticsearch/ingest_pipeline/
default.yml`` of elastic/integrations at 8e8a63a8, the newest version whose text we read; see
docs/elastic-mapping.md for every processor, its evidence and its test). Each processor is a
function over a private deep copy of the document (``ctx``), so the caller's event is never
touched. A processor that fails raises :class:`_Failure`; the pipeline's ``on_failure`` handler
then runs and the rest of the pipeline does not, as in Elasticsearch.

ECS input is already in the integration's form: it is rebuilt, not processed again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.field_path import ecs_key

Ctx = dict[str, Any]
Processor = Callable[[Ctx], None]

DATASET: Final = "kubernetes.audit_logs"
"""``data_stream.dataset`` and ``event.dataset``: the data stream's name in the package."""
DEFAULT_NAMESPACE: Final = "default"
"""Fleet's default policy namespace; ``data_stream.namespace`` is whatever the policy says."""
DECISION_KEY: Final = "authorization.k8s.io/decision"


class _Failure(Exception):
    """A processor failed in Elasticsearch; carries the processor type for ``error.message``."""

    def __init__(self, processor: str, message: str) -> None:
        super().__init__(message)
        self.processor = processor
        self.message = message


def elastic_document(event: AuditEvent) -> ElasticDocument:
    """The indexed document of ``event``, computed once per event (kept on the event)."""
    found = event.derived.get("elastic")
    if found is None:
        found = event.derived["elastic"] = ElasticDocument(elastic_source(event))
    return found


def elastic_source(event: AuditEvent, *, namespace: str = DEFAULT_NAMESPACE) -> dict[str, Any]:
    """The ``_source`` the integration indexes for ``event``; ``event`` is not modified.

    ECS input (``event.document`` is not ``None``) is rebuilt as it came: the document plus
    ``kubernetes.audit`` with annotation keys back in ECS spelling (``authorization_k8s_io/...``).
    The pipeline already ran on it where it was indexed, and running it twice is not idempotent
    (``related.*`` would grow, a renamed field would clash), so it is not applied again.

    Raw input gets the fields Elastic Agent adds for the data stream, then every pipeline
    processor in order (:data:`PIPELINE`). ``namespace`` is the policy's namespace.
    """
    if event.document is not None:
        return _rebuild_ecs(event.audit, event.document)
    ctx = _agent_document(event.audit, namespace)
    try:
        for processor in PIPELINE:
            processor(ctx)
    except _Failure as failure:
        _on_failure(ctx, failure)
    return ctx


def _rebuild_ecs(audit: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, Any]:
    """The document with ``kubernetes.audit`` put back, annotation keys in ECS spelling.

    Keys are respelled with the integration's own rule (every ``.`` to ``_``), which undoes the
    decoder's :func:`~auditstream.detections.event.field_path.restore_annotation_key` exactly.
    """
    spelled: dict[str, Any] = _copy(audit)
    annotations = spelled.get("annotations")
    if isinstance(annotations, dict):
        spelled["annotations"] = {_respell(k): v for k, v in annotations.items()}
    source: dict[str, Any] = _copy(document)
    kubernetes = source.get("kubernetes")
    source["kubernetes"] = (
        {**kubernetes, "audit": spelled} if isinstance(kubernetes, dict) else {"audit": spelled}
    )
    return source


def _respell(key: object) -> object:
    return ecs_key(key) if isinstance(key, str) else key


def _agent_document(audit: Mapping[str, Any], namespace: str) -> Ctx:
    """What reaches the pipeline: the event under ``kubernetes.audit`` plus the agent's fields.

    ``data_stream.*`` and ``event.dataset`` are added by Elastic Agent to every event of the
    stream (values as in the package's ``sample_event.json``); all four are ``constant_keyword``.
    The integration sets no ``event.module``. ``@timestamp`` is the agent's read time, which
    cannot be known here: the stage timestamp stands in for it (docs/elastic-mapping.md).
    """
    ctx: Ctx = {
        "kubernetes": {"audit": _copy(audit)},
        "data_stream": {"type": "logs", "dataset": DATASET, "namespace": namespace},
        "event": {"dataset": DATASET},
    }
    for key in ("stageTimestamp", "requestReceivedTimestamp"):
        stamp = audit.get(key)
        if isinstance(stamp, str) and stamp:
            ctx["@timestamp"] = stamp
            break
    return ctx


def _copy(value: Any) -> Any:
    """A deep copy of a JSON value (``IngestDocument.deepCopy``); mappings become dicts."""
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


# --- Access as Painless and IngestDocument do it ----------------------------------------------

_ABSENT: Final = object()


def _safe(ctx: Ctx, path: str) -> Any:
    """Painless ``ctx.a?.b?.c``: ``None`` when a step is missing or null; a step that is neither
    a map nor null (a string, a list) makes the condition throw, so the processor fails."""
    node: Any = ctx
    for part in path.split("."):
        if node is None:
            return None
        if not isinstance(node, dict):
            raise _Failure("script", f"dynamic getter [{part}] not found on a non-map value")
        node = node.get(part)
    return node


def _get(ctx: Ctx, path: str) -> Any:
    """``IngestDocument.getFieldValue`` with ``ignore_missing``: :data:`_ABSENT` when the path
    does not lead through maps to an existing key (a ``null`` value is present)."""
    node: Any = ctx
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _set(ctx: Ctx, path: str, value: Any) -> None:
    """``IngestDocument.setFieldValue``: missing parents become maps; a non-map parent fails."""
    *parents, last = path.split(".")
    node = ctx
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise _Failure("set", f"cannot set [{last}] with parent object of a non-map type")
        node = child
    node[last] = value


def _remove(ctx: Ctx, path: str) -> None:
    *parents, last = path.split(".")
    parent = _get(ctx, ".".join(parents)) if parents else ctx
    if isinstance(parent, dict):
        parent.pop(last, None)


def _is_empty_value(value: Any) -> bool:
    """``ignore_empty_value``: only ``null`` and the empty string count as empty."""
    return value is None or value == ""


def _append(ctx: Ctx, path: str, value: Any) -> None:
    """The ``append`` processor with ``allow_duplicates: false``."""
    current = _get(ctx, path)
    if current is _ABSENT or current is None:
        _set(ctx, path, [value])
        return
    items = current if isinstance(current, list) else [current]
    if value not in items:
        items.append(value)
    _set(ctx, path, items)


def _mustache(value: Any) -> str:
    """``{{{field}}}`` rendered: strings as they are, other scalars as Java prints them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_mustache(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_mustache(v)}" for k, v in value.items()) + "}"
    return "" if value is None else str(value)


# --- Processor builders: each decides its behaviour once, at import -------------------------


def _copy_field(field: str, source: str, *, override: bool = True) -> Processor:
    """``set`` with ``copy_from`` and ``ignore_empty_value``, guarded by ``if: <source> != null``
    (every such processor in the pipeline has exactly that guard)."""

    def process(ctx: Ctx) -> None:
        if _safe(ctx, source) is None:
            return
        value = _get(ctx, source)
        if value is _ABSENT or _is_empty_value(value):
            return
        if not override and _get(ctx, field) not in (_ABSENT, None):
            return
        _set(ctx, field, _copy(value))

    return process


def _set_value(field: str, value: str) -> Processor:
    def process(ctx: Ctx) -> None:
        _set(ctx, field, value)

    return process


def _remove_metadata(object_key: str) -> Processor:
    """``remove`` of ``<object>.metadata`` with ``ignore_missing`` when the object is not null."""
    guard = f"kubernetes.audit.{object_key}"
    field = f"{guard}.metadata"

    def process(ctx: Ctx) -> None:
        if _safe(ctx, guard) is not None and _get(ctx, field) is not _ABSENT:
            _remove(ctx, field)

    return process


def _rename_gke(source: str, target: str) -> Processor:
    """The GKE ``rename`` processors. Their guard reads ``ctx.audit?...`` (not ``ctx.kubernetes``)
    so it is always true; ``ignore_missing`` skips a missing source; an existing target fails
    the processor (``rename`` has no ``override`` here), which fails the pipeline."""
    source, target = f"kubernetes.audit.{source}", f"kubernetes.audit.{target}"

    def process(ctx: Ctx) -> None:
        value = _get(ctx, source)
        if value is _ABSENT:
            return
        if _get(ctx, target) is not _ABSENT:
            raise _Failure("rename", f"field [{target}] already exists")
        _remove(ctx, source)
        _set(ctx, target, value)

    return process


def _cloud_provider(input_type: str, provider: str) -> Processor:
    def process(ctx: Ctx) -> None:
        if _safe(ctx, "input.type") == input_type:
            _set(ctx, "cloud.provider", provider)

    return process


def _related_user(source: str) -> Processor:
    def process(ctx: Ctx) -> None:
        value = _safe(ctx, source)
        if value is not None:
            _append(ctx, "related.user", _mustache(value))

    return process


# --- The processors that are more than a builder ---------------------------------------------


def _annotations(ctx: Ctx) -> None:
    """The Painless script: every annotation key gets ``_`` for ``.``; the decision annotation
    sets ``event.outcome`` (``allow`` -> success, ``forbid`` -> failure, else nothing).

    Two keys that respell alike (``a.b``, ``a_b``) collide in a Java ``HashMap``; the winner
    depends on hash order there, here the later key in source order wins.
    """
    annotations = _safe(ctx, "kubernetes.audit.annotations")
    if annotations is None:
        return
    if not isinstance(annotations, dict):
        raise _Failure("script", "cannot cast the annotations to java.util.Map")
    updated: dict[Any, Any] = {}
    for key, value in annotations.items():
        updated[_respell(key)] = value
        if key == DECISION_KEY and value in ("allow", "forbid"):
            ctx["event"]["outcome"] = "success" if value == "allow" else "failure"
    ctx["kubernetes"]["audit"]["annotations"] = updated


def _convert_source_ips(ctx: Ctx) -> None:
    """``convert`` of ``sourceIPs`` to ``source.ip``, type ``ip``, ``ignore_failure``.

    Each element goes through ``InetAddresses.forString((String) value)`` and is kept as
    written; one element that is not an IP string (or not a string) fails the whole processor
    and ``ignore_failure`` drops it: no ``source.ip`` at all, not the valid part of the list.
    """
    if _safe(ctx, "kubernetes.audit.sourceIPs") is None:
        return
    value = ctx["kubernetes"]["audit"]["sourceIPs"]
    items = value if isinstance(value, list) else [value]
    if all(isinstance(v, str) and is_inet_address(v) for v in items):
        _set(ctx, "source.ip", list(value) if isinstance(value, list) else value)


def _related_ip(ctx: Ctx) -> None:
    """``foreach`` over ``source.ip`` when it is a list, appending each to ``related.ip``."""
    ips = _safe(ctx, "source.ip")
    if isinstance(ips, list):
        for ip in ips:
            _append(ctx, "related.ip", _mustache(ip))


def _drop_empty(ctx: Ctx) -> None:
    """The last script: recursively removes ``null``, ``""``, empty maps and empty lists (after
    emptying their children) from the whole document, list elements included."""
    _drop_empty_map(ctx)


def _drop_empty_map(node: dict[Any, Any]) -> None:
    for key in list(node):
        if _drop_empty_value(node[key]):
            del node[key]


def _drop_empty_value(value: Any) -> bool:
    if isinstance(value, dict):
        _drop_empty_map(value)
    elif isinstance(value, list):
        value[:] = [v for v in value if not _drop_empty_value(v)]
    return value is None or value == "" or (isinstance(value, dict | list) and not value)


def _on_failure(ctx: Ctx, failure: _Failure) -> None:
    """The pipeline's ``on_failure``: ``event.kind`` ``pipeline_error``, the
    ``preserve_original_event`` tag, and the message appended to ``error.message`` (its text
    after ``failed with message`` is ours, not Java's)."""
    event = ctx.get("event")
    if not isinstance(event, dict):
        event = ctx["event"] = {}
    event["kind"] = "pipeline_error"
    _append(ctx, "tags", "preserve_original_event")
    _append(
        ctx,
        "error.message",
        f"Processor '{failure.processor}' failed with message '{failure.message}",
    )


PIPELINE: Final[tuple[Processor, ...]] = (
    # rename message -> event.original, json event.original -> kubernetes.audit, remove
    # message: the decoder has done this already (no event.original, see the docs).
    _remove_metadata("responseObject"),
    _remove_metadata("requestObject"),
    _set_value("event.kind", "event"),
    _copy_field("event.action", "kubernetes.audit.verb"),
    _rename_gke("insertId", "auditID"),
    _rename_gke("receiveTimestamp", "requestReceivedTimestamp"),
    _rename_gke("timestamp", "stageTimestamp"),
    _rename_gke("protoPayload.status.code", "responseStatus.code"),
    _rename_gke("labels", "annotations"),
    _annotations,
    _copy_field("user.name", "kubernetes.audit.user.username"),
    _copy_field("user.id", "kubernetes.audit.user.uid"),
    _copy_field("user_agent.original", "kubernetes.audit.userAgent"),
    _convert_source_ips,
    _copy_field("client.ip", "source.ip"),
    _set_value("orchestrator.type", "kubernetes"),
    _copy_field("orchestrator.api_version", "kubernetes.audit.apiVersion"),
    _copy_field("orchestrator.resource.type", "kubernetes.audit.objectRef.resource"),
    _copy_field("orchestrator.namespace", "kubernetes.audit.objectRef.namespace"),
    _copy_field("orchestrator.resource.name", "kubernetes.audit.objectRef.name"),
    _copy_field(
        "orchestrator.resource.name", "kubernetes.audit.protoPayload.resourceName", override=False
    ),
    _copy_field("orchestrator.resource.type", "kubernetes.audit.resource.type"),
    _copy_field("orchestrator.cluster.name", "kubernetes.audit.resource.labels.cluster_name"),
    _copy_field("orchestrator.cluster.id", "kubernetes.audit.resource.labels.project_id"),
    _cloud_provider("aws-cloudwatch", "aws"),
    _cloud_provider("azure-eventhub", "azure"),
    _cloud_provider("gcp-pubsub", "gcp"),
    _related_user("kubernetes.audit.user.uid"),
    _related_user("kubernetes.audit.user.username"),
    _related_ip,
    _drop_empty,
)
"""The ingest pipeline's processors in its order (one entry per processor)."""


# --- Elasticsearch's IP literal check ---------------------------------------------------------


def is_inet_address(text: str) -> bool:
    """``InetAddresses.forString`` accepts ``text``: a port of Elasticsearch's parser (server
    ``org.elasticsearch.common.network.InetAddresses``, the byte-level rewrite of Guava's).

    IPv4 is four decimal octets without leading zeros; IPv6 is hextets with at most one ``::``
    and an optional trailing dotted quad; everything after the first ``%`` is a scope ID and is
    not looked at (a trailing ``%`` alone is refused). Only ASCII before the ``%``. Octets and
    hextets accumulate in a Java ``int``, so overlong ones wrap as they do there.
    """
    head, percent, scope = text.partition("%")
    if (percent and not scope) or not head.isascii():
        return False
    last_colon = head.rfind(":")
    if last_colon >= 0:
        if "." in head[:last_colon]:
            return False  # colons must not appear after dots
        if "." in head:
            quad = _ipv4(head[last_colon + 1 :])
            if quad is None:
                return False
            a, b, c, d = quad
            head = f"{head[: last_colon + 1]}{a:02x}{b:02x}:{c:02x}{d:02x}"
        return _ipv6(head)
    return "." in head and _ipv4(head) is not None


def _java_int(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _ipv4(text: str) -> tuple[int, int, int, int] | None:
    """``textToNumericFormatV4``, loop for loop."""
    octets: list[int] = []
    digits = current = 0
    for char in text:
        if char == ".":
            if len(octets) >= 4 or digits == 0 or current > 255:
                return None
            octets.append(current & 0xFF)
            digits = current = 0
        elif "0" <= char <= "9":
            if digits and current == 0:
                return None  # a leading zero is refused, not read as octal
            current = _java_int(current * 10 + ord(char) - 48)
            digits += 1
        else:
            return None
    if len(octets) != 3 or digits == 0 or current > 255:
        return None
    a, b, c = octets
    return a, b, c, current & 0xFF


def _ipv6(text: str) -> bool:
    """``textToNumericFormatV6``, loop for loop (positions are offsets into ``text``)."""
    if len(text) < 2:
        return False
    if (text[0] == ":" and text[1] != ":") or (text[-1] == ":" and text[-2] != ":"):
        return False
    compressed = -1
    hextets = start = current = 0
    for i, char in enumerate(text):
        if char == ":":
            if start == i:
                if compressed >= 0 and i != 1:
                    return False
                compressed = hextets
            else:
                if hextets >= 8 or current > 0xFFFF:
                    return False
                current = 0
                hextets += 1
            start = i + 1
        elif char in _HEX:
            current = _java_int(current * 16 + int(char, 16))
        else:
            return False
    if start < len(text):
        if hextets >= 8 or current > 0xFFFF:
            return False
        hextets += 1
    return hextets < 8 if compressed >= 0 else hextets == 8


_HEX: Final = frozenset("0123456789abcdefABCDEF")
