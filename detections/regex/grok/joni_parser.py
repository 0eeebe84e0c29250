"""Parses the expanded GROK regex (Joni, Ruby syntax, UTF-8) into :mod:`regex_ast` nodes.

Semantics were probed against Elasticsearch's own grok library (tests/oracle/jdk): ``.`` is any
character but ``\\n``; ``\\w \\d \\s`` are ASCII-only and ``\\h`` is a hex digit; ``^``/``$`` are
line anchors (``\\n`` only); ``\\b`` however uses Unicode word characters (letters, marks,
numbers, connector punctuation). Plain ``(...)`` groups never create columns, so they are parsed
as non-capturing; named groups ``(?<name>...)`` are numbered in order of their ``(``.

Lookaround is kept as :class:`Look` (one-character classes only), atomic groups as
:class:`Atomic` and ``\\b``/``\\B`` as :class:`WordBoundary`; :mod:`grok_rewrite` then removes
them where that is provably exact, or rejects the pattern. Constructs RE2 cannot run at all
(back-references, possessive quantifiers, subexpression calls, inline options, POSIX brackets,
``\\p{...}``, ``\\G``, ``\\Z``, ``\\X``) raise :class:`QuerySyntaxError` here.
"""

from __future__ import annotations

from dataclasses import dataclass

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.descent import RegexDescent
from auditstream.detections.regex.regex_ast import (
    ASCII_DIGIT,
    ASCII_SPACE,
    ASCII_WORD,
    HEX_DIGIT,
    RE2_MAX_REPEAT,
    Assert,
    Atomic,
    Chars,
    CharSet,
    Group,
    Look,
    Node,
    Repeat,
    Seq,
)

NOT_NEWLINE = CharSet.of(10).negate()


@dataclass
class WordBoundary(Node):
    """Joni's ``\\b`` (or ``\\B`` when negated) with Unicode word characters."""

    negated: bool


