"""The EQL syntax tree of a single-event query: what the query says, not how it runs.

Nodes are frozen and compare without their source positions, so parser golden tests can state
the expected tree without positions, and two rules with the same condition compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Pos:
    """A 1-based line and column in the query text."""

    line: int
    column: int


NOWHERE = Pos(0, 0)

Constant = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: string, number, boolean or ``null`` (``None``)."""

    value: Constant
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field path; ``optional`` is the ``?field`` form (missing mapping reads as null)."""

    name: str
    optional: bool = False
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    """A function call; ``insensitive`` is the ``name~(...)`` form."""

    name: str
    args: tuple[Expr, ...]
    insensitive: bool = False
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right`` with ``op`` one of ``== != < <= > >=``."""

    op: str
    left: Expr
    right: Expr
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class InList:
    """``value [not] in (...)`` / ``in~``; items are arbitrary expressions as the grammar allows."""

    value: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    insensitive: bool = False
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class PatternMatch:
    """``value : c``, ``like``, ``like~``, ``regex``, ``regex~`` against one constant or a list.

    ``kind`` is ``":"``, ``"like"`` or ``"regex"``; ``:`` is always case-insensitive.
    """

    kind: str
    value: Expr
    patterns: tuple[Literal, ...]
    insensitive: bool = False
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    inner: Expr
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    left: Expr
    right: Expr
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Or:
    left: Expr
    right: Expr
    pos: Pos = field(default=NOWHERE, compare=False)


Expr = Literal | FieldRef | Call | Compare | InList | PatternMatch | Not | And | Or


@dataclass(frozen=True, slots=True)
class EventQuery:
    """``<category> where <condition>``; ``category`` is ``None`` for ``any``."""

    category: str | None
    condition: Expr
    pos: Pos = field(default=NOWHERE, compare=False)
