"""Managed clusters' envelopes around audit events, opened: AKS, EKS, GKE.

None of these platforms delivers the bare ``audit.k8s.io/v1`` event:

``aks``         an Azure Monitor diagnostic record, ``category`` ``kube-audit`` or
                ``kube-audit-admin``, the event in ``properties.log`` (a JSON string, or an object);
``eventhubs``   Azure Event Hubs' body: ``{"records": [...]}``, diagnostic records of any category;
``cloudwatch``  a CloudWatch Logs subscription payload (``DATA_MESSAGE``, the events as JSON strings
                in ``logEvents[].message``; Kinesis and Firehose deliver it gzip-compressed, a
                Lambda as ``{"awslogs": {"data": base64}}``);
``gke``         a Cloud Audit Logs entry of service ``k8s.io`` (see :mod:`.gke`).

A batch (``records``, ``logEvents``) holds entries the platform put together, not one request:
each entry stands alone. An entry that is not audit data is set aside for the dead-letter topic on
its own, with its own bytes; the other entries still run. Entries that are deliberately not audit
events (another diagnostic category, another EKS log stream, a ``CONTROL_MESSAGE``) are *skipped*
with a reason, counted, and never dead-lettered.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from auditstream.detections.errors import MalformedEvent
from auditstream.detections.event.envelope import Envelope
from auditstream.detections.event.gke import gke_audit_event, is_gke_entry
from auditstream.detections.event.inflate import inflate

AKS_AUDIT_CATEGORIES: Final = frozenset({"kube-audit", "kube-audit-admin"})
EKS_AUDIT_STREAM_PREFIX: Final = "kube-apiserver-audit-"
_EKS_LOG_GROUP: Final = re.compile(r"/aws/eks/(?P<cluster>[^/]+)/cluster")
_AKS_CLUSTER: Final = re.compile(r"/managedclusters/(?P<cluster>[^/]+)", re.IGNORECASE)

ParseJson = Callable[[str, str], object]
"""The decoder's exact JSON parser of text: ``(text, reason on failure) -> value``."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit entry out of an envelope: its JSON value and where it came from."""

    value: object
    envelope: Envelope
    shape: str
    index: int | None = None
    """Its place in a batch. A batch's entry that is no audit event is set aside alone (see
    :func:`entry_bytes`); a lone entry's failure (``None``) is its whole message's."""
    original: object = None
    """The entry as the batch holds it (a record, a log event's message text)."""


@dataclass(frozen=True, slots=True)
class SetAside:
    """An entry of a batch that is not audit data: dead-lettered alone, with its own bytes."""

    index: int
    raw: bytes
    error: MalformedEvent


@dataclass(slots=True)
class Opened:
    entries: list[Entry] = field(default_factory=list)
    set_aside: list[SetAside] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """One reason per entry passed over on purpose (``aks_category``, ``eks_log_stream``, ...)."""


def open_envelope(obj: Mapping[str, Any], parse: ParseJson) -> Opened | None:
    """The entries of a cloud envelope, or ``None`` when ``obj`` is none of them. Raises
    :class:`MalformedEvent` when the envelope itself (not one entry of a batch) is broken."""
    records = obj.get("records")
    if isinstance(records, list):
        return _event_hubs(records, parse)
    if _is_aks_record(obj):
        opened = Opened()
        _aks_record(obj, parse, opened, None)
        return opened
    if "messageType" in obj and "logEvents" in obj:
        return _cloudwatch(obj, parse)
    awslogs = obj.get("awslogs")
    if isinstance(awslogs, Mapping) and isinstance(awslogs.get("data"), str):
        return _cloudwatch(_lambda_payload(awslogs["data"], parse), parse)
    if is_gke_entry(obj):
        opened = Opened()
        mapped = gke_audit_event(obj)
        if isinstance(mapped, str):
            opened.skipped.append(mapped)
        else:
            audit, envelope = mapped
            opened.entries.append(Entry(audit, envelope, "gke"))
        return opened
    return None


