"""A hand-written parser for KQL that accepts exactly what Kibana's PEG grammar accepts.

The grammar is ``kbn-es-query/src/kuery/grammar/grammar.peggy``. This parser follows it rule for
rule, ordered choice and backtracking included, because KQL's quirks live in that grammar:

* precedence is ``not`` > ``and`` > ``or``; ``and``/``or`` (any case) need whitespace on both
  sides, ``not`` needs whitespace after it; ``not(x)`` is not a negation;
* an unquoted value runs until a special character ``\\ ( ) : < > " * { }`` (``*`` is a
  wildcard inside it) or a keyword (`` or ``, `` and ``, ``not ``), so it may contain spaces
  (``f:a b`` is the value ``a b``) and ``f:cannot x`` stops at ``can`` and fails; the value is
  then trimmed, and exactly ``true``/``false``/``null`` become those literals;
* unquoted escapes are ``\\t \\r \\n``, ``\\`` + a special character, ``\\uXXXX`` and the
  keywords ``\\or \\and \\not``; the grammar tries ``\\n`` first, so ``\\not`` is a newline
  followed by ``ot`` (``\\NOT`` is ``NOT``); any other backslash is a syntax error;
* a quoted value knows ``\\" \\\\ \\t \\r \\n \\uXXXX``; any other backslash is kept as is;
* ``f:(a or b)`` lists take ``and``/``or``/``not`` and parentheses, ``f:{...}`` is nested.

Like peggy, a failure is reported at the furthest position any rule reached, with what was
expected there, as :class:`QuerySyntaxError` with 1-based line and column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.kql import ast

__all__ = ["parse_kql"]

_SPACE = " \t\r\n\u00a0"
_SPECIAL = '\\():<>"*{}'
_ESCAPED_WS = {"t": "\t", "r": "\r", "n": "\n"}
_HEX = "0123456789abcdefABCDEF"
# JavaScript's String.prototype.trim: WhiteSpace and LineTerminator code points.
_JS_TRIM = frozenset(
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_RANGE_OPS = (("<=", "lte"), (">=", "gte"), ("<", "lt"), (">", "gt"))
_MAX_DEPTH = 100
_STAR = object()  # the wildcard symbol inside an unquoted value, as Kibana's KQL_WILDCARD_SYMBOL

ValueTree = Callable[[ast.Value], ast.Node]


def parse_kql(text: str) -> ast.Node:
    """The syntax tree of ``text``; raises QuerySyntaxError at the furthest failure."""
    return _Parser(text).parse()


_T = TypeVar("_T")


class _Parser:
    """One parse of one query. Rule methods return ``None`` on failure (PEG style) and leave
    ``pos`` where they started; ``_fail`` records the furthest failure for the error."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.pos = 0
        self.depth = 0
        self.far = 0
        self.expected: set[str] = set()

    # -- helpers --------------------------------------------------------------------------------

    def where(self, offset: int) -> ast.Pos:
        line = self.s.count("\n", 0, offset) + 1
        return ast.Pos(line, offset - (self.s.rfind("\n", 0, offset) + 1) + 1)

    def _fail(self, what: str, at: int | None = None) -> None:
        at = self.pos if at is None else at
        if at > self.far:
            self.far, self.expected = at, {what}
        elif at == self.far:
            self.expected.add(what)

    def _char(self, ch: str) -> bool:
        if self.s.startswith(ch, self.pos):
            self.pos += len(ch)
            return True
        self._fail(repr(ch))
        return False

    def _spaces(self) -> int:
        start = self.pos
        while self.pos < len(self.s) and self.s[self.pos] in _SPACE:
            self.pos += 1
        return self.pos - start

    def _word(self, word: str, at: int) -> bool:
        return self.s[at : at + len(word)].lower() == word

    def _keyword(self, word: str) -> bool:
        """``Space+ word Space+`` (``Or``/``And``); consumes it or fails in place."""
        start = self.pos
        if self._spaces() and self._word(word, self.pos):
            self.pos += len(word)
            if self._spaces():
                return True
        self._fail(word.upper(), start)
        self.pos = start
        return False

    def _not(self) -> bool:
        start = self.pos
        if self._word("not", self.pos):
            self.pos += 3
            if self._spaces():
                return True
        self._fail("NOT", start)
        self.pos = start
        return False

    def _at_keyword(self, at: int) -> bool:
        """Grammar rule ``Keyword``: `` or ``, `` and `` or ``not `` starts at ``at``."""
        s = self.s
        if s[at : at + 1] in ("", *_SPACE) and at < len(s):
            for word in ("or", "and"):
                end = at + 1 + len(word)
                if self._word(word, at + 1) and end < len(s) and s[end] in _SPACE:
                    return True
        return self._word("not", at) and at + 3 < len(s) and s[at + 3] in _SPACE

    def _enclosed(self, inner: Callable[[], _T], close: str) -> _T | None:
        """``inner`` between an opening bracket just read and ``close``, spaces allowed inside;
        ``None`` (position not restored: the caller backtracks) when either is missing."""
        self._enter()
        self._spaces()
        found = inner()
        self.depth -= 1
        if found is None:
            return None
        self._spaces()
        return found if self._char(close) else None

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            where = self.where(self.pos)
            raise QuerySyntaxError("KQL query nested too deeply", where.line, where.column)

    # -- entry ------------------------------------------------------------------------------------

    def parse(self) -> ast.Node:
        self._spaces()
        node: ast.Node | None = self.or_query()
        self._spaces()
        if node is None and self.pos == len(self.s):
            node = ast.MatchAll()
        if node is not None and self.pos == len(self.s):
            return node
        self._fail("end of input")
        at = self.where(self.far)
        found = repr(self.s[self.far]) if self.far < len(self.s) else "end of input"
        expected = ", ".join(sorted(self.expected))
        raise QuerySyntaxError(
            f"KQL syntax error: expected {expected} but {found} found", at.line, at.column
        )

    # -- queries ----------------------------------------------------------------------------------

    def or_query(self) -> ast.Node | None:
        return self._chain(self.and_query, "or", ast.Or)

    def and_query(self) -> ast.Node | None:
        return self._chain(self.not_query, "and", ast.And)

    def _chain(
        self,
        item: Callable[[], ast.Node | None],
        word: str,
        build: Callable[[tuple[ast.Node, ...]], ast.Node],
    ) -> ast.Node | None:
        items: list[ast.Node] | None = self._separated(item, word)
        if items is None:
            return None
        return items[0] if len(items) == 1 else build(tuple(items))

    def _separated(self, item: Callable[[], _T | None], word: str) -> list[_T] | None:
        """``item (word item)*``, backtracking over a trailing ``word`` that no item follows
        (Kibana's grammar: ``x:a and`` at the end is the value ``a and``)."""
        head = item()
        if head is None:
            return None
        items = [head]
        while True:
            start = self.pos
            if self._keyword(word):
                nxt = item()
                if nxt is not None:
                    items.append(nxt)
                    continue
            self.pos = start
            return items

    def not_query(self) -> ast.Node | None:
        start = self.pos
        if self._not():
            inner = self.sub_query()
            if inner is not None:
                return ast.Not(inner, self.where(start))
            self.pos = start
        return self.sub_query()

    def sub_query(self) -> ast.Node | None:
        start = self.pos
        if self._char("("):
            query = self._enclosed(self.or_query, ")")
            if query is not None:
                return query
            self.pos = start
        return self.nested_query()

    def nested_query(self) -> ast.Node | None:
        start = self.pos
        field = self.literal()
        if field is not None:
            self._spaces()
            if self._char(":"):
                self._spaces()
                if self._char("{"):
                    query = self._enclosed(self.or_query, "}")
                    if query is not None:
                        return ast.Nested(field, query, self.where(start))
        self.pos = start
        return self.expression()

    def expression(self) -> ast.Node | None:
        start = self.pos
        field = self.literal()
        if field is not None:
            self._spaces()
            op = self._range_op()
            if op is not None:
                self._spaces()
                value = self.literal()
                if value is not None:
                    return ast.Range(field, op, value, self.where(start))
            self.pos = start
            field = self.literal()
            assert field is not None  # same input, same result
            self._spaces()
            if self._char(":"):
                self._spaces()
                tree = self.list_of_values()
                if tree is not None:
                    return tree(field)
        self.pos = start
        free = self.value()
        return None if free is None else free(None)

    def _range_op(self) -> str | None:
        for text, name in _RANGE_OPS:
            if self.s.startswith(text, self.pos):
                self.pos += len(text)
                return name
        self._fail("range operator")
        return None

    # -- value lists ------------------------------------------------------------------------------

    def list_of_values(self) -> ValueTree | None:
        start = self.pos
        if self._char("("):
            tree = self._enclosed(self._or_values, ")")
            if tree is not None:
                return tree
            self.pos = start
        return self.value()

    def _or_values(self) -> ValueTree | None:
        return self._value_chain(self._and_values, "or", ast.Or)

    def _and_values(self) -> ValueTree | None:
        return self._value_chain(self._not_values, "and", ast.And)

    def _value_chain(
        self,
        item: Callable[[], ValueTree | None],
        word: str,
        build: Callable[[tuple[ast.Node, ...]], ast.Node],
    ) -> ValueTree | None:
        items = self._separated(item, word)
        if items is None:
            return None
        if len(items) == 1:
            return items[0]
        parts = tuple(items)
        return lambda field: build(tuple(part(field) for part in parts))

    def _not_values(self) -> ValueTree | None:
        start = self.pos
        if self._not():
            inner = self.list_of_values()
            if inner is not None:
                where = self.where(start)
                return lambda field: ast.Not(inner(field), where)
            self.pos = start
        return self.list_of_values()

    def value(self) -> Callable[[ast.Value | None], ast.Node] | None:
        value = self.literal()
        if value is None:
            self._fail("value")
            return None
        return lambda field: ast.Is(field, value, value.pos)

    # -- literals ---------------------------------------------------------------------------------

    def literal(self) -> ast.Value | None:
        if self.s.startswith('"', self.pos):
            return self.quoted()
        return self.unquoted()

    def quoted(self) -> ast.Value | None:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        s = self.s
        while self.pos < len(s) and s[self.pos] != '"':
            ch = s[self.pos]
            if ch == "\\":
                nxt = s[self.pos + 1 : self.pos + 2]
                escaped = self._escape_common(nxt)
                if escaped is not None:
                    out.append(escaped[0])
                    self.pos += escaped[1]
                    continue
                if nxt in ('"', "\\"):
                    out.append(nxt)
                    self.pos += 2
                    continue
            out.append(ch)
            self.pos += 1
        if not self._char('"'):
            self.pos = start
            return None
        return ast.Literal("".join(out), True, self.where(start))

    def _escape_common(self, nxt: str) -> tuple[str, int] | None:
        """``\\t \\r \\n`` and ``\\uXXXX`` after a backslash at ``pos``: (text, length)."""
        if nxt in _ESCAPED_WS:
            return _ESCAPED_WS[nxt], 2
        digits = self.s[self.pos + 2 : self.pos + 6]
        if nxt == "u" and len(digits) == 4 and all(d in _HEX for d in digits):
            return chr(int(digits, 16)), 6
        return None

    def unquoted(self) -> ast.Value | None:
        start = self.pos
        s = self.s
        chars: list[object] = []
        while self.pos < len(s):
            ch = s[self.pos]
            if ch == "\\":
                taken = self._unquoted_escape()
                if taken is None:
                    self._fail("escape sequence")
                    break
                chars.extend(taken)
                continue
            if ch == "*":
                chars.append(_STAR)
                self.pos += 1
                continue
            if ch in _SPECIAL or self._at_keyword(self.pos):
                break
            chars.append(ch)
            self.pos += 1
        if not chars:
            self._fail("literal")
            return None
        return _build_unquoted(chars, self.where(start))

    def _unquoted_escape(self) -> str | None:
        nxt = self.s[self.pos + 1 : self.pos + 2]
        common = self._escape_common(nxt)
        if common is not None:
            self.pos += common[1]
            return common[0]
        if nxt and nxt in _SPECIAL:
            self.pos += 2
            return nxt
        for word in ("or", "and", "not"):
            if self._word(word, self.pos + 1):
                text = self.s[self.pos + 1 : self.pos + 1 + len(word)]
                self.pos += 1 + len(word)
                return text
        return None


def _build_unquoted(chars: list[object], pos: ast.Pos) -> ast.Value:
    """``chars.join('').trim()`` and the literal/wildcard decision of ``UnquotedLiteral``."""
    lo, hi = 0, len(chars)
    while lo < hi and chars[lo] in _JS_TRIM:
        lo += 1
    while hi > lo and chars[hi - 1] in _JS_TRIM:
        hi -= 1
    kept = chars[lo:hi]
    if _STAR in kept:
        parts: list[str] = []
        run: list[str] = []
        for item in kept:
            if item is _STAR:
                parts.append("".join(run))
                run = []
            else:
                run.append(str(item))
        parts.append("".join(run))
        return ast.Wildcard(tuple(parts), pos)
    text = "".join(str(c) for c in kept)
    value: str | bool | None = {"null": None, "true": True, "false": False}.get(text, text)
    return ast.Literal(value, False, pos)
