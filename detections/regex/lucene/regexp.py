"""ES|QL ``RLIKE``: Lucene regular expressions matched in linear time, as Elasticsearch does.

Elasticsearch 9.x turns ``field RLIKE "p"`` into ``Operations.determinize(new RegExp(p,
RegExp.ALL | RegExp.DEPRECATED_COMPLEMENT).toAutomaton(), 10000)`` (Lucene 10.4) and runs the
DFA over the whole value. We do the same in three steps:

1. :mod:`~auditstream.detections.regex.lucene.parser` parses exactly as Lucene's ``RegExp`` does;
2. :mod:`~auditstream.detections.regex.lucene.terms` turns the AST into derivative terms, from
which a
   complete DFA over character classes is built once, at load (bounded like Lucene's
   determinization: too many states is a load error, never a slow event);
3. when the pattern, after dropping intersections that provably match nothing, needs no ``&`` or
   ``~``, it is also translated to RE2 and matched in C; the DFA stays as the fallback (e.g. for
   strings RE2 cannot encode) and the two are property-tested to agree.

Matching never backtracks: the DFA does a dict lookup per character and stops early in a sink.
Compiled matchers are immutable after construction, so threads may share them freely.
"""

from __future__ import annotations

import functools
from typing import Protocol

import re2

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.lucene.parser import (
    AnyString,
    CharSet,
    Complement,
    Concat,
    EmptyLang,
    Inter,
    Lit,
    Node,
    Repeat,
    Union,
    parse,
)
from auditstream.detections.regex.lucene.terms import Classes, Terms, collect_sets, expand_intervals

__all__ = ["Matcher", "compile_rlike"]

MAX_DFA_STATES = 10_000  # Lucene gives up at 100k "effort"; we give up at this many states.
_EMPTY_CHECK_STATES = 2_000
_TABLE_LIMIT = 65_536  # cached code points per class table, beyond ASCII
_CHUNK = 256  # characters between two sink checks
_ACCEPT = ""  # key of a DFA row holding its accept flag (class keys are one char long)
_RE2_MAX_REPEAT = 1000


class Matcher(Protocol):
    """A compiled ES|QL pattern: ``matches`` is a whole-string match."""

    pattern: str

    def matches(self, text: str) -> bool: ...


class _ClassTable(dict[int, str]):
    """Code point -> class char, for ``str.translate``; fills itself for non-ASCII input.

    Writes are single dict assignments of immutable values, hence safe across threads.
    """

    __slots__ = ("_classes",)

    def __init__(self, classes: Classes) -> None:
        super().__init__()
        self._classes = classes
        for cp in range(128):
            self[cp] = chr(classes.of(cp))

    def __missing__(self, cp: int) -> str:
        cls = chr(self._classes.of(cp))
        if len(self) < _TABLE_LIMIT:
            self[cp] = cls
        return cls


Row = dict[str, object]  # class char -> next Row, plus _ACCEPT -> bool


class Dfa:
    """A complete DFA over character classes; each state is a dict, so a step is one lookup."""

    def __init__(self, terms: Terms, start: int, pattern: str) -> None:
        order, table = _explore(terms, start, MAX_DFA_STATES, pattern)
        self.rows: list[Row] = [{_ACCEPT: terms.nullable[t]} for t in order]
        for row, targets in zip(self.rows, table, strict=True):
            for cls, target in enumerate(targets):
                row[chr(cls)] = self.rows[target]
        self.start = self.rows[0]
        self.sinks = [row for i, row in enumerate(self.rows) if set(table[i]) == {i}]
        self.classes = _ClassTable(terms.classes)

    def run(self, text: str) -> bool:
        """Whole-string match; linear in ``len(text)`` with an early exit in sink states."""
        cls_text = text.translate(self.classes)
        row = self.start
        sinks = self.sinks
        for at in range(0, len(cls_text), _CHUNK):
            for c in cls_text[at : at + _CHUNK]:
                row = row[c]  # type: ignore[assignment]
            if any(row is s for s in sinks):
                break
        return bool(row[_ACCEPT])


