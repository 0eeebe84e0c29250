"""What the SIEM formats (:mod:`~auditstream.stream.sinks.ecs_alert`,
:mod:`~auditstream.stream.sinks.ocsf_alert`) derive from an alert the same way.

The alert record carries the exec request as logged (``request_uri``); the command a SIEM wants
to show is decoded here with the same parser the native rules use, so that an ECS or OCSF alert
names the argv the API server ran, not a second guess at it.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Final

from auditstream.detections.alert import Alert
from auditstream.detections.exec.request import exec_request_of

PRODUCT: Final = "auditstream"
SEVERITY_RANK: Final = {"low": 1, "medium": 2, "high": 3, "critical": 4}
"""Our four severities in order; each format maps the rank onto its own scale."""
_FRACTION: Final = re.compile(r"(\.\d{1,6})\d*")
"""Kubernetes may log nanoseconds; ``datetime`` keeps microseconds."""


def product_version() -> str:
    try:
        return metadata.version(PRODUCT)
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def exec_argv(alert: Alert) -> tuple[str, ...]:
    """The argv of the exec request the alert fired on; empty when it was not one."""
    uri = alert.event.request_uri
    if uri is None:
        return ()
    request = exec_request_of(uri, alert.event.object_ref.subresource)
    return request.argv if request is not None else ()


def command_line(argv: tuple[str, ...]) -> str | None:
    """argv as one POSIX shell line (quoted where needed), so it can be pasted back."""
    return shlex.join(argv) if argv else None


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time as logged; ``None`` when absent or not a time."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", text))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def epoch_millis(text: str | None) -> int | None:
    moment = parse_time(text)
    return None if moment is None else int(moment.timestamp() * 1000)


def without_empty(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with ``None``, empty strings, lists and mappings dropped at every depth: a
    SIEM indexes an absent field and a null one alike, and empty objects only clutter mappings."""
    return {k: v for k, v in ((k, _pruned(v)) for k, v in document.items()) if not _is_empty(v)}


def _pruned(value: Any) -> Any:
    if isinstance(value, dict):
        return without_empty(value)
    if isinstance(value, list):
        return [v for v in (_pruned(v) for v in value) if not _is_empty(v)]
    return value


def _is_empty(value: object) -> bool:
    return value is None or value in ("", [], {})
