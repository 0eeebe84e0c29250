"""Event time: the audit event's ``@timestamp`` as Elastic's integration indexes it.

For an ECS document that is the document's own ``@timestamp``; for raw input the integration
would use the agent's read time, which nothing here can know, so the stage timestamp stands in
(as in ``docs/elastic-mapping.md``). RFC 3339 with any number of fraction digits (the API server
writes microseconds) and any offset; a value that is not such a time gives ``None``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.field_path import FieldPath

_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_DOC_TIMESTAMP: Final = FieldPath("@timestamp")


def parse_time_ms(text: str) -> int | None:
    found = _RFC3339.fullmatch(text)
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    if found.group(9):
        offset = timedelta(hours=int(found.group(10)), minutes=int(found.group(11)))
        moment -= offset if found.group(9) == "+" else -offset
    fraction = found.group(7) or ""
    millis = int((fraction + "000")[:3])
    return int(moment.timestamp()) * 1000 + millis


def event_time_ms(event: AuditEvent) -> int | None:
    if event.document is not None:
        stamp = _DOC_TIMESTAMP.lookup(event.document)
        if isinstance(stamp, str):
            return parse_time_ms(stamp)
    stamp = event.timestamp
    return parse_time_ms(stamp) if stamp is not None else None


def format_time_ms(millis: int) -> str:
    """``2025-01-15T10:00:00.123Z``, the form ES|QL prints a date in."""
    moment = datetime.fromtimestamp(millis / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"
