"""ES|QL ``STATS ... BY`` on the stream: a window of the rule's lookback, per group, on event time.

Kibana runs an aggregating ES|QL rule every few minutes over ``[now - lookback, now]``. Here the
query is split where ``STATS`` stands. The commands before it are a per-event ES|QL rule, the
*selector*, ending in an ``EVAL`` of every value the aggregates and the ``BY`` read (so its hit
carries exactly those). The ``BY`` values are the group key (a multi-valued one puts the event
in a group per value, a null one in the null group). :class:`StatsOperator` keeps, per group,
the events of the window (identity, time, their values) and on each one computes the result row
as ES|QL would at that moment, runs the commands after ``STATS`` on it, and alerts when the row
survives them, once while the condition keeps holding. Every choice, with the Elasticsearch and
Kibana source it follows, is in ``docs/esql-stats-semantics.md``.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from auditstream.detections.errors import DetectionError, QuerySyntaxError
from auditstream.detections.esql import ast
from auditstream.detections.esql.aggregates import Fold, check_aggregate
from auditstream.detections.esql.columns import DateColumns, Normalizer, doc_values_order
from auditstream.detections.esql.compiler import compile_commands
from auditstream.detections.esql.scope import WHOLE_DOCUMENT, Row, Scope, Stage
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event_view import EventView
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.stateful.candidate import Candidate, GroupKey
from auditstream.detections.stateful.event_time import format_time_ms, parse_time_ms
from auditstream.detections.stateful.operator import State, StatefulHit, Step
from auditstream.detections.stateful.rule import KeyedRow, Keyer, Selector, StatefulRule
from auditstream.detections.values import Scalar, Value

__all__ = ["DEFAULT_LOOKBACK", "StatsOperator", "StatsPlan", "parse_lookback", "plan_stats"]

DEFAULT_LOOKBACK: Final = "now-6m"
"""Kibana's default ``from`` (``RuleIntervalFrom``: "Defaults to now-6m")."""
MAX_WINDOW_EVENTS: Final = 2_000
"""The most events one group's window holds; beyond it the oldest are dropped. A group that busy
is judged on its newest 2,000 events: a ``COUNT`` then reads at most 2,000 (a threshold below
that keeps Elastic's verdict: the true count is at least as high), while ``COUNT_DISTINCT`` and
``VALUES`` may miss values only the dropped events held (docs/esql-stats-semantics.md). Without a
bound, one busy identity's window would grow past what a changelog record can carry."""
INPUT_PREFIX: Final = "\x00stats."
"""Selector columns: a name no query can define (ES|QL names never hold a NUL)."""
_LOOKBACK: Final = re.compile(r"now-(\d+)([smhHdw])")
_UNIT_MS: Final = {"s": 1_000, "m": 60_000, "h": 3_600_000, "H": 3_600_000, "d": 86_400_000}
_UNIT_MS["w"] = 7 * _UNIT_MS["d"]
_NO_EVENT: Final = AuditEvent({}, None, "stats")
"""The event of a row after STATS: none (the compiler lets nothing there read one)."""

Entry = list[Any]
"""One event of a group's window in the state: ``[event id, time ms, [input values]]``."""


def parse_lookback(text: str | None) -> int:
    """``from`` (``now-6m``; Kibana's default when absent) -> the window in milliseconds. Date
    math with a fixed length only: months and years have none, rounding (``/d``) would move the
    window with the clock; both are refused rather than approximated."""
    found = _LOOKBACK.fullmatch((text or DEFAULT_LOOKBACK).strip())
    if found is None:
        raise DetectionError(
            f"from {text!r} is not supported: a STATS window is now-<n><unit> with unit "
            "s, m, h, d or w"
        )
    window = int(found.group(1)) * _UNIT_MS[found.group(2)]
    if window <= 0:
        raise DetectionError(f"from {text!r} is an empty window")
    return window


# --- the operator --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AggSpec:
    """One output column of ``STATS``: which input it folds, over the rows its ``WHERE`` keeps."""

    name: str
    fold: Fold
    input: int | None
    """The input's index in an event's values; ``None``: ``COUNT(*)`` (one per row)."""
    condition: int | None = None


