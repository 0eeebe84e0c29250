"""EQL ``sequence`` rules on the stream: ordered stages, joined by key, within a maxspan.

A sequence rule is an EQL query ``sequence [by keys] [with maxspan=N] [stage] [stage]+ [until
[stage]]``. Each stage's condition is an ordinary single-event EQL query (a selector, evaluated
with every other EQL rule); an event that passes one becomes a candidate keyed by the stage's join
key values. :class:`SequenceOperator` then reproduces Elasticsearch's sequence matcher
(``execution/sequence/SequenceMatcher.java``) per key: an event at stage ``s`` takes the newest
partial sequence of stage ``s-1`` that is older than it, dropping every older one; the
sequence's first and last events may be at most ``maxspan`` apart; an ``until`` event between
two matched events cancels the sequence; a completed sequence is one alert naming every event.
Every choice, with the Elasticsearch source it follows, is in ``docs/eql-sequence-semantics.md``.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

import orjson

from auditstream.detections.elastic.fields import field_type
from auditstream.detections.eql import CATEGORY_FIELD, ast, compile_event_query
from auditstream.detections.eql.join_keys import KeyReader, key_reader
from auditstream.detections.eql.parser import parse_eql_statement
from auditstream.detections.errors import DetectionError
from auditstream.detections.event_view import EventView
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.document_rule import EqlRule
from auditstream.detections.ruleset.indices import AUDIT_INDEX, index_pattern, require_audit_index
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.operator import State, StatefulHit, Step
from auditstream.detections.stateful.rule import (
    KeyedRow,
    Keyer,
    Selector,
    StatefulRule,
    selector_id,
)
from auditstream.detections.values import Scalar

__all__ = [
    "SequenceOperator",
    "compile_eql_rule",
    "compile_sequence",
    "join_keyer",
    "sequence_span_ms",
]

DEFAULT_LOOKBACK: Final = "now-6m"
"""Kibana's default ``from`` for a rule that names none (the detection rules API docs)."""
MAX_PENDING: Final = 256
"""Partial sequences (or waiting events, or until markers) one key keeps per stage; beyond it the
oldest go. In event-time order only the newest can still match (Elasticsearch keeps one per
stage per key across its pages, ``KeyToSequences.trimToTail``)."""
MAX_SEEN: Final = 4096
"""Event identities one key remembers for replays; beyond it the oldest go."""

_LOOKBACK: Final = re.compile(r"now-(\d+)([smhHdw])")
_UNIT_MS: Final[Mapping[str, int]] = MappingProxyType(
    {"s": 1_000, "m": 60_000, "h": 3_600_000, "H": 3_600_000, "d": 86_400_000, "w": 604_800_000}
)
Element = list[Any]
"""One matched event in the state: ``[time ms, arrival number, event id]``."""
Ordinal = tuple[int, int]


# --- compiling the [rule] table ------------------------------------------------------------------


def compile_eql_rule(
    table: Mapping[str, Any], path: str, cases: tuple[RuleCase, ...] = ()
) -> EqlRule | StatefulRule:
    """The EQL language's compiler: a single-event query is an :class:`EqlRule`, a ``sequence``
    a stateful rule. Raises DetectionError naming what cannot run."""
    meta = RuleMeta.from_rule_table(table)
    require_audit_index(meta)
    raw = table.get("query")
    if not isinstance(raw, str):
        raise DetectionError("[rule] query is missing")
    text = raw.strip("\n")
    statement = parse_eql_statement(text)
    if isinstance(statement, ast.EventQuery):
        return EqlRule(meta, compile_event_query(statement, text), path, cases)
    return compile_sequence(meta, statement, path, cases)


