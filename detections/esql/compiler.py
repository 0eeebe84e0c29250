"""Compile a parsed ES|QL query into a chain of per-event stages.

Everything that can be decided from the query text is decided here, once: which names are
computed columns, metadata or source fields (and so how each is read), every regex and pattern,
which columns the alert carries. A stage is then a small closure over one :class:`Row`; it
returns ``False`` to drop the row, as a ``WHERE`` whose condition is not true does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from detections.audit_event import AuditEvent, compile_field
from detections.errors import QuerySyntaxError
from detections.esql import ast
from detections.esql.dissect import compile_dissect
from detections.esql.functions import compile_call
from detections.esql.grok import compile_grok
from detections.esql.lucene_regexp import compile_rlike
from detections.esql.wildcard import compile_like
from detections.values import Value

AUDIT_INDEX = "logs-kubernetes.audit_logs-default"
"""The index Elastic Agent's Kubernetes audit integration writes to; FROM patterns must match it."""

METADATA_FIELDS = frozenset({"_id", "_index", "_version", "_ignored", "_score", "_source"})


class Row:
    """One event flowing through one rule's stages: the event plus the columns computed so far."""

    __slots__ = ("cols", "event")

    def __init__(self, event: AuditEvent, cols: dict[str, Value]) -> None:
        self.event = event
        self.cols = cols


_T = TypeVar("_T")
Evaluator = Callable[[Row], Value]
Stage = Callable[[Row], bool]


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """``stages`` pairs each command (its identity, for sharing) with its runner."""

    source: ast.From
    stages: tuple[tuple[ast.Command, Stage], ...]
    output_columns: tuple[str, ...]


def compile_query(query: ast.Query) -> CompiledQuery:
    """Raises :class:`QuerySyntaxError` (with a position) for anything that cannot run."""
    _check_sources(query.source)
    scope = _Scope(frozenset(query.source.metadata))
    stages: list[tuple[ast.Command, Stage]] = []
    for command in query.commands:
        stage = _compile_command(command, scope)
        if stage is not None:
            stages.append((command, stage))
    return CompiledQuery(query.source, tuple(stages), tuple(scope.computed))


def _check_sources(source: ast.From) -> None:
    for name in source.metadata:
        if name not in METADATA_FIELDS:
            raise QuerySyntaxError(
                f"unknown metadata field [{name}]", source.pos.line, source.pos.column
            )
    for pattern in source.sources:
        index = pattern.split(":", 1)[-1]
        if _wildcard(index).fullmatch(AUDIT_INDEX):
            return
    raise QuerySyntaxError(
        f"FROM {', '.join(source.sources)} does not read Kubernetes audit logs ({AUDIT_INDEX})",
        source.pos.line,
        source.pos.column,
    )


def _wildcard(pattern: str) -> re.Pattern[str]:
    """Column and index patterns (rule text, not event data): ``*`` is the only wildcard."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


class _Scope:
    """What each name means at a point of the pipeline, as ES|QL's planner tracks it."""

    def __init__(self, metadata: frozenset[str]) -> None:
        self.computed: dict[str, None] = {}  # ordered set of computed column names
        self.metadata = metadata
        self._source_filters: list[tuple[bool, tuple[re.Pattern[str], ...]]] = []
        self._hidden: set[str] = set()

    def source_visible(self, name: str) -> bool:
        if name in self._hidden:
            return False
        for keep, patterns in self._source_filters:
            matched = any(p.fullmatch(name) for p in patterns)
            if matched != keep:
                return False
        return True

    def define(self, name: str) -> None:
        self.computed.pop(name, None)
        self.computed[name] = None
        self._hidden.discard(name)

    def keep(self, patterns: Sequence[str]) -> None:
        compiled = tuple(_wildcard(p) for p in patterns)
        ordered: dict[str, None] = {}
        for pattern in compiled:
            for name in self.computed:
                if pattern.fullmatch(name):
                    ordered.setdefault(name, None)
        self.computed = ordered
        self._source_filters.append((True, compiled))

    def drop(self, patterns: Sequence[str]) -> None:
        compiled = tuple(_wildcard(p) for p in patterns)
        self.computed = {
            n: None for n in self.computed if not any(p.fullmatch(n) for p in compiled)
        }
        self._source_filters.append((False, compiled))

    def hide(self, name: str) -> None:
        self.computed.pop(name, None)
        self._hidden.add(name)


