"""ES|QL ``GROK input "pattern"`` with Elasticsearch's semantics, matched by RE2.

What Elasticsearch does (``libs/grok`` Grok.java, esql ``plan/logical/Grok.java``,
``GrokEvaluatorExtracter``, ``LogicalPlanBuilder.visitGrokCommand``):

* ``%{NAME}``, ``%{NAME:field}`` and ``%{NAME:field:type}`` are expanded textually and
  recursively from the ECS v1 bank into ``(?:def)`` or ``(?<NAME:field:type>def)``; a ``=def``
  suffix is ignored; an unknown NAME is an error.
* Every distinct named group (also raw ``(?<name>...)``) is one column: its name is the group
  name's second ``:``-part (or the whole name), its type the third part (:mod:`grok_types`).
  ES|QL rejects two group names yielding one column; columns are sorted by name.
* Joni searches unanchored; no match makes every column null. A group name used several times
  yields every matched occurrence, in group order (a multi-value when more than one).

The expanded regex is parsed (:mod:`grok_regex`), freed of lookaround/atomic groups where exact
(:mod:`grok_rewrite`, :mod:`grok_edges`) and compiled for RE2, all once at rule load.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import re2

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.grok.bank import ECS_V1_PATTERNS
from auditstream.detections.regex.grok.conversions import (
    COLUMN_TYPES,
    GrokConversionError,
    converter,
)
from auditstream.detections.regex.grok.edges import (
    HEAD,
    at_text_start,
    has_head_looks,
    with_prefix,
    with_tail_markers,
)
from auditstream.detections.regex.grok.joni_parser import OnigParser
from auditstream.detections.regex.grok.rewrite import Resolver
from auditstream.detections.regex.java.pattern import re2_options
from auditstream.detections.regex.regex_ast import ANY, Node, emit, re2_numbering
from auditstream.detections.values import Scalar, Value

__all__ = ["Grok", "GrokColumn", "GrokConversionError", "compile_grok"]

_REFERENCE = re.compile(
    r"%\{(?P<name>(?P<pattern>[A-z0-9]+)(?::(?P<subname>[\w@\[\]:.-]+))?)"
    r"(?:=(?P<definition>(?:[^{}]+|\.+)+))?\}"
)
_MAX_EXPANSIONS = 100_000
# Bank entries whose atomic groups are provably irrelevant but beyond grok_rewrite's generic
# proof. QUOTEDSTRING: the first character picks one quote family; inside it, a backslash can
# only be consumed together with the next character and any other character but the quote by
# the run class, so the closing quote (the first unescaped one) is reached by every path: at
# most one match per start offset, hence (?>...) changes nothing. Its lookbehind stays.
_RE2_EQUIVALENTS = {"QUOTEDSTRING": ECS_V1_PATTERNS["QUOTEDSTRING"].replace("(?>", "(?:")}
_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED
_ANCHOR_START = re2._re2.RE2.Anchor.ANCHOR_START


@dataclass(frozen=True)
class GrokColumn:
    name: str
    type: str  # "keyword" | "integer" | "long" | "double" | "boolean"


@dataclass(frozen=True)
class _Program:
    """One compiled RE2 variant and where its groups and edge markers are."""

    regex: re2._Regexp
    groups: tuple[tuple[int, ...], ...]  # per column: RE2 group numbers, in Joni group order
    head: tuple[int, ...]
    tail: tuple[int, ...]


@dataclass(frozen=True)
class Grok:
    """A compiled GROK command; build it with :func:`compile_grok`."""

    pattern: str
    columns: tuple[GrokColumn, ...]
    _first: _Program  # offset 0 only (anchored) when _rest exists, else the whole search
    _rest: _Program | None
    _parsers: tuple[Callable[[str], Scalar], ...]

    def match(self, text: str) -> dict[str, Value] | None:
        """Column values for ``text``; None when the pattern does not match (all null)."""
        data = text.encode("utf-8", "surrogatepass")
        program = self._first
        anchor = _ANCHOR_START if self._rest is not None else _UNANCHORED
        spans = program.regex._regexp.Match(anchor, data, 0, len(data))
        if spans[0][0] < 0 and self._rest is not None:
            program = self._rest
            spans = program.regex._regexp.Match(_UNANCHORED, data, 0, len(data))
        if spans[0][0] < 0:
            return None
        low, high = _edges(program, spans)
        out: dict[str, Value] = {}
        for column, numbers, parse in zip(self.columns, program.groups, self._parsers, strict=True):
            values = [
                parse(data[max(s, low) : min(e, high)].decode("utf-8", "replace"))
                for s, e in (spans[n] for n in numbers)
                if s >= 0
            ]
            out[column.name] = (
                None if not values else values[0] if len(values) == 1 else tuple(values)
            )
        return out


def _edges(program: _Program, spans: list[tuple[int, int]]) -> tuple[int, int]:
    low, high = spans[0]
    for n in program.head:
        if spans[n][0] >= 0:
            low = spans[n][0]
    for n in program.tail:
        if spans[n][0] >= 0:
            high = spans[n][0]
    return low, high


def compile_grok(pattern: str) -> Grok:
    """Compiles a GROK pattern once (rule load); QuerySyntaxError where ES or RE2 refuses it."""
    return _compile(pattern)


@lru_cache(maxsize=128)
def _compile(pattern: str) -> Grok:
    parser = OnigParser(expand(pattern), pattern)
    tree = parser.parse()
    tree = with_tail_markers(Resolver(pattern).resolve(tree))
    columns, by_column = _columns(pattern, parser.names)
    fail = QuerySyntaxError(
        f"Invalid GROK pattern [{pattern}]: a lookbehind inside a repeat cannot run on RE2"
    )
    if has_head_looks(tree):
        first = _program(pattern, at_text_start(tree), by_column)
        rest: _Program | None = _program(pattern, with_prefix(tree, ANY, fail), by_column)
    else:
        first, rest = _program(pattern, tree, by_column), None
    parsers = tuple(converter(_type_suffix(name)) for name in (names[0] for names in by_column))
    return Grok(pattern, columns, first, rest, parsers)


def expand(pattern: str) -> str:
    """Grok.toRegex: replaces ``%{...}`` references, re-scanning each inserted definition."""
    done: list[str] = []
    rest = pattern
    for _ in range(_MAX_EXPANSIONS):
        found = _REFERENCE.search(rest)
        if found is None:
            return "".join(done) + rest
        name, ref, sub = found.group("pattern"), found.group("name"), found.group("subname")
        definition = _RE2_EQUIVALENTS.get(name, ECS_V1_PATTERNS.get(name))
        if definition is None:
            raise QuerySyntaxError(
                f"Invalid pattern [{pattern}] for grok: Unable to find pattern [{name}]"
            )
        if f"%{{{name}}}" in definition or f"%{{{name}:" in definition:
            raise QuerySyntaxError(
                f"Invalid pattern [{pattern}] for grok: circular reference [{name}]"
            )
        part = f"(?<{ref}>{definition})" if sub is not None else f"(?:{definition})"
        done.append(rest[: found.start()])
        rest = part + rest[found.end() :]
    raise QuerySyntaxError(
        f"Invalid pattern [{pattern}] for grok: Can not convert grok patterns to regular expression"
    )


def _java_split_colon(name: str) -> list[str]:
    """``String.split(":")``: trailing empty strings removed."""
    parts = name.split(":")
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


def _column_name(group: str) -> str:
    parts = _java_split_colon(group)
    return parts[1] if len(parts) >= 2 else parts[0]


def _type_suffix(group: str) -> str:
    parts = _java_split_colon(group)
    return parts[2] if len(parts) == 3 else "string"


def _columns(
    pattern: str, names: list[str]
) -> tuple[tuple[GrokColumn, ...], list[tuple[str, list[int]]]]:
    """Columns sorted by name (Java UTF-16 order) and, per column, its group name and indexes."""
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names, start=1):
        groups.setdefault(name, []).append(index)
    seen: set[str] = set()
    for group in groups:
        column = _column_name(group)
        if column in seen:
            raise QuerySyntaxError(
                f"Invalid GROK pattern [{pattern}]: the attribute [{column}] is defined"
                " multiple times with different types"
            )
        seen.add(column)
    ordered = sorted(groups.items(), key=lambda item: _column_name(item[0]).encode("utf-16-be"))
    columns = tuple(
        GrokColumn(_column_name(g), COLUMN_TYPES.get(_type_suffix(g), "keyword"))
        for g, _ in ordered
    )
    return columns, [(g, idx) for g, idx in ordered]


def _program(pattern: str, tree: Node, by_column: list[tuple[str, list[int]]]) -> _Program:
    numbers, markers = re2_numbering(tree)
    head = [number for number, marker in markers if marker.index == HEAD]
    tail = [number for number, marker in markers if marker.index != HEAD]
    try:
        regex = re2.compile(emit(tree), re2_options())
    except re2.error as exc:
        raise QuerySyntaxError(
            f"Invalid GROK pattern [{pattern}]: RE2 cannot run it ({exc})"
        ) from None
    groups = tuple(tuple(numbers[i] for i in indexes) for _, indexes in by_column)
    return _Program(regex, groups, tuple(head), tuple(tail))
