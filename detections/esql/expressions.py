"""Compile ES|QL expressions into closures with Elasticsearch's three-valued logic.

A comparison, pattern match or function on null gives null; ``NOT null`` is null; ``AND`` and
``OR`` follow SQL's truth tables. Every pattern and regex is compiled here, once, at rule load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.esql import ast
from auditstream.detections.esql.functions import FUNCTIONS, compile_call
from auditstream.detections.esql.scope import (
    METADATA_FIELDS,
    WHOLE_DOCUMENT,
    Evaluator,
    Row,
    Scope,
    at,
)
from auditstream.detections.esql.temporal import shift, span_ms
from auditstream.detections.event.fields import compile_field
from auditstream.detections.memo import memo
from auditstream.detections.regex.lucene.regexp import compile_rlike
from auditstream.detections.regex.lucene.wildcard import compile_like
from auditstream.detections.ruleset.indices import AUDIT_INDEX
from auditstream.detections.values import Value


def compile_expression(expr: ast.Expr, scope: Scope) -> Evaluator:
    match expr:
        case ast.Literal(value=value):
            return lambda row: value
        case ast.FieldRef(name=name, pos=pos):
            return _field(name, pos, scope)
        case ast.Call(name=name, args=args, pos=pos):
            if name not in FUNCTIONS:  # an aggregate: STATS compiles those, never a stage
                raise QuerySyntaxError(
                    f"aggregate function {name} is only allowed in STATS", pos.line, pos.column
                )
            if FUNCTIONS[name].reads_document:
                scope.reads[WHOLE_DOCUMENT] = None
            call = compile_call(expr, [_argument(a, scope) for a in args])
            if FUNCTIONS[name].clock and not scope.clock:
                raise QuerySyntaxError(
                    f"{name}() is supported after STATS only (per event it would depend on "
                    "when the rule runs)",
                    pos.line,
                    pos.column,
                )
            return call
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
        case ast.TimeSpan(pos=pos):
            raise QuerySyntaxError(
                "a time span is supported only added to or subtracted from a date, or as "
                "DATE_TRUNC's first argument",
                pos.line,
                pos.column,
            )
        case ast.Arithmetic(op=op, left=left, right=right, pos=pos):
            return _date_arithmetic(op, left, right, pos, scope)
        case _:
            raise TypeError(f"not an expression: {expr!r}")


def _argument(arg: ast.Expr, scope: Scope) -> Evaluator:
    """A call's argument; a time span is a constant its function reads from the syntax tree."""
    if isinstance(arg, ast.TimeSpan):
        return lambda row: None
    return compile_expression(arg, scope)


def _date_arithmetic(
    op: str, left: ast.Expr, right: ast.Expr, pos: ast.Pos, scope: Scope
) -> Evaluator:
    """``date + span``, ``span + date``, ``date - span``: the only arithmetic compiled (numeric
    arithmetic would need ES|QL's column types, which are not known here)."""
    if isinstance(right, ast.TimeSpan) and not isinstance(left, ast.TimeSpan):
        date, delta = compile_expression(left, scope), span_ms(right)
        delta = -delta if op == "-" else delta
    elif isinstance(left, ast.TimeSpan) and op == "+" and not isinstance(right, ast.TimeSpan):
        date, delta = compile_expression(right, scope), span_ms(left)
    else:
        raise QuerySyntaxError(
            f"operator {op} is supported only between a date and a time span "
            "(such as NOW() - 9 minutes)",
            pos.line,
            pos.column,
        )
    return lambda row: shift(date(row), delta)


def _field(name: str, pos: ast.Pos, scope: Scope) -> Evaluator:
    if name in scope.computed:
        return lambda row: row.cols[name]
    if name in scope.metadata:
        scope.reads[name] = None
        return _metadata(name)
    if name.startswith("_") and name in METADATA_FIELDS:
        raise QuerySyntaxError(
            f"Unknown column [{name}] (add it to FROM ... METADATA)", pos.line, pos.column
        )
    if not scope.source_visible(name):
        raise QuerySyntaxError(f"Unknown column [{name}]", pos.line, pos.column)
    scope.reads[name] = None
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
    matchers = [at(pos, lambda p=p: build(p)) for p in patterns]  # type: ignore[misc]
    if len(matchers) == 1:
        matches = memo(matchers[0].matches)

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