def _compile_command(command: ast.Command, scope: _Scope) -> Stage | None:
    match command:
        case ast.Where(condition=condition):
            return _where(condition, scope)
        case ast.Eval(assignments=assignments):
            return _eval(assignments, scope)
        case ast.Grok(operand=operand, pattern=pattern, pos=pos):
            return _grok(compile_expression(operand, scope), pattern, pos, scope)
        case ast.Dissect(operand=operand, pattern=pattern, append_separator=sep, pos=pos):
            return _dissect(compile_expression(operand, scope), pattern, sep, pos, scope)
        case ast.Keep(patterns=patterns):
            scope.keep(patterns)
            return None
        case ast.Drop(patterns=patterns):
            scope.drop(patterns)
            return None
        case ast.Rename(pairs=pairs, pos=pos):
            return _rename(pairs, pos, scope)
        case ast.Limit(count=count):
            return None if count > 0 else (lambda row: False)
        case ast.Sort(keys=keys):
            for key in keys:
                compile_expression(key, scope)
            return None
        case _:
            raise TypeError(f"not a command: {command!r}")


def _where(condition: ast.Expr, scope: _Scope) -> Stage:
    """Keep the row only when the condition is true.

    A top-level ``a AND b AND ...`` is true only when every conjunct is true, so the stage stops
    at the first conjunct that is false *or null*: three-valued AND would go on evaluating the
    rest after a null, which can change nothing here (routine events, whose subresource is null,
    skip the ``LIKE`` on their URI).
    """
    conjuncts = [compile_expression(c, scope) for c in _conjuncts(condition)]
    if len(conjuncts) == 1:
        (only,) = conjuncts

        def where_one(row: Row) -> bool:
            return only(row) is True

        return where_one

    def where_all(row: Row) -> bool:
        return all(conjunct(row) is True for conjunct in conjuncts)

    return where_all


def _conjuncts(expr: ast.Expr) -> list[ast.Expr]:
    if isinstance(expr, ast.Logical) and expr.op == "AND":
        return _conjuncts(expr.left) + _conjuncts(expr.right)
    return [expr]


def _eval(assignments: Sequence[tuple[str, ast.Expr]], scope: _Scope) -> Stage:
    compiled: list[tuple[str, Evaluator]] = []
    for name, expr in assignments:
        compiled.append((name, compile_expression(expr, scope)))
        scope.define(name)
    if len(compiled) == 1:
        ((only_name, only_expr),) = compiled

        def eval_one(row: Row) -> bool:
            row.cols[only_name] = only_expr(row)
            return True

        return eval_one

    def eval_many(row: Row) -> bool:
        for name, expr in compiled:
            row.cols[name] = expr(row)
        return True

    return eval_many


def _grok(operand: Evaluator, pattern: str, pos: ast.Pos, scope: _Scope) -> Stage:
    grok = _at(pos, lambda: compile_grok(pattern))
    names = tuple(column.name for column in grok.columns)
    for name in names:
        scope.define(name)
    nulls = dict.fromkeys(names)

    def run(row: Row) -> bool:
        text = operand(row)
        found = grok.match(text) if isinstance(text, str) else None
        row.cols.update(nulls if found is None else found)
        return True

    return run


def _dissect(operand: Evaluator, pattern: str, sep: str, pos: ast.Pos, scope: _Scope) -> Stage:
    dissect = _at(pos, lambda: compile_dissect(pattern, sep))
    for name in dissect.columns:
        scope.define(name)
    nulls = dict.fromkeys(dissect.columns)

    def run(row: Row) -> bool:
        text = operand(row)
        found = dissect.match(text) if isinstance(text, str) else None
        row.cols.update(nulls if found is None else found)
        return True

    return run


def _rename(pairs: Sequence[tuple[str, str]], pos: ast.Pos, scope: _Scope) -> Stage:
    moves: list[tuple[str, Evaluator]] = []
    for old, new in pairs:
        reader = compile_expression(ast.FieldRef(old, pos), scope)
        scope.hide(old)
        scope.define(new)
        moves.append((new, reader))

    def run(row: Row) -> bool:
        values = [(new, reader(row)) for new, reader in moves]
        row.cols.update(values)
        return True

    return run


def _at(pos: ast.Pos, build: Callable[[], _T]) -> _T:
    """Give errors from pattern compilers the position of the command that holds the pattern."""
    try:
        return build()
    except QuerySyntaxError as err:
        if err.line is not None:
            raise
        raise QuerySyntaxError(err.reason, pos.line, pos.column) from err


# --- expressions -----------------------------------------------------------------------------


