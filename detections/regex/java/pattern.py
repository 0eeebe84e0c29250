"""ES|QL ``REPLACE(str, regex, newStr)``: Java regex semantics, executed by RE2 in linear time.

Elasticsearch compiles a constant ``regex`` with ``Pattern.compile`` at planning (a syntax error
fails the query), then ``Replace.safeReplace`` runs ``Matcher.find``/``appendReplacement``
after checking that the result cannot exceed 1 MiB (``MAX_BYTES_REF_RESULT_SIZE``, counted in
UTF-16 units); that check and a malformed replacement throw ``IllegalArgumentException``, which
the evaluator turns into null plus a warning. A ``$n`` naming a missing group throws
``IndexOutOfBoundsException``, which ES does *not* catch: the whole query fails; we raise
:class:`ReplacementError` so the caller can do the same.

The pattern is parsed by :mod:`auditstream.detections.regex.java.parser` and emitted as RE2 syntax
with
Java's character classes. Java's non-multiline ``$`` (end of input or before a final line
terminator) is emulated when it sits in tail position: it becomes ``()T?\\z`` where the empty
group marks the real end and ``T`` is the terminator set, with a second compiled variant for
text ending in ``\\r\\n`` (where Java refuses the position between ``\\r`` and ``\\n``).

Known deviations (documented, tested): Java's ``\\b`` also counts a non-spacing mark after a
word character as a word character; after an empty match right before a supplementary character
Java resumes between its two UTF-16 halves — emulated only when the pattern matches empty there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import re2

from auditstream.detections.errors import DetectionError, QuerySyntaxError
from auditstream.detections.regex.java.parser import LINE_TERMINATORS, JavaParser
from auditstream.detections.regex.regex_ast import (
    Alt,
    Assert,
    Chars,
    CharSet,
    Group,
    JavaDollar,
    Marker,
    Node,
    Repeat,
    Seq,
    children,
    emit,
    nullable,
    re2_numbering,
    walk,
)

MAX_RESULT_UTF16 = 1024 * 1024
_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED
_ANCHOR_START = re2._re2.RE2.Anchor.ANCHOR_START


class ReplacementError(DetectionError):
    """Java throws IndexOutOfBoundsException for the replacement; ES|QL fails the query."""


def re2_options() -> re2.Options:
    """RE2 options for translated patterns: UTF-8, leftmost-first, no stderr logging."""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 64 << 20
    return options


@dataclass(frozen=True)
class _Template:
    """A parsed replacement: literal byte strings and Java group numbers, or the Java error."""

    parts: tuple[bytes | int, ...] = ()
    error: str | None = None  # "iae" -> null, "ioobe" -> query failure
    constant16: int = 0  # Replace.safeReplace's naive size estimate inputs
    dollars: int = 0


@dataclass
class JavaRegex:
    """A compiled Java pattern; build it with :func:`compile_java_regex`."""

    pattern: str
    _plain: re2._Regexp
    _crlf: re2._Regexp | None
    _groups: tuple[int, ...]  # RE2 group number of Java group i (index 0 = whole match)
    _markers: tuple[int, ...]
    _names: dict[str, int]
    _empty_at_mid: bool
    _literal: str | None  # the pattern only matches this exact non-empty text
    _templates: dict[str, _Template] = field(default_factory=dict)

    def search(self, text: str) -> bool:
        """``Matcher.find()`` from the start of ``text``."""
        data = text.encode("utf-8", "surrogatepass")
        return self._find(self._pick(data), data, 0) is not None

    def replace_all(self, text: str, replacement: str) -> str | None:
        """ES|QL REPLACE; None where Java throws IllegalArgumentException (null + warning)."""
        data = text.encode("utf-8", "surrogatepass")
        regex = self._pick(data)
        found = self._find(regex, data, 0)
        if found is None:
            return text
        template = self._template(replacement)
        if self._literal is not None and template.error is None and len(template.parts) <= 1:
            done = _replace_literal(text, self._literal, template)
            if done is not None:
                return done
        if len(data) == len(text) and not self._markers and template.error is None:
            return self._replace_ascii(regex, data, found, template)
        return _Replacer(self, regex, data, template, len(data) == len(text)).run(found)

    def _replace_ascii(
        self, regex: re2._Regexp, data: bytes, spans: list[tuple[int, int]], tpl: _Template
    ) -> str | None:
        """The hot path: ASCII text (UTF-16 units = bytes), no ``$`` markers, valid template."""
        out: list[bytes] = []
        out_len, last, n = 0, 0, len(data)
        fixed = tpl.parts[0] if len(tpl.parts) == 1 and isinstance(tpl.parts[0], bytes) else None
        if not tpl.parts:
            fixed = b""
        match, groups = regex._regexp.Match, self._groups
        while True:
            start, end = spans[0]
            if (
                out_len + tpl.constant16 + tpl.dollars * (end - start) + (n - end)
                > MAX_RESULT_UTF16
            ):
                return None
            piece = fixed if fixed is not None else _expand(tpl, groups, data, spans)
            out.append(data[last:start])
            out.append(piece)
            out_len += start - last + len(piece)
            last = end
            if start == end:
                if end >= n:
                    break
                end += 1
            spans = match(_UNANCHORED, data, end, n)
            if spans[0][0] < 0:
                break
        out.append(data[last:])
        return b"".join(out).decode("ascii")

    # --- internals -------------------------------------------------------------------------

    def _pick(self, data: bytes) -> re2._Regexp:
        return self._crlf if self._crlf is not None and data.endswith(b"\r\n") else self._plain

    def _find(self, regex: re2._Regexp, data: bytes, pos: int) -> list[tuple[int, int]] | None:
        spans: list[tuple[int, int]] = list(regex._regexp.Match(_UNANCHORED, data, pos, len(data)))
        if spans[0][0] < 0:
            return None
        end = spans[0][1]
        for marker in self._markers:
            if spans[marker][0] >= 0:
                end = spans[marker][0]
        if end != spans[0][1]:
            spans = [(s, min(e, end)) if s >= 0 else (s, e) for s, e in spans]
        return spans

    def _template(self, replacement: str) -> _Template:
        template = self._templates.get(replacement)
        if template is None:
            if len(self._templates) > 64:
                self._templates.clear()
            template = _parse_template(replacement, len(self._groups) - 1, self._names)
            self._templates[replacement] = template
        return template


class _Replacer:
    """One replaceAll run over UTF-8 bytes, mirroring Replace.safeReplace's loop and checks."""

    def __init__(
        self, rx: JavaRegex, regex: re2._Regexp, data: bytes, tpl: _Template, ascii_only: bool
    ):
        self.rx, self.regex, self.data, self.tpl = rx, regex, data, tpl
        self.ascii_only = ascii_only
        self.total16 = len(data) if ascii_only else _utf16_len(data)
        self.out: list[bytes] = []
        self.out16 = 0
        self.last = 0  # byte offset where the next unmatched gap starts
        self.last16 = 0
        self.split_low = False  # the gap starts with the low half of a split surrogate pair

    def u16(self, chunk: bytes) -> int:
        return len(chunk) if self.ascii_only else _utf16_len(chunk)

    def run(self, spans: list[tuple[int, int]] | None) -> str | None:
        try:
            while spans is not None:
                start, end = spans[0]
                start16 = self.last16 + self.u16(self.data[self.last : start])
                end16 = start16 + self.u16(self.data[start:end])
                if not self.append(spans, start16, end16):
                    return None
                spans = self.next_match(start, end)
        except _TooBigError:
            return None
        self.append_gap(len(self.data))
        return b"".join(self.out).decode("utf-8", "surrogatepass")

    def append(self, spans: list[tuple[int, int]], start16: int, end16: int) -> bool:
        potential = self.tpl.constant16 + self.tpl.dollars * (end16 - start16)
        if self.out16 + potential + (self.total16 - end16) > MAX_RESULT_UTF16:
            return False
        if self.tpl.error == "ioobe":
            raise ReplacementError("REPLACE replacement refers to a group the regex does not have")
        if self.tpl.error is not None:
            return False
        self.append_gap(spans[0][0])
        piece = self.expand(spans)
        self.out.append(piece)
        self.out16 += self.u16(piece)
        self.last, self.last16 = spans[0][1], end16
        return True

    def append_gap(self, upto: int) -> None:
        gap = self.data[self.last : upto]
        if self.split_low:
            self.out.append("\ufffd".encode())
            self.out16 += 1
            self.split_low = False
        self.out.append(gap)
        self.out16 += self.u16(gap)

    def expand(self, spans: list[tuple[int, int]]) -> bytes:
        return _expand(self.tpl, self.rx._groups, self.data, spans)

    def next_match(self, start: int, end: int) -> list[tuple[int, int]] | None:
        if start != end:
            return self.rx._find(self.regex, self.data, end)
        if end >= len(self.data):
            return None
        step = _utf8_len(self.data[end])
        if step == 4 and self.rx._empty_at_mid:
            return self.split_pair(end)
        return self.rx._find(self.regex, self.data, end + step)

    def split_pair(self, at: int) -> list[tuple[int, int]] | None:
        """Java's empty match between the halves of a supplementary character."""
        high_then_repl = "\ufffd".encode() + self.expand([(at, at)] * len(self.rx._groups))
        potential = self.tpl.constant16
        if self.out16 + potential + (self.total16 - self.last16 - 1) > MAX_RESULT_UTF16:
            raise _TooBigError
        self.out.append(high_then_repl)
        self.out16 += self.u16(high_then_repl)
        self.last, self.last16 = at + 4, self.last16 + 2
        self.split_low = True
        return self.rx._find(self.regex, self.data, at + 4)