def _is_aks_record(obj: Mapping[str, Any]) -> bool:
    return isinstance(obj.get("category"), str) and "resourceId" in obj and "properties" in obj


def _aks_record(
    record: Mapping[str, Any], parse: ParseJson, opened: Opened, index: int | None
) -> None:
    category = record["category"]
    if category.lower() not in AKS_AUDIT_CATEGORIES:
        opened.skipped.append("aks_category")
        return
    properties = record.get("properties")
    log = properties.get("log") if isinstance(properties, Mapping) else None
    if isinstance(log, str):
        log = parse(log, "unknown_shape")
    if not isinstance(log, Mapping):
        raise MalformedEvent("unknown_shape", f"{category} record without properties.log")
    resource_id = _text(record.get("resourceId"))
    found = _AKS_CLUSTER.search(resource_id or "")
    envelope = Envelope(
        provider="aks",
        cluster=found["cluster"] if found else None,
        resource_id=resource_id,
        log_group=category,
        log_stream=_text(properties.get("pod")) if isinstance(properties, Mapping) else None,
    )
    shape = "aks" if index is None else "eventhubs"
    opened.entries.append(Entry(log, envelope, shape, index, record))


def _event_hubs(records: list[Any], parse: ParseJson) -> Opened:
    opened = Opened()
    for index, record in enumerate(records):
        try:
            if not isinstance(record, Mapping) or not isinstance(record.get("category"), str):
                raise MalformedEvent(
                    "unknown_shape", "Event Hubs record without a diagnostic category"
                )
            _aks_record(record, parse, opened, index)
        except MalformedEvent as err:
            opened.set_aside.append(SetAside(index, entry_bytes(record), err))
    return opened


def _cloudwatch(payload: object, parse: ParseJson) -> Opened:
    if not isinstance(payload, Mapping):
        raise MalformedEvent("unknown_shape", "CloudWatch Logs payload is not an object")
    opened = Opened()
    kind = payload.get("messageType")
    if kind == "CONTROL_MESSAGE":
        opened.skipped.append("cloudwatch_control_message")
        return opened
    events = payload.get("logEvents")
    if kind != "DATA_MESSAGE" or not isinstance(events, list):
        raise MalformedEvent("unknown_shape", f"CloudWatch Logs messageType {str(kind)[:32]!r}")
    group, stream = _text(payload.get("logGroup")), _text(payload.get("logStream"))
    eks = _EKS_LOG_GROUP.fullmatch(group or "")
    if eks and not (stream or "").startswith(EKS_AUDIT_STREAM_PREFIX):
        opened.skipped.extend("eks_log_stream" for _ in events)  # authenticator, scheduler, ...
        return opened
    envelope = Envelope(
        provider="eks",
        cluster=eks["cluster"] if eks else None,
        resource_id=_text(payload.get("owner")),
        log_group=group,
        log_stream=stream,
    )
    for index, log_event in enumerate(events):
        message = log_event.get("message") if isinstance(log_event, Mapping) else None
        try:
            if not isinstance(message, str):
                raise MalformedEvent("unknown_shape", "CloudWatch log event without a message")
            value = parse(message, "not_json")
        except MalformedEvent as err:
            original = message if isinstance(message, str) else log_event
            opened.set_aside.append(SetAside(index, entry_bytes(original), err))
            continue
        opened.entries.append(Entry(value, envelope, "cloudwatch", index, message))
    return opened


def _lambda_payload(data: str, parse: ParseJson) -> object:
    """A Lambda subscription's ``awslogs.data``: base64 of the gzip-compressed payload."""
    try:
        packed = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as err:
        raise MalformedEvent("unknown_shape", f"awslogs.data is not base64: {err}") from err
    text = inflate(packed).decode("utf-8", "surrogatepass")
    return parse(text, "not_json")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def entry_bytes(value: object) -> bytes:
    """An entry's bytes for its own dead letter: a log line as it was, anything else as JSON."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return repr(value).encode("utf-8", "replace")
