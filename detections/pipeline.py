"""message -> events -> rule hits -> alerts: the detection path shared by scan and run.

Everything here is pure apart from the clock: side effects (reading files, Kafka) belong to the
callers, which decide what to do with the alerts and with :class:`MalformedEvent`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from auditstream.detections.alert import Alert, SourceRef, alert_id, build_alert
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.cloud import SetAside
from auditstream.detections.event.decode import MAX_MESSAGE_BYTES, decode_message

Source = SourceRef | Callable[[], SourceRef]  # where the message was read, or how to say it


@dataclass(frozen=True, slots=True)
class Detections:
    """What one message (or one line) gave."""

    events: int
    exec_requests: int
    alerts: tuple[Alert, ...]
    repeats: int  # alerts suppressed because the window had already seen their id
    set_aside: tuple[SetAside, ...] = ()
    """Entries of a cloud batch that are not audit data: each a dead letter of its own."""
    skipped: tuple[str, ...] = ()
    """Why each entry passed over on purpose was (another diagnostic category, ...)."""


ROUTINE: Final = Detections(1, 0, (), 0)
"""One event, no exec request, no alert: what nearly every message gives, shared (it is frozen)."""


class DetectionPipeline:
    """Decode, detect and build alerts, once per (rule, auditID) within the window.

    Every message is decoded in full, even the routine ones no rule can fire on: that is what
    tells a malformed message (a dead letter) from a good one. The rules themselves are skipped
    cheaply and exactly for such events (:mod:`auditstream.detections.esql.gate`).
    """

    def __init__(
        self,
        detector: Detector,
        window: RecentAlerts,
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.detector = detector
        self.window = window
        self.max_message_bytes = max_message_bytes
        self._clock = clock

    def forget_alerts(self) -> None:
        """Forget which alerts were already produced, so that repeats are produced again.

        The one piece of pipeline state a runtime may reset: a replica that gives up partitions
        with outputs still unacknowledged must not suppress those alerts if it gets them back.
        """
        self.window.clear()

    def process_message(self, data: bytes, source: Source) -> Detections:
        """Raises :class:`~auditstream.detections.errors.MalformedEvent` for input that is not
        audit data.

        ``source`` may be a function that builds it: called only if an alert needs it.
        """
        events = decode_message(
            data, max_bytes=self.max_message_bytes, routine=self.detector.fires_on_nothing
        )
        if events is None:
            return ROUTINE  # parsed and checked; no event built, no value read, no rule run
        found = self.process_events(events, source)
        if events.set_aside or events.skipped:
            return replace(found, set_aside=events.set_aside, skipped=events.skipped)
        return found

    def process_events(self, events: Sequence[AuditEvent], source: Source) -> Detections:
        alerts: list[Alert] = []
        repeats = 0
        exec_requests = 0
        for event in events:
            if self.detector.exec_request(event) is not None:
                exec_requests += 1
            hits = self.detector.detect(event)
            if not hits:
                continue
            now = self._clock()
            if not isinstance(source, SourceRef):
                source = source()
            where = source if event.envelope is None else replace(source, envelope=event.envelope)
            for hit in hits:
                # Check the window before building: two of an exec's three stages are repeats.
                if not self.window.first_sighting(alert_id(hit.rule.rule_id, event.audit_id)):
                    repeats += 1
                    continue
                alerts.append(
                    build_alert(
                        rule=hit.rule,
                        event=event,
                        fields=hit.fields,
                        source=where,
                        detected_at=now,
                        container=hit.container,
                        explanation=hit.explanation,
                        elastic_parity=hit.elastic_parity,
                    )
                )
        if not alerts and not repeats and not exec_requests and len(events) == 1:
            return ROUTINE
        return Detections(len(events), exec_requests, tuple(alerts), repeats)