@dataclass(frozen=True, slots=True)
class StatsOperator:
    """A group's window: its events, whether its condition's current run has alerted, and the
    alerts it gave (so that a replayed event gives its alert again).

    State: ``{"ev": [[event id, time, values], ...] in (time, id) order, "on": [event id,
    basis] of the alert of the run of true evaluations under way (or null), "al": [[event id,
    basis, fields, events], ...] the alerts whose event is still held}``.
    """

    window_ms: int
    inputs: int
    """How many values each event carries (the selector's columns, ``"0"`` to ``"n-1"``)."""
    aggregates: tuple[AggSpec, ...]
    groups: tuple[str, ...]
    stages: tuple[Stage, ...] = ()
    columns: tuple[str, ...] = ()
    dates: frozenset[str] = field(default_factory=frozenset)
    """Output columns holding dates (epoch millis inside, printed as ES|QL prints dates)."""

    @property
    def retention_ms(self) -> int:
        return self.window_ms

    def step(self, state: State | None, candidate: Candidate, *, alerting: bool) -> Step:
        events: list[Entry] = list(state["ev"]) if state else []
        if any(entry[0] == candidate.event_id for entry in events):
            return Step(state, self._replayed(state or {}, candidate))
        newest = events[-1][1] if events else None
        time_ms = candidate.time_ms
        values = [candidate.row.get(str(i)) for i in range(self.inputs)]
        entry: Entry = [candidate.event_id, time_ms, values]
        bisect.insort(events, entry, key=lambda e: (e[1], e[0]))
        if len(events) > MAX_WINDOW_EVENTS:  # the oldest go first: see MAX_WINDOW_EVENTS
            del events[: len(events) - MAX_WINDOW_EVENTS]
            if entry not in events:
                return Step(state)
        run: list[str] | None = state.get("on") if state else None
        if newest is None or time_ms >= newest:
            held = [e for e in events if e is not entry and time_ms - self.window_ms <= e[1]]
            points = [time_ms]
            if not held:
                run = None  # the window emptied since the group's last event: a new run
        else:  # late: every window that holds it, up to the group's newest event
            points = sorted(
                {time_ms} | {e[1] for e in events if time_ms < e[1] <= time_ms + self.window_ms}
            )
        alerts: list[Entry] = list(state.get("al", ())) if state else []
        hits: list[StatefulHit] = []
        truths = [(p, self.result(events, candidate.key, p)) for p in points]
        fired: list[str] | None = None
        if run is None:
            for point, fields in truths:
                if fields is not None:
                    basis = _basis(candidate)
                    fired = [candidate.event_id, basis]
                    ids = tuple(e[0] for e in _window(events, point, self.window_ms))
                    if alerting:
                        hits.append(StatefulHit(basis, candidate, fields, ids))
                        alerts.append([candidate.event_id, basis, fields, list(ids)])
                    break
        run = self._next_run(run, fired, truths, newest)
        return Step({"ev": events, "on": run, "al": alerts}, tuple(hits))

    def _next_run(
        self,
        run: list[str] | None,
        fired: list[str] | None,
        truths: Sequence[tuple[int, Mapping[str, Value] | None]],
        newest: int | None,
    ) -> list[str] | None:
        """The run after this candidate: decided by the group's newest window (the candidate's,
        or for a late one the group's newest event's if the late event reaches it)."""
        last_point, last_fields = truths[-1]
        if newest is not None and last_point < newest:
            return run  # the late event is outside the newest window: that one is unchanged
        if last_fields is None:
            return None
        return fired if fired is not None else run

    def _replayed(self, state: State, candidate: Candidate) -> tuple[StatefulHit, ...]:
        return tuple(
            StatefulHit(basis, candidate, _from_json(fields), tuple(ids))
            for event_id, basis, fields, ids in state.get("al", ())
            if event_id == candidate.event_id
        )

    def expire(self, state: State, watermark_ms: int) -> State | None:
        """Drop the events no window can hold any more: older than the watermark (the oldest
        time a candidate may still have) less the window; the group goes when none is left."""
        cutoff = watermark_ms - self.window_ms
        kept = [entry for entry in state["ev"] if entry[1] >= cutoff]
        if not kept:
            return None
        if len(kept) == len(state["ev"]):
            return state
        held = {entry[0] for entry in kept}
        alerts = [alert for alert in state.get("al", ()) if alert[0] in held]
        return {"ev": kept, "on": state.get("on"), "al": alerts}

    def result(
        self, events: Sequence[Entry], key: GroupKey, now_ms: int
    ) -> dict[str, Value] | None:
        """The group's row for the window ending at ``now_ms`` after every command that follows
        ``STATS`` (``None``: a ``WHERE`` dropped it), its dates printed."""
        rows = [e[2] for e in _window(events, now_ms, self.window_ms)]
        cols: dict[str, Value] = {}
        for spec in self.aggregates:
            kept = (
                rows if spec.condition is None else [r for r in rows if r[spec.condition] is True]
            )
            cols[spec.name] = spec.fold(
                [True if spec.input is None else r[spec.input] for r in kept]
            )
        cols.update(zip(self.groups, key, strict=True))
        row = Row(_NO_EVENT, cols, now_ms)
        for stage in self.stages:
            if not stage(row):
                return None
        return {name: _printed(row.cols[name], name in self.dates) for name in self.columns}


