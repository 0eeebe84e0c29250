"""message -> events -> rule hits -> alerts: the detection path shared by scan and run.

Everything here is pure apart from the clock: side effects (reading files, Kafka) belong to the
callers, which decide what to do with the alerts and with :class:`MalformedEvent`.

Repeats: an alert id enters the window only once its alert is on its way. The service's
processor runs a :meth:`DetectionPipeline.deferring` pipeline, which detects without recording,
and records each alert with :meth:`DetectionPipeline.remember` after handing it to the producer;
a message dead-lettered instead (its alert refused by the serializer) leaves no id behind, so
the exec's later stages still alert. A plain pipeline records as it detects, for callers that
hand every alert on in the same step (the offline scan).

One bad event of a message of several (an ``EventList``, an array, a cloud batch): an event that
a rule cannot evaluate is set aside alone, like a bad entry of a cloud batch, and the others still
alert; a message of one event is still dead-lettered whole, byte for byte.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

import orjson

from auditstream.detections.alert import Alert, SourceRef, alert_id, build_alert
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.errors import MalformedEvent
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.cloud import SetAside
from auditstream.detections.event.decode import MAX_MESSAGE_BYTES, decode_message
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.in_process import CandidateRoute

Source = SourceRef | Callable[[], SourceRef]  # where the message was read, or how to say it


@dataclass(frozen=True, slots=True)
class Detections:
    """What one message (or one line) gave."""

    events: int
    exec_requests: int
    alerts: tuple[Alert, ...]
    repeats: int  # alerts suppressed because the window had already seen their id
    set_aside: tuple[SetAside, ...] = ()
    """Each a dead letter of its own: entries of a cloud batch that are not audit data (``index``
    their place in the batch), then events of a message of several that a rule could not
    evaluate (``index`` their place among the message's events: an ``EventList``'s item)."""
    skipped: tuple[str, ...] = ()
    """Why each entry passed over on purpose was (another diagnostic category, ...)."""
    candidates: tuple[Candidate, ...] = ()
    """Events that passed a stateful rule's per-event part, keyed for its state (the runtime
    routes them: in process for scan, through the repartition topic for the service)."""


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
        remember_on_detect: bool = True,
        state: CandidateRoute | None = None,
    ) -> None:
        self.detector = detector
        self.window = window
        self.max_message_bytes = max_message_bytes
        self._clock = clock
        self._remember_on_detect = remember_on_detect
        self.state = state
        """Stateful rules run in this process (scan): candidates become alerts here. ``None``
        leaves them to the caller (the service routes them through the repartition topic)."""

    def deferring(self) -> DetectionPipeline:
        """This pipeline (same detector, same window, same class) with recording left to the
        caller: its :meth:`process_message` records nothing, and the caller records each alert
        with :meth:`remember` once it has handed it on. What the service's processor runs."""
        twin = copy.copy(self)
        twin._remember_on_detect = False
        return twin

    def forget_alerts(self) -> None:
        """Forget which alerts were already produced, so that repeats are produced again.

        The one piece of pipeline state a runtime may reset: a replica that gives up partitions
        with outputs still unacknowledged must not suppress those alerts if it gets them back.
        """
        self.window.clear()

    def process_message(self, data: bytes, source: Source) -> Detections:
        """:meth:`detect_message`, its alerts recorded in the window at once unless this is a
        :meth:`deferring` pipeline (for callers that hand every alert on in the same step)."""
        found = self.detect_message(data, source)
        if found.alerts and self._remember_on_detect:
            self.remember(found.alerts)
        return found

    def detect_message(self, data: bytes, source: Source) -> Detections:
        """Detect without recording: the caller records each alert with :meth:`remember` once it
        is on its way. Raises :class:`~auditstream.detections.errors.MalformedEvent` for input
        that is not audit data (or a lone event that a rule cannot evaluate).

        ``source`` may be a function that builds it: called only if an alert needs it.
        """
        events = decode_message(
            data, max_bytes=self.max_message_bytes, routine=self.detector.fires_on_nothing
        )
        if events is None:
            return ROUTINE  # parsed and checked; no event built, no value read, no rule run
        found = self.detect_events(events, source)
        if found.candidates and self.state is not None:
            found = self._stateful(found)
        if events.set_aside or events.skipped:
            return replace(
                found, set_aside=events.set_aside + found.set_aside, skipped=events.skipped
            )
        return found

    def _stateful(self, found: Detections) -> Detections:
        """The in-process state's alerts for this message's candidates, repeats left out."""
        assert self.state is not None
        alerts = list(found.alerts)
        repeats = found.repeats
        ids = {alert.alert_id for alert in alerts}
        for alert in self.state.alerts(found.candidates, self._clock()):
            if alert.alert_id in ids or self.window.seen(alert.alert_id):
                repeats += 1
                continue
            ids.add(alert.alert_id)
            alerts.append(alert)
        return replace(found, alerts=tuple(alerts), repeats=repeats, candidates=())

    def remember(self, alerts: Iterable[Alert]) -> None:
        """Record alerts that are on their way: their later stages are repeats from now on."""
        record = self.window.record
        for alert in alerts:
            record(alert.alert_id)

    def detect_events(self, events: Sequence[AuditEvent], source: Source) -> Detections:
        """Alerts of the events that neither the window nor an earlier event of the same
        message already gave; nothing is recorded."""
        alerts: list[Alert] = []
        candidates: list[Candidate] = []
        set_aside: list[SetAside] = []
        pending: set[str] = set()  # ids of this message's alerts: not in the window yet
        repeats = 0
        exec_requests = 0
        for index, event in enumerate(events):
            if self.detector.exec_request(event) is not None:
                exec_requests += 1
            try:
                hits, selected = self.detector.detect_all(event)
            except MalformedEvent as err:
                if len(events) == 1:
                    raise  # the message is the event: dead-lettered whole, byte for byte
                set_aside.append(SetAside(index, event_json(event), err))
                continue
            if not hits and not selected:
                continue
            if not isinstance(source, SourceRef):
                source = source()
            where = source if event.envelope is None else replace(source, envelope=event.envelope)
            if selected:
                record = where.to_record()
                candidates.extend(replace(c, source=record) for c in selected)
            if hits:
                repeats += self._build(event, hits, where, pending, alerts)
        if not alerts and not repeats and not exec_requests and not candidates and len(events) == 1:
            return ROUTINE
        return Detections(
            len(events),
            exec_requests,
            tuple(alerts),
            repeats,
            tuple(set_aside),
            candidates=tuple(candidates),
        )

    def _build(
        self,
        event: AuditEvent,
        hits: Sequence[RuleHit],
        where: SourceRef,
        pending: set[str],
        alerts: list[Alert],
    ) -> int:
        """Append the alerts of ``hits`` that are new to the window and to ``pending`` (this
        message's ids so far, added to); returns how many were repeats."""
        now = self._clock()
        seen = self.window.seen
        repeats = 0
        for hit in hits:
            # Check before building: two of an exec's three stages are repeats.
            key = alert_id(hit.rule.rule_id, event.audit_id)
            if key in pending or seen(key):
                repeats += 1
                continue
            pending.add(key)
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
        return repeats


def event_json(event: AuditEvent) -> bytes:
    """One event's bytes for its own dead letter: the audit object as read (an ``EventList`` item
    completed with its ``kind`` and ``apiVersion``). ``json`` writes what orjson refuses (an
    integer beyond 64 bits, a lone surrogate), so every event has bytes."""
    audit = dict(event.audit)
    try:
        return orjson.dumps(audit)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(audit, default=repr).encode("ascii")
