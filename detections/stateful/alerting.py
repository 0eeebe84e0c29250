"""A stateful hit -> the alert record (the same record every other rule produces).

The alert describes the event that made the condition true (``event``), carries the columns
Elastic's alert would (``fields``: an ES|QL row, the new terms) and, under ``events``, every
event it stands for. Its id is derived from the rule id and the hit's basis, so a replay of the
same events gives the same id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from auditstream.detections.alert import Alert, SourceRef, build_alert
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.envelope import Envelope
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.stateful.operator import StatefulHit
from auditstream.detections.values import Value

EVENTS_FIELD = "events"


def stateful_alert(
    rule: RuleMeta, hit: StatefulHit, *, detected_at: datetime, source: SourceRef | None = None
) -> Alert:
    fields: dict[str, Value] = dict(hit.fields)
    fields[EVENTS_FIELD] = hit.events or (hit.trigger.event_id,)
    event = AuditEvent(hit.trigger.audit, None, "event")
    return build_alert(
        rule=rule,
        event=event,
        fields=fields,
        source=source or source_of(hit.trigger.source),
        detected_at=detected_at,
        alert_basis=hit.basis,
    )


def source_of(record: Mapping[str, Any] | None) -> SourceRef:
    if not record:
        return SourceRef("file")
    envelope = record.get("envelope")
    return SourceRef(
        kind="kafka" if record.get("kind") == "kafka" else "file",
        topic=record.get("topic"),
        partition=record.get("partition"),
        offset=record.get("offset"),
        file=record.get("file"),
        line=record.get("line"),
        envelope=Envelope(**envelope) if isinstance(envelope, Mapping) else None,
    )
