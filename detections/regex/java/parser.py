"""Parses a ``java.util.regex.Pattern`` into :mod:`auditstream.detections.regex.regex_ast` nodes.

Follows JDK 21+ ``Pattern`` (what Elasticsearch ships) where RE2 can reproduce it exactly, and
raises :class:`QuerySyntaxError` (message with the 0-based offset) where Java itself rejects the
pattern or where the construct cannot run on RE2: lookaround, atomic groups, possessive
quantifiers, back-references, ``MULTILINE`` anchors, ``UNICODE_CASE``/``UNICODE_CHARACTER_CLASS``
/``CANON_EQ``, Unicode scripts/blocks/``java*`` properties, graphemes and repeat counts over 1000.
"""

from __future__ import annotations

import unicodedata

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.descent import RegexDescent
from auditstream.detections.regex.regex_ast import (
    ANY,
    ASCII_DIGIT,
    ASCII_SPACE,
    ASCII_WORD,
    HEX_DIGIT,
    RE2_MAX_REPEAT,
    Alt,
    Assert,
    Chars,
    CharSet,
    Group,
    JavaDollar,
    Node,
    Repeat,
    Seq,
    unicode_category_set,
)

LINE_TERMINATORS = CharSet.of("\n\r\x85\u2028\u2029")
HORIZ_WS = CharSet.of(0x09, 0x20, 0xA0, 0x1680, 0x180E, (0x2000, 0x200A), 0x202F, 0x205F, 0x3000)
VERT_WS = CharSet.of((0x0A, 0x0D), 0x85, 0x2028, 0x2029)
_LETTERS = CharSet.of((0x41, 0x5A), (0x61, 0x7A))
_POSIX = {
    "Lower": CharSet.of((0x61, 0x7A)),
    "Upper": CharSet.of((0x41, 0x5A)),
    "ASCII": CharSet.of((0, 0x7F)),
    "Alpha": _LETTERS,
    "Digit": ASCII_DIGIT,
    "Alnum": _LETTERS.union(ASCII_DIGIT),
    "Punct": CharSet.of((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "Graph": CharSet.of((0x21, 0x7E)),
    "Print": CharSet.of((0x20, 0x7E)),
    "Blank": CharSet.of(" \t"),
    "Cntrl": CharSet.of((0, 0x1F), 0x7F),
    "XDigit": HEX_DIGIT,
    "Space": ASCII_SPACE,
}
_CATEGORIES = {"L", "M", "N", "P", "S", "Z", "C"}
_FLAG_CHARS = "idmsuxUc"


def case_fold_ascii(cs: CharSet) -> CharSet:
    """Adds the other ASCII case of every ASCII letter in ``cs`` (Java's default CI folding)."""
    upper = cs.intersect(CharSet.of((0x61, 0x7A)))
    lower = cs.intersect(CharSet.of((0x41, 0x5A)))
    shifted = [(lo - 32, hi - 32) for lo, hi in upper.ranges]
    shifted += [(lo + 32, hi + 32) for lo, hi in lower.ranges]
    return cs.union(CharSet.of(*shifted))


def remove_qe_quoting(pattern: str) -> str:
    """Turns ``\\Q...\\E`` into backslash-escaped literals, as ``Pattern`` does before parsing."""
    if "\\Q" not in pattern:
        return pattern
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n and pattern[i + 1] == "Q":
            end = pattern.find("\\E", i + 2)
            quoted = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
            out.extend(q if q.isascii() and q.isalnum() else "\\" + q for q in quoted)
            i = n if end < 0 else end + 2
        elif c == "\\" and i + 1 < n:
            out.append(pattern[i : i + 2])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class JavaParser(RegexDescent):
    """Recursive-descent parser over one pattern; ``parse()`` returns the tree."""

    unmatched_close = "Unmatched closing ')'"

    def __init__(self, pattern: str) -> None:
        super().__init__(remove_qe_quoting(pattern))
        self.original = pattern
        self.flags: set[str] = set()
        self.group_count = 0
        self.names: dict[str, int] = {}

    # --- plumbing --------------------------------------------------------------------------

    def error(self, message: str, offset: int | None = None) -> QuerySyntaxError:
        where = self.pos if offset is None else offset
        return QuerySyntaxError(f"invalid regex [{self.original}] near offset {where}: {message}")

    def peek(self, ahead: int = 0) -> str:
        self._skip_comments()
        return super().peek(ahead)

    def _skip_comments(self) -> None:
        if "x" not in self.flags:
            return
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t\n\x0b\f\r":
                self.pos += 1
            elif c == "#":
                while (
                    self.pos < len(self.text) and self.text[self.pos] not in "\n\r\x85\u2028\u2029"
                ):
                    self.pos += 1
            else:
                return

    # --- structure -------------------------------------------------------------------------

    def parse_seq(self) -> Node:
        items: list[Node] = []
        while self.peek() not in ("", "|", ")"):
            atom = self.parse_atom()
            if atom is not None:
                items.append(self.parse_quantifiers(atom))
        return Seq(items)

    def parse_atom(self) -> Node | None:
        c = self.peek()
        if c in "*+?":
            raise self.error(f"Dangling meta character '{c}'")
        if c == "{":
            raise self.error("Illegal repetition")
        self.take()
        if c == "(":
            return self.parse_group()
        if c == "[":
            return Chars(self.parse_class())
        if c == ".":
            return Chars(self.dot())
        if c in "^$":
            if "m" in self.flags:
                raise self.error(f"MULTILINE '{c}' is not supported")
            return Assert(r"\A") if c == "^" else JavaDollar("d" in self.flags)
        if c == "\\":
            return self.parse_escape_atom()
        return self.literal(self.code_point(c))

    def code_point(self, c: str) -> int:
        return ord(c)

    def literal(self, cp: int) -> Chars:
        cs = CharSet.of(cp)
        return Chars(case_fold_ascii(cs) if "i" in self.flags else cs)

    def dot(self) -> CharSet:
        if "s" in self.flags:
            return ANY
        return CharSet.of(0x0A).negate() if "d" in self.flags else LINE_TERMINATORS.negate()

    def parse_quantifiers(self, atom: Node) -> Node:
        node = atom
        while self.peek() in ("*", "+", "?", "{") and self.peek() != "":
            start = self.pos
            low, high = self.parse_bounds()
            greedy = True
            if self.peek() == "?":
                self.take()
                greedy = False
            elif self.peek() == "+":
                raise self.error("possessive quantifiers are not supported", start)
            node = Repeat(node, low, high, greedy)
            if self.peek() in ("*", "+", "?"):
                raise self.error(f"Dangling meta character '{self.peek()}'")
        return node

    def parse_bounds(self) -> tuple[int, int | None]:
        c = self.take()
        if c != "{":
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        if not self.peek().isascii() or not self.peek().isdigit():
            raise self.error("Illegal repetition")
        low = self.number()
        high: int | None = low
        if self.peek() == ",":
            self.take()
            high = self.number() if self.peek().isascii() and self.peek().isdigit() else None
        if self.take() != "}":
            raise self.error("Unclosed counted closure")
        if high is not None and high < low:
            raise self.error("Illegal repetition range")
        if low > RE2_MAX_REPEAT or (high or 0) > RE2_MAX_REPEAT:
            raise self.error(f"repeat counts above {RE2_MAX_REPEAT} are not supported")
        return low, high

    def number(self) -> int:
        start = self.pos
        while self.peek().isascii() and self.peek().isdigit():
            self.take()
        return int(self.text[start : self.pos])

    def parse_group(self) -> Node | None:
        start = self.pos - 1
        saved = set(self.flags)
        index: int | None = None
        if self.peek() == "?":
            self.take()
            kind = self.peek()
            if kind == "<" and self.peek(1) not in ("=", "!"):
                self.take()
                index = self.named_group()
            elif kind in ("=", "!", "<", ">"):
                raise self.error("lookaround and atomic groups are not supported", start)
            elif not self.inline_flags():
                return None  # bare (?flags): they stay on until the enclosing group closes
        else:
            self.group_count += 1
            index = self.group_count
        body = self.parse_alt()
        if self.take() != ")":
            raise self.error("Unclosed group", len(self.text))
        self.flags = saved
        return Group(body, index)

    def named_group(self) -> int:
        start = self.pos
        while self.peek().isascii() and self.peek().isalnum():
            self.take()
        name = self.text[start : self.pos]
        if not name or not name[0].isalpha():
            raise self.error("capturing group name does not start with a Latin letter")
        if self.take() != ">":
            raise self.error("named capturing group is missing trailing '>'")
        if name in self.names:
            raise self.error(f"Named capturing group <{name}> is already defined")
        self.group_count += 1
        self.names[name] = self.group_count
        return self.group_count

    def inline_flags(self) -> bool:
        """Parses ``flags)`` or ``flags:``; True when a scoped ``(?flags:`` group body follows."""
        on = True
        while True:
            c = self.take()
            if c == "-":
                on = False
            elif c and c in _FLAG_CHARS:
                if c in "uUc" and on:
                    raise self.error(f"inline flag '{c}' is not supported")
                (self.flags.add if on else self.flags.discard)(c)
            elif c == ")":
                return False
            elif c == ":":
                return True
            else:
                raise self.error("Unknown inline modifier")

    # --- escapes ---------------------------------------------------------------------------

    def parse_escape_atom(self) -> Node:
        start = self.pos - 1
        c = self.take()
        simple = {"A": r"\A", "z": r"\z", "B": r"\B"}
        if c in simple:
            return Assert(simple[c])
        if c == "b":
            if self.peek() == "{":
                raise self.error(r"\b{g} is not supported", start)
            return Assert(r"\b")
        if c == "Z":
            return JavaDollar("d" in self.flags)
        if c == "R":
            crlf = Seq([Chars(CharSet.of(13)), Chars(CharSet.of(10))])
            return Group(Alt([crlf, Chars(VERT_WS)]))
        if c in "123456789k":
            raise self.error("back-references are not supported", start)
        if c in "GX":
            raise self.error(f"\\{c} is not supported", start)
        cs = self.class_escape(c)
        if cs is not None:
            return Chars(cs)
        return self.literal(self.char_escape(c, start))

    def class_escape(self, c: str) -> CharSet | None:
        """The set of ``\\d \\s \\w \\h \\v \\p`` and their negations; None for others."""
        table = {"d": ASCII_DIGIT, "s": ASCII_SPACE, "w": ASCII_WORD, "h": HORIZ_WS, "v": VERT_WS}
        if c.lower() in table and c.isascii():
            base = table[c.lower()]
            return base.negate() if c.isupper() else base
        if c in "pP":
            cs = self.property()
            return cs.negate() if c == "P" else cs
        return None

    def property(self) -> CharSet:
        start = self.pos
        if "i" in self.flags:
            raise self.error("\\p under CASE_INSENSITIVE is not supported", start)
        if self.peek() == "{":
            end = self.text.find("}", self.pos)
            if end < 0:
                raise self.error("Unclosed character family")
            name = self.text[self.pos + 1 : end]
            self.pos = end + 1
        else:
            name = self.take()
        return self.property_set(name, start)

    def property_set(self, name: str, start: int) -> CharSet:
        if name in _POSIX:
            return _POSIX[name]
        for prefix in ("Is", "gc=", "general_category="):
            if name.startswith(prefix) and name[len(prefix) :][:1] in _CATEGORIES:
                name = name[len(prefix) :]
        if name[:1] in _CATEGORIES and len(name) <= 2:
            if len(name) == 1:
                return unicode_category_set((name,))
            if name == "LC":
                return unicode_category_set(("Lu", "Ll", "Lt"))
            return unicode_category_set((name,))
        raise self.error(f"character property \\p{{{name}}} is not supported", start)

    def char_escape(self, c: str, start: int) -> int:
        """The code point of a character escape (octal, hex, unicode, control, named...)."""
        named = {"t": 9, "n": 10, "r": 13, "f": 12, "a": 7, "e": 27}
        if c in named:
            return named[c]
        if c == "0":
            return self.octal()
        if c == "x":
            return self.hex_escape()
        if c == "u":
            return self.unicode_escape()
        if c == "c":
            ctrl = self.take()
            if not ctrl:
                raise self.error("Illegal control escape sequence")
            return ord(ctrl) ^ 64
        if c == "N":
            return self.named_char()
        if not c:
            raise self.error("Unexpected internal error")
        if c.isascii() and c.isalpha():
            raise self.error("Illegal/unsupported escape sequence", start + 1)
        return ord(c)

    def octal(self) -> int:
        digits = ""
        while len(digits) < 3 and self.peek() in tuple("01234567") and self.peek():
            if len(digits) == 2 and digits[0] not in "0123":
                break
            digits += self.take()
        if not digits:
            raise self.error("Illegal octal escape sequence")
        return int(digits, 8)

    def hex_escape(self) -> int:
        if self.peek() == "{":
            self.take()
            start = self.pos
            while self.peek() and self.peek() in "0123456789abcdefABCDEF":
                self.take()
                if int(self.text[start : self.pos], 16) > 0x10FFFF:
                    raise self.error("Hexadecimal codepoint is too big")
            if start == self.pos or self.take() != "}":
                raise self.error("Unclosed hexadecimal escape sequence")
            return int(self.text[start : self.pos - 1], 16)
        digits = self.take() + self.take()
        if len(digits) != 2 or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise self.error("Illegal hexadecimal escape sequence")
        return int(digits, 16)

    def unicode_escape(self) -> int:
        digits = self.text[self.pos : self.pos + 4]
        if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise self.error("Illegal Unicode escape sequence")
        self.pos += 4
        value = int(digits, 16)
        low = self.text[self.pos : self.pos + 6]
        if 0xD800 <= value <= 0xDBFF and low.startswith("\\u"):
            try:
                second = int(low[2:], 16)
            except ValueError:
                return value
            if 0xDC00 <= second <= 0xDFFF:
                self.pos += 6
                return 0x10000 + ((value - 0xD800) << 10) + (second - 0xDC00)
        return value

    def named_char(self) -> int:
        if self.take() != "{":
            raise self.error("Illegal character name escape")
        end = self.text.find("}", self.pos)
        if end < 0:
            raise self.error("Illegal character name escape")
        name = self.text[self.pos : end]
        self.pos = end + 1
        try:
            return ord(unicodedata.lookup(name))
        except KeyError:
            raise self.error(f"Unknown character name [{name}]") from None

    # --- character classes -----------------------------------------------------------------

    def parse_class(self) -> CharSet:
        """After ``[``: Java class syntax with nested unions and ``&&`` intersections."""
        negated = False
        if self.peek() == "^":
            self.take()
            negated = True
        result: CharSet | None = None
        first = True
        while True:
            c = self.peek()
            if c == "":
                raise self.error("Unclosed character class")
            if c == "]" and not first:
                self.take()
                break
            if c == "&" and self.peek(1) == "&":
                result = self.intersection(result or CharSet())
                first = False
                continue
            item = self.class_item()
            result = item if result is None else result.union(item)
            first = False
        assert result is not None
        return result.negate() if negated else result

    def intersection(self, left: CharSet) -> CharSet:
        start = self.pos
        self.pos += 2
        right: CharSet | None = None
        while self.peek() not in ("]", "&", ""):
            item = self.class_item()
            right = item if right is None else right.union(item)
        if right is None or (self.peek() == "&" and self.peek(1) != "&"):
            raise self.error("this form of class intersection is not supported", start)
        return left.intersect(right)

    def class_item(self) -> CharSet:
        c = self.take()
        if c == "[":
            return self.parse_class()
        start = self.pos - 1
        if c == "\\":
            e = self.take()
            cs = self.class_escape(e)
            if cs is not None:
                return cs
            lo = 0x0B if e == "v" else self.char_escape(e, start)
        else:
            lo = ord(c)
        if self.peek() == "-" and self.peek(1) not in ("[", "]", ""):
            self.take()
            hi = self.range_end()
            if hi < lo:
                raise self.error("Illegal character range")
            cs = CharSet.of((lo, hi))
        else:
            cs = CharSet.of(lo)
        return case_fold_ascii(cs) if "i" in self.flags else cs

    def range_end(self) -> int:
        c = self.take()
        if c != "\\":
            return ord(c)
        start = self.pos - 1
        e = self.take()
        if e == "v":
            return 0x0B
        if e.lower() in "dswhp" and e.isascii():
            raise self.error("Illegal character range", start)
        return self.char_escape(e, start)