def _window(events: Sequence[Entry], now_ms: int, window_ms: int) -> list[Entry]:
    """Kibana's range filter: ``gte: now - lookback, lte: now``, both ends included."""
    return [e for e in events if now_ms - window_ms <= e[1] <= now_ms]


def _basis(candidate: Candidate) -> str:
    return orjson.dumps(list(candidate.key)).decode() + "|" + candidate.event_id


def _printed(value: Value, is_date: bool) -> Value:
    """A date column as ES|QL prints a date (``2025-01-15T10:00:00.000Z``)."""
    if not is_date:
        return value
    if isinstance(value, tuple):
        return tuple(_date_text(v) for v in value)
    return _date_text(value) if value is not None else None


def _date_text(value: Scalar) -> Scalar:
    if isinstance(value, int) and not isinstance(value, bool):
        return format_time_ms(value)
    return value


def _from_json(fields: Mapping[str, Any]) -> dict[str, Value]:
    return {name: tuple(v) if isinstance(v, list) else v for name, v in fields.items()}


# --- the per-event half --------------------------------------------------------------------------


def _dated(value: Value) -> Value:
    """A date input as epoch millis (per event a date is the text the document holds)."""
    if isinstance(value, str):
        return parse_time_ms(value)
    if isinstance(value, tuple):
        found = tuple(m for m in (_dated(v) for v in value) if isinstance(m, int))
        return None if not found else found[0] if len(found) == 1 else found
    return value


def _group_values(value: Value) -> tuple[Scalar | None, ...]:
    """The groups one ``BY`` value puts a row in: each of a multi-value's values, once (the
    block hash expands and deduplicates), and the null group for null."""
    if value is None:
        return (None,)
    if isinstance(value, tuple):
        return tuple(dict.fromkeys(value))
    return (value,)


def stats_keyer(
    inputs: Sequence[tuple[str, Normalizer]], groups: Sequence[tuple[str, Normalizer]]
) -> Keyer:
    """The selector hit -> one candidate per group (the Cartesian product of the ``BY`` values),
    each carrying the event's inputs as ``"0"``, ``"1"``, ... as the window reads them."""

    def keys(_view: EventView, hit: RuleHit) -> list[KeyedRow]:
        fields = hit.fields
        row = {str(i): read(fields.get(name)) for i, (name, read) in enumerate(inputs)}
        per_group = [_group_values(read(fields.get(name))) for name, read in groups]
        return [(key, row) for key in itertools.product(*per_group)]

    return keys


def _reader(expr: ast.Expr, types: DateColumns) -> Normalizer:
    """How the window reads one selector column: dates as epoch millis, a field's multi-value
    in its doc-values order (``columns.doc_values_order``)."""
    dated = types.of(expr)
    order = doc_values_order(types.source_type(expr))
    if order is None:
        return _dated if dated else _as_is
    if dated:
        return lambda value: order(_dated(value))
    return order


def _as_is(value: Value) -> Value:
    return value


# --- compiling a query with STATS ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatsPlan:
    """A query with ``STATS`` split for the stream: the selector's query (compiled by the
    caller into a per-event ES|QL rule), its keyer, and the operator."""

    selector_query: ast.Query
    keyer: Keyer
    operator: StatsOperator
    key_names: tuple[str, ...]
    details: Mapping[str, Any]

    def rule(
        self, meta: RuleMeta, selector: Any, path: str, cases: tuple[RuleCase, ...] = ()
    ) -> StatefulRule:
        return StatefulRule(
            meta=meta,
            path=path,
            language="esql",
            kind="stats",
            selectors=(Selector(rule=selector, stage=0, keys=self.keyer),),
            operator=self.operator,
            key_names=self.key_names,
            cases=cases,
            details=self.details,
        )


