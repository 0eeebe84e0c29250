"""Compile a parsed ES|QL query into a chain of per-event stages.

Everything that can be decided from the query text is decided here, once: which names are
computed columns, metadata or source fields (and so how each is read), every regex and pattern,
which columns the alert carries. A stage is then a small closure over one :class:`Row`; it
returns ``False`` to drop the row, as a ``WHERE`` whose condition is not true does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.esql import ast
from auditstream.detections.esql.dissect import compile_dissect
from auditstream.detections.esql.expressions import compile_expression
from auditstream.detections.esql.scope import (
    METADATA_FIELDS,
    Evaluator,
    Row,
    Scope,
    Stage,
    at,
)
from auditstream.detections.memo import memo
from auditstream.detections.regex.grok.expression import compile_grok
from auditstream.detections.ruleset.indices import AUDIT_INDEX, reads_audit_logs


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """``stages`` pairs each command (its identity, for sharing) with its runner.

    ``reads`` names every source and metadata field the stages read: the query's outcome on an
    event is a function of those values alone (what :class:`auditstream.detections.engine.Detector`
    keys
    its memo on).
    """

    source: ast.From
    stages: tuple[tuple[ast.Command, Stage], ...]
    output_columns: tuple[str, ...]
    reads: tuple[str, ...] = ()


def compile_query(query: ast.Query) -> CompiledQuery:
    """Raises :class:`QuerySyntaxError` (with a position) for anything that cannot run."""
    _check_sources(query.source)
    scope = Scope(frozenset(query.source.metadata))
    stages = compile_commands(query.commands, scope)
    return CompiledQuery(query.source, stages, tuple(scope.computed), tuple(scope.reads))


def compile_commands(
    commands: Sequence[ast.Command], scope: Scope
) -> tuple[tuple[ast.Command, Stage], ...]:
    """Stages for commands run in ``scope`` (which they update): a query's, or the commands
    after a ``STATS``, whose rows are its result rows."""
    stages: list[tuple[ast.Command, Stage]] = []
    for command in commands:
        stage = _compile_command(command, scope)
        if stage is not None:
            stages.append((command, stage))
    return tuple(stages)


def _check_sources(source: ast.From) -> None:
    for name in source.metadata:
        if name not in METADATA_FIELDS:
            raise QuerySyntaxError(
                f"unknown metadata field [{name}]", source.pos.line, source.pos.column
            )
    if reads_audit_logs(source.sources):
        return
    raise QuerySyntaxError(
        f"FROM {', '.join(source.sources)} does not read Kubernetes audit logs ({AUDIT_INDEX})",
        source.pos.line,
        source.pos.column,
    )


def _compile_command(command: ast.Command, scope: Scope) -> Stage | None:
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
        case ast.Stats(pos=pos):
            raise QuerySyntaxError(
                "STATS runs as a window of a stateful rule, not as a per-event stage",
                pos.line,
                pos.column,
            )
        case _:
            raise TypeError(f"not a command: {command!r}")


def _where(condition: ast.Expr, scope: Scope) -> Stage:
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


def _eval(assignments: Sequence[tuple[str, ast.Expr]], scope: Scope) -> Stage:
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


def _grok(operand: Evaluator, pattern: str, pos: ast.Pos, scope: Scope) -> Stage:
    grok = at(pos, lambda: compile_grok(pattern))
    names = tuple(column.name for column in grok.columns)
    for name in names:
        scope.define(name)
    nulls = dict.fromkeys(names)
    match = memo(grok.match)  # the dict it returns is shared: only ever copied from

    def run(row: Row) -> bool:
        text = operand(row)
        found = match(text) if isinstance(text, str) else None
        row.cols.update(nulls if found is None else found)
        return True

    return run


def _dissect(operand: Evaluator, pattern: str, sep: str, pos: ast.Pos, scope: Scope) -> Stage:
    dissect = at(pos, lambda: compile_dissect(pattern, sep))
    for name in dissect.columns:
        scope.define(name)
    nulls = dict.fromkeys(dissect.columns)

    def run(row: Row) -> bool:
        text = operand(row)
        found = dissect.match(text) if isinstance(text, str) else None
        row.cols.update(nulls if found is None else found)
        return True

    return run


def _rename(pairs: Sequence[tuple[str, str]], pos: ast.Pos, scope: Scope) -> Stage:
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