def compile_expression(expr: ast.Expr, scope: _Scope) -> Evaluator:
    match expr:
        case ast.Literal(value=value):
            return lambda row: value
        case ast.FieldRef(name=name, pos=pos):
            return _field(name, pos, scope)
        case ast.Call(args=args):
            return compile_call(expr, [compile_expression(a, scope) for a in args])
        case ast.Compare(op=op, left=left, right=right):
            return _compare(op, compile_expression(left, scope), compile_expression(right, scope))
        case ast.PatternMatch(operand=operand, patterns=patterns, regex=regex, pos=pos):
            matched = _pattern_match(compile_expression(operand, scope), patterns, regex, pos)
            return _negate(matched) if expr.negated else matched
        case ast.InList(operand=operand, items=items, negated=negated):
            found = _in_list(
                compile_expression(operand, scope), [compile_expression(i, scope) for i in items]
            )
            return _negate(found) if negated else found
        case ast.IsNull(operand=operand, negated=negated):
            inner = compile_expression(operand, scope)
            if negated:
                return lambda row: inner(row) is not None
            return lambda row: inner(row) is None
        case ast.Logical(op="AND", left=left, right=right):
            return _and(compile_expression(left, scope), compile_expression(right, scope))
        case ast.Logical(op="OR", left=left, right=right):
            return _or(compile_expression(left, scope), compile_expression(right, scope))
        case ast.Not(operand=operand):
            return _negate(compile_expression(operand, scope))
        case _:
            raise TypeError(f"not an expression: {expr!r}")


def _field(name: str, pos: ast.Pos, scope: _Scope) -> Evaluator:
    if name in scope.computed:
        return lambda row: row.cols[name]
    if name in scope.metadata:
        return _metadata(name)
    if name.startswith("_") and name in METADATA_FIELDS:
        raise QuerySyntaxError(
            f"Unknown column [{name}] (add it to FROM ... METADATA)", pos.line, pos.column
        )
    if not scope.source_visible(name):
        raise QuerySyntaxError(f"Unknown column [{name}]", pos.line, pos.column)
    getter = compile_field(name)
    return lambda row: getter(row.event)


def _metadata(name: str) -> Evaluator:
    if name == "_index":
        return lambda row: AUDIT_INDEX
    if name == "_id":
        return lambda row: f"{row.event.audit_id}:{row.event.stage or ''}"
    if name == "_version":
        return lambda row: 1
    return lambda row: None


def _negate(inner: Evaluator) -> Evaluator:
    def negate(row: Row) -> Value:
        value = inner(row)
        return None if value is None else not value

    return negate


def _and(left: Evaluator, right: Evaluator) -> Evaluator:
    def both(row: Row) -> Value:
        a = left(row)
        if a is False:
            return False
        b = right(row)
        if b is False:
            return False
        return None if a is None or b is None else True

    return both


def _or(left: Evaluator, right: Evaluator) -> Evaluator:
    def either(row: Row) -> Value:
        a = left(row)
        if a is True:
            return True
        b = right(row)
        if b is True:
            return True
        return None if a is None or b is None else False

    return either


_NUMBER = (int, float)


def _comparable(a: Value, b: Value) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str)
    return isinstance(a, _NUMBER) and isinstance(b, _NUMBER)


_COMPARATORS: dict[str, Callable[[object, object], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,  # type: ignore[operator]  # operands checked by _comparable
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}


def _compare(op: str, left: Evaluator, right: Evaluator) -> Evaluator:
    compare = _COMPARATORS[op]
    ordering = op not in ("==", "!=")

    def evaluate(row: Row) -> Value:
        a, b = left(row), right(row)
        if a is None or b is None or isinstance(a, tuple) or isinstance(b, tuple):
            return None
        if not _comparable(a, b) or (ordering and isinstance(a, bool)):
            return None
        return compare(a, b)

    return evaluate


def _pattern_match(
    operand: Evaluator, patterns: Sequence[str], regex: bool, pos: ast.Pos
) -> Evaluator:
    build = compile_rlike if regex else compile_like
    matchers = [_at(pos, lambda p=p: build(p)) for p in patterns]  # type: ignore[misc]
    if len(matchers) == 1:
        matches = matchers[0].matches

        def one(row: Row) -> Value:
            text = operand(row)
            return matches(text) if isinstance(text, str) else None

        return one

    def many(row: Row) -> Value:
        text = operand(row)
        if not isinstance(text, str):
            return None
        return any(m.matches(text) for m in matchers)

    return many


def _in_list(operand: Evaluator, items: Sequence[Evaluator]) -> Evaluator:
    def evaluate(row: Row) -> Value:
        value = operand(row)
        if value is None or isinstance(value, tuple):
            return None
        saw_null = False
        for item in items:
            candidate = item(row)
            if candidate is None or isinstance(candidate, tuple):
                saw_null = True
            elif _comparable(value, candidate) and value == candidate:
                return True
        return None if saw_null else False

    return evaluate
