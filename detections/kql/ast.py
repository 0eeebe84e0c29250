"""The KQL syntax tree, shaped like Kibana's ``KueryNode`` after parsing.

Kibana expands a value list on the spot: ``f:(a or not b)`` parses to ``or(is(f, a),
not(is(f, b)))``, so the tree has no list node and the compiler sees one field per leaf. A
lone ``*`` value is kept as a :class:`Wildcard` with parts ``("", "")``; the compiler turns it
into an ``exists`` query exactly where Kibana's ``is`` function does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pos:
    """1-based line and column of a node in the query text (what errors report)."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Literal:
    """A value as Kibana's grammar builds it: unquoted ``true``/``false``/``null`` become
    ``True``/``False``/``None``, everything else (numbers included) stays a string."""

    value: str | bool | None
    quoted: bool
    pos: Pos


@dataclass(frozen=True, slots=True)
class Wildcard:
    """An unquoted value with at least one unescaped ``*``: the literal text between stars
    (``a*b*`` is ``("a", "b", "")``). Escaped ``\\*`` and every other character are literal."""

    parts: tuple[str, ...]
    pos: Pos

    @property
    def lone(self) -> bool:
        """``*`` alone: Kibana's exists query."""
        return self.parts == ("", "")


Value = Literal | Wildcard


@dataclass(frozen=True, slots=True)
class Is:
    """``field:value``; ``field`` is ``None`` for free text (a value with no field)."""

    field: Value | None
    value: Value
    pos: Pos


@dataclass(frozen=True, slots=True)
class Range:
    """``field < value`` and friends; ``op`` is ``lt``, ``lte``, ``gt`` or ``gte``."""

    field: Value
    op: str
    value: Value
    pos: Pos


@dataclass(frozen=True, slots=True)
class Nested:
    """``field:{ query }``: a ``nested`` query on ``field``."""

    field: Value
    query: Node
    pos: Pos


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    inner: Node
    pos: Pos


@dataclass(frozen=True, slots=True)
class MatchAll:
    """The empty query (Kibana: ``is('*', '*')``, a ``match_all``)."""


Node = Is | Range | Nested | And | Or | Not | MatchAll