def _explore(
    terms: Terms, start: int, limit: int, pattern: str
) -> tuple[list[int], list[list[int]]]:
    """All terms reachable from ``start`` and their per-class successors (by state index)."""
    index = {start: 0}
    order = [start]
    table: list[list[int]] = []
    for t in order:  # grows while iterating: breadth-first
        targets = [0] * terms.classes.count
        for block in terms.blocks(t):
            nxt = terms.derive(t, (block & -block).bit_length() - 1)
            j = index.get(nxt)
            if j is None:
                if len(order) >= limit:
                    raise QuerySyntaxError(
                        f"pattern too complex to determinize (over {limit} states): {pattern!r}"
                    )
                j = index[nxt] = len(order)
                order.append(nxt)
            rest = block
            while rest:
                low = rest & -rest
                targets[low.bit_length() - 1] = j
                rest ^= low
        table.append(targets)
    return order, table


def _is_empty(terms: Terms, node: Node) -> bool:
    """True if ``node`` provably matches no string (bounded search for an accepting term)."""
    start = terms.build(node)
    seen = {start}
    todo = [start]
    while todo:
        t = todo.pop()
        if terms.nullable[t]:
            return False
        for block in terms.blocks(t):
            nxt = terms.derive(t, (block & -block).bit_length() - 1)
            if nxt not in seen:
                if len(seen) >= _EMPTY_CHECK_STATES:
                    return False
                seen.add(nxt)
                todo.append(nxt)
    return True


def _empty_repeats(node: Node, terms: Terms, pattern: str) -> Node:
    """Reproduce Lucene 10's repeats of an automaton without states (an empty language).

    Checked against the real Lucene: ``x*``, ``x+`` and ``x{n,}`` of an empty ``x`` match
    nothing (not even the empty string, unlike the textbook star); ``x{0,m}`` is the empty
    string. ``x{n,m}`` with ``n >= 1`` builds a malformed empty automaton: concatenation, union,
    complement and ``+`` rebuild it into a sound one, but when it reaches the query itself
    (directly, or through ``&``, ``*`` or another bounded repeat) Lucene throws
    ArrayIndexOutOfBoundsException, which fails the query in Elasticsearch, so it fails the
    rule's load here. ``#{2}`` fails; ``a#{2}`` matches nothing; ``a|#{2}`` matches ``a``.
    """
    rewritten, malformed = _rewrite_empty_repeats(node, terms)
    if malformed:
        raise QuerySyntaxError(
            f"invalid RLIKE pattern {pattern!r}: Lucene cannot build a bounded repeat of "
            "an empty language (ArrayIndexOutOfBoundsException)"
        )
    return rewritten


def _rewrite_empty_repeats(node: Node, terms: Terms) -> tuple[Node, bool]:
    """``node`` with repeats of empty languages resolved, and whether Lucene's automaton for
    it is the malformed empty one (see :func:`_empty_repeats`)."""
    match node:
        case Repeat(inner=inner, lo=lo, hi=hi):
            inner, malformed = _rewrite_empty_repeats(inner, terms)
            if not malformed and not _is_empty(terms, inner):
                return Repeat(inner, lo, hi), False
            if hi is None:
                return EmptyLang(), malformed and lo == 0  # x+ and x{n,} concatenate: sound
            if lo == 0:
                return Lit(""), False
            return EmptyLang(), True
        case Concat(left=left, right=right):
            return Concat(_rewritten(left, terms), _rewritten(right, terms)), False
        case Union(left=left, right=right):
            return Union(_rewritten(left, terms), _rewritten(right, terms)), False
        case Inter(left=left, right=right):
            left, bad_left = _rewrite_empty_repeats(left, terms)
            right, bad_right = _rewrite_empty_repeats(right, terms)
            return Inter(left, right), bad_left or bad_right
        case Complement(inner=inner):
            return Complement(_rewritten(inner, terms)), False
        case _:
            return node, False


def _rewritten(node: Node, terms: Terms) -> Node:
    return _rewrite_empty_repeats(node, terms)[0]


class _NotTranslatable(Exception):
    """The node needs intersection or complement (or exceeds RE2's limits)."""


def _re2_class(ranges: tuple[tuple[int, int], ...]) -> str:
    """An RE2 class for ``ranges`` minus surrogates (RE2 input is UTF-8: they cannot occur)."""
    parts: list[str] = []
    for lo, hi in ranges:
        for a, b in ((lo, min(hi, 0xD7FF)), (max(lo, 0xE000), hi)):
            if a <= b:
                parts.append(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}")
    if not parts:
        raise _NotTranslatable("surrogate-only class")
    return "[" + "".join(parts) + "]"


