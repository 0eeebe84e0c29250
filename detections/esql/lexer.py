"""Tokens of the ES|QL subset auditstream compiles.

The lexer follows Elasticsearch's grammar where it changes what a rule means: double-quoted
strings know only the escapes ``\\t \\n \\r \\" \\\\`` and may not span lines; triple-quoted strings
are verbatim (and, as in ANTLR's rule, may swallow up to two extra closing quotes); ``//`` and
``/* */`` are comments. Positions are 1-based (line, column) so errors point into the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from auditstream.detections.errors import QuerySyntaxError


class Kind(Enum):
    """Token kinds; keywords are IDENT tokens the parser recognises case-insensitively."""

    IDENT = "identifier"
    QUOTED_IDENT = "quoted identifier"
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    OP = "operator"
    PIPE = "|"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    SOURCE = "index pattern"
    EOF = "end of query"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str  # the value: unescaped for strings, raw for everything else
    line: int
    column: int
    offset: int  # where the token starts and ends in the query text
    end: int


_OPERATORS = ("==", "!=", "<=", ">=", "=~", "<", ">", "=", "+", "-", "*", "/", "%", ".", ":")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_@")
_IDENT_BODY = _IDENT_START | frozenset("0123456789")
_SOURCE_STOP = frozenset(' \t\r\n,|"()[]=`')


class Lexer:
    """Turns query text into tokens; FROM sources are lexed on request by the parser."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._i = 0
        self._line = 1
        self._line_start = 0

    @property
    def text(self) -> str:
        return self._text

    def error(self, message: str) -> QuerySyntaxError:
        return QuerySyntaxError(message, self._line, self._i - self._line_start + 1)

    def _advance(self, count: int) -> None:
        for ch in self._text[self._i : self._i + count]:
            self._i += 1
            if ch == "\n":
                self._line += 1
                self._line_start = self._i

    def _skip_blank(self) -> None:
        text = self._text
        while self._i < len(text):
            ch = text[self._i]
            if ch in " \t\r\n":
                self._advance(1)
            elif text.startswith("//", self._i):
                end = text.find("\n", self._i)
                self._advance((len(text) if end < 0 else end) - self._i)
            elif text.startswith("/*", self._i):
                end = text.find("*/", self._i + 2)
                if end < 0:
                    raise self.error("unterminated /* comment")
                self._advance(end + 2 - self._i)
            else:
                return

    def next_token(self) -> Token:
        self._skip_blank()
        line, column = self._line, self._i - self._line_start + 1
        start = self._i
        if start >= len(self._text):
            return Token(Kind.EOF, "", line, column, start, start)
        kind, value, length = self._scan()
        self._advance(length)
        return Token(kind, value, line, column, start, self._i)

    def next_source(self) -> Token | None:
        """An index pattern after FROM (``logs-*``, ``remote:logs-*``, or a quoted string)."""
        self._skip_blank()
        line, column = self._line, self._i - self._line_start + 1
        text, start = self._text, self._i
        if start < len(text) and text[start] == '"':
            kind, value, length = self._scan()
            self._advance(length)
            return Token(kind, value, line, column, start, self._i)
        end = start
        while end < len(text) and text[end] not in _SOURCE_STOP:
            end += 1
        if end == start:
            return None
        self._advance(end - start)
        return Token(Kind.SOURCE, text[start:end], line, column, start, end)

    def _scan(self) -> tuple[Kind, str, int]:
        text, i = self._text, self._i
        ch = text[i]
        if text.startswith('"""', i):
            return self._triple_quoted()
        if ch == '"':
            return self._double_quoted()
        if ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise self.error("unterminated quoted identifier")
            return Kind.QUOTED_IDENT, text[i + 1 : end], end + 1 - i
        if ch.isdigit() or (ch == "." and i + 1 < len(text) and text[i + 1].isdigit()):
            return self._number()
        if ch in _IDENT_START:
            end = i + 1
            while end < len(text) and text[end] in _IDENT_BODY:
                end += 1
            return Kind.IDENT, text[i:end], end - i
        simple = {"|": Kind.PIPE, "(": Kind.LPAREN, ")": Kind.RPAREN, ",": Kind.COMMA}
        if ch in simple:
            return simple[ch], ch, 1
        for op in _OPERATORS:
            if text.startswith(op, i):
                return Kind.OP, op, len(op)
        raise self.error(f"unexpected character {ch!r}")

    def _triple_quoted(self) -> tuple[Kind, str, int]:
        text, i = self._text, self._i
        end = text.find('"""', i + 3)
        newline = text.find("\n", i + 3)
        if end < 0 or 0 <= newline < end:
            raise self.error("unterminated triple-quoted string (it may not span lines)")
        stop = end + 3
        extra = 0
        while extra < 2 and stop < len(text) and text[stop] == '"':
            stop += 1
            extra += 1
        return Kind.STRING, text[i + 3 : stop - 3], stop - i

    def _double_quoted(self) -> tuple[Kind, str, int]:
        text, i = self._text, self._i + 1
        out: list[str] = []
        while i < len(text):
            ch = text[i]
            if ch == '"':
                return Kind.STRING, "".join(out), i + 1 - self._i
            if ch in "\r\n":
                break
            if ch == "\\":
                nxt = text[i + 1 : i + 2]
                if nxt not in _ESCAPES:
                    raise QuerySyntaxError(
                        f'invalid escape sequence \\{nxt} in string (only \\t \\n \\r \\" \\\\)',
                        self._line,
                        i - self._line_start + 1,
                    )
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            out.append(ch)
            i += 1
        raise self.error("unterminated string")

    def _number(self) -> tuple[Kind, str, int]:
        text, i = self._text, self._i
        end = i
        while end < len(text) and text[end].isdigit():
            end += 1
        kind = Kind.INTEGER
        if end < len(text) and text[end] == "." and not text.startswith("..", end):
            kind = Kind.DECIMAL
            end += 1
            while end < len(text) and text[end].isdigit():
                end += 1
        if end < len(text) and text[end] in "eE":
            exp = end + 1
            if exp < len(text) and text[exp] in "+-":
                exp += 1
            if exp < len(text) and text[exp].isdigit():
                kind = Kind.DECIMAL
                end = exp
                while end < len(text) and text[end].isdigit():
                    end += 1
        return kind, text[i:end], end - i
