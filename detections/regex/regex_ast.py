"""A small regex syntax tree shared by the Java (REPLACE) and Joni (GROK) translators.

Both dialects are parsed into these nodes, checked and simplified there, and emitted as RE2
syntax. RE2 gives linear-time matching on attacker-controlled text; its leftmost-first submatch
semantics equal a backtracking engine's for everything these nodes can express, so a translated
pattern picks the same match and the same groups as Java or Joni would.

Character sets are explicit code-point ranges rather than RE2 shorthands, because each dialect
defines ``\\w``, ``\\s``, ``.`` and case folding its own way and RE2's defaults match neither.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import cache

MAX_CODE_POINT = 0x10FFFF
RE2_MAX_REPEAT = 1000

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CharSet:
    """A set of code points as sorted, disjoint, non-adjacent inclusive ranges."""

    ranges: Ranges = ()

    @staticmethod
    def of(*items: int | tuple[int, int] | str) -> CharSet:
        """Builds a set from code points, ``(lo, hi)`` ranges and strings of single characters."""
        spans: list[tuple[int, int]] = []
        for item in items:
            if isinstance(item, int):
                spans.append((item, item))
            elif isinstance(item, str):
                spans.extend((ord(c), ord(c)) for c in item)
            else:
                spans.append(item)
        return CharSet(_normalize(spans))

    def union(self, other: CharSet) -> CharSet:
        return CharSet(_normalize([*self.ranges, *other.ranges]))

    def negate(self) -> CharSet:
        out: list[tuple[int, int]] = []
        start = 0
        for lo, hi in self.ranges:
            if lo > start:
                out.append((start, lo - 1))
            start = hi + 1
        if start <= MAX_CODE_POINT:
            out.append((start, MAX_CODE_POINT))
        return CharSet(tuple(out))

    def intersect(self, other: CharSet) -> CharSet:
        return self.negate().union(other.negate()).negate()

    def minus(self, other: CharSet) -> CharSet:
        return self.intersect(other.negate())

    def is_empty(self) -> bool:
        return not self.ranges

    def issubset(self, other: CharSet) -> bool:
        return self.minus(other).is_empty()

    def isdisjoint(self, other: CharSet) -> bool:
        return self.intersect(other).is_empty()

    def contains(self, cp: int) -> bool:
        return any(lo <= cp <= hi for lo, hi in self.ranges)

    def to_re2(self) -> str:
        """RE2 class syntax; surrogates are dropped (no UTF-8 text contains them)."""
        usable = self.minus(SURROGATES)
        if usable.is_empty():
            return r"[^\x00-\x{10FFFF}]"
        if usable.ranges == ((0, 0xD7FF), (0xE000, MAX_CODE_POINT)):
            return r"(?s:.)"
        parts = [
            _re2_char(lo) if lo == hi else f"{_re2_char(lo)}-{_re2_char(hi)}"
            for lo, hi in usable.ranges
        ]
        return "[" + "".join(parts) + "]"


def _normalize(spans: list[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(s for s in spans if s[0] <= s[1]):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _re2_char(cp: int) -> str:
    if cp < 0x80 and chr(cp).isalnum():
        return chr(cp)
    return f"\\x{{{cp:X}}}"


def literal_re2(text: str) -> str:
    """RE2 syntax matching ``text`` literally."""
    return "".join(_re2_char(ord(c)) for c in text)


SURROGATES = CharSet.of((0xD800, 0xDFFF))
ANY = CharSet.of((0, MAX_CODE_POINT))
NOTHING = CharSet()
ASCII_DIGIT = CharSet.of((0x30, 0x39))
ASCII_WORD = CharSet.of((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A), 0x5F)
ASCII_SPACE = CharSet.of(" \t\n\x0b\f\r")
HEX_DIGIT = CharSet.of((0x30, 0x39), (0x41, 0x46), (0x61, 0x66))


@cache
def unicode_category_set(prefixes: tuple[str, ...]) -> CharSet:
    """Code points whose general category starts with one of ``prefixes`` (e.g. ``("L", "Nd")``).

    Built once per process from :mod:`unicodedata`; its Unicode version can trail Java's or
    Joni's by a release, which only matters for characters assigned in between.
    """
    spans: list[tuple[int, int]] = []
    start = -1
    for cp in range(MAX_CODE_POINT + 2):
        inside = cp <= MAX_CODE_POINT and unicodedata.category(chr(cp)).startswith(prefixes)
        if inside and start < 0:
            start = cp
        elif not inside and start >= 0:
            spans.append((start, cp - 1))
            start = -1
    return CharSet(tuple(spans))


# --- syntax tree ---------------------------------------------------------------------------


@dataclass
class Node:
    """Base of the tree; nodes are mutable so that simplification passes can rewrite in place."""


@dataclass
class Chars(Node):
    """Exactly one character from ``cs``."""

    cs: CharSet


@dataclass
class Seq(Node):
    items: list[Node] = field(default_factory=list)


@dataclass
class Alt(Node):
    branches: list[Node] = field(default_factory=list)


@dataclass
class Group(Node):
    """A parenthesised sub-pattern; ``index`` is its capture number (None: not capturing)."""

    body: Node
    index: int | None = None


@dataclass
class Repeat(Node):
    body: Node
    min: int
    max: int | None
    greedy: bool = True


@dataclass
class Assert(Node):
    """A zero-width assertion RE2 has (``\\A``, ``\\z``, line anchors, ``\\b``, ``\\B``)."""

    re2: str


@dataclass
class Look(Node):
    """A one-character lookaround: the neighbouring character must (not) be in ``cs``.

    ``at_edge`` is what the lookaround yields when there is no neighbouring character (start or
    end of text). ``tail`` holds further required characters for a longer negative lookahead.
    """

    ahead: bool
    cs: CharSet
    negated: bool
    at_edge: bool
    tail: tuple[CharSet, ...] = ()


@dataclass
class Atomic(Node):
    body: Node


@dataclass
class JavaDollar(Node):
    """Java's non-multiline ``$``/``\\Z``: end of input, or before a final line terminator."""

    unix_lines: bool


