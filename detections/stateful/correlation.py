"""Sigma correlation rules on the stream: a sliding window of event time per group.

A correlation (``event_count``, ``value_count``, ``temporal``, ``temporal_ordered``) holds, per
group, the events its referenced rules matched, by identity (``auditID/stage``), so a replayed
event is never counted twice. Its condition is a function of time: at each instant ``t`` (in
milliseconds) the window is the group's events in ``[t - timespan, t]``, and the condition is
true or false there. Every supported condition is *monotone*: adding an event can make it true,
never false, so it can be decided the moment an event arrives, with no timer.

An alert is raised once per *episode*: a maximal run of instants where the condition is true.
The instant it became true (the episode's first instant) is remembered as a mark; an event that
makes the condition true somewhere already marked (the same episode, grown) raises nothing. A
late event (within the engine's allowed lateness) can open an episode in the past and alerts
then. ``docs/sigma-correlation-semantics.md`` states each choice with its source and test.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import orjson

from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.operator import State, StatefulHit, Step
from auditstream.detections.values import Value

__all__ = ["VALUES_COLUMN", "CorrelationKind", "CorrelationOperator"]

VALUES_COLUMN: Final = "values"
"""The candidate's column with the values a ``value_count`` counts (as JSON text)."""

Interval = tuple[int, int]
"""Instants ``[first, last]`` (ms, both included) where the condition is true."""

# An event of the window: [time_ms, arrival number, event id, [stages], [values]].
_TIME, _SEQ, _ID, _STAGES, _VALUES = range(5)


class CorrelationKind(StrEnum):
    EVENT_COUNT = "event_count"
    VALUE_COUNT = "value_count"
    TEMPORAL = "temporal"
    TEMPORAL_ORDERED = "temporal_ordered"


COUNT_COLUMNS: Final[Mapping[CorrelationKind, str]] = {
    CorrelationKind.EVENT_COUNT: "event_count",
    CorrelationKind.VALUE_COUNT: "value_count",
    CorrelationKind.TEMPORAL: "event_type_count",
    CorrelationKind.TEMPORAL_ORDERED: "event_type_count",
}
"""The alert's count column, named as pySigma's ES|QL and Splunk backends name it."""


