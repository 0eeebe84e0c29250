"""Input shapes in, typed :class:`AuditEvent` values out.

One Kafka message, or one line of a file, may hold any of these (the *shape*):

``event``       a raw ``audit.k8s.io/v1`` Event (the API server's log or webhook backend);
``event_list``  an ``EventList`` (webhook batches); its ``items`` usually carry no kind/apiVersion;
``array``       a JSON array whose elements are any of the other shapes except ``array``;
``ecs``         an Elastic document with the event under ``kubernetes.audit`` (nested, flattened
                or mixed; see :mod:`auditstream.detections.event.ecs_shape`);
``wrapped``     a shipper record (fluent-bit ``log``, filebeat ``message``) holding any of the
                other shapes except ``wrapped`` as a JSON string.

Decisions: an ``EventList`` with no items, and an empty array, give no events (``[]``): there is
nothing to detect and nothing is malformed. A message is one unit: if any element in it is not an
audit event, the whole message is a dead letter (``unknown_shape``) rather than half-processed.
Items of an ``EventList`` that lack ``kind``/``apiVersion`` get ``Event`` and the list's
``apiVersion``, so the same event decodes to the same ``audit`` object from every shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import orjson

from auditstream.detections.errors import MalformedEvent
from auditstream.detections.event.ecs_shape import is_ecs_document, nested_audit, split_ecs
from auditstream.detections.event.field_path import (
    MISSING,
    FieldPath,
    ecs_key,
    lookup_annotation,
    to_value,
)
from auditstream.detections.values import Value

MAX_MESSAGE_BYTES: Final = 1_048_576
REQUIRED_STRING_FIELDS: Final = ("auditID", "stage", "verb", "requestURI")
"""The minimum of an audit event: every stage of every request carries these four."""
WRAPPER_KEYS: Final = ("log", "message")
DECISION_ANNOTATION: Final = "authorization.k8s.io/decision"
AUDIT_FIELD_PREFIX: Final = "kubernetes.audit."


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit event as read, whatever shape carried it. Treat both mappings as read-only."""

    audit: Mapping[str, Any]
    """The audit.k8s.io/v1 Event object with the API server's key names."""
    document: Mapping[str, Any] | None
    """The enclosing ECS document minus ``kubernetes.audit``; ``None`` for raw input."""
    shape: str
    """The outermost shape of the message: event, event_list, array, ecs or wrapped."""

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


# --------------------------------------------------------------------------- decoding


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STDLIB_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
"""Built once: ``json.loads(text, parse_constant=...)`` builds a new decoder on every call."""
_LONG_NUMBER: Final = b"0" * 19
"""orjson turns an integer beyond 64 bits into a float where ``json`` keeps the exact int; every
such integer has at least 19 digits (all of them ``0`` once :data:`_DIGITS` has mapped them)."""
_DIGITS: Final = bytes.maketrans(b"123456789", b"000000000")