class _TooBigError(Exception):
    """The size check failed inside a split surrogate pair (Java: IllegalArgumentException)."""


def _replace_literal(text: str, literal: str, tpl: _Template) -> str | None:
    """``str.replace`` when Replace.safeReplace's size check provably never fires, else None.

    With literal length L, expanded replacement length R and Java's per-match estimate P (UTF-16
    units), the check before match k fails iff ``n + k(R-L) + P - L - gap_k > limit``; its
    largest value is at the last match (R >= L) or the first (R < L), checked here.
    """
    repl = tpl.parts[0] if tpl.parts else b""
    if not isinstance(repl, bytes):
        return None
    replacement = repl.decode("utf-8", "surrogatepass")
    if text.isascii():
        n16, lit16, rep16 = len(text), len(literal), len(replacement)
    else:
        n16 = len(text.encode("utf-16-le", "surrogatepass")) // 2
        lit16 = len(literal.encode("utf-16-le", "surrogatepass")) // 2
        rep16 = len(replacement.encode("utf-16-le", "surrogatepass")) // 2
    delta = rep16 - lit16
    potential = tpl.constant16 + tpl.dollars * lit16  # Java's per-match estimate
    before_last = max(text.count(literal) - 1, 0) * delta if delta >= 0 else 0
    if n16 + before_last + potential - lit16 > MAX_RESULT_UTF16:
        return None  # close to the limit: let the exact loop decide
    return text.replace(literal, replacement)


