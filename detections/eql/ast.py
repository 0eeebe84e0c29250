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


@dataclass(frozen=True, slots=True)
class MaxSpan:
    """``with maxspan=<value><unit>``: a positive integer and one of ``ms s m h d``."""

    value: int
    unit: str
    pos: Pos = field(default=NOWHERE, compare=False)

    @property
    def millis(self) -> int:
        return self.value * _UNIT_MS[self.unit]

    def __str__(self) -> str:
        return f"{self.value}{self.unit}"


_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAXSPAN_UNITS = tuple(_UNIT_MS)
"""The time units Elasticsearch's ``LogicalPlanBuilder.visitSequenceParams`` accepts."""


@dataclass(frozen=True, slots=True)
class SequenceTerm:
    """One ``[<category> where <condition>] by k1, k2 with runs=N`` of a sequence.

    ``keys`` are the term's own join keys (the sequence-level ``by`` keys are not repeated here);
    ``text`` is the source between the brackets, the query its selector rule shows.
    """

    query: EventQuery
    keys: tuple[FieldRef, ...] = ()
    runs: int = 1
    text: str = field(default="", compare=False)
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class SequenceQuery:
    """``sequence [by keys] [with maxspan=N] term term+ [until term]``."""

    keys: tuple[FieldRef, ...]
    maxspan: MaxSpan | None
    terms: tuple[SequenceTerm, ...]
    until: SequenceTerm | None = None
    pos: Pos = field(default=NOWHERE, compare=False)

    @property
    def stages(self) -> tuple[SequenceTerm, ...]:
        """The terms with ``runs`` expanded: the stages, in order (``until`` not among them)."""
        return tuple(term for term in self.terms for _ in range(term.runs))


Statement = EventQuery | SequenceQuery