def plan_stats(query: ast.Query, meta: RuleMeta) -> StatsPlan:
    """Split a query at its ``STATS``; raises QuerySyntaxError (with a position) or
    DetectionError (the lookback) for anything the window cannot run."""
    at = next(i for i, c in enumerate(query.commands) if isinstance(c, ast.Stats))
    before, stats, after = query.commands[:at], query.commands[at], query.commands[at + 1 :]
    assert isinstance(stats, ast.Stats)
    again = next((c for c in after if isinstance(c, ast.Stats)), None)
    if again is not None:
        raise QuerySyntaxError("a second STATS is not supported", again.pos.line, again.pos.column)
    window_ms = parse_lookback(meta.lookback)
    dates = DateColumns(set(), set(), sources=True)
    for command in before:
        dates.follow(command)
    inputs: list[ast.Expr] = []

    def input_of(expr: ast.Expr) -> int:
        if expr not in inputs:
            inputs.append(expr)
        return inputs.index(expr)

    specs: dict[str, AggSpec] = {}
    out = DateColumns(set(), set(), sources=False)
    for aggregate in stats.aggregates:
        spec, is_date = _agg_spec(aggregate, input_of, dates)
        specs.pop(spec.name, None)  # the rightmost of two same-named columns wins
        specs[spec.name] = spec
        out.define(spec.name, is_date)
    group_names = tuple(name for name, _ in stats.groups)
    for name, expr in stats.groups:
        specs.pop(name, None)  # a BY column hides an aggregate of its name
        out.define(name, dates.of(expr))
    selector_names = [f"{INPUT_PREFIX}{i}" for i in range(len(inputs))]
    group_columns = [f"{INPUT_PREFIX}by{i}" for i in range(len(stats.groups))]
    assignments = tuple(zip(selector_names, inputs, strict=True)) + tuple(
        (name, expr) for name, (_, expr) in zip(group_columns, stats.groups, strict=True)
    )
    tail: tuple[ast.Command, ...] = ((ast.Eval(assignments, stats.pos),) if assignments else ()) + (
        ast.Keep(tuple(selector_names + group_columns)),
    )
    stages, columns, printed = _after_stats(after, tuple(specs) + group_names, out.dates)
    operator = StatsOperator(
        window_ms=window_ms,
        inputs=len(inputs),
        aggregates=tuple(specs.values()),
        groups=group_names,
        stages=stages,
        columns=columns,
        dates=frozenset(printed),
    )
    keyer = stats_keyer(
        [(n, _reader(e, dates)) for n, e in zip(selector_names, inputs, strict=True)],
        [(n, _reader(e, dates)) for n, (_, e) in zip(group_columns, stats.groups, strict=True)],
    )
    details = {
        "window": meta.lookback or DEFAULT_LOOKBACK,
        "window_ms": window_ms,
        "aggregates": [spec.name for spec in specs.values()],
        "by": list(group_names),
        "columns": list(columns),
    }
    selector = ast.Query(query.source, tuple(before) + tail)
    return StatsPlan(selector, keyer, operator, group_names, details)


def _agg_spec(
    aggregate: ast.StatsAggregate, input_of: Callable[[ast.Expr], int], dates: DateColumns
) -> tuple[AggSpec, bool]:
    """One aggregate's column; also whether it holds dates (``MIN``/``MAX``/``VALUES`` of one)."""
    call = aggregate.call
    kind = check_aggregate(call)
    argument = call.args[0] if call.args else None
    is_date = argument is not None and dates.of(argument)
    if is_date and not kind.takes_dates:
        raise QuerySyntaxError(
            f"{call.name} of a date is not supported", call.pos.line, call.pos.column
        )
    if call.name in ("MIN", "MAX") and argument is not None and dates.source_type(argument) == "ip":
        raise QuerySyntaxError(
            f"{call.name} of an ip field is not supported (Elasticsearch orders addresses "
            "by their bytes)",
            call.pos.line,
            call.pos.column,
        )
    spec = AggSpec(
        name=aggregate.name,
        fold=kind.fold,
        input=None if argument is None else input_of(argument),
        condition=None if aggregate.condition is None else input_of(aggregate.condition),
    )
    return spec, is_date and kind.typed_like_input


def _after_stats(
    commands: Sequence[ast.Command], columns: Sequence[str], dates: set[str]
) -> tuple[tuple[Stage, ...], tuple[str, ...], set[str]]:
    """The commands after STATS, compiled over its result rows: only its columns exist (no
    source field, no metadata column), and ``NOW()`` has a value."""
    scope = Scope(frozenset())
    scope.keep(())
    for name in columns:
        scope.define(name)
    scope.clock = True
    stages = compile_commands(commands, scope)
    if WHOLE_DOCUMENT in scope.reads:
        raise QuerySyntaxError("KQL() after STATS has no document to read")
    typed = DateColumns(set(columns), set(dates), sources=False)
    for command in commands:
        typed.follow(command)
    output = tuple(scope.computed)
    return tuple(stage for _, stage in stages), output, typed.dates & set(output)