def _expand(
    tpl: _Template, groups: tuple[int, ...], data: bytes, spans: list[tuple[int, int]]
) -> bytes:
    pieces: list[bytes] = []
    for part in tpl.parts:
        if isinstance(part, bytes):
            pieces.append(part)
            continue
        s, e = spans[groups[part]]
        if s >= 0:
            pieces.append(data[s:e])
    return b"".join(pieces)


def _utf8_len(lead: int) -> int:
    return 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def _utf16_len(chunk: bytes) -> int:
    return len(chunk.decode("utf-8", "surrogatepass").encode("utf-16-le", "surrogatepass")) // 2


def _parse_template(repl: str, group_count: int, names: dict[str, int]) -> _Template:
    """Matcher.appendExpandedReplacement's grammar; the first error decides the exception."""
    parts: list[bytes | int] = []
    literal: list[str] = []
    i, n = 0, len(repl)
    while i < n:
        c = repl[i]
        if c == "\\":
            if i + 1 == n:
                return _Template(error="iae")
            literal.append(repl[i + 1])
            i += 2
        elif c == "$":
            ref, i, error = _group_ref(repl, i + 1, group_count, names)
            if error is not None:
                return _Template(error=error)
            parts.append("".join(literal).encode("utf-8", "surrogatepass"))
            literal = []
            parts.append(ref)
        else:
            literal.append(c)
            i += 1
    parts.append("".join(literal).encode("utf-8", "surrogatepass"))
    dollars, constant = _size_estimate(repl)
    return _Template(tuple(p for p in parts if p != b""), None, constant, dollars)


def _group_ref(
    repl: str, i: int, group_count: int, names: dict[str, int]
) -> tuple[int, int, str | None]:
    n = len(repl)
    if i == n:
        return 0, i, "iae"
    if repl[i] == "{":
        j = i + 1
        while j < n and repl[j].isascii() and repl[j].isalnum():
            j += 1
        name = repl[i + 1 : j]
        if not name or j == n or repl[j] != "}" or name[0].isdigit() or name not in names:
            return 0, j, "iae"
        return names[name], j + 1, None
    if not ("0" <= repl[i] <= "9"):
        return 0, i, "iae"
    ref = ord(repl[i]) - 48
    i += 1
    while i < n and "0" <= repl[i] <= "9" and ref * 10 + ord(repl[i]) - 48 <= group_count:
        ref = ref * 10 + ord(repl[i]) - 48
        i += 1
    return ref, i, ("ioobe" if ref > group_count else None)