def _to_re2(node: Node, terms: Terms) -> str | None:
    """RE2 syntax for ``node``, or None for the empty language."""
    if isinstance(node, Lit):
        return "".join(f"\\x{{{ord(c):X}}}" for c in node.text) if node.text else "(?:)"
    if isinstance(node, CharSet):
        return _re2_class(node.ranges)
    if isinstance(node, EmptyLang):
        return None
    if isinstance(node, AnyString):
        return "[\\x{0}-\\x{D7FF}\\x{E000}-\\x{10FFFF}]*"
    if isinstance(node, Inter):
        if _is_empty(terms, node):
            return None
        raise _NotTranslatable("intersection")
    if isinstance(node, Complement):
        raise _NotTranslatable("complement")
    if isinstance(node, Repeat):
        return _repeat_to_re2(node, terms)
    parts = [_to_re2(p, terms) for p in _operands(node)]
    if isinstance(node, Concat):
        return None if None in parts else "".join(f"(?:{p})" for p in parts)
    alternatives = [p for p in parts if p is not None]
    return "|".join(f"(?:{p})" for p in alternatives) if alternatives else None


def _repeat_to_re2(node: Repeat, terms: Terms) -> str | None:
    inner = _to_re2(node.inner, terms)
    if inner is None:
        return "(?:)" if node.lo == 0 else None
    if node.lo > _RE2_MAX_REPEAT or (node.hi or 0) > _RE2_MAX_REPEAT:
        raise _NotTranslatable("repeat count")
    hi = "" if node.hi is None else str(node.hi)
    return f"(?:{inner}){{{node.lo},{hi}}}"


def _operands(node: Node) -> list[Node]:
    """Operands of a Concat or Union chain, iteratively (chains can be long)."""
    out: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        cur = stack.pop()
        if type(cur) is type(node) and isinstance(cur, Concat | Union):
            stack.extend((cur.right, cur.left))
        else:
            out.append(cur)
    return out


def _compile_re2(node: Node, terms: Terms) -> object | None:
    """A compiled RE2 equivalent of ``node`` when one exists, else None."""
    try:
        source = _to_re2(node, terms)
    except (_NotTranslatable, RecursionError):
        return None
    if source is None:
        return None
    options = re2.Options()
    options.log_errors = False
    try:
        compiled: object = re2.compile(source, options)
    except re2.error:
        return None
    return compiled


class RlikeMatcher:
    """A compiled RLIKE pattern (immutable; safe to share between threads)."""

    __slots__ = ("_dfa", "_re2", "pattern")

    def __init__(self, pattern: str, dfa: Dfa, compiled_re2: object | None) -> None:
        self.pattern = pattern
        self._dfa = dfa
        self._re2 = compiled_re2

    def matches(self, text: str) -> bool:
        """Whole-string match of ``text``, with Lucene's semantics."""
        if self._re2 is not None:
            try:
                return self._re2.fullmatch(text) is not None  # type: ignore[attr-defined]
            except UnicodeEncodeError:
                pass  # lone surrogates: RE2 needs UTF-8, the DFA does not
        return self._dfa.run(text)

    def __repr__(self) -> str:
        return f"RlikeMatcher({self.pattern!r})"


def matcher_from_node(pattern: str, node: Node, *, use_re2: bool = True) -> RlikeMatcher:
    """Compiles a parsed pattern (shared with LIKE, whose wildcards are a subset of the AST)."""
    try:
        node = expand_intervals(node)
        sets: list[tuple[tuple[int, int], ...]] = []
        collect_sets(node, sets)
        terms = Terms(Classes(sets))
        node = _empty_repeats(node, terms, pattern)
        dfa = Dfa(terms, terms.build(node), pattern)
        compiled = _compile_re2(node, terms) if use_re2 else None
    except RecursionError:
        raise QuerySyntaxError(f"pattern nested too deeply: {pattern!r}") from None
    return RlikeMatcher(pattern, dfa, compiled)


def build_dfa_matcher(pattern: str, *, use_re2: bool = True) -> RlikeMatcher:
    """Compiles an RLIKE ``pattern``; ``use_re2=False`` forces the DFA path (for tests)."""
    return matcher_from_node(pattern, parse(pattern), use_re2=use_re2)


@functools.lru_cache(maxsize=512)
def compile_rlike(pattern: str) -> Matcher:
    """Compiles an ES|QL RLIKE pattern; raises QuerySyntaxError where Elasticsearch rejects it.

    Cached: building the DFA of a large pattern takes up to a second, matchers are immutable,
    and many rules (and every rule reload) repeat the same patterns.
    """
    return build_dfa_matcher(pattern)
