"""The ES|QL syntax tree: what a query says, independent of how it runs.

Nodes are frozen and compare without their source positions, so two rules whose leading commands
read the same share those commands' work (see :mod:`auditstream.detections.engine`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auditstream.detections.values import Scalar


@dataclass(frozen=True, slots=True)
class Pos:
    line: int
    column: int


NOWHERE = Pos(0, 0)


# --- expressions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: Scalar | None
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # upper case
    args: tuple[Expr, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # == != < <= > >=
    left: Expr
    right: Expr
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class PatternMatch:
    """``LIKE`` / ``RLIKE``; ES|QL only accepts a string literal (or a list of them) as pattern."""

    operand: Expr
    patterns: tuple[str, ...]
    regex: bool
    negated: bool
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class InList:
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class IsNull:
    operand: Expr
    negated: bool
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Logical:
    op: str  # AND | OR
    left: Expr
    right: Expr
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class TimeSpan:
    """``9 minutes``, ``1 day``: a time duration or date period literal (ES|QL's
    ``qualifiedIntegerLiteral``); ``unit`` as written, upper-cased."""

    amount: int
    unit: str
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Arithmetic:
    """``a + b`` / ``a - b``; auditstream compiles only a date plus or minus a time span."""

    op: str  # + -
    left: Expr
    right: Expr
    pos: Pos = field(default=NOWHERE, compare=False)


Expr = (
    Literal
    | FieldRef
    | Call
    | Compare
    | PatternMatch
    | InList
    | IsNull
    | Logical
    | Not
    | TimeSpan
    | Arithmetic
)


# --- processing commands ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class From:
    sources: tuple[str, ...]
    metadata: tuple[str, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Where:
    condition: Expr
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Eval:
    assignments: tuple[tuple[str, Expr], ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Grok:
    operand: Expr
    pattern: str
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Dissect:
    operand: Expr
    pattern: str
    append_separator: str
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Keep:
    patterns: tuple[str, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Drop:
    patterns: tuple[str, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Rename:
    pairs: tuple[tuple[str, str], ...]  # (old, new)
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Limit:
    """Meaningless for a single event except ``LIMIT 0``; accepted so more rules can run."""

    count: int
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Sort:
    """A no-op on one event; accepted so more rules can run."""

    keys: tuple[Expr, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class StatsAggregate:
    """One ``[name =] AGG(...) [WHERE condition]`` of a ``STATS``; ``COUNT(*)`` has no args."""

    name: str
    call: Call
    condition: Expr | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """``STATS aggregates BY groups``: compiled by :mod:`auditstream.detections.stateful.stats`
    into a window on the stream, never into a per-event stage."""

    aggregates: tuple[StatsAggregate, ...]
    groups: tuple[tuple[str, Expr], ...]  # (column name, grouping expression)
    pos: Pos = field(default=NOWHERE, compare=False)


Command = Where | Eval | Grok | Dissect | Keep | Drop | Rename | Limit | Sort | Stats


@dataclass(frozen=True, slots=True)
class Query:
    source: From
    commands: tuple[Command, ...]