def decode_message(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> list[AuditEvent]:
    """Decode one Kafka message value or one line of a file into its audit events.

    Raises :class:`MalformedEvent` with reason ``oversized``, ``not_utf8``, ``not_json`` or
    ``unknown_shape``. ``NaN``/``Infinity`` are refused as not JSON (no API server writes them).
    """
    value, exact = parse_message(data, max_bytes=max_bytes)
    return events_from_json(value if exact else exact_json(data, value))


def parse_message(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[object, bool]:
    """The JSON value of a message, and whether it is exactly ``json``'s value.

    orjson parses what it can (nearly every message, several times faster than ``json``);
    ``json`` decides the rest (lone surrogate escapes, numbers beyond double range, a BOM) and
    gives the reasons. What orjson accepts, ``json`` accepts too, with two differences: orjson
    nests up to 1,024 levels where ``json`` stops at the interpreter's recursion limit (about
    990), and it turns an integer beyond 64 bits into a float. The first is the accepted
    nesting; the second is why the value is flagged not exact: :func:`exact_json` gives the
    exact one when a value is going to be read (a message no rule can fire on never is).
    """
    if len(data) > max_bytes:
        raise MalformedEvent("oversized", f"{len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        return orjson.loads(data), False  # also proves the bytes are UTF-8
    except orjson.JSONDecodeError:
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise MalformedEvent("not_utf8", f"invalid UTF-8 at byte {err.start}") from err
    return _stdlib_json(text.removeprefix("\ufeff"), "not_json"), True


def exact_json(raw: bytes, value: object) -> object:
    """orjson's ``value`` of ``raw`` as ``json`` gives it: re-parsed by ``json`` when an integer
    beyond 64 bits may have become a float (or kept, where ``json`` cannot nest that deep)."""
    if _LONG_NUMBER not in raw.translate(_DIGITS):
        return value
    try:
        return _STDLIB_DECODER.decode(raw.decode("utf-8", "surrogatepass"))
    except RecursionError:
        return value


def _parse_json(text: str, reason: str) -> object:
    """:func:`parse_message` for JSON held in a string (a shipper's ``log`` field): exact."""
    raw = text.encode("utf-8", "surrogatepass")
    try:
        return exact_json(raw, orjson.loads(raw))
    except orjson.JSONDecodeError:
        return _stdlib_json(text, reason)


def _stdlib_json(text: str, reason: str) -> object:
    try:
        return _STDLIB_DECODER.decode(text)
    except (ValueError, RecursionError) as err:
        raise MalformedEvent(reason, f"cannot parse JSON: {err}") from err


def events_from_json(obj: object) -> list[AuditEvent]:
    """Events of an already-parsed JSON value; raises ``MalformedEvent("unknown_shape", ...)``."""
    return _events(obj, None, allow_array=True, allow_wrapped=True)


def plain_audit(obj: object) -> Mapping[str, Any] | None:
    """The one audit event of a parsed message in either common layout, a raw Event or an ECS
    document spelling only the nested ``kubernetes.audit``, checked as :func:`events_from_json`
    checks it (raising the same ``unknown_shape``); ``None`` for any other layout.

    For messages that no rule can fire on, this is all the decoding there is to do: no
    :class:`AuditEvent`, no ECS split. Its audit equals the event's ``audit`` but for the
    spelling of annotation keys (ECS ``_`` for ``.``).
    """
    if type(obj) is not dict:
        return None
    if "auditID" in obj:
        return _checked_event(obj)
    if obj.get("kind") == "EventList" or isinstance(obj.get("items"), list):
        return None
    source = nested_audit(obj)
    return None if source is None else _checked_event(source)


def _events(
    obj: object, outer: str | None, *, allow_array: bool, allow_wrapped: bool
) -> list[AuditEvent]:
    """Events of one element; ``outer`` is the shape of the enclosing array or wrapper, if any.

    Arrays and wrappers nest at most once each, so the recursion is bounded by the shape rules,
    not by the input.
    """
    if isinstance(obj, list) and allow_array:
        shape = outer or "array"
        return [
            e
            for item in obj
            for e in _events(item, shape, allow_array=False, allow_wrapped=allow_wrapped)
        ]
    if not isinstance(obj, Mapping):
        raise MalformedEvent("unknown_shape", f"expected a JSON object, got {_kind(obj)}")
    if "auditID" in obj:
        return [AuditEvent(_checked_event(obj), None, outer or "event")]
    if obj.get("kind") == "EventList" or isinstance(obj.get("items"), list):
        return _event_list(obj, outer or "event_list")
    if is_ecs_document(obj):
        audit, rest = split_ecs(obj)
        return [AuditEvent(_checked_event(audit), rest, outer or "ecs")]
    if allow_wrapped:
        inner = _unwrap(obj)
        if inner is not MISSING:
            return _events(inner, outer or "wrapped", allow_array=allow_array, allow_wrapped=False)
    raise MalformedEvent("unknown_shape", f"no audit event in an object with keys {_keys(obj)}")


def _event_list(obj: Mapping[str, Any], shape: str) -> list[AuditEvent]:
    items = obj.get("items")
    if not isinstance(items, list):
        raise MalformedEvent("unknown_shape", "EventList without an items array")
    api_version = obj.get("apiVersion", "audit.k8s.io/v1")
    events = []
    for item in items:
        if not isinstance(item, Mapping):
            raise MalformedEvent("unknown_shape", f"EventList item is {_kind(item)}")
        event = item
        if "kind" not in item or "apiVersion" not in item:
            event = {"kind": "Event", "apiVersion": api_version, **item}
        events.append(AuditEvent(_checked_event(event), None, shape))
    return events


def _unwrap(obj: Mapping[str, Any]) -> object:
    """The parsed JSON inside a shipper's ``log`` or ``message`` string, or MISSING."""
    for key in WRAPPER_KEYS:
        text = obj.get(key)
        if isinstance(text, str) and text.lstrip()[:1] in ("{", "["):
            return _parse_json(text, "unknown_shape")
    return MISSING


def _checked_event(event: Mapping[str, Any]) -> Mapping[str, Any]:
    get = event.get
    if (  # the usual event, in one expression; anything else takes the loop that says why
        type(get("auditID")) is str
        and get("auditID")
        and type(get("stage")) is str
        and type(get("verb")) is str
        and type(get("requestURI")) is str
        and get("kind", "Event") == "Event"
        and type(api_version := get("apiVersion", "audit.k8s.io/v1")) is str
        and api_version.startswith("audit.k8s.io/")
    ):
        return event
    for key in REQUIRED_STRING_FIELDS:
        value = event.get(key)
        if not isinstance(value, str) or (key == "auditID" and not value):
            raise MalformedEvent("unknown_shape", f"audit event without a string {key}")
    kind = event.get("kind", "Event")
    if kind != "Event":
        raise MalformedEvent("unknown_shape", f"kind {str(kind)[:64]!r} is not Event")
    api_version = event.get("apiVersion", "audit.k8s.io/v1")
    if not isinstance(api_version, str) or not api_version.startswith("audit.k8s.io/"):
        raise MalformedEvent("unknown_shape", f"apiVersion {str(api_version)[:64]!r} is not audit")
    return event


def _kind(obj: object) -> str:
    return "null" if obj is None else type(obj).__name__


def _keys(obj: Mapping[str, Any]) -> str:
    names = [str(k)[:32] for k in list(obj)[:8]]
    return ", ".join(names) + (", ..." if len(obj) > 8 else "")


# --------------------------------------------------------------------------- field resolution

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
