"""Message bytes in, typed :class:`AuditEvent` values out: the one decoder of the detection path.

One Kafka message, or one line of a file, may hold any of these (the *shape*):

``event``       a raw ``audit.k8s.io/v1`` Event (the API server's log or webhook backend);
``event_list``  an ``EventList`` (webhook batches); its ``items`` usually carry no kind/apiVersion;
``array``       a JSON array whose elements are any of the other shapes except ``array``;
``ecs``         an Elastic document with the event under ``kubernetes.audit`` (nested, flattened
                or mixed; see :mod:`auditstream.detections.event.ecs_shape`);
``wrapped``     a shipper record (fluent-bit ``log``, filebeat ``message``) holding any of the
                other shapes except ``wrapped`` as a JSON string;
``aks``, ``eventhubs``, ``cloudwatch``, ``gke``
                a managed cluster's cloud envelope (:mod:`auditstream.detections.event.cloud`);
                a gzip-compressed message is inflated first.

Decisions: an ``EventList`` with no items, and an empty array, give no events (``[]``): there is
nothing to detect and nothing is malformed. A message is one unit: if any element in it is not an
audit event, the whole message is a dead letter (``unknown_shape``) rather than half-processed;
the exception is a cloud batch (Event Hubs ``records``, CloudWatch ``logEvents``), whose entries
the platform gathered from unrelated writes: a bad entry is set aside alone (:class:`Decoded`).
Items of an ``EventList`` that lack ``kind``/``apiVersion`` get ``Event`` and the list's
``apiVersion``, so the same event decodes to the same ``audit`` object from every shape.

A UTF-8 byte-order mark before the JSON is ignored, at the start of a message and at the start of
JSON held in a string (a shipper that tails a file written with a BOM copies it into the first
line's ``log``). A line of a file larger than a message may be (a webhook backend's
``EventList`` of thousands of events) is opened by :func:`split_batch` into one message per event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, overload

import orjson

from auditstream.detections.errors import MalformedEvent
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.cloud import Opened, SetAside, entry_bytes, open_envelope
from auditstream.detections.event.ecs_shape import is_ecs_document, nested_audit, split_ecs
from auditstream.detections.event.field_path import MISSING
from auditstream.detections.event.inflate import MAX_INFLATED_BYTES, inflate, is_gzip

MAX_MESSAGE_BYTES: Final = 1_048_576
MAX_LINE_BYTES: Final = 256 * 1_048_576
"""The largest batch :func:`split_batch` opens. The API server's webhook backend sends an
``EventList`` per batch (``--audit-webhook-batch-max-size``, 400 events by default, each up to a
few megabytes with ``RequestResponse`` bodies), and shippers write such a batch as one line: tens
of megabytes are normal. Parsing takes a few times the line's size in memory; 256 MiB bounds that
without refusing any batch an API server writes."""
BOM: Final = b"\xef\xbb\xbf"
REQUIRED_STRING_FIELDS: Final = ("auditID", "stage", "verb", "requestURI")
"""The minimum of an audit event: every stage of every request carries these four."""
WRAPPER_KEYS: Final = ("log", "message")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STDLIB_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
"""Built once: ``json.loads(text, parse_constant=...)`` builds a new decoder on every call."""
_LONG_NUMBER: Final = b"0" * 19
"""orjson turns an integer beyond 64 bits into a float where ``json`` keeps the exact int; every
such integer has at least 19 digits (all of them ``0`` once :data:`_DIGITS` has mapped them)."""
_DIGITS: Final = bytes.maketrans(b"123456789", b"000000000")


RoutineCheck = Callable[[Mapping[str, Any]], bool]
"""Given a checked audit object, True when no loaded rule can fire on the event it makes."""


@dataclass(frozen=True, slots=True)
class Decoded(Sequence[AuditEvent]):
    """The events of one message (it is a sequence of them), and what else it held: the
    entries of a cloud batch set aside as not audit data, and the reasons of entries skipped on
    purpose (another diagnostic category, a control message)."""

    events: tuple[AuditEvent, ...]
    set_aside: tuple[SetAside, ...] = ()
    skipped: tuple[str, ...] = ()

    @overload
    def __getitem__(self, index: int) -> AuditEvent: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[AuditEvent]: ...
    def __getitem__(self, index: int | slice) -> AuditEvent | Sequence[AuditEvent]:
        return self.events[index]

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[AuditEvent]:
        return iter(self.events)


def decode_message(
    data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES, routine: RoutineCheck | None = None
) -> Decoded | None:
    """Decode one Kafka message value or one line of a file into its audit events.

    ``None`` is the routine fast path: the message is one well-formed audit event (a raw Event,
    or an ECS document spelling only the nested ``kubernetes.audit``) of which ``routine`` said
    no rule can fire on it, so no :class:`AuditEvent` is built and no value is read. Every
    message is still parsed and checked in full: that is what tells a dead letter from a good
    one. Each audit object is checked once.

    Raises :class:`MalformedEvent` with reason ``oversized``, ``not_gzip``, ``not_utf8``,
    ``not_json`` or ``unknown_shape``. ``NaN``/``Infinity`` are refused as not JSON (no API
    server writes them).
    """
    if data[:1] == b"{" and len(data) <= max_bytes:  # the usual message: no BOM, no gzip
        try:
            value, exact = orjson.loads(data), False  # what parse_message does first
        except orjson.JSONDecodeError:
            value, exact = parse_message(data, max_bytes=max_bytes)
    else:
        data = data.removeprefix(BOM)
        if is_gzip(data):
            if len(data) > max_bytes:
                detail = f"{len(data)} bytes exceeds the limit of {max_bytes}"
                raise MalformedEvent("oversized", detail)
            data, max_bytes = inflate(data), MAX_INFLATED_BYTES
        value, exact = parse_message(data, max_bytes=max_bytes)
    try:
        plain = _plain_layout(value)
    except MalformedEvent:
        if exact:
            raise
        plain = None  # the exact value says why, quoting exact values
    if plain is not None:
        audit, document = plain
        if routine is not None and routine(audit):
            return None
        if exact or (exact_value := exact_json(data, value)) is value:
            return Decoded((_plain_event(audit, document),))
        value = exact_value
    elif not exact:
        value = exact_json(data, value)
    found = _Found(strict=False)
    _events(value, None, found, allow_array=True, allow_wrapped=True)
    return Decoded(tuple(found.events), tuple(found.set_aside), tuple(found.skipped))


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
    data = data.removeprefix(BOM)  # orjson refuses a BOM; json would take the slow path for it
    try:
        return orjson.loads(data), False  # also proves the bytes are UTF-8
    except orjson.JSONDecodeError:
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise MalformedEvent("not_utf8", f"invalid UTF-8 at byte {err.start}") from err
    text = text.removeprefix("\ufeff")
    try:
        return _STDLIB_DECODER.decode(text), True
    except json.JSONDecodeError as err:
        if not err.msg.startswith("Extra data"):
            raise MalformedEvent("not_json", f"cannot parse JSON: {err}") from err
        return _back_to_back(text), True
    except (ValueError, RecursionError) as err:
        raise MalformedEvent("not_json", f"cannot parse JSON: {err}") from err


def _back_to_back(text: str) -> list[object]:
    """JSON objects written back to back with no separator (Firehose's delivery of CloudWatch
    Logs, without a record delimiter): one array of them; anything else stays not JSON."""
    values: list[object] = []
    at, end = 0, len(text)
    while at < end:
        try:
            value, at = _STDLIB_DECODER.raw_decode(text, at)
        except (ValueError, RecursionError) as err:
            raise MalformedEvent("not_json", f"cannot parse JSON: {err}") from err
        if not isinstance(value, dict):
            raise MalformedEvent("not_json", "back-to-back JSON values that are not objects")
        values.append(value)
        while at < end and text[at] in " \t\r\n":
            at += 1
    return values


def exact_json(raw: bytes, value: object) -> object:
    """orjson's ``value`` of ``raw`` as ``json`` gives it: re-parsed by ``json`` when an integer
    beyond 64 bits may have become a float (or kept, where ``json`` cannot nest that deep)."""
    if _LONG_NUMBER not in raw.translate(_DIGITS):
        return value
    try:
        return _STDLIB_DECODER.decode(raw.removeprefix(BOM).decode("utf-8", "surrogatepass"))
    except RecursionError:
        return value


def _parse_json(text: str, reason: str) -> object:
    """:func:`parse_message` for JSON held in a string (a shipper's ``log`` field): exact."""
    text = text.removeprefix("\ufeff")
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
    """Events of an already-parsed JSON value; raises ``MalformedEvent("unknown_shape", ...)``,
    for a bad entry of a cloud batch too (where :func:`decode_message` sets it aside)."""
    found = _Found(strict=True)
    _events(obj, None, found, allow_array=True, allow_wrapped=True)
    return found.events


def split_batch(data: bytes, *, max_bytes: int = MAX_LINE_BYTES) -> list[bytes] | None:
    """The events of a batch too big to be one message, each as a message of its own: the items
    of an ``EventList`` (completed with ``kind`` and the list's ``apiVersion``, as
    :func:`decode_message` completes them) or the elements of a JSON array, as compact JSON;
    ``None`` when ``data`` holds anything else.

    Each one is then decoded and judged alone, under the per-message limit: a big batch is many
    events, not one big event, and one bad or oversized event does not take the others with it.
    Raises :class:`MalformedEvent` (``oversized`` beyond ``max_bytes``, ``not_utf8``,
    ``not_json``) for the line as a whole.
    """
    value, exact = parse_message(data, max_bytes=max_bytes)
    if not exact:
        value = exact_json(data, value)
    if isinstance(value, list):
        return [_compact_json(item) for item in value]
    if not isinstance(value, dict) or not _is_event_list(value):
        return None
    items = value["items"]
    if not isinstance(items, list):
        return None
    api_version = value.get("apiVersion", "audit.k8s.io/v1")
    return [  # an item that is no object is left for its own decoding to refuse
        _compact_json(_list_item(item, api_version) if isinstance(item, Mapping) else item)
        for item in items
    ]


def _compact_json(value: object) -> bytes:
    """``value`` as JSON text; ``json`` writes what orjson refuses (an integer beyond 64 bits, a
    lone surrogate), so that the text parses back to the same value."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "surrogatepass")


@dataclass(slots=True)
class _Found:
    strict: bool
    events: list[AuditEvent] = field(default_factory=list)
    set_aside: list[SetAside] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def put_aside(self, entry: SetAside) -> None:
        if self.strict:
            raise entry.error
        self.set_aside.append(entry)


def _plain_layout(obj: object) -> tuple[Mapping[str, Any], Mapping[str, Any] | None] | None:
    """The checked audit object of a message in either common layout, a raw Event or an ECS
    document spelling only the nested ``kubernetes.audit``, and the ECS document (``None`` for
    a raw Event); ``None`` for any other layout, which :func:`events_from_json` takes.

    Checked as :func:`events_from_json` checks it, raising the same ``unknown_shape``. For an
    ECS document the audit object is the document's own, annotation keys still in ECS
    spelling: enough for the routine check, and :func:`_plain_event` respells them.
    """
    if type(obj) is not dict:
        return None
    if "auditID" in obj:
        return _checked_event(obj), None
    if _is_event_list(obj):
        return None
    source = nested_audit(obj)
    return None if source is None else (_checked_event(source), obj)


def _plain_event(audit: Mapping[str, Any], document: Mapping[str, Any] | None) -> AuditEvent:
    """The event of a checked :func:`_plain_layout`, as :func:`events_from_json` builds it."""
    if document is None:
        return AuditEvent(audit, None, "event")
    event, rest = split_ecs(document)
    return AuditEvent(event, rest, "ecs")


def _events(
    obj: object, outer: str | None, found: _Found, *, allow_array: bool, allow_wrapped: bool
) -> None:
    """Events of one element into ``found``; ``outer`` is the shape of the enclosing array or
    wrapper, if any.

    Arrays, wrappers and cloud envelopes nest at most once each, so the recursion is bounded by
    the shape rules, not by the input.
    """
    if isinstance(obj, list) and allow_array:
        for item in obj:
            _events(item, outer or "array", found, allow_array=False, allow_wrapped=allow_wrapped)
        return
    if not isinstance(obj, Mapping):
        raise MalformedEvent("unknown_shape", f"expected a JSON object, got {_kind(obj)}")
    if "auditID" in obj:
        found.events.append(AuditEvent(_checked_event(obj), None, outer or "event"))
        return
    if _is_event_list(obj):
        found.events.extend(_event_list(obj, outer or "event_list"))
        return
    if is_ecs_document(obj):
        audit, rest = split_ecs(obj)
        found.events.append(AuditEvent(_checked_event(audit), rest, outer or "ecs"))
        return
    if allow_wrapped:
        opened = open_envelope(obj, _parse_json)
        if opened is not None:
            _cloud_events(opened, outer, found)
            return
        inner = _unwrap(obj)
        if inner is not MISSING:
            _events(inner, outer or "wrapped", found, allow_array=allow_array, allow_wrapped=False)
            return
    raise MalformedEvent("unknown_shape", f"no audit event in an object with keys {_keys(obj)}")


def _cloud_events(opened: Opened, outer: str | None, found: _Found) -> None:
    """The entries of a cloud envelope: each one raw Event or ECS document (a shipper's
    ``log`` wrapper inside an envelope is not a thing), with its envelope attached."""
    found.skipped.extend(opened.skipped)
    for aside in opened.set_aside:
        found.put_aside(aside)
    for entry in opened.entries:
        one = _Found(strict=True)
        try:
            _events(entry.value, outer or entry.shape, one, allow_array=False, allow_wrapped=False)
        except MalformedEvent as err:
            if entry.index is None:
                raise
            found.put_aside(SetAside(entry.index, entry_bytes(entry.original), err))
            continue
        found.events.extend(
            AuditEvent(e.audit, e.document, e.shape, entry.envelope) for e in one.events
        )


def _is_event_list(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "EventList" or isinstance(obj.get("items"), list)


def _event_list(obj: Mapping[str, Any], shape: str) -> list[AuditEvent]:
    items = obj.get("items")
    if not isinstance(items, list):
        raise MalformedEvent("unknown_shape", "EventList without an items array")
    api_version = obj.get("apiVersion", "audit.k8s.io/v1")
    return [AuditEvent(_checked_event(_list_item(i, api_version)), None, shape) for i in items]


def _list_item(item: object, api_version: object) -> Mapping[str, Any]:
    """An ``EventList`` item as an event: given ``kind`` and the list's ``apiVersion`` when it
    lacks either (items usually carry neither)."""
    if not isinstance(item, Mapping):
        raise MalformedEvent("unknown_shape", f"EventList item is {_kind(item)}")
    if "kind" not in item or "apiVersion" not in item:
        return {"kind": "Event", "apiVersion": api_version, **item}
    return item


def _unwrap(obj: Mapping[str, Any]) -> object:
    """The parsed JSON inside a shipper's ``log`` or ``message`` string, or MISSING."""
    for key in WRAPPER_KEYS:
        text = obj.get(key)
        if isinstance(text, str) and text.removeprefix("\ufeff").lstrip()[:1] in ("{", "["):
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