class OnigParser(RegexDescent):
    """Recursive descent over one expanded grok regex; ``names[i]`` is group i's name."""

    def __init__(self, regex: str, grok_pattern: str) -> None:
        super().__init__(regex)
        self.grok_pattern = grok_pattern
        self.names: list[str] = []

    def error(self, message: str) -> QuerySyntaxError:
        return QuerySyntaxError(
            f"Invalid GROK pattern [{self.grok_pattern}]: {message}"
            f" (offset {self.pos} of the expanded regex)"
        )

    def parse_seq(self) -> Node:
        items: list[Node] = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.parse_quantifiers(self.parse_atom()))
        return Seq(items)

    def parse_atom(self) -> Node:
        c = self.take()
        if c in "*+?":
            raise self.error(f"target of repeat operator is not specified: '{c}'")
        if c == "(":
            return self.parse_group()
        if c == "[":
            return Chars(self.parse_class())
        if c == ".":
            return Chars(NOT_NEWLINE)
        if c == "^":
            return Assert("(?m:^)")
        if c == "$":
            return Assert("(?m:$)")
        if c == "\\":
            return self.parse_escape()
        return Chars(CharSet.of(ord(c)))

    def parse_quantifiers(self, atom: Node) -> Node:
        node = atom
        while True:
            bounds = self.bounds()
            if bounds is None:
                return node
            greedy = True
            if self.peek() == "?":
                self.take()
                greedy = False
            elif self.peek() == "+":
                raise self.error("possessive quantifiers are not supported")
            node = Repeat(node, bounds[0], bounds[1], greedy)

    def bounds(self) -> tuple[int, int | None] | None:
        c = self.peek()
        if c in ("*", "+", "?") and c:
            self.take()
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        if c != "{":
            return None
        end = self.text.find("}", self.pos)
        body = self.text[self.pos + 1 : end] if end > 0 else ""
        low_s, comma, high_s = body.partition(",")
        if end < 0 or not (low_s.isdigit() or (comma and high_s.isdigit() and not low_s)):
            return None  # not a quantifier: Ruby reads '{' literally
        if (high_s and not high_s.isdigit()) or not body.isascii():
            return None
        low = int(low_s) if low_s else 0
        high = int(high_s) if high_s else (None if comma else low)
        if high is not None and high < low:
            raise self.error("upper bound must be greater than lower bound")
        if max(low, high or 0) > RE2_MAX_REPEAT:
            raise self.error(f"repeat counts above {RE2_MAX_REPEAT} are not supported")
        self.pos = end + 1
        return low, high

    def parse_group(self) -> Node:
        if self.peek() != "?":
            return self.close(Group(self.parse_alt()))
        self.take()
        kind = self.take()
        if kind == ":":
            return self.close(Group(self.parse_alt()))
        if kind == ">":
            return self.close(Atomic(self.parse_alt()))
        if kind in ("=", "!"):
            return self.look(ahead=True, negated=kind == "!")
        if kind == "<" and self.peek() in ("=", "!"):
            return self.look(ahead=False, negated=self.take() == "!")
        if kind in ("<", "'"):
            return self.named_group(">" if kind == "<" else "'")
        raise self.error(f"group option '(?{kind}' is not supported")

    def close(self, node: Node) -> Node:
        if self.take() != ")":
            raise self.error("end pattern with unmatched parenthesis")
        return node

    def named_group(self, closer: str) -> Node:
        end = self.text.find(closer, self.pos)
        name = self.text[self.pos : end] if end >= 0 else ""
        if not name or name[0].isdigit() or any(c in name for c in "()<>|\\"):
            raise self.error(f"invalid group name <{name}>")
        self.pos = end + 1
        self.names.append(name)
        index = len(self.names)
        return self.close(Group(self.parse_alt(), index))

    def look(self, ahead: bool, negated: bool) -> Node:
        body = self.parse_alt()
        self.close(body)
        items = body.items if isinstance(body, Seq) else [body]
        sets = [item.cs for item in items if isinstance(item, Chars)]
        if len(sets) != len(items) or not sets or (len(sets) > 1 and not (ahead and negated)):
            raise self.error("lookaround other than one character class is not supported")
        return Look(ahead, sets[0], negated, at_edge=negated, tail=tuple(sets[1:]))

    def parse_escape(self) -> Node:
        c = self.take()
        if c in "bB":
            return WordBoundary(negated=c == "B")
        if c == "A":
            return Assert(r"\A")
        if c == "z":
            return Assert(r"\z")
        cs = self.class_escape(c)
        if cs is not None:
            return Chars(cs)
        return Chars(CharSet.of(self.char_escape(c)))

    def class_escape(self, c: str) -> CharSet | None:
        table = {"d": ASCII_DIGIT, "w": ASCII_WORD, "s": ASCII_SPACE, "h": HEX_DIGIT}
        if c.isascii() and c.lower() in table:
            base = table[c.lower()]
            return base.negate() if c.isupper() else base
        return None

    def char_escape(self, c: str) -> int:
        named = {"t": 9, "n": 10, "r": 13, "f": 12, "v": 11, "a": 7, "e": 27}
        if c in named:
            return named[c]
        if c == "x":
            return self.hex_escape()
        if c == "u":
            digits = self.text[self.pos : self.pos + 4]
            if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.error("invalid Unicode escape")
            self.pos += 4
            return int(digits, 16)
        if c == "0":
            digits = ""
            while len(digits) < 2 and self.peek() in tuple("01234567") and self.peek():
                digits += self.take()
            return int(digits or "0", 8)
        if not c:
            raise self.error("end pattern at escape")
        if c.isascii() and c.isalnum():
            raise self.error(f"escape \\{c} is not supported")
        return ord(c)

    def hex_escape(self) -> int:
        if self.peek() == "{":
            end = self.text.find("}", self.pos)
            digits = self.text[self.pos + 1 : end] if end > 0 else ""
            if not digits or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.error("invalid code point value")
            self.pos = end + 1
            return int(digits, 16)
        digits = ""
        while len(digits) < 2 and self.peek() and self.peek() in "0123456789abcdefABCDEF":
            digits += self.take()
        if not digits:
            raise self.error("invalid hex escape")
        return int(digits, 16)

    def parse_class(self) -> CharSet:
        """After ``[``: ranges, escapes, nested classes and ``&&`` intersections."""
        negated = self.peek() == "^"
        if negated:
            self.take()
        parts: list[CharSet] = []
        current = CharSet()
        first = True
        while True:
            c = self.peek()
            if not c:
                raise self.error("premature end of char-class")
            if c == "]" and not first:
                self.take()
                break
            if c == "&" and self.peek(1) == "&":
                self.pos += 2
                parts.append(current)
                current = CharSet()
            else:
                current = current.union(self.class_item())
            first = False
        result = current
        for part in parts:
            result = part.intersect(result)
        return result.negate() if negated else result

    def class_item(self) -> CharSet:
        c = self.take()
        if c == "[":
            if self.peek() == ":":
                raise self.error("POSIX bracket expressions are not supported")
            return self.parse_class()
        if c == "\\":
            e = self.take()
            cs = self.class_escape(e)
            if cs is not None:
                return cs
            lo = 8 if e == "b" else self.char_escape(e)
        else:
            lo = ord(c)
        if self.peek() == "-" and self.peek(1) not in ("]", ""):
            self.take()
            hi_c = self.take()
            hi = self.char_escape(self.take()) if hi_c == "\\" else ord(hi_c)
            if hi < lo:
                raise self.error("empty range in char class")
            return CharSet.of((lo, hi))
        return CharSet.of(lo)
