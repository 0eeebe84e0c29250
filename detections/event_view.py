"""One event as every rule family sees it: each representation computed once, on first use.

ES|QL reads the audit event through its own field resolution, native rules read the decoded
exec request, KQL, EQL and ES|QL's ``KQL()`` read the Elastic document the integration would
have indexed. The detector builds one view per event and hands it to every family, so each
representation is computed at most once per event, and only if some loaded rule reads it: a
routine event that no KQL rule is a candidate for never pays for the Elastic mapping.
"""

from __future__ import annotations

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.elastic.mapping import elastic_document
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.exec.request import ExecRequest


class EventView:
    """Not shared between threads or events: one per :meth:`Detector.detect` call."""

    __slots__ = ("event", "request")

    def __init__(self, event: AuditEvent, request: ExecRequest | None) -> None:
        self.event = event
        self.request = request
        """The event's exec request, if it is one (decided by ``exec_request_of``)."""

    @property
    def elastic(self) -> ElasticDocument:
        """The document Elastic's Kubernetes integration would index for this event."""
        return elastic_document(self.event)