def compile_sequence(
    meta: RuleMeta, query: ast.SequenceQuery, path: str, cases: tuple[RuleCase, ...] = ()
) -> StatefulRule:
    stages = query.stages
    _refuse_categories(meta, stages)
    span_ms = sequence_span_ms(meta, query.maxspan)
    terms = stages + ((query.until,) if query.until is not None else ())
    compiled = {id(term): compile_event_query(term.query, term.text) for term in terms}
    selectors = tuple(
        Selector(
            rule=EqlRule(
                replace(meta, rule_id=selector_id(meta.rule_id, index)), compiled[id(term)], path
            ),
            stage=index,
            keys=join_keyer([key_reader(key) for key in query.keys + term.keys]),
        )
        for index, term in enumerate(terms)
    )
    key_names = tuple(key.name for key in query.keys + stages[0].keys)
    operator = SequenceOperator(len(stages), span_ms, query.until is not None, key_names)
    return StatefulRule(
        meta=meta,
        path=path,
        language="eql",
        kind="sequence",
        selectors=selectors,
        operator=operator,
        key_names=key_names,
        cases=cases,
        details=MappingProxyType(
            {
                "stages": len(stages),
                "maxspan": str(query.maxspan) if query.maxspan else None,
                "span_ms": span_ms,
                "until": query.until is not None,
            }
        ),
    )


def sequence_span_ms(meta: RuleMeta, maxspan: ast.MaxSpan | None) -> int:
    """How far apart a sequence's first and last events may be: ``maxspan``, never more than
    the rule's lookback (``from``): Elastic only ever sees the events of one run's window."""
    lookback = meta.lookback or DEFAULT_LOOKBACK
    found = _LOOKBACK.fullmatch(lookback.strip())
    lookback_ms = int(found.group(1)) * _UNIT_MS[found.group(2)] if found else None
    if maxspan is not None:
        return maxspan.millis if lookback_ms is None else min(maxspan.millis, lookback_ms)
    if not lookback_ms:
        raise DetectionError(
            f"a sequence without maxspan is bounded by the rule's from ({lookback}), which "
            "auditstream reads only as now-<n><unit> with unit s, m, h, d or w"
        )
    return lookback_ms


def _refuse_categories(meta: RuleMeta, stages: Sequence[ast.SequenceTerm]) -> None:
    """A stage with an event category (``process where``) can never match an audit event when
    the data stream does not index ``event.category`` (the Kubernetes integration neither sets
    nor maps it): the sequence could never complete, so the rule is reported, not run."""
    if field_type(CATEGORY_FIELD) is not None:
        return
    for number, term in enumerate(stages, 1):
        category = term.query.category
        if category is None:
            continue
        others = [p for p in meta.index if not index_pattern(p.strip()).fullmatch(AUDIT_INDEX)]
        source = (
            f"; its events come from {', '.join(others)}, which auditstream does not read"
            if others
            else ""
        )
        raise DetectionError(
            f"sequence stage {number} is '{category} where ...': it needs {CATEGORY_FIELD} "
            f'"{category}", which no Kubernetes audit event has (the integration neither sets '
            f"nor maps {CATEGORY_FIELD}){source}, so the sequence can never complete on audit "
            f"logs (line {term.pos.line}, column {term.pos.column})"
        )


# --- join keys -----------------------------------------------------------------------------------


def join_keyer(readers: Sequence[KeyReader]) -> Keyer:
    """Every combination of the key fields' values (their Cartesian product), one group key
    each, as Elasticsearch joins on multi-valued keys; none when a non-optional key has none."""

    def keys(view: EventView, _hit: RuleHit) -> list[KeyedRow]:
        document = view.elastic
        per_field: list[tuple[Scalar | None, ...]] = []
        for read in readers:
            values = read(document)
            if not values:
                return []
            per_field.append(values)
        return [(combination, {}) for combination in itertools.product(*per_field)]

    return keys