@dataclass(frozen=True, slots=True)
class CorrelationOperator:
    kind: CorrelationKind
    timespan_ms: int
    threshold: int
    """At least this many events, distinct values or distinct rules (``gt: n`` is ``n + 1``).
    For ``temporal_ordered``: the number of rules, all of which must appear in order."""
    stages: int
    """How many rules the correlation references (stage ``i`` is its ``i``-th rule)."""
    key_names: tuple[str, ...] = ()
    """The group-by names (aliases as the rule names them): the alert's columns for the key."""

    @property
    def retention_ms(self) -> int:
        return self.timespan_ms

    @property
    def count_column(self) -> str:
        return COUNT_COLUMNS[self.kind]

    def step(self, state: State | None, candidate: Candidate, *, alerting: bool) -> Step:
        events: list[list[Any]] = list(state["ev"]) if state else []
        at = _find(events, candidate.event_id)
        if at is not None and candidate.stage in events[at][_STAGES]:
            return Step(state, self._replayed(state or {}, candidate))
        values = sorted(_values(candidate.row)) if self.kind is CorrelationKind.VALUE_COUNT else []
        arrivals = int(state["n"]) if state else 0
        entry: list[Any]
        if at is None:
            entry = [candidate.time_ms, arrivals, candidate.event_id, [candidate.stage], values]
            bisect.insort(events, entry, key=lambda e: (e[_TIME], e[_SEQ]))
            arrivals += 1
        else:
            old = events[at]
            merged = sorted(set(old[_VALUES]) | set(values))
            events[at] = [*old[:_STAGES], sorted([*old[_STAGES], candidate.stage]), merged]
            entry = events[at]
        marks: list[int] = list(state["pt"]) if state else []
        alerts: list[list[Any]] = list(state["al"]) if state else []
        hits: list[StatefulHit] = []
        start, end = entry[_TIME], entry[_TIME] + self.timespan_ms
        for first, last in self.true_intervals(events):
            if last < start or first > end or _marked(marks, first, last):
                continue  # untouched by this event, or an episode already alerted
            bisect.insort(marks, first)
            if alerting:
                hit = self._hit(events, first, candidate)
                hits.append(hit)
                alerts.append(
                    [candidate.event_id, candidate.stage, hit.basis, hit.fields, list(hit.events)]
                )
        new_state: State = {"n": arrivals, "ev": events, "pt": marks, "al": alerts}
        return Step(new_state, tuple(hits))

    def expire(self, state: State, watermark_ms: int) -> State | None:
        """Drop the events no window from the watermark on can hold. An episode that reaches the
        watermark, or ends just before it (an event at the watermark can still continue it),
        keeps its mark, moved to the watermark: the instants before it are no longer computed
        exactly once their events are gone, the instants from it on still are."""
        events: list[list[Any]] = state["ev"]
        cutoff = watermark_ms - self.timespan_ms
        if not events or events[0][_TIME] >= cutoff:
            return state if events else None
        intervals = self.true_intervals(events)
        marks: set[int] = set()
        for mark in state["pt"]:
            if mark >= watermark_ms:
                marks.add(mark)
            elif any(first <= mark and watermark_ms - 1 <= last for first, last in intervals):
                marks.add(watermark_ms)
        kept = [event for event in events if event[_TIME] >= cutoff]
        if not kept:
            return None
        ids = {event[_ID] for event in kept}
        alerts = [alert for alert in state["al"] if alert[0] in ids]
        return {"n": state["n"], "ev": kept, "pt": sorted(marks), "al": alerts}

    # --- where the condition holds ---------------------------------------------------------------

    def true_intervals(self, events: Sequence[Sequence[Any]]) -> list[Interval]:
        """The instants where the condition is true, as merged intervals in time order."""
        if self.kind is CorrelationKind.EVENT_COUNT:
            found = self._count_intervals(events)
        elif self.kind is CorrelationKind.TEMPORAL_ORDERED:
            found = self._ordered_intervals(events)
        else:
            found = self._distinct_intervals(events)
        return _merge(found)

    def _count_intervals(self, events: Sequence[Sequence[Any]]) -> Iterable[Interval]:
        """``threshold`` events: the ``k`` consecutive ones ending at each event."""
        k = self.threshold
        for j in range(k - 1, len(events)):
            newest, oldest = events[j][_TIME], events[j - k + 1][_TIME]
            if newest - oldest <= self.timespan_ms:
                yield newest, oldest + self.timespan_ms

    def _distinct_intervals(self, events: Sequence[Sequence[Any]]) -> Iterable[Interval]:
        """``threshold`` distinct tokens (values, or rules): ending at each event, the window
        reaches back to the ``k``-th most recent last sighting of a token."""
        k = self.threshold
        last_seen: dict[Any, int] = {}
        times: list[int] = []  # every token's last sighting, sorted
        for event in events:
            now = event[_TIME]
            for token in self._tokens(event):
                before = last_seen.get(token)
                if before is not None:
                    del times[bisect.bisect_left(times, before)]
                last_seen[token] = now
                bisect.insort(times, now)
            if len(times) >= k and now - times[-k] <= self.timespan_ms:
                yield now, times[-k] + self.timespan_ms

    def _ordered_intervals(self, events: Sequence[Sequence[Any]]) -> Iterable[Interval]:
        """Every rule in order, each by a later event than the one before (event time, then
        arrival). For each prefix of the rules the latest start of a chain so far is kept; a
        chain completed by an event spans from its start to that event."""
        last = self.stages - 1
        latest_start: list[int | None] = [None] * self.stages
        for event in events:
            now = event[_TIME]
            for stage in sorted(event[_STAGES], reverse=True):  # one event fills one place
                start = now if stage == 0 else latest_start[stage - 1]
                if start is None:
                    continue
                if stage == last:
                    if now - start <= self.timespan_ms:
                        yield now, start + self.timespan_ms
                else:
                    current = latest_start[stage]
                    latest_start[stage] = start if current is None else max(current, start)

    def _tokens(self, event: Sequence[Any]) -> Iterable[Any]:
        tokens: Iterable[Any] = (
            event[_VALUES] if self.kind is CorrelationKind.VALUE_COUNT else event[_STAGES]
        )
        return tokens

    # --- alerts ----------------------------------------------------------------------------------

    def _hit(
        self, events: Sequence[Sequence[Any]], instant: int, trigger: Candidate
    ) -> StatefulHit:
        """The alert of the episode that became true at ``instant``: the window then."""
        window = [e for e in events if instant - self.timespan_ms <= e[_TIME] <= instant]
        fields: dict[str, Value] = dict(zip(self.key_names, trigger.key, strict=False))
        fields[self.count_column] = self._count(window)
        basis = orjson.dumps([list(trigger.key), trigger.event_id, trigger.stage, instant])
        return StatefulHit(
            basis=basis.decode(),
            trigger=trigger,
            fields=fields,
            events=tuple(str(e[_ID]) for e in window),
        )

    def _count(self, window: Sequence[Sequence[Any]]) -> int:
        if self.kind is CorrelationKind.EVENT_COUNT:
            return len(window)
        return len({token for event in window for token in self._tokens(event)})

    def _replayed(self, state: State, candidate: Candidate) -> tuple[StatefulHit, ...]:
        """The hits this very candidate raised the first time, rebuilt with the same basis."""
        return tuple(
            StatefulHit(
                basis=basis,
                trigger=candidate,
                fields={name: _value(value) for name, value in fields.items()},
                events=tuple(events),
            )
            for event_id, stage, basis, fields, events in state.get("al", ())
            if event_id == candidate.event_id and stage == candidate.stage
        )


def _find(events: Sequence[Sequence[Any]], event_id: str) -> int | None:
    return next((i for i, event in enumerate(events) if event[_ID] == event_id), None)


def _marked(marks: Sequence[int], first: int, last: int) -> bool:
    at = bisect.bisect_left(marks, first)
    return at < len(marks) and marks[at] <= last


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of intervals of whole milliseconds: adjacent ones (``b`` and ``b + 1``) join."""
    merged: list[Interval] = []
    for first, last in sorted(intervals):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def _values(row: Mapping[str, Value]) -> set[str]:
    found = row.get(VALUES_COLUMN)
    if found is None:
        return set()
    return {str(v) for v in found} if isinstance(found, tuple) else {str(found)}


def _value(raw: Any) -> Value:
    return tuple(raw) if isinstance(raw, list) else raw