@dataclass
class Marker(Node):
    """An empty capturing group the emitter inserts to locate a position (prefix/suffix edges)."""

    index: int = -1


def emit(node: Node, nested: bool = False) -> str:
    """RE2 syntax for ``node`` (JavaDollar is resolved by the Java translator before emitting).

    ``nested`` is set inside a counted repeat: RE2 refuses nested counts whose product exceeds
    1000 (the ECS EMAILLOCALPART has ``{1,62}`` inside ``{0,63}``), so inner counted repeats
    are unrolled into equivalent nested optionals, which keep greedy/lazy priorities.
    """
    if isinstance(node, Chars):
        return node.cs.to_re2()
    if isinstance(node, Seq):
        return "".join(emit(item, nested) for item in node.items)
    if isinstance(node, Alt):
        return "(?:" + "|".join(emit(b, nested) for b in node.branches) + ")"
    if isinstance(node, Group):
        return ("(" if node.index is not None else "(?:") + emit(node.body, nested) + ")"
    if isinstance(node, Repeat):
        return _emit_repeat(node, nested)
    if isinstance(node, Assert):
        return node.re2
    if isinstance(node, Marker):
        return "()"
    raise TypeError(f"cannot emit {type(node).__name__}")


def _emit_repeat(node: Repeat, nested: bool) -> str:
    if node.max == 0:
        return ""
    low, high = node.min, node.max
    lazy = "" if node.greedy else "?"
    counted = (low, high) not in ((0, None), (1, None), (0, 1))
    if counted and nested:
        return _unrolled(node)
    body = emit(node.body, nested or (counted and (high is None or high > 1)))
    suffix = {(0, None): "*", (1, None): "+", (0, 1): "?"}.get((low, high))
    if suffix is None:
        suffix = f"{{{low},}}" if high is None else f"{{{low},{high}}}"
        if high == low:
            suffix = f"{{{low}}}"
    return "(?:" + body + ")" + suffix + lazy


def _unrolled(node: Repeat) -> str:
    """``X{m,n}`` as m copies of X, then n-m nested optionals (or ``X*`` when unbounded)."""
    one = "(?:" + emit(node.body, True) + ")"
    lazy = "" if node.greedy else "?"
    head = one * node.min
    if node.max is None:
        return head + one + "*" + lazy
    tail = ""
    for _ in range(node.max - node.min):
        tail = "(?:" + one + tail + ")?" + lazy
    return head + tail


def nullable(node: Node) -> bool:
    """Whether ``node`` can match the empty string."""
    if isinstance(node, Chars):
        return False
    if isinstance(node, Seq):
        return all(nullable(i) for i in node.items)
    if isinstance(node, Alt):
        return any(nullable(b) for b in node.branches)
    if isinstance(node, Repeat):
        return node.min == 0 or nullable(node.body)
    if isinstance(node, Group | Atomic):
        return nullable(node.body)
    return True


def children(node: Node) -> list[Node]:
    if isinstance(node, Seq):
        return node.items
    if isinstance(node, Alt):
        return node.branches
    if isinstance(node, Group | Repeat | Atomic):
        return [node.body]
    return []


def walk(node: Node) -> list[Node]:
    """All nodes of the tree, parents before children."""
    out = [node]
    for child in children(node):
        out.extend(walk(child))
    return out


def re2_numbering(tree: Node) -> tuple[dict[int, int], list[tuple[int, Marker]]]:
    """Where the capturing groups of ``tree`` land once emitted for RE2: the RE2 group number of
    each numbered source group, and of each :class:`Marker` (emitted as a group of its own)."""
    numbers: dict[int, int] = {}
    markers: list[tuple[int, Marker]] = []
    counter = 0
    for node in walk(tree):
        if isinstance(node, Group) and node.index is not None:
            counter += 1
            numbers[node.index] = counter
        elif isinstance(node, Marker):
            counter += 1
            markers.append((counter, node))
    return numbers, markers
