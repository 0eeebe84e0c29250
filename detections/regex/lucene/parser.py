"""Parser for Lucene's regular-expression syntax, exactly as ES|QL ``RLIKE`` reads it.

ES|QL 9.x (``RLikePattern`` in x-pack/plugin/esql-core) compiles a pattern with
``new RegExp(pattern, RegExp.ALL | RegExp.DEPRECATED_COMPLEMENT)`` from Lucene 10.4
(``org/apache/lucene/util/automaton/RegExp.java``). This module mirrors that recursive-descent
parser rule for rule, quirks included, because a rule means what Lucene parses, not what a regex
reader expects:

* precedence ``|`` < ``&`` < concatenation < repeat (``* + ? {n} {n,} {n,m}``) < ``~`` < simple;
* a character no rule claims is a literal, so ``|`` right after ``&`` or ``|`` (and a
  leading ``|``, ``*``, ``&`` or ``{``) is a plain character:
  ``a>&|0>&1`` is ``a>`` & ``|0>`` & ``1``, which matches nothing;
* ``\\`` + letter is a predefined class (``\\d \\D \\s \\S \\w \\W``) or an error;
  ``\\`` + any other character is that character; ``^`` and ``$`` are literals;
  ``.`` is any code point;
* ``"..."`` is a literal string, ``#`` the empty language, ``@`` any string, ``<n-m>`` a decimal
  interval, ``<name>`` a named automaton (ES gives no provider: always an error).

The result is a small immutable AST (:data:`Node`); offsets in errors are 0-based code points.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from auditstream.detections.errors import QuerySyntaxError

MAX_CODE_POINT = 0x10FFFF
_INT_MAX = 2**31 - 1
_MAX_DEPTH = 200  # Python recursion guard; Lucene's own limit is the JVM stack.

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal string (possibly empty: ``()`` and ``""``)."""

    text: str


@dataclass(frozen=True, slots=True)
class CharSet:
    """One code point out of sorted, disjoint, non-adjacent inclusive ranges."""

    ranges: Ranges


@dataclass(frozen=True, slots=True)
class EmptyLang:
    """``#``: matches nothing."""


@dataclass(frozen=True, slots=True)
class AnyString:
    """``@``: matches every string."""


@dataclass(frozen=True, slots=True)
class Concat:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Union:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Inter:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Complement:
    """``~x``: every string not in ``x`` (Lucene's deprecated, still enabled, complement)."""

    inner: Node


@dataclass(frozen=True, slots=True)
class Repeat:
    """``inner`` repeated ``lo`` to ``hi`` times; ``hi`` is None for unbounded."""

    inner: Node
    lo: int
    hi: int | None


@dataclass(frozen=True, slots=True)
class Interval:
    """``<lo-hi>``: ASCII digit strings whose value is in range; ``digits`` > 0 fixes the width."""

    lo: int
    hi: int
    digits: int


Node = (
    Lit | CharSet | EmptyLang | AnyString | Concat | Union | Inter | Complement | Repeat | Interval
)

ANY_CHAR = CharSet(((0, MAX_CODE_POINT),))


def normalize_ranges(ranges: list[tuple[int, int]]) -> Ranges:
    """Sorts and merges overlapping or adjacent ranges so equal sets compare equal."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def complement_ranges(ranges: Ranges) -> Ranges:
    """All code points not in ``ranges`` (which must be normalized)."""
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CODE_POINT:
        out.append((nxt, MAX_CODE_POINT))
    return tuple(out)


# The predefined classes of RegExp.expandPreDefined, as lists of inclusive ranges.
_DIGIT = [(0x30, 0x39)]
_SPACE = [(0x09, 0x0A), (0x0D, 0x0D), (0x20, 0x20)]
_WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_PREDEFINED: dict[str, Ranges] = {
    "d": normalize_ranges(_DIGIT),
    "D": complement_ranges(normalize_ranges(_DIGIT)),
    "s": normalize_ranges(_SPACE),
    "S": complement_ranges(normalize_ranges(_SPACE)),
    "w": normalize_ranges(_WORD),
    "W": complement_ranges(normalize_ranges(_WORD)),
    "\\": ((0x5C, 0x5C),),
}


def _java_parse_int(text: str) -> int:
    """``Integer.parseInt``: optional sign, BMP decimal digits of any script, int32 range."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or any(ord(ch) > 0xFFFF or unicodedata.decimal(ch, -1) < 0 for ch in body):
        raise ValueError(text)
    value = int("".join(str(unicodedata.decimal(ch)) for ch in body))
    value = -value if text[0] == "-" else value
    if not -(2**31) <= value <= _INT_MAX:
        raise ValueError(text)
    return value