# --- the operator --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SequenceOperator:
    """One join key's sequences.

    State (JSON): ``n`` counts the key's events in arrival order (the tiebreaker of equal
    timestamps, as Elasticsearch's ``_shard_doc`` is index order); ``seen`` maps each event id to
    ``{"t", "n", "s": stages applied, "done": the sequence it completed}``; ``p`` maps a stage to
    its partial sequences (lists of ``[t, n, event id]``, by the ordinal of their last event);
    ``w`` maps a stage to its *waiting* events (arrived before the earlier-stage event they need:
    a late event may still complete them); ``f`` maps a stage to the ordinal up to which its
    partials were consumed (Elasticsearch's ``trimBefore``: nothing older can match again);
    ``u`` holds until markers.
    """

    stages: int
    span_ms: int
    until: bool = False
    key_names: tuple[str, ...] = ()

    @property
    def retention_ms(self) -> int:
        return self.span_ms

    def step(self, state: State | None, candidate: Candidate, *, alerting: bool) -> Step:
        stage = candidate.stage
        if not 0 <= stage < self.stages + (1 if self.until else 0):
            return Step(state)
        record = (state or {}).get("seen", {}).get(candidate.event_id)
        if record is not None and stage in record["s"]:
            return Step(state, self._replayed(record, candidate, alerting))
        is_until = stage == self.stages
        new: State = copy.deepcopy(state) if state is not None else {"n": 0}
        element = _enter(new, candidate)
        hits: list[StatefulHit] = []
        if is_until:
            bisect.insort(new.setdefault("u", []), element[:2])
        elif stage == 0:
            if not _at_or_below_floor(new, 0, element):
                partial = [element]
                _insort(new, "p", 0, partial)
                self._resume(new, 0, partial, candidate, alerting, hits)
        else:
            self._advance(new, stage, element, candidate, alerting, hits)
        _cap(new)
        return Step(new, tuple(hits))

    def expire(self, state: State, watermark_ms: int) -> State | None:
        """Gone: partials that no accepted event (none is older than the watermark) could
        complete within the span, waiting events and floors the watermark has passed, until
        markers older than every partial that could still matter, replay records of events
        the runtime would now refuse as late."""
        cut = watermark_ms - self.span_ms
        kept: State = {"n": state["n"]}
        partials = _filtered(state.get("p", {}), lambda partial: partial[0][0] >= cut)
        waiting = _filtered(state.get("w", {}), lambda element: element[0] >= watermark_ms)
        floors = {s: o for s, o in state.get("f", {}).items() if o[0] >= watermark_ms}
        until = [u for u in state.get("u", []) if u[0] >= cut]
        seen = {e: r for e, r in state.get("seen", {}).items() if r["t"] >= watermark_ms}
        for name, value in (("p", partials), ("w", waiting), ("f", floors), ("u", until)):
            if value:
                kept[name] = value
        if seen:
            kept["seen"] = seen
        return kept if len(kept) > 1 else None

    # --- matching --------------------------------------------------------------------------

    def _advance(
        self,
        state: State,
        stage: int,
        element: Element,
        candidate: Candidate,
        alerting: bool,
        hits: list[StatefulHit],
    ) -> None:
        """An event of stage ``stage`` >= 1 takes the newest partial of the stage before that is
        older than it; with none, it waits for a late one."""
        partial = _take_before(state, stage - 1, _ordinal(element))
        if partial is None:
            _insort(state, "w", stage, element)
            return
        self._extend(state, partial, stage, element, candidate, alerting, hits)

    def _extend(
        self,
        state: State,
        partial: list[Element],
        stage: int,
        element: Element,
        candidate: Candidate,
        alerting: bool,
        hits: list[StatefulHit],
    ) -> None:
        if element[0] - partial[0][0] > self.span_ms:
            return  # maxspan: the last event more than the span after the first
        last, now = _ordinal(partial[-1]), _ordinal(element)
        if any(last <= (u[0], u[1]) < now for u in state.get("u", [])):
            return  # an until event between the partial and this event
        longer = [*partial, element]
        if stage == self.stages - 1:
            hit = self._complete(state, longer, candidate, alerting)
            if alerting:
                hits.append(hit)
            return
        if _at_or_below_floor(state, stage, element):
            return  # Elasticsearch had consumed past it at this stage already
        _insort(state, "p", stage, longer)
        self._resume(state, stage, longer, candidate, alerting, hits)

    def _resume(
        self,
        state: State,
        stage: int,
        partial: list[Element],
        candidate: Candidate,
        alerting: bool,
        hits: list[StatefulHit],
    ) -> None:
        """A new partial at ``stage``: the oldest event of the next stage that waits after it
        (it arrived first, out of order) now takes the newest partial before it."""
        waiting = state.get("w", {}).get(str(stage + 1), [])
        after = _ordinal(partial[-1])
        index = next((i for i, w in enumerate(waiting) if _ordinal(w) > after), None)
        if index is None:
            return
        element = waiting.pop(index)
        if not waiting:
            del state["w"][str(stage + 1)]
        taken = _take_before(state, stage, _ordinal(element))
        if taken is not None:
            self._extend(state, taken, stage + 1, element, candidate, alerting, hits)

    def _complete(
        self, state: State, events: list[Element], candidate: Candidate, alerting: bool
    ) -> StatefulHit:
        ids = [str(element[2]) for element in events]
        record = state["seen"][candidate.event_id]
        record["done"] = {"s": candidate.stage, "e": ids, "a": alerting}
        return self._hit(ids, candidate)

    def _replayed(
        self, record: Mapping[str, Any], candidate: Candidate, alerting: bool
    ) -> tuple[StatefulHit, ...]:
        done = record.get("done")
        if done is None or done["s"] != candidate.stage or not (done["a"] and alerting):
            return ()
        return (self._hit(list(done["e"]), candidate),)

    def _hit(self, ids: list[str], candidate: Candidate) -> StatefulHit:
        return StatefulHit(
            basis=orjson.dumps(ids).decode(),
            trigger=candidate,
            fields=dict(zip(self.key_names, candidate.key, strict=True)) if self.key_names else {},
            events=tuple(ids),
        )