def _size_estimate(repl: str) -> tuple[int, int]:
    """Replace.safeReplace's count of ``$`` (skipping the next UTF-16 unit) and constant length."""
    units = repl.encode("utf-16-le", "surrogatepass")
    dollars, j = 0, 0
    while j < len(units):
        if units[j : j + 2] == b"$\x00":
            dollars += 1
            j += 2
        j += 2
    return dollars, len(units) // 2 - 2 * dollars


# --- compilation ---------------------------------------------------------------------------


def compile_java_regex(pattern: str) -> JavaRegex:
    """Compiles ``pattern`` once (rule load); raises QuerySyntaxError where Java or RE2 can't."""
    return _compile(pattern)


@lru_cache(maxsize=256)
def _compile(pattern: str) -> JavaRegex:
    parser = JavaParser(pattern)
    tree = parser.parse()
    for node in walk(tree):
        if isinstance(node, Repeat) and node.max != 1 and nullable(node.body):
            raise QuerySyntaxError(
                f"invalid regex [{pattern}]: a repeated group that can match the empty string"
                " is not supported (Java ends such loops early, RE2 does not)"
            )
    dollars = [n for n in walk(tree) if isinstance(n, JavaDollar)]
    if dollars and not _dollars_in_tail(tree, True):
        raise QuerySyntaxError(
            f"invalid regex [{pattern}]: '$' is supported only at the end of the pattern"
        )
    plain_tree = _replace_dollars(tree, crlf=False)
    plain, groups, markers = _build(pattern, plain_tree, parser.group_count)
    crlf = None
    if dollars and not dollars[0].unix_lines:
        crlf, _, _ = _build(pattern, _replace_dollars(tree, crlf=True), parser.group_count)
    probe = plain._regexp.Match(_ANCHOR_START, b"\x01\x01", 1, 2)
    empty_at_mid = probe[0] == (1, 1)
    literal = _literal_text(tree)
    return JavaRegex(
        pattern, plain, crlf, groups, markers, dict(parser.names), empty_at_mid, literal
    )


def _literal_text(tree: Node) -> str | None:
    """The text a pattern made only of single characters matches (None for anything else)."""
    items = tree.items if isinstance(tree, Seq) else [tree]
    chars: list[str] = []
    for item in items:
        if not isinstance(item, Chars) or len(item.cs.ranges) != 1:
            return None
        lo, hi = item.cs.ranges[0]
        if lo != hi or 0xD800 <= lo <= 0xDFFF:
            return None
        chars.append(chr(lo))
    return "".join(chars) or None


def _build(
    pattern: str, tree: Node, java_groups: int
) -> tuple[re2._Regexp, tuple[int, ...], tuple[int, ...]]:
    by_group, marked = re2_numbering(tree)
    numbers = [by_group.get(index, 0) for index in range(java_groups + 1)]
    markers = [number for number, _ in marked]
    try:
        regex = re2.compile(emit(tree), re2_options())
    except re2.error as exc:
        raise QuerySyntaxError(f"invalid regex [{pattern}]: RE2 cannot run it ({exc})") from None
    return regex, tuple(numbers), tuple(markers)


def _dollars_in_tail(node: Node, tail: bool) -> bool:
    if isinstance(node, JavaDollar):
        return tail
    if isinstance(node, Seq):
        last = len(node.items) - 1
        return all(_dollars_in_tail(item, tail and k == last) for k, item in enumerate(node.items))
    if isinstance(node, Repeat):
        return _dollars_in_tail(node.body, tail and node.max == 1)
    return all(_dollars_in_tail(child, tail) for child in children(node))


def _replace_dollars(node: Node, crlf: bool) -> Node:
    """A copy of the tree with each JavaDollar as ``(marker)(terminator)?\\z``."""
    if isinstance(node, JavaDollar):
        if node.unix_lines:
            term: Node = Chars(CharSet.of(10))
        elif crlf:
            term = Seq([Chars(CharSet.of(13)), Chars(CharSet.of(10))])
        else:
            term = Chars(LINE_TERMINATORS)
        return Seq([Marker(), Repeat(term, 0, 1), Assert(r"\z")])
    if isinstance(node, Seq):
        return Seq([_replace_dollars(i, crlf) for i in node.items])
    if isinstance(node, Alt):
        return Alt([_replace_dollars(b, crlf) for b in node.branches])
    if isinstance(node, Group):
        return Group(_replace_dollars(node.body, crlf), node.index)
    if isinstance(node, Repeat):
        return Repeat(_replace_dollars(node.body, crlf), node.min, node.max, node.greedy)
    return node