class _Parser:
    """One parse of one pattern; method names follow RegExp.java's parse* methods."""

    def __init__(self, pattern: str) -> None:
        self.s = pattern
        self.pos = 0
        self.depth = 0

    # -- low-level helpers (RegExp.peek / match / more / next) ---------------------------------

    def error(self, message: str, at: int | None = None) -> QuerySyntaxError:
        where = self.pos if at is None else at
        return QuerySyntaxError(f"invalid RLIKE pattern: {message} at offset {where}")

    def more(self) -> bool:
        return self.pos < len(self.s)

    def peek(self, chars: str) -> bool:
        return self.more() and self.s[self.pos] in chars

    def match(self, ch: str) -> bool:
        if self.more() and self.s[self.pos] == ch:
            self.pos += 1
            return True
        return False

    def next(self) -> str:
        if not self.more():
            raise self.error("unexpected end-of-string")
        ch = self.s[self.pos]
        self.pos += 1
        return ch

    # -- grammar -------------------------------------------------------------------------------

    def parse(self) -> Node:
        if not self.s:
            return Lit("")
        node = self.union_exp()
        if self.more():
            raise self.error("end-of-string expected")
        return node

    def union_exp(self) -> Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error("pattern nested too deeply")
        node = self.inter_exp()
        while self.match("|"):
            node = Union(node, self.inter_exp())
        self.depth -= 1
        return node

    def inter_exp(self) -> Node:
        node = self.concat_exp()
        while self.match("&"):
            node = Inter(node, self.concat_exp())
        return node

    def concat_exp(self) -> Node:
        node = self.repeat_exp()
        while self.more() and not self.peek(")|&"):
            node = _concat(node, self.repeat_exp())
        return node

    def repeat_exp(self) -> Node:
        node = self.compl_exp()
        while self.peek("?*+{"):
            op = self.next()
            if op == "?":
                node = Repeat(node, 0, 1)
            elif op == "*":
                node = Repeat(node, 0, None)
            elif op == "+":
                node = Repeat(node, 1, None)
            else:
                node = self.counted_repeat(node)
        return node

    def counted_repeat(self, node: Node) -> Node:
        lo = self.ascii_int()
        if lo is None:
            raise self.error("integer expected")
        hi: int | None = lo
        if self.match(","):
            hi = self.ascii_int()
        if not self.match("}"):
            raise self.error("expected '}'")
        if hi is not None and lo > hi:
            raise self.error(f"invalid repetition range(out of order): {lo}..{hi}")
        return Repeat(node, lo, hi)

    def ascii_int(self) -> int | None:
        start = self.pos
        while self.peek("0123456789"):
            self.pos += 1
        if start == self.pos:
            return None
        value = int(self.s[start : self.pos])
        if value > _INT_MAX:
            raise self.error("repetition count out of range", start)
        return value

    def compl_exp(self) -> Node:
        if self.match("~"):
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.error("pattern nested too deeply")
            node = Complement(self.compl_exp())
            self.depth -= 1
            return node
        return self.char_class_exp()

    def char_class_exp(self) -> Node:
        if not self.match("["):
            return self.simple_exp()
        negate = self.match("^")
        ranges = self.char_classes()
        if negate:
            ranges = complement_ranges(ranges)
        if not self.match("]"):
            raise self.error("expected ']'")
        return CharSet(ranges)

    def char_classes(self) -> Ranges:
        collected: list[tuple[int, int]] = []
        while True:
            if self.match("\\"):
                if self.at_predefined():
                    collected.extend(self.predefined())
                else:
                    cp = ord(self.next())
                    collected.append((cp, cp))
            else:
                start_at = self.pos
                lo = ord(self.char_exp())
                if self.match("-"):
                    hi = ord(self.char_exp())
                    if lo > hi:
                        raise self.error(
                            f"invalid range: from ({lo}) cannot be > to ({hi})", start_at
                        )
                    collected.append((lo, hi))
                else:
                    collected.append((lo, lo))
            if not self.more() or self.peek("]"):
                return normalize_ranges(collected)

    def at_predefined(self) -> bool:
        """After a backslash: is an ASCII letter or a backslash next (RegExp's peek set)?"""
        if not self.more():
            return False
        ch = self.s[self.pos]
        return ch == "\\" or (ch.isascii() and ch.isalpha())

    def predefined(self) -> Ranges:
        """RegExp.expandPreDefined: the class after a backslash, or an error for other letters."""
        ch = self.next()
        found = _PREDEFINED.get(ch)
        if found is None:
            raise self.error(f"invalid character class \\{ord(ch)}", self.pos - 2)
        return found

    def simple_exp(self) -> Node:
        if self.match("."):
            return ANY_CHAR
        if self.match("#"):
            return EmptyLang()
        if self.match("@"):
            return AnyString()
        if self.match('"'):
            end = self.s.find('"', self.pos)
            if end < 0:
                self.pos = len(self.s)
                raise self.error("expected '\"'")
            text, self.pos = self.s[self.pos : end], end + 1
            return Lit(text)
        if self.match("("):
            if self.match(")"):
                return Lit("")
            node = self.union_exp()
            if not self.match(")"):
                raise self.error("expected ')'")
            return node
        if self.match("<"):
            return self.angle_exp()
        if self.match("\\"):
            if self.at_predefined():
                return CharSet(self.predefined())
            return Lit(self.next())
        return Lit(self.char_exp())

    def angle_exp(self) -> Node:
        start = self.pos
        end = self.s.find(">", start)
        if end < 0:
            self.pos = len(self.s)
            raise self.error("expected '>'")
        self.pos = end + 1
        body = self.s[start:end]
        dash = body.find("-")
        if dash < 0:
            raise self.error(f"named automaton <{body}> is not available", start - 1)
        if dash in (0, len(body) - 1) or dash != body.rfind("-"):
            raise self.error("interval syntax error", end)
        smin, smax = body[:dash], body[dash + 1 :]
        try:
            lo, hi = _java_parse_int(smin), _java_parse_int(smax)
        except ValueError:
            raise self.error("interval syntax error", end) from None
        digits = len(smin) if len(smin) == len(smax) else 0
        lo, hi = min(lo, hi), max(lo, hi)
        if digits > 0 and len(str(hi)) > digits:
            raise self.error("interval does not fit its digits", end)
        return Interval(lo, hi, digits)

    def char_exp(self) -> str:
        """RegExp.parseCharExp: an optional backslash, then any one code point."""
        self.match("\\")
        return self.next()


def _concat(left: Node, right: Node) -> Node:
    """Concatenation that merges adjacent literals, as RegExp.makeConcatenation does."""
    if isinstance(left, Lit) and isinstance(right, Lit):
        return Lit(left.text + right.text)
    if isinstance(left, Concat) and isinstance(left.right, Lit) and isinstance(right, Lit):
        return Concat(left.left, Lit(left.right.text + right.text))
    return Concat(left, right)


def parse(pattern: str) -> Node:
    """Parses ``pattern`` as ES|QL RLIKE does; raises QuerySyntaxError where Lucene throws."""
    return _Parser(pattern).parse()
