"""message -> events -> rule hits -> alerts: the detection path shared by scan and run.

Everything here is pure apart from the clock: side effects (reading files, Kafka) belong to the
callers, which decide what to do with the alerts and with :class:`MalformedEvent`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from detections.alert import Alert, SourceRef, alert_id, build_alert
from detections.audit_event import AuditEvent, decode_message
from detections.engine import Detector
from stream.alert_window import RecentAlerts
from stream.prefilter import ExecPrefilter, build_prefilter

EXEC_SUBRESOURCES = frozenset({"exec", "attach"})
Source = SourceRef | Callable[[], SourceRef]  # where the message was read, or how to say it


@dataclass(frozen=True, slots=True)
class Detections:
    """What one message (or one line) gave."""

    events: int
    exec_requests: int
    alerts: tuple[Alert, ...]
    repeats: int  # alerts suppressed because the window had already seen their id
    prefiltered: bool = False  # decoded in full, but the rules were skipped (see stream.prefilter)


class DetectionPipeline:
    """Decode, detect and build alerts, once per (rule, auditID) within the window.

    With ``prefilter`` the rules are skipped for messages whose bytes cannot
    spell an exec request, when the loaded rules allow it (decided here, once: see
    :mod:`stream.prefilter`). Alerts and dead letters are the same either way. Off by
    default: the byte scan costs about what the rules cost on a routine event
    (measured with ``python -m benchmarks.pipeline_speed``).
    """

    def __init__(
        self,
        detector: Detector,
        window: RecentAlerts,
        *,
        max_message_bytes: int = 1_048_576,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        prefilter: bool = False,
    ) -> None:
        self.detector = detector
        self.prefilter: ExecPrefilter | None = (
            build_prefilter(detector.rules) if prefilter else None
        )
        self.window = window
        self.max_message_bytes = max_message_bytes
        self._clock = clock

    def process_message(self, data: bytes, source: Source) -> Detections:
        """Raises :class:`detections.errors.MalformedEvent` for input that is not audit data.

        ``source`` may be a function that builds it: called only if an alert needs it.
        """
        events = decode_message(data, max_bytes=self.max_message_bytes)
        if self.prefilter is not None and not self.prefilter.may_hold_exec(data):
            exec_requests = sum(1 for event in events if is_exec_request(event))  # provably 0
            return Detections(len(events), exec_requests, (), 0, prefiltered=True)
        return self.process_events(events, source)

    def process_events(self, events: Sequence[AuditEvent], source: Source) -> Detections:
        alerts: list[Alert] = []
        repeats = 0
        exec_requests = 0
        for event in events:
            if is_exec_request(event):
                exec_requests += 1
            hits = self.detector.detect(event)
            if not hits:
                continue
            now = self._clock()
            if not isinstance(source, SourceRef):
                source = source()
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
                        source=source,
                        detected_at=now,
                        container=hit.container,
                        explanation=hit.explanation,
                        elastic_parity=hit.elastic_parity,
                    )
                )
        return Detections(len(events), exec_requests, tuple(alerts), repeats)


def is_exec_request(event: AuditEvent) -> bool:
    """Pod exec/attach, or an exec through the kubelet proxy (counted in summaries and metrics)."""
    subresource = event.subresource
    if subresource in EXEC_SUBRESOURCES:
        return True
    return subresource == "proxy" and "/exec/" in (event.request_uri or "")