# --- state helpers -------------------------------------------------------------------------------


def _ordinal(element: Element) -> Ordinal:
    return (int(element[0]), int(element[1]))


def _enter(state: State, candidate: Candidate) -> Element:
    """Record the candidate's event (one arrival number per event, shared by its stages)."""
    seen = state.setdefault("seen", {})
    record = seen.get(candidate.event_id)
    if record is None:
        state["n"] += 1
        record = seen[candidate.event_id] = {"t": candidate.time_ms, "n": state["n"], "s": []}
    record["s"].append(candidate.stage)
    return [record["t"], record["n"], candidate.event_id]


def _at_or_below_floor(state: State, stage: int, element: Element) -> bool:
    floor = state.get("f", {}).get(str(stage))
    return floor is not None and _ordinal(element) <= (floor[0], floor[1])


def _partial_ordinal(partial: list[Element]) -> Ordinal:
    return _ordinal(partial[-1])


def _insort(state: State, name: str, stage: int, item: Any) -> None:
    group = state.setdefault(name, {}).setdefault(str(stage), [])
    key = _partial_ordinal if name == "p" else _ordinal
    bisect.insort(group, item, key=key)


def _take_before(state: State, stage: int, ordinal: Ordinal) -> list[Element] | None:
    """The newest partial of ``stage`` older than ``ordinal``, removed with every older one
    (``OrdinalGroup.trimBefore``); the stage's floor moves up to it."""
    group = state.get("p", {}).get(str(stage), [])
    index = bisect.bisect_left(group, ordinal, key=_partial_ordinal) - 1
    if index < 0:
        return None
    partial: list[Element] = group[index]
    del group[: index + 1]
    if not group:
        del state["p"][str(stage)]
    state.setdefault("f", {})[str(stage)] = list(_partial_ordinal(partial))
    return partial


def _filtered(groups: Mapping[str, list[Any]], keep: Callable[[Any], bool]) -> dict[str, Any]:
    out = {stage: [item for item in items if keep(item)] for stage, items in groups.items()}
    return {stage: items for stage, items in out.items() if items}


def _cap(state: State) -> None:
    for name in ("p", "w"):
        for items in state.get(name, {}).values():
            del items[: max(0, len(items) - MAX_PENDING)]
    until = state.get("u")
    if until is not None:
        del until[: max(0, len(until) - MAX_PENDING)]
    seen = state.get("seen", {})
    if len(seen) > MAX_SEEN:
        oldest = sorted(seen, key=lambda e: (seen[e]["t"], seen[e]["n"]))
        for event_id in oldest[: len(seen) - MAX_SEEN]:
            del seen[event_id]
